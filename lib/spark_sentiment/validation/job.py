"""The evaluation job: score labeled reviews with the candidate and the champion, compare, maybe promote.

Both models score the same sampled rows (materialised once); metrics come from Spark aggregations
(:mod:`.metrics`); each model's metrics and plots go to a nested MLflow run, the decision to the parent.
The candidate is promoted only after both evaluations succeeded.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import mlflow
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from ..config.cli import packaged_config, run_job
from ..config.loader import to_flat_dict
from ..core.errors import DataError, ModelError
from ..core.names import quote
from ..core.redaction import config_params
from ..core.session import is_local
from ..inference.columns import label_column, label_columns, probabilities_column, score_column
from ..inference.engines import checked_package, scoring_function
from ..inference.predictor import PredictorOptions
from ..io.tables import read_pandas, read_spark, require_columns, resolve_source
from ..model import tracking
from ..model.registry import ResolvedModel, resolve_model
from ..model.uri import parse_model_uri
from ..monitoring import plots
from .config import EvaluateJobConfig
from .metrics import binary_metrics, multiclass_metrics
from .promotion import Decision, decide, promote

log = logging.getLogger(__name__)
TRUTH = "__true_label"
SUMMARY_METRICS = ("accuracy", "f1", "precision", "recall", "roc_auc", "ece", "rows", "unscored")


def _resolve_champion(uri: str | None) -> ResolvedModel | None:
    """The champion, or None when not configured or its alias is not set yet (a first model)."""
    if not uri:
        return None
    try:
        return resolve_model(uri)
    except ModelError:
        parsed = parse_model_uri(uri)
        if parsed.kind == "registered" and parsed.alias:
            try:
                aliases = MlflowClient().get_registered_model(parsed.name).aliases
            except mlflow.exceptions.MlflowException:
                raise ModelError(f"champion {uri}: registered model {parsed.name!r} does not exist") from None
            if parsed.alias not in aliases:
                log.info("%s has no alias %s yet: no champion to beat", parsed.name, parsed.alias)
                return None
        raise


def read_labeled(spark: SparkSession, cfg: EvaluateJobConfig) -> tuple[DataFrame, str]:
    """The labeled rows to evaluate on (text, label), sampled with the seed and materialised once."""
    section = cfg.input
    fmt = "table" if section.table else "auto"
    source = resolve_source(spark, section.source(), fmt, section.split, key="input.path")
    columns = [section.text_column, section.label_column]
    if source.format in ("delta", "parquet", "table"):
        df = read_spark(spark, source)
        require_columns(df.columns, columns, source.describe())
        df = df.select(*[F.col(quote(c)) for c in columns])
    else:
        df = spark.createDataFrame(read_pandas(spark, source, columns))
    if section.rows is not None:
        df = df.orderBy(F.rand(section.seed)).limit(section.rows)
    return df.localCheckpoint(eager=True), source.describe()


def _truth(df: DataFrame, label_column: str, id2label: dict[int, str], label_map: dict[str, str]) -> DataFrame:
    """Add the true label as a name: through ``input.label_map`` when given (by each value's text), else class
    ids through the model's ``id2label`` (names stay names). A value the map does not take is refused."""
    label = F.col(quote(label_column))
    if label_map:
        keys = {str(int(k) if isinstance(k, float) and k.is_integer() else k).strip(): v for k, v in label_map.items()}
        mapping = F.create_map(*[x for key, name in sorted(keys.items()) for x in (F.lit(key), F.lit(name))])
        text = F.trim(label.cast("string"))
        unmapped = df.where(mapping[text].isNull()).groupBy(label).count().limit(1).collect()
        if unmapped:
            value, count = unmapped[0][0], unmapped[0][1]
            raise DataError(
                f"label column '{label_column}' has value {value!r} in {count} row(s) that input.label_map does "
                f"not map; it maps {sorted(keys)}"
            )
        return df.withColumn(TRUTH, mapping[text])
    if isinstance(df.schema[label_column].dataType, StringType):
        return df.withColumn(TRUTH, label)
    mapping = F.create_map(*[x for i, name in sorted(id2label.items()) for x in (F.lit(i), F.lit(name))])
    return df.withColumn(TRUTH, mapping[label.cast("int")])


def evaluate_model(
    spark: SparkSession, rows: DataFrame, model: ResolvedModel, cfg: EvaluateJobConfig, role: str
) -> dict[str, Any]:
    """Score ``rows`` with ``model``, compute metrics, log them and the plots to a nested MLflow run."""
    options = PredictorOptions.of(cfg.score)
    package = checked_package(model)
    labels = [name for _, name in sorted(package.id2label.items())]
    score = scoring_function(spark, model, cfg.engine, options)
    text = cfg.input.text_column
    truth = _truth(rows, cfg.input.label_column, package.id2label, cfg.input.label_map)
    scored = label_columns(truth, score, model.label, [text]).localCheckpoint(eager=True)
    figures = {}
    if len(labels) == 2:
        positive = cfg.promotion.positive_label
        result = binary_metrics(scored, TRUTH, label_column(text), score_column(text), labels, positive)
        figures = {
            "plots/roc_curve.png": plots.roc_curve(result["roc_curve"], result["roc_auc"]),
            "plots/calibration.png": plots.calibration(result["calibration"]),
            "plots/score_histogram.png": plots.score_histogram(result["score_histograms"], 20),
        }
    else:
        probabilities = probabilities_column(text)
        result = multiclass_metrics(scored, TRUTH, label_column(text), score_column(text), probabilities, labels)
    figures["plots/confusion_matrix.png"] = plots.confusion_matrix(result["confusion_matrix"], labels)
    with mlflow.start_run(run_name=f"{role} {model.label}", nested=True) as run:
        mlflow.log_params({"role": role, "model": model.label, "model_uri": model.requested})
        mlflow.log_metrics({k: float(result[k]) for k in SUMMARY_METRICS})
        mlflow.log_dict(result, "evaluation/metrics.json")
        for name, figure in figures.items():
            mlflow.log_figure(figure, name)
        result["mlflow_run_id"] = run.info.run_id
    log.info("%s %s: %s", role, model.label, {k: round(result[k], 4) for k in SUMMARY_METRICS})
    return result


def evaluate_and_promote(spark: SparkSession, cfg: EvaluateJobConfig) -> dict[str, Any]:
    """Run the evaluation job; the summary's ``exit_code`` is 0 (promoted, evaluated, same version) or 3
    (the candidate did not beat the champion)."""
    started = time.perf_counter()
    tracking.configure(cfg.mlflow, local=is_local(spark))
    candidate = resolve_model(cfg.models.candidate)
    champion = _resolve_champion(cfg.models.champion)
    rows, where = read_labeled(spark, cfg)
    metric = cfg.promotion.metric
    with mlflow.start_run(run_name=f"evaluate {candidate.label}") as parent:
        mlflow.log_params(config_params(to_flat_dict(cfg)))
        results = {"candidate": evaluate_model(spark, rows, candidate, cfg, "candidate")}
        if champion is not None and champion.uri == candidate.uri:
            decision = Decision("same_version", f"candidate and champion are both {candidate.label}", 0)
            results["champion"] = results["candidate"]
        else:
            if champion is not None:
                results["champion"] = evaluate_model(spark, rows, champion, cfg, "champion")
            decision = decide(
                results["candidate"],
                results.get("champion"),
                metric,
                cfg.promotion.margin,
                cfg.promotion.promote,
                cfg.promotion.kept_champion_exit_code,
            )
        if decision.outcome == "promoted":  # both evaluations succeeded to get here
            promote(candidate, champion)
        log.info("decision: %s (%s)", decision.outcome, decision.reason)
        summary = {
            "status": decision.outcome,
            "reason": decision.reason,
            "metric": metric,
            "margin": cfg.promotion.margin,
            "input": where,
            "rows": results["candidate"]["rows"],
            "candidate": {"model": candidate.label, **{k: results["candidate"][k] for k in SUMMARY_METRICS}},
            "champion": (
                {"model": champion.label, **{k: results["champion"][k] for k in SUMMARY_METRICS}} if champion else None
            ),
            "exit_code": decision.exit_code,
            "seconds": round(time.perf_counter() - started, 2),
            "mlflow_run_id": parent.info.run_id,
        }
        mlflow.set_tags({"job": "evaluate", "decision": decision.outcome, "candidate": candidate.label})
        mlflow.log_metrics({f"{role}_{metric}": results[role][metric] for role in results})
        mlflow.log_dict(summary, "summary.json")
    return summary


def main(argv: Sequence[str] | None = None, *, default_config: Path | None = None) -> int:
    """Entry point (``jobs/evaluate.py``). Exit 0 promoted / evaluated / same version, 3 the candidate did not
    beat the champion, 2 bad input; the last stdout line is the JSON summary."""

    def body(cfg: EvaluateJobConfig) -> dict[str, Any]:
        from ..core.session import get_spark
        from ..io.results import check_places, publish

        spark = get_spark(cfg.spark.app_name, cfg.spark.conf)
        check_places(spark, cfg.report)
        summary = evaluate_and_promote(spark, cfg)
        publish(spark, cfg.report, "evaluate", summary)
        return summary

    args = sys.argv[1:] if argv is None else argv
    return run_job(args, EvaluateJobConfig, default_config, body, "Champion/challenger evaluation.")


def cli() -> int:
    """Console entry point ``spark-sentiment-evaluate`` (also ``jobs/evaluate.py``): ``main`` with the packaged
    ``evaluate.yaml`` as the default config."""
    return main(default_config=packaged_config("evaluate.yaml"))
