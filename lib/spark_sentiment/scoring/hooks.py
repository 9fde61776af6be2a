"""Points where a caller can observe (or interrupt) a scoring run: before the Delta write starts and after
it committed, for an application that calls ``score_table`` itself (an audit line, a metric); the fault
tests use them to kill a driver at a known point. The package itself never acts on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..io.delta import WriteResult
from ..io.tables import TableRef


@dataclass(frozen=True)
class WriteHooks:
    """Callbacks of the scoring job's write (each attempt, retries included)."""

    before_write: Optional[Callable[[TableRef], None]] = None
    after_write: Optional[Callable[[TableRef, WriteResult], None]] = None

    def fire_before(self, target: TableRef) -> None:
        if self.before_write is not None:
            self.before_write(target)

    def fire_after(self, target: TableRef, result: WriteResult) -> None:
        if self.after_write is not None:
            self.after_write(target, result)


def write_through(hooks: WriteHooks, target: TableRef, write: Callable[[], WriteResult]) -> WriteResult:
    """Run ``write`` between the hooks."""
    hooks.fire_before(target)
    result = write()
    hooks.fire_after(target, result)
    return result
