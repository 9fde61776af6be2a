"""The runtime matrix: each managed runtime's own package set (``runtimes/<name>.toml``) in a venv built once
and cached, the wheel installed on top without ``[spark]`` (Spark, Delta and MLflow are the runtime's) and with
``[openvino]``, a check that pip changed none of the runtime's packages, then the core path end to end through
the console entry points in that venv, each command a cold process as a scheduler runs it; and a model moved
from one runtime's MLflow into another's. Fixtures, options and the profile x step table: ``tests/runtime_matrix.py``.

One test per step and profile (``test_merge[fabric-1.3-mlflow]``); a step that builds on another (a merge on
the table an overwrite wrote) asks for it through ``Lane.once``, so any selection runs what it needs, once.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field

import pytest
from support.commands import sets
from support.lanes import (
    ENGINES,
    IMDB,
    MODEL,
    REVIEWS,
    Lane,
    Runtimes,
    count,
    expect,
    ingest,
    registered_alias,
    score,
    sql,
    train,
)
from support.runtimes import last_json, load_profile, run_checked

pytestmark = pytest.mark.runtimes


# --- the end-to-end path: train -> register -> land reviews -> score in every mode with both engines -> SQL ->
# a stream -> a second version evaluated and promoted or kept -> Spark Connect -------------------------------


def test_venv(venv, record_property):
    path, built = venv
    record_property("note", f"{'built' if built else 'cached'}: {path}")


def test_install(installed, record_property):
    record_property("note", installed)


def test_train(trained: Lane, record_property):
    record_property("note", trained.steps["train"])  # run by the fixture


def test_ingest(ingested: Lane, record_property):
    record_property("note", ingested.steps["ingest"])  # run by the fixture


def overwrite(lane: Lane, engine: str) -> str:
    return lane.once(
        f"overwrite:{engine}", lambda: score(lane, engine, "overwrite", f"scored_{engine}", rows_scored=REVIEWS)
    )


def merge(lane: Lane, engine: str) -> str:
    """Each engine merges into the other's output: the same keys, upserted with the same labels."""
    other = ENGINES[1 - ENGINES.index(engine)]
    overwrite(lane, other)
    return lane.once(f"merge:{engine}", lambda: score(lane, engine, "merge", f"scored_{other}", rows_scored=REVIEWS))


def incremental(lane: Lane, engine: str) -> str:
    return lane.once(
        f"incremental:{engine}", lambda: score(lane, engine, "incremental", f"inc_{engine}", rows_scored=REVIEWS)
    )


def rerun(lane: Lane) -> str:
    incremental(lane, "native")
    return lane.once(
        "rerun", lambda: score(lane, "native", "incremental", "inc_native", status="up_to_date", rows_scored=0)
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_overwrite(ingested: Lane, engine: str, record_property):
    record_property("note", overwrite(ingested, engine))


@pytest.mark.parametrize("engine", ENGINES)
def test_merge(ingested: Lane, engine: str, record_property):
    record_property("note", merge(ingested, engine))


@pytest.mark.parametrize("engine", ENGINES)
def test_incremental(ingested: Lane, engine: str, record_property):
    record_property("note", incremental(ingested, engine))


def test_incremental_rerun_is_a_no_op(ingested: Lane, record_property):
    record_property("note", rerun(ingested))


def check_sql(lane: Lane) -> str:
    """The SQL function, both engines' labels compared in SQL, and every scoring run in the runs table."""
    for engine in ENGINES:
        merge(lane, engine)
        incremental(lane, engine)
    rerun(lane)
    rows = sql(
        lane,
        "SELECT count(*) AS n FROM scored_native",
        "SELECT count(*) AS differ FROM scored_native a JOIN scored_mlflow b USING (review_id) "
        "WHERE a.text_sentiment <> b.text_sentiment OR a.sentiment_model <> b.sentiment_model",
        "SELECT count(*) AS labeled FROM (SELECT sentiment(text).label AS label FROM reviews) WHERE label IS NOT NULL",
        "SELECT status, count(*) AS runs FROM runs WHERE job = 'score' GROUP BY status ORDER BY status",
        function=f"models:/{MODEL}@champion",
    )
    expect(rows[0]["n"] == REVIEWS, f"scored_native has {rows[0]['n']} rows, expected {REVIEWS}")
    expect(rows[1]["differ"] == 0, f"{rows[1]['differ']} reviews labeled differently by the two engines")
    expect(rows[2]["labeled"] == REVIEWS, f"sentiment(text) labeled {rows[2]['labeled']} of {REVIEWS}")
    counts = {r["status"]: r["runs"] for r in rows[3:]}
    expect(counts == {"succeeded": 6, "up_to_date": 1}, f"the runs table has these scoring runs: {counts}")
    return f"{REVIEWS} rows, engines agree, sentiment() labels {rows[2]['labeled']}, runs table: 6 + 1 no-op"


def test_sql(ingested: Lane, record_property):
    record_property("note", ingested.once("sql", lambda: check_sql(ingested)))


def stream(lane: Lane) -> str:
    """output.mode stream (availableNow, MERGE on the key, precision auto: the probe on this runtime's torch and
    OpenVINO's graph converted from it, which the install added), then a rerun from the same checkpoint that
    finds nothing new."""
    checkpoint = lane.scratch / "checkpoints" / "streamed"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    args = sets(
        "input.table=reviews",
        "input.key_columns=[review_id]",
        "output.table=streamed",
        "output.mode=stream",
        f"stream.checkpoint={checkpoint}",
        "stream.write=merge",
        f"model.uri=models:/{MODEL}@champion",
        "score.precision=auto",
    )
    first = last_json(lane.job("score", *args))
    batches = (first.get("stream") or {}).get("batches_committed")
    expect(first["status"] == "succeeded" and first["rows_in"] == REVIEWS and batches == 1, f"stream: {first}")
    expect(bool(first.get("precision")), f"no precision choice reported: {first}")
    probed = {name for p in first["precision"] for name in p["rows_per_s"]}
    expect(any(n.startswith("openvino-") for n in probed), f"OpenVINO was not a probe candidate: {first['precision']}")
    again = last_json(lane.job("score", *args))
    expect(again["status"] == "up_to_date" and again["rows_in"] == 0, f"stream rerun: {again}")
    chosen = ", ".join(f"{p['chosen']} ({p['reason'][:40]})" for p in first["precision"])
    return f"{REVIEWS} rows in 1 micro-batch, rerun up_to_date; precision {chosen}"


def test_stream(ingested: Lane, record_property):
    if ingested.profile.remote_only:
        pytest.skip("foreachBatch needs a classic session; a Connect-only runtime refuses the mode by design")
    record_property("note", ingested.once("stream", lambda: stream(ingested)))


def train_v2(lane: Lane) -> str:
    return lane.once("train v2", lambda: train(lane, seed=7, steps=8))


def test_train_v2(ingested: Lane, record_property):
    record_property("note", train_v2(ingested))


def evaluate(lane: Lane) -> str:
    """The new candidate (v2) against the champion (v1) on labeled IMDB test reviews; promoted or kept, the
    champion alias must say the same."""
    train_v2(lane)
    result = lane.job(
        "evaluate",
        *sets(
            f"input.path={IMDB}",
            "input.split=test",
            "input.rows=64",
            f"models.candidate=models:/{MODEL}@candidate",
            f"models.champion=models:/{MODEL}@champion",
            "score.precision=fp32",
            "report.runs_table=runs",
        ),
        ok=(0, 3),
    )
    summary = last_json(result)
    expect(summary["status"] in ("promoted", "kept"), f"evaluation status {summary['status']}: {summary}")
    champion = registered_alias(lane, MODEL, "champion")
    wanted = summary["candidate"]["model"] if summary["status"] == "promoted" else summary["champion"]["model"]
    expect(
        wanted == f"{MODEL}/{champion}", f"champion alias -> v{champion}, the evaluation: {summary['status']} {wanted}"
    )
    return (
        f"{summary['status']} ({summary['metric']} {summary['candidate'][summary['metric']]:.3f} vs "
        f"{summary['champion'][summary['metric']]:.3f}), champion v{champion}"
    )


def test_evaluate(ingested: Lane, record_property):
    record_property("note", ingested.once("evaluate", lambda: evaluate(ingested)))


def test_connect_refused(ingested: Lane, record_property):
    """Where the profile's Connect client cannot run the jobs (Spark 3.5: no localCheckpoint; no grpc; a
    protobuf it was not built for), a job says so in one error line, exit 2, before any work (no server is
    needed to find out)."""
    if ingested.profile.connect:
        pytest.skip("the profile's Connect client runs the jobs (test_connect_score)")
    env = ingested.env()
    env["SPARK_REMOTE"] = "sc://127.0.0.1:1"
    command = [str(ingested.bin / "spark-sentiment-score"), *sets("input.table=reviews", "output.table=never")]
    result = subprocess.run(command, cwd=ingested.scratch, env=env, capture_output=True, text=True, timeout=300)
    last = (result.stderr.strip().splitlines() or [""])[-1]
    assert result.returncode == 2 and last.startswith("error: SPARK_REMOTE="), f"exit {result.returncode}: {last}"
    record_property("note", last[:90] + "...")


def test_connect_score(ingested: Lane, request: pytest.FixtureRequest, record_property):
    """The scoring job as a Spark Connect client of a server over the lane's catalog (merge into an earlier
    output: the same rows). After the SQL step, which counts the scoring runs before this one."""
    if not ingested.profile.connect or ingested.profile.remote_only:
        pytest.skip("no Connect client in this runtime" if not ingested.profile.connect else "every job is one")
    ingested.once("sql", lambda: check_sql(ingested))
    request.getfixturevalue("connect_server")
    note = score(ingested, "native", "merge", "scored_mlflow", remote=True, rows_scored=REVIEWS)
    record_property("note", f"{ingested.remote}: {note}")


# --- the model move: trained and registered in SOURCE, exported with MLflow's CLI, imported into TARGET's own
# store with spark-sentiment-model import, the same reviews scored on both sides --------------------------------

MOVED = "SentimentAnalysis"
# What the moved model is trained as: MiniLM fine-tuned on 1,000 IMDB reviews (a model that has learned
# something; make test-runtimes), or the tiny random BERT of the end-to-end path (CI: the same move, cheaper).
MOVE_MODELS = {
    "minilm": (
        "model.base=embedded:all-MiniLM-L6-v2",
        "data.train_rows=1000",
        "data.eval_rows=200",
        "model.score_max_length=256",
        "train.epochs=1",
        "train.max_length=96",
        "train.learning_rate=1e-4",
        "train.batch_size=16",
    ),
    "tiny": (
        "model.base=tiny-random",
        "data.train_rows=64",
        "data.eval_rows=32",
        "train.max_steps=8",
        "train.seed=7",  # the end-to-end path's second version: it labels reviews both ways
        "train.max_length=64",
        "train.batch_size=8",
    ),
}


def labels_of(lane: Lane, table: str) -> dict[str, tuple[str, float]]:
    """``review_id -> (label, score)`` of a scored table."""
    rows = sql(lane, f"SELECT review_id, text_sentiment, text_sentiment_score FROM {table}")
    return {str(r["review_id"]): (r["text_sentiment"], float(r["text_sentiment_score"])) for r in rows}


@dataclass
class Move:
    """Both ends of a model move, each a lane of its own, and the labels read on each side."""

    source: Lane
    target: Lane
    model: str
    reviews: int
    labels: dict[str, dict[str, tuple[str, float]]] = field(default_factory=dict)

    @property
    def export(self):
        return self.source.scratch / "export"

    def trained(self) -> str:
        settings = (f"data.path={IMDB}", *MOVE_MODELS[self.model], "train.truncation=head_tail", "train.precision=fp32")

        def body() -> str:
            summary = last_json(self.source.job("train", *sets(*settings, f"registry.name={MOVED}")))
            return f"{summary['model']} ({self.model}), eval accuracy {summary['metrics']['accuracy']:.3f}"

        return self.source.once("train", body)

    def scored(self, lane: Lane, engine: str) -> str:
        if lane is self.source:
            self.trained()
        else:
            self.imported()
        self.landed(lane)
        return lane.once(f"score:{engine}", lambda: self._score(lane, engine))

    def landed(self, lane: Lane) -> str:
        """The reviews both sides score, in the Delta table ``move_reviews`` of ``lane``."""
        return lane.once("ingest", lambda: ingest(lane, "move_reviews", self.reviews))

    def _score(self, lane: Lane, engine: str) -> str:
        summary = last_json(
            lane.job(
                "score",
                *sets(
                    "input.table=move_reviews",
                    "input.text_columns=[text]",
                    "input.key_columns=[review_id]",
                    f"output.table=move_{engine}",
                    "output.mode=overwrite",
                    f"engine={engine}",
                    f"model.uri=models:/{MOVED}@champion",
                    "score.precision=fp32",
                ),
            )
        )
        return f"{summary['rows_scored']} rows, {summary['model']}"

    def source_labels(self) -> dict[str, tuple[str, float]]:
        if "source" not in self.labels:
            self.scored(self.source, "native")
            self.labels["source"] = labels_of(self.source, "move_native")
        return self.labels["source"]

    def exported(self) -> str:
        def body() -> str:
            self.trained()
            command = [str(self.source.bin / "mlflow"), "artifacts", "download"]  # the source's store
            command += ["--artifact-uri", f"models:/{MOVED}@champion", "--dst-path", str(self.export)]
            run_checked(command, self.source.scratch, env=self.source.env())
            files = sorted(p.name for p in self.export.iterdir())
            expect("MLmodel" in files, f"the export has no MLmodel: {files}")
            return ", ".join(files)

        return self.source.once("export", body)

    def imported(self) -> str:
        def body() -> str:
            self.exported()
            command = [str(self.target.bin / "spark-sentiment-model"), "import", str(self.export)]
            command += ["--name", MOVED, "--alias", "champion"]
            summary = last_json(run_checked(command, self.target.scratch, env=self.target.env()))
            return (
                f"v{summary['version']} @champion, window {summary['window']}, {summary['tokenizer']}, "
                f"MLflow {summary['source_mlflow']} -> {summary['target_mlflow']}"
            )

        return self.target.once("import", body)

    def compare(self, found: dict[str, tuple[str, float]], what: str) -> str:
        """Labels equal, and scores (the label's probability) within 1e-3 of the source's: fp32 on both sides,
        only torch's kernels differ between the releases."""
        reference = self.source_labels()
        expect(set(found) == set(reference), f"{what}: {len(found)} reviews, the source scored {len(reference)}")
        differ = sorted(k for k in reference if reference[k][0] != found[k][0])
        expect(not differ, f"{what}: {len(differ)} of {len(reference)} labels differ from the source's: {differ[:5]}")
        drift = max(abs(reference[k][1] - found[k][1]) for k in reference)
        expect(drift < 1e-3, f"{what}: scores differ from the source's by up to {drift:.2e}")
        return f"{len(reference)}/{len(reference)} labels equal the source's, scores within {drift:.1e}"


@pytest.fixture(scope="session")
def move(runtimes: Runtimes, move_spec: str, request: pytest.FixtureRequest) -> Move:
    source, target = (load_profile(name) for name in move_spec.split(":"))
    return Move(
        runtimes.lane(source, "move"),
        runtimes.lane(target, "move"),
        request.config.getoption("move_model"),
        request.config.getoption("move_reviews"),
    )


def test_move_train_source(move: Move, record_property):
    record_property("note", move.trained())


def test_move_score_source(move: Move, record_property):
    move.scored(move.source, "native")
    labels = move.source_labels()
    record_property("note", f"{len(labels)} reviews: {count({k: v[0] for k, v in labels.items()})}")


def test_move_export(move: Move, record_property):
    record_property("note", move.exported())


def test_move_import(move: Move, record_property):
    record_property("note", move.imported())


@pytest.mark.parametrize("engine", ENGINES)
def test_move_labels_in_target(move: Move, engine: str, record_property):
    move.scored(move.target, engine)
    record_property("note", move.compare(labels_of(move.target, f"move_{engine}"), engine))


def test_move_pyfunc_in_target(move: Move, record_property):
    """``mlflow.pyfunc`` of the imported version in the target, on the source's reviews."""
    move.imported()
    move.landed(move.target)
    rows = sql(move.target, "SELECT review_id, text FROM move_reviews")
    texts = move.target.scratch / "texts.json"
    texts.write_text(json.dumps(rows))
    code = (
        "import json, sys, mlflow, pandas as pd\n"  # the target's store: $MLFLOW_TRACKING_URI
        f"model = mlflow.pyfunc.load_model('models:/{MOVED}@champion')\n"
        "rows = json.load(open(sys.argv[1]))\n"
        "out = model.predict(pd.Series([r['text'] for r in rows]))\n"
        "ids = [str(r['review_id']) for r in rows]\n"
        "print(json.dumps(dict(zip(ids, zip(out['label'], out['score'].astype(float))))))\n"
    )
    found = {k: tuple(v) for k, v in json.loads(move.target.python(code, str(texts)).strip().splitlines()[-1]).items()}
    record_property("note", move.compare(found, "pyfunc"))
