"""An existing output's columns against the scoring contract: checked before scoring, evolved at the write.

A table scored before a column joined the contract (``c_sentiment_probabilities``), or at ``review``
granularity and now written at ``sentence``, lacks columns this run writes: ``output.evolve_schema`` adds them
(``ALTER TABLE ... ADD COLUMNS``, rows not rewritten read null) just before the run's write, after every check
and the scoring itself, so a refused or failed run leaves the table as it was. An output holding the other
granularity's columns is refused in every mode but ``overwrite`` (rewritten rows would keep stale values there),
and so is a contract column of another type.
"""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from ..core.errors import DataError
from ..inference.columns import added_columns, other_granularity_columns
from ..io.delta import add_columns, missing_columns, read_target, target_exists
from ..io.tables import TableRef
from .config import ScoreJobConfig

log = logging.getLogger(__name__)


def _contract_fields(planned: StructType, cfg: ScoreJobConfig) -> list:
    contract = set(added_columns(cfg.input.text_columns, cfg.score.granularity))
    return [f for f in planned.fields if f.name in contract]


def planned_columns(spark: SparkSession, target: TableRef, planned: StructType, cfg: ScoreJobConfig) -> list[str]:
    """Before scoring: the contract columns the existing ``target`` lacks (they are added at the write).

    Raises
    ------
    DataError
        Such columns with ``output.evolve_schema`` false, the other granularity's columns in a mode that
        rewrites rows in place, or a contract column of another type.
    """
    granularity = cfg.score.granularity
    mode = cfg.table_write()
    if mode != "overwrite":
        present = {f.name.lower() for f in read_target(spark, target).schema.fields}
        stale = [c for c in other_granularity_columns(cfg.input.text_columns, granularity) if c.lower() in present]
        if stale:
            other = "review" if granularity == "sentence" else "sentence"
            raise DataError(
                f"output {target.describe()} holds column(s) {', '.join(stale)} of score.granularity {other}, "
                f"which a {mode} at granularity {granularity} would leave stale; score at that granularity, "
                "overwrite the output, or write to a new one"
            )
    names = [f.name for f in missing_columns(spark, target, _contract_fields(planned, cfg))]
    if names and not cfg.output.evolve_schema:
        raise DataError(
            f"output {target.describe()} lacks column(s) {', '.join(names)} that scoring writes; set "
            "output.evolve_schema=true to add them (existing rows read null there), or write to a new output"
        )
    return names


def add_missing_columns(spark: SparkSession, target: TableRef, scored: StructType, cfg: ScoreJobConfig) -> None:
    """Just before a write: add the contract columns of ``scored`` that the existing ``target`` lacks (none
    once a run has added them; a target that does not exist yet is created by the write itself)."""
    if not cfg.output.evolve_schema or not target_exists(spark, target):
        return
    missing = missing_columns(spark, target, _contract_fields(scored, cfg))
    if missing:
        add_columns(spark, target, missing)
        names = ", ".join(f.name for f in missing)
        log.warning("output %s lacked %s: added (rows not rewritten read null there)", target.describe(), names)
