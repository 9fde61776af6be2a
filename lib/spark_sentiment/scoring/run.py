"""What every write mode of the scoring job shares: one plain value, built once by the job."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from ..inference.engines import ScoreFn
from ..io.delta import CommitTag, WriteResult, last_tag, write_scored
from ..io.snapshot import Snapshot
from ..io.tables import TableRef
from ..model.registry import ResolvedModel
from .config import ScoreJobConfig
from .hooks import WriteHooks, write_through
from .rows import score_rows
from .schema import add_missing_columns
from .stats import RunStats


@dataclass(frozen=True)
class ScoringRun:
    """The session, the config, the input pinned to one version, the scoring function and the model behind
    it, the output, this job's Delta ``txnAppId`` and the write hooks: what the batch, incremental and stream
    writes all read (:mod:`.modes`)."""

    spark: SparkSession
    cfg: ScoreJobConfig
    table: Snapshot
    score: ScoreFn
    model: ResolvedModel
    target: TableRef
    app_id: str
    hooks: WriteHooks = field(default_factory=WriteHooks)

    def already_committed(self, txn_version: int | None, exists: bool | None = None) -> dict[str, Any] | None:
        """The tag of this app's last commit to the output (with its ``version``) when that commit's
        ``txnVersion`` is ``txn_version`` or later: the write of ``txn_version`` is already in the output
        (Delta would skip it too). None when it is not, or ``txn_version`` is None. ``exists``: whether the
        caller has just seen the output exist (None: look)."""
        if txn_version is None:
            return None
        previous = last_tag(self.spark, self.target, self.app_id, exists=exists)
        committed = previous.get("txn_version") if previous else None
        return previous if committed is not None and int(committed) >= txn_version else None

    def score_rows(self, df: DataFrame, what: str) -> tuple[DataFrame, RunStats]:
        """``df``'s text columns labelled by the model, materialised once (:func:`.rows.score_rows`)."""
        cfg = self.cfg
        return score_rows(
            df, self.score, self.model.label, cfg.input.text_columns, cfg.score.partitions, cfg.progress_seconds, what
        )

    def tag(self, txn_version: int | None, **state: Any) -> CommitTag:
        """The commit tag of one write: ``state`` plus the model and the granularity every mode records."""
        return CommitTag(
            self.app_id, txn_version, {**state, "model": self.model.label, "granularity": self.score.granularity}
        )

    def write(self, scored: DataFrame, mode: str, tag: CommitTag, deletes: DataFrame | None = None) -> WriteResult:
        """One Delta commit of ``scored`` (output columns added first when the output lacks them), between the
        hooks."""
        add_missing_columns(self.spark, self.target, scored.schema, self.cfg)
        keys = self.cfg.input.key_columns
        return write_through(
            self.hooks, self.target, lambda: write_scored(scored, self.target, mode, keys, tag, deletes)
        )
