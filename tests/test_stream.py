"""Streaming scoring (``output.mode: stream``): availableNow runs over appends and the change data feed,
exactly once per input row, the model resolved per query start, bad input refused before anything is
written, and ``add_sentiment_columns`` on users' own streaming DataFrames."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from spark_sentiment.config import load_config
from spark_sentiment.scoring.config import ScoreJobConfig
from spark_sentiment.scoring.job import main as score_main
from spark_sentiment.scoring.job import score_table
from stubs import KeywordPredictor
from support.commands import call_main, sets
from support.data import EXACT, KEY_SCHEMA, NEGATIVE, POSITIVE, TINY, key_rows
from support.spark_conf import S3_BUCKET
from support.tables import change_source, keyed_source

pytestmark = pytest.mark.slow


def stream_job(source, output, checkpoint, *overrides: str) -> ScoreJobConfig:
    sets = [f"input.path={source}", f"output.path={output}", f"stream.checkpoint={checkpoint}"]
    sets += ["output.mode=stream", "input.key_columns=[id]", f"model.uri={TINY}", "progress_seconds=0", *overrides]
    return load_config(ScoreJobConfig, None, sets)


def expected(spark, rows: list[tuple[int, str]], model: str = "TinySentiment/1"):
    """``rows`` labeled as the keyword predictor labels them, with the model recorded."""
    texts = pd.Series([text for _, text in rows])
    labels = KeywordPredictor("", None).predict(texts)["label"].tolist()
    data = [(i, text, label, model) for (i, text), label in zip(rows, labels)]
    return spark.createDataFrame(data, "id int, text string, text_sentiment string, sentiment_model string")


def output(spark, path):
    return spark.read.format("delta").load(str(path)).select("id", "text", "text_sentiment", "sentiment_model")


def append(spark, source, rows: list[tuple[int, str]]) -> None:
    spark.createDataFrame(rows, KEY_SCHEMA).write.format("delta").mode("append").save(str(source))


def commits(spark, path) -> int:
    return spark.sql(f"DESCRIBE HISTORY delta.`{path}`").count()


def test_three_appends_across_available_now_runs_score_every_row_once(spark, tiny_model, tmp_path):
    source, out, checkpoint = tmp_path / "reviews", tmp_path / "scored", tmp_path / "checkpoint"
    rows = key_rows(4)
    spark.createDataFrame(rows, KEY_SCHEMA).write.format("delta").save(str(source))
    cfg = stream_job(source, out, checkpoint)
    summaries = [score_table(spark, cfg, factory=KeywordPredictor)]
    for batch in ([(5, POSITIVE[0]), (6, NEGATIVE[0]), (7, POSITIVE[1])], [(8, NEGATIVE[2]), (9, POSITIVE[3])]):
        append(spark, source, batch)
        rows += batch
        summaries.append(score_table(spark, cfg, factory=KeywordPredictor))
        assertDataFrameEqual(output(spark, out), expected(spark, rows))
    assert [s.rows_in for s in summaries] == [4, 3, 2]
    assert [s.stream["batches_committed"] for s in summaries] == [1, 1, 1]
    # the input versions each run covered: the table as it was (0), then each append (1, 2)
    assert [s.stream["input_versions"] for s in summaries] == [[0, 0], [1, 1], [2, 2]]
    assert all(s.status == "succeeded" and s.mode == "stream" for s in summaries)
    assert summaries[-1].label_counts["text"] == {"POSITIVE": 1, "NEGATIVE": 1}
    # a run with nothing new is a no-op: no micro-batch, no commit
    before = commits(spark, out)
    again = score_table(spark, cfg, factory=KeywordPredictor)
    assert (again.status, again.rows_in, again.stream["batches"]) == ("up_to_date", 0, [])
    assert commits(spark, out) == before
    assert Path(checkpoint, "spark_sentiment_stream.json").is_file()


def test_change_data_feed_updates_and_deletes_flow_through_merge(spark, tiny_model, tmp_path):
    source = keyed_source(spark, tmp_path / "reviews")  # key_rows(6) with the change feed on
    out, checkpoint = tmp_path / "scored", tmp_path / "checkpoint"
    cfg = stream_job(source, out, checkpoint, "stream.change_data_feed=true", "stream.write=merge")
    first = score_table(spark, cfg, factory=KeywordPredictor)
    assertDataFrameEqual(output(spark, out), expected(spark, key_rows(6)))
    change_source(spark, source)  # update id 2's text, delete id 3, insert id 7 (three commits)
    second = score_table(spark, cfg, factory=KeywordPredictor)
    now = [(i, NEGATIVE[1] if i == 2 else text) for i, text in key_rows(6) if i != 3] + [(7, POSITIVE[2])]
    assertDataFrameEqual(output(spark, out), expected(spark, now))
    assert (first.rows_in, second.rows_in, second.rows_deleted) == (6, 2, 1)
    assert second.stream["input_versions"] == [2, 4]  # the three change commits after the CDF property's (1)
    history = spark.sql(f"DESCRIBE HISTORY delta.`{out}`").orderBy("version").collect()
    assert [h["operation"] for h in history][-1] == "MERGE"  # one commit for the micro-batch
    assert len(history) == 2


def test_a_moved_alias_labels_new_rows_with_the_new_model_and_leaves_old_rows(spark, tiny_model, tmp_path):
    """The model is resolved when the query starts: rows of later runs get the version the alias names
    then; rows already written keep theirs (``output.mode incremental`` with ``rescore`` re-labels them)."""
    client = mlflow.MlflowClient()
    name = "TinyStreamed"
    source_uri = f"models:/{tiny_model['model_name']}/{tiny_model['model_version']}"
    for _ in range(2):
        mlflow.register_model(source_uri, name)
    client.set_registered_model_alias(name, "champion", "1")
    source, out, checkpoint = tmp_path / "reviews", tmp_path / "scored", tmp_path / "checkpoint"
    spark.createDataFrame(key_rows(3), KEY_SCHEMA).write.format("delta").save(str(source))
    cfg = stream_job(source, out, checkpoint, f"model.uri=models:/{name}@champion")
    score_table(spark, cfg, factory=KeywordPredictor)
    client.set_registered_model_alias(name, "champion", "2")
    append(spark, source, [(4, POSITIVE[1])])
    summary = score_table(spark, cfg, factory=KeywordPredictor)
    assert summary.model == f"{name}/2"
    models = {r["id"]: r["sentiment_model"] for r in output(spark, out).collect()}
    assert models == {1: f"{name}/1", 2: f"{name}/1", 3: f"{name}/1", 4: f"{name}/2"}


def refused(argv: list[str], capfd=None) -> str:
    code, out, err = call_main(score_main, argv)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1, err[-2000:]
    return lines[0]


def test_bad_stream_input_gets_one_error_line_and_writes_nothing(spark, tiny_model, tmp_path):
    plain = tmp_path / "plain"  # no change feed, no column 'key'
    spark.createDataFrame(key_rows(3), KEY_SCHEMA).write.format("delta").save(str(plain))
    other = tmp_path / "other"
    spark.createDataFrame(key_rows(2), KEY_SCHEMA).write.format("delta").save(str(other))
    out = tmp_path / "scored"
    base = ["output.mode=stream", f"output.path={out}", "input.key_columns=[id]", f"model.uri={TINY}"]

    line = refused(sets(*base, f"input.path={plain}", f"stream.checkpoint={tmp_path / 'missing' / 'ckpt'}"))
    assert f"stream.checkpoint {tmp_path / 'missing' / 'ckpt'}: its parent folder {tmp_path / 'missing'}" in line
    line = refused(
        sets(
            *base,
            f"input.path={plain}",
            f"stream.checkpoint={tmp_path / 'c1'}",
            "stream.change_data_feed=true",
            "stream.write=merge",
        )
    )
    assert f"input delta:{plain} does not have the change data feed enabled" in line
    line = refused(
        sets(
            *base,
            f"input.path={plain}",
            f"stream.checkpoint={tmp_path / 'c2'}",
            "input.key_columns=[key]",
            "stream.write=merge",
        )
    )
    assert "key column" in line and "'key'" in line
    assert not out.exists() and not (tmp_path / "c1").exists() and not (tmp_path / "c2").exists()

    # a checkpoint of this job over one input, then given to a run over another input
    ours = tmp_path / "ours"
    score_table(spark, stream_job(other, tmp_path / "other_scored", ours), factory=KeywordPredictor)
    line = refused(sets(*base, f"input.path={plain}", f"stream.checkpoint={ours}"))
    assert f"stream.checkpoint {ours} belongs to another query (input_table_id:" in line and "output:" in line
    # a checkpoint some other streaming query wrote
    theirs = tmp_path / "theirs"
    spark.readStream.format("delta").load(str(plain)).writeStream.format("noop").option(
        "checkpointLocation", str(theirs)
    ).trigger(availableNow=True).start().awaitTermination()
    line = refused(sets(*base, f"input.path={plain}", f"stream.checkpoint={theirs}"))
    assert f"stream.checkpoint {theirs} holds a checkpoint this job did not write" in line
    assert not out.exists()


def test_add_sentiment_columns_on_a_users_streaming_dataframe(spark, tiny_model, tmp_path):
    """What docs/scoring.md shows for a user's own pipeline: readStream -> add_sentiment_columns ->
    writeStream (Delta sink) with availableNow, twice; and foreachBatch + MERGE."""
    from spark_sentiment.inference.columns import add_sentiment_columns
    from spark_sentiment.inference.predictor import PredictorOptions
    from spark_sentiment.model.registry import resolve_model

    source, out, checkpoint = tmp_path / "reviews", tmp_path / "scored", tmp_path / "checkpoint"
    spark.createDataFrame(key_rows(5), KEY_SCHEMA).write.format("delta").save(str(source))
    resolved = resolve_model(TINY)  # once, when the pipeline starts

    def run() -> None:
        stream = spark.readStream.format("delta").load(str(source))
        scored = add_sentiment_columns(spark, stream, resolved, ["text"], options=PredictorOptions(precision="fp32"))
        scored.writeStream.format("delta").option("checkpointLocation", str(checkpoint)).trigger(
            availableNow=True
        ).start(str(out)).awaitTermination()

    run()
    append(spark, source, [(6, POSITIVE[0]), (7, NEGATIVE[0])])
    run()
    result = spark.read.format("delta").load(str(out))
    assert result.count() == 7 and result.select("id").distinct().count() == 7
    assert result.where(F.col("text_sentiment").isNull()).count() == 0
    assert {r["sentiment_model"] for r in result.select("sentiment_model").collect()} == {resolved.label}


def test_a_stream_on_s3a_source_output_and_checkpoint(spark, tiny_model):
    """The same availableNow runs with every path on the S3 API server the tests start (the tiny model)."""
    import uuid

    lake = f"s3a://{S3_BUCKET}/{uuid.uuid4().hex[:8]}"
    source, out, checkpoint = f"{lake}/reviews", f"{lake}/scored", f"{lake}/checkpoint"
    spark.createDataFrame(key_rows(4), KEY_SCHEMA).write.format("delta").save(source)
    argv = sets(
        f"input.path={source}",
        f"output.path={out}",
        f"stream.checkpoint={checkpoint}",
        "output.mode=stream",
        "stream.write=merge",
        "input.key_columns=[id]",
        f"model.uri={TINY}",
        EXACT,
    )
    code, stdout, err = call_main(score_main, argv)
    assert code == 0, err[-3000:]
    append(spark, source, [(5, POSITIVE[0])])
    code, stdout, err = call_main(score_main, argv)
    assert code == 0, err[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert (summary["status"], summary["rows_in"], summary["stream"]["batches_committed"]) == ("succeeded", 1, 1)
    assert [p["chosen"] for p in summary["precision"]] == ["fp32"]  # what the workers ran, as in batch modes
    result = spark.read.format("delta").load(out)
    assert sorted(r["id"] for r in result.select("id").collect()) == [1, 2, 3, 4, 5]
    assert result.where(F.col("text_sentiment").isNull()).count() == 0


def test_a_stream_killed_during_a_micro_batch_write_restarts_to_every_row_exactly_once(spark, killed_stream):
    """A real SIGKILL of the streaming job's process group once a micro-batch's write put data files into
    the output (before or just after its Delta commit, before Spark's checkpoint records the batch), then a
    restart from the checkpoint: every input row is in the output once, with its label."""
    run = killed_stream
    killed, restarted = run.killed.result(), run.restarted.result()
    assert killed.returncode == -9, (killed.stdout + killed.stderr)[-3000:]
    assert restarted.returncode == 0, (restarted.stdout + restarted.stderr)[-3000:]
    summary = json.loads(restarted.stdout.strip().splitlines()[-1])
    # the killed micro-batch is replayed: skipped if its commit had landed, written now if not
    statuses = [b["status"] for b in summary["stream"]["batches"]]
    assert statuses in (["committed"], ["skipped"]), summary["stream"]
    result = spark.read.format("delta").load(str(run.output))
    assertDataFrameEqual(output(spark, run.output), expected(spark, run.rows))
    assert result.count() == len(run.rows) == 7


def test_a_processing_time_stream_picks_up_rows_appended_while_it_runs(spark, tiny_model, tmp_path):
    """trigger processing_time: micro-batches every second until stream.run_seconds; rows appended while
    the query runs are scored by a later micro-batch of the same run."""
    import threading
    import time

    source, out, checkpoint = tmp_path / "reviews", tmp_path / "scored", tmp_path / "checkpoint"
    spark.createDataFrame(key_rows(3), KEY_SCHEMA).write.format("delta").save(str(source))
    cfg = stream_job(
        source, out, checkpoint, "stream.trigger=processing_time", "stream.interval=1 second", "stream.run_seconds=20"
    )

    def append_once_the_first_batch_is_in() -> None:
        deadline = time.monotonic() + 60
        while not (out / "_delta_log").is_dir() and time.monotonic() < deadline:
            time.sleep(0.2)
        append(spark, source, [(4, POSITIVE[1]), (5, NEGATIVE[1])])

    writer = threading.Thread(target=append_once_the_first_batch_is_in)
    writer.start()
    started = time.monotonic()
    summary = score_table(spark, cfg, factory=KeywordPredictor)
    writer.join()
    assert time.monotonic() - started < 60  # stopped by run_seconds, not by running dry
    assert summary.stream["batches_committed"] >= 2 and summary.rows_in == 5
    assertDataFrameEqual(output(spark, out), expected(spark, key_rows(3) + [(4, POSITIVE[1]), (5, NEGATIVE[1])]))
