"""Progress that tells the truth: rows from running tasks (UDP from the workers), the scoring stage's own
tasks, and the exact rows at the end."""

from __future__ import annotations

import socket

from spark_sentiment.config import load_config
from spark_sentiment.inference.live import Address, RowsListener
from spark_sentiment.inference.worker import ChoicesParam
from support.data import TINY


def test_the_listener_keeps_the_newest_count_per_task_and_ignores_strangers():
    listener = RowsListener("127.0.0.1")
    token = listener.address.token.encode()
    for datagram in [
        b"%s 7 0 0 0 10" % token,
        b"%s 7 0 0 0 30" % token,
        b"%s 7 0 0 0 20" % token,  # late: an older count of the same attempt
        b"%s 7 1 0 0 15" % token,
        b"%s 7 1 1 0 5" % token,  # a retried task starts again from its own count
        b"%s 7 1 0 1 15" % token,  # the second text column of task 1's first attempt
        b"wrongtoken 7 2 0 0 99",
        b"%s 7 2 zero 0 99" % token,
        b"%s 8 0 0 0 50" % token,  # another stage
    ]:
        listener.take(datagram, token)
    assert listener.texts({7}) == 30 + 5 + 15 and listener.texts({7, 8}) == 100
    assert listener.stages() == {7, 8}
    listener.forget({7})
    assert listener.stages() == {8}


def test_datagrams_reach_a_started_listener():
    listener = RowsListener("127.0.0.1").start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(f"{listener.address.token} 3 0 0 0 12".encode(), ("127.0.0.1", listener.address.port))
        import time

        deadline = time.monotonic() + 5
        while listener.texts({3}) != 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listener.texts({3}) == 12
    finally:
        listener.close()
    assert isinstance(listener.address, Address)


def test_precision_choices_merge_by_cpu_and_choice():
    param = ChoicesParam()
    a = {"cpu": "EPYC", "chosen": "bf16", "rows_per_s": {"fp32": 20.0, "bf16": 31.0}, "tasks": 1}
    b = {"cpu": "Xeon", "chosen": "fp32", "rows_per_s": {"fp32": 30.0, "bf16": 19.0}, "tasks": 1}
    merged = param.zero({})
    for record in (a, a, b, a):
        merged = param.addInPlace(merged, {f"{record['cpu']} | {record['chosen']}": record})
    assert {k: v["tasks"] for k, v in merged.items()} == {"EPYC | bf16": 3, "Xeon | fp32": 1}
    assert a["tasks"] == 1  # the records added are not changed


def test_rows_rise_while_one_or_two_long_tasks_run_and_the_last_line_is_exact(spark, tiny_model, tmp_path, caplog):
    """Two tasks of 20 rows, each mini-batch of 2 rows taking 0.3 s: Spark reports neither task before it
    ends (~3 s), yet the lines show rows rising before that, and the last one says 100% and 40 rows."""
    from spark_sentiment.scoring.config import ScoreJobConfig
    from spark_sentiment.scoring.job import score_table
    from stubs import SteadyFactory

    source = tmp_path / "reviews"
    spark.createDataFrame([(i, f"review {i}") for i in range(40)], "id int, text string").write.format("delta").save(
        str(source)
    )
    sets = [f"input.path={source}", f"output.path={tmp_path / 'out'}", f"model.uri={TINY}"]
    sets += ["score.partitions=2", "progress_seconds=0.4"]
    with caplog.at_level("INFO", logger="spark_sentiment.scoring.progress"):
        summary = score_table(spark, load_config(ScoreJobConfig, None, sets), factory=SteadyFactory(0.15))
    assert summary.rows_in == 40
    lines = [r.getMessage() for r in caplog.records if r.name == "spark_sentiment.scoring.progress"]
    before_any_task_ended = [line for line in lines if "tasks 0/2 done" in line]
    rows = [int(line.split(": ", 1)[1].split(" of ")[0].replace(",", "")) for line in before_any_task_ended]
    assert len([n for n in rows if n > 0]) >= 2 and rows == sorted(rows) and rows[-1] > rows[0], lines
    assert all(" of 40 rows (" in line for line in lines)
    assert lines[-1].split(": ", 1)[1].startswith("40 of 40 rows (100%), ") and "tasks 2/2 done" in lines[-1]
    etas = [float(line.split("ETA ")[1].split(" s")[0]) for line in before_any_task_ended if "ETA" in line]
    assert etas and etas[-1] <= etas[0], lines  # the estimate falls as rows arrive
