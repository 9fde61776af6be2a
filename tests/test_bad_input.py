"""The bad-input matrix: every kind of bad input ends in a documented outcome.

Row-level cases (odd texts) get a label or a null label and never fail the job; they are scored together
in one run. Job-level cases fail before anything is written, with one line that names the problem, and the
output table keeps its rows and its version.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from delta.tables import DeltaTable
from spark_sentiment.config import load_config
from spark_sentiment.core.errors import ConfigError, DataError, ModelError, SentimentError
from spark_sentiment.scoring.config import ScoreJobConfig
from spark_sentiment.scoring.job import score_table
from support.data import NEGATIVE, POSITIVE, TINY

LABEL, NULL = "label", "null"
MEGABYTE = ("This film is wonderful. " * 43691)[: 1 << 20]
ROW_CASES = {  # id: (text, expected outcome)
    1: (None, NULL),
    2: ("", NULL),
    3: (" \t\n ", NULL),
    4: ("\u00a0\u2003\u3000", NULL),  # Unicode whitespace only
    5: (MEGABYTE, LABEL),  # 1 MB: truncated to the model's token limit
    6: ("\x00\x07\x1b[31m a good movie\x7f", LABEL),  # control characters
    7: (b"bad bytes \xed\xa0\x80 and \xff here", LABEL),  # invalid UTF-8 / a lone surrogate, as raw bytes
    8: ("<br /><br />Great film.<br />", LABEL),  # HTML as in IMDB
    9: ("😀🎬👍", LABEL),  # emoji only
    10: ("これは素晴らしい映画です", LABEL),
    11: ("Фильм ужасный", LABEL),
    12: ("فيلم رائع جدا", LABEL),  # right-to-left script
    13: ("a" * 100_000, LABEL),  # one 100,000-character "word"
    14: ("?!... ;-)", LABEL),  # punctuation only
}


def _raw_text_table(path: Path) -> None:
    """Parquet with the row cases; case 7 holds bytes that are not valid UTF-8 (pyarrow would refuse them
    as a string, so the column is assembled from buffers without validation)."""
    data, offsets = b"", [0]
    for _, (text, _) in sorted(ROW_CASES.items()):
        data += text if isinstance(text, bytes) else (text or "").encode()
        offsets.append(len(data))
    validity = pa.array([text is not None for _, (text, _) in sorted(ROW_CASES.items())]).buffers()[1]
    texts = pa.Array.from_buffers(
        pa.string(),
        len(ROW_CASES),
        [validity, pa.py_buffer(pa.array(offsets, pa.int32()).buffers()[1]), pa.py_buffer(data)],
    )
    ids = pa.array(sorted(ROW_CASES), pa.int32())
    pq.write_table(pa.table({"id": ids, "text": texts}), path / "part-0.parquet")


@pytest.fixture(scope="module")
def odd_texts_scored(spark, tiny_model, tmp_path_factory) -> dict[int, dict]:
    root = tmp_path_factory.mktemp("odd-texts")
    _raw_text_table(root)
    summary = score_table(
        spark,
        load_config(
            ScoreJobConfig,
            None,
            [f"input.path={root}", f"output.path={root / 'out'}", "input.key_columns=[id]", f"model.uri={TINY}"],
        ),
    )
    assert summary.status == "succeeded" and summary.rows_in == len(ROW_CASES)
    return {r["id"]: r.asDict() for r in spark.read.format("delta").load(str(root / "out")).collect()}


@pytest.mark.parametrize("case", sorted(ROW_CASES))
def test_odd_text_gets_its_documented_outcome(odd_texts_scored, case):
    row = odd_texts_scored[case]
    if ROW_CASES[case][1] == NULL:
        assert row["text_sentiment"] is None and row["text_sentiment_score"] is None
    else:
        assert row["text_sentiment"] in ("NEGATIVE", "POSITIVE")
        assert 0.5 <= row["text_sentiment_score"] <= 1.0


# ---- job-level cases: one clear error, nothing written -------------------------------------------------

TYPED = "id int, text string, n int, tags array<string>, meta struct<a:int>, raw binary"


def _typed_rows():
    return [(i, (POSITIVE + NEGATIVE)[i % 8], i, ["x"], (i,), bytearray(b"\x00\x01")) for i in range(4)]


def _table(spark, tmp_path, rows, schema=TYPED) -> list[str]:
    path = tmp_path / "input"
    spark.createDataFrame(rows, schema).write.format("delta").mode("overwrite").save(str(path))
    return [f"input.path={path}"]


def _model_copy(tmp_path) -> Path:
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=TINY, dst_path=str(tmp_path / "model")))


def _corrupted_model(spark, tmp_path):
    root = _model_copy(tmp_path)
    weights = next(root.rglob("model.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    return _table(spark, tmp_path, _typed_rows()) + [f"model.uri={root}"]


def _missing_table(spark, tmp_path):
    return ["input.table=no_such_reviews"]


def _not_delta_output(spark, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.csv").write_text("a,b\n")
    return _table(spark, tmp_path, _typed_rows()) + [f"output.path={plain}"]


def _scored_input(spark, tmp_path):
    rows = [(1, "good", "POSITIVE")]
    return _table(spark, tmp_path, rows, "id int, text string, text_sentiment string")


JOB_CASES = {  # name: (setup -> overrides, error, message regex)
    "numeric column": (
        lambda s, t: _table(s, t, _typed_rows()) + ["input.text_columns=[n]"],
        DataError,
        "'n' .* is int",
    ),
    "array column": (
        lambda s, t: _table(s, t, _typed_rows()) + ["input.text_columns=[tags]"],
        DataError,
        "'tags' .* is array<string>, expected string",
    ),
    "struct column": (
        lambda s, t: _table(s, t, _typed_rows()) + ["input.text_columns=[meta]"],
        DataError,
        "'meta' .* is struct<a:int>",
    ),
    "binary column": (
        lambda s, t: _table(s, t, _typed_rows()) + ["input.text_columns=[raw]"],
        DataError,
        "'raw' .* is binary",
    ),
    "missing column": (
        lambda s, t: _table(s, t, _typed_rows()) + ["input.text_columns=[review]"],
        DataError,
        "text column 'review' not found .*columns: id, text, n, tags, meta, raw",
    ),
    "missing input path": (
        lambda s, t: [f"input.path={t / 'nowhere'}"],
        DataError,
        "input.path: .*nowhere does not exist",
    ),
    "missing input table": (_missing_table, DataError, "table no_such_reviews does not exist in the catalog"),
    "duplicate keys": (
        lambda s, t: _table(s, t, _typed_rows() + _typed_rows()[:2]),
        DataError,
        r"2 keys \(id\) appear more than once, e.g. \{\"id\":[01]\}",
    ),
    "null keys": (
        lambda s, t: _table(s, t, _typed_rows() + [(None, "fine", 1, [], (1,), None)]),
        DataError,
        r"1 rows have a null key \(id\)",
    ),
    "missing key column": (
        lambda s, t: _table(s, t, _typed_rows()) + ["input.key_columns=[review_id]"],
        DataError,
        "key column 'review_id' not found",
    ),
    "output not Delta": (_not_delta_output, DataError, "output path .*plain exists but is not a Delta table"),
    "already scored input": (_scored_input, DataError, "input already has column 'text_sentiment'"),
    "corrupted model": (_corrupted_model, ModelError, "model.safetensors is unreadable or corrupted"),
    "unknown alias": (
        lambda s, t: _table(s, t, _typed_rows()) + ["model.uri=models:/TinySentiment@no_such_alias"],
        ModelError,
        "models:/TinySentiment@no_such_alias cannot be resolved",
    ),
    "unknown model": (
        lambda s, t: _table(s, t, _typed_rows()) + ["model.uri=models:/NoSuchModel/3"],
        ModelError,
        "models:/NoSuchModel/3 cannot be resolved",
    ),
    "wrong type in config": (
        lambda s, t: _table(s, t, _typed_rows()) + ["score.batch_size=lots"],
        ConfigError,
        "score.batch_size",
    ),
    "unknown write mode": (
        lambda s, t: _table(s, t, _typed_rows()) + ["output.mode=upsert"],
        ConfigError,
        "output.mode",
    ),
    "SQL in a table name": (
        lambda s, t: ["input.table=reviews; DROP TABLE x"],
        ConfigError,
        "input.table' must be a table name",
    ),
}


@pytest.mark.parametrize("case", sorted(JOB_CASES))
def test_bad_job_input_fails_with_one_line_and_writes_nothing(spark, tiny_model, tmp_path, case):
    setup, error, message = JOB_CASES[case]
    out = tmp_path / "out"
    spark.createDataFrame([(99, "kept")], "id int, text string").write.format("delta").save(str(out))
    overrides = [f"output.path={out}", "input.key_columns=[id]", "output.mode=merge", f"model.uri={TINY}"]
    with pytest.raises(error, match=message) as raised:
        score_table(spark, load_config(ScoreJobConfig, None, overrides + setup(spark, tmp_path)))
    assert isinstance(raised.value, SentimentError) and "\n" not in str(raised.value)
    assert [tuple(r) for r in spark.read.format("delta").load(str(out)).collect()] == [(99, "kept")]
    assert DeltaTable.forPath(spark, str(out)).history().count() == 1  # no commit


def test_empty_input_writes_nothing(spark, tiny_model, tmp_path):
    out = tmp_path / "out"
    spark.createDataFrame([(99, "kept")], "id int, text string").write.format("delta").save(str(out))
    for mode in ("overwrite", "merge", "incremental"):
        job = [*_table(spark, tmp_path, [], "id int, text string"), f"output.path={out}", "input.key_columns=[id]"]
        summary = score_table(
            spark, load_config(ScoreJobConfig, None, [*job, f"output.mode={mode}", f"model.uri={TINY}"])
        )
        assert (summary.status, summary.rows_in) == ("empty_input", 0)
    assert [tuple(r) for r in spark.read.format("delta").load(str(out)).collect()] == [(99, "kept")]
