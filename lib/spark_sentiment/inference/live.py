"""Rows scored by running tasks, as they go: workers send UDP datagrams to a listener on the driver.

Spark's status tracker and accumulators report a task only when it ends, so a scoring run with one long
task per core showed "0 rows" for hours. Each native-engine UDF call on a worker sends the texts it has
done so far (cumulative, at most every :data:`SEND_EVERY` seconds and once at its end) to the driver's
``spark.driver.host``; the listener keeps the latest count per task and sums them. A datagram is a
progress figure only: one lost or late changes a line, never a result, and a worker that cannot send
(no route to the driver) stops trying after the first failure and logs it once.

Datagram (ASCII): ``<token> <stage> <partition> <attempt> <call> <texts>``; ``token`` is random per driver
process, so stray datagrams are ignored. ``call`` tells the UDF calls of one task apart (one per text
column; Spark may run them in separate Python worker processes): the worker's pid and a counter.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

SEND_EVERY = 0.5  # seconds between datagrams of one UDF call, at most


@dataclass(frozen=True)
class Address:
    """Where workers send (picklable: part of the UDF's closure)."""

    host: str
    port: int
    token: str


class RowsListener:
    """A UDP listener on the driver that keeps the latest count per task (a retried task's newest attempt).

    :meth:`texts` sums them for given stages, :meth:`stages` says which stages reported (the scoring
    stages, which progress counts the tasks of), :meth:`forget` drops a finished run's stages. One per
    driver process (:func:`shared_listener`), like PySpark's own accumulator server.
    """

    def __init__(self, host: str, bind: str | None = None) -> None:
        family = socket.getaddrinfo(bind or host, 0, type=socket.SOCK_DGRAM)[0][0]
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.bind((bind or host, 0))
        self._socket.settimeout(0.2)
        self.address = Address(host, self._socket.getsockname()[1], secrets.token_hex(8))
        self._latest: dict[tuple[int, int, int], tuple[int, int]] = {}  # (stage, partition, call) -> (attempt, texts)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="spark-sentiment-rows", daemon=True)

    def start(self) -> "RowsListener":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()

    def _serve(self) -> None:
        token = self.address.token.encode()
        while not self._stop.is_set():
            try:
                data = self._socket.recv(256)
            except (TimeoutError, socket.timeout):  # socket.timeout: Python < 3.10 spelling
                continue
            except OSError:
                return
            self.take(data, token)

    def take(self, data: bytes, token: bytes) -> None:
        parts = data.split()
        if len(parts) != 6 or parts[0] != token:
            return
        try:
            stage, partition, attempt, call, texts = map(int, parts[1:])
        except ValueError:
            return
        key = (stage, partition, call)
        with self._lock:
            seen = self._latest.get(key)
            if seen is None or (attempt, texts) > seen:  # a newer attempt restarts the count
                self._latest[key] = (attempt, texts)

    def texts(self, stages: set[int]) -> int:
        with self._lock:
            return sum(texts for (stage, _, _), (_, texts) in self._latest.items() if stage in stages)

    def stages(self) -> set[int]:
        with self._lock:
            return {stage for stage, _, _ in self._latest}

    def running(self, stage: int) -> int:
        """Tasks (partitions) of ``stage`` that reported rows: started, and possibly done."""
        with self._lock:
            return len({partition for s, partition, _ in self._latest if s == stage})

    def forget(self, stages: set[int]) -> None:
        with self._lock:
            self._latest = {key: value for key, value in self._latest.items() if key[0] not in stages}


class RowsReporter:
    """One UDF call's sender on a worker: ``add(texts)`` as texts are done, ``close()`` at the end."""

    _calls: dict[tuple[int, int, int], int] = {}  # per task attempt: UDF calls started in this process
    _broken = False  # this process could not send once: it stops trying

    def __init__(self, address: Address) -> None:
        from pyspark import TaskContext

        context = TaskContext.get()
        self.address = address
        self.texts = 0
        self._last = 0.0
        self._socket: socket.socket | None = None
        if context is None or RowsReporter._broken:
            self._prefix = None
            return
        task = (context.stageId(), context.partitionId(), context.attemptNumber())
        call = RowsReporter._calls.get(task, 0)
        RowsReporter._calls = {task: call + 1}  # only the running task's entry is kept
        slot = os.getpid() * 64 + call  # unique per task: other processes differ by pid, calls here by counter
        self._prefix = f"{address.token} {task[0]} {task[1]} {task[2]} {slot} "

    def add(self, texts: int) -> None:
        self.texts += texts
        now = time.monotonic()
        if now - self._last >= SEND_EVERY:
            self._last = now
            self._send()

    def close(self) -> None:
        self._send()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _send(self) -> None:
        if self._prefix is None:
            return
        try:
            if self._socket is None:
                family = socket.getaddrinfo(self.address.host, self.address.port, type=socket.SOCK_DGRAM)[0][0]
                self._socket = socket.socket(family, socket.SOCK_DGRAM)
            self._socket.sendto(f"{self._prefix}{self.texts}".encode(), (self.address.host, self.address.port))
        except OSError as exc:  # progress only: the scoring goes on without it
            RowsReporter._broken = True
            self._prefix = None
            print(f"spark-sentiment: no live progress from this worker ({exc})", file=sys.stderr)


_SHARED: dict[tuple[str, str | None], RowsListener | None] = {}
_SHARED_LOCK = threading.Lock()


def shared_listener(host: str, bind: str | None = None) -> RowsListener | None:
    """This driver process's listener on ``host`` (what executors reach the driver at:
    ``spark.driver.host``; bound to ``spark.driver.bindAddress`` when set), started on first use; None
    (logged once) where it cannot bind."""
    with _SHARED_LOCK:
        key = (host, bind)
        if key not in _SHARED:
            try:
                _SHARED[key] = RowsListener(host, bind).start()
            except OSError as exc:
                log.info("no live row counts (cannot listen on %s: %s); rows show as tasks end", bind or host, exc)
                _SHARED[key] = None
        return _SHARED[key]


def listener_for(address: Address | None) -> RowsListener | None:
    """The running listener ``address`` points at (the UDF's closure holds only the address)."""
    if address is None:
        return None
    with _SHARED_LOCK:
        return next((found for found in _SHARED.values() if found is not None and found.address == address), None)
