"""The scoring job's result: one typed record, printed as the JSON summary and logged to MLflow."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

Status = Literal["succeeded", "up_to_date", "skipped", "empty_input"]


@dataclass
class ScoreSummary:
    """What one scoring run did.

    ``status``: ``succeeded`` (a commit was written), ``up_to_date`` (incremental or stream: nothing new), ``skipped``
    (this ``output.batch_id`` was already committed) or ``empty_input`` (nothing written).
    """

    status: Status
    engine: str
    model_uri: str
    model: str  # the concrete model recorded beside each prediction, e.g. SentimentAnalysis/3
    model_version: Optional[str]
    input: str
    input_version: Optional[int]
    output: str
    mode: str
    app_id: str
    batch_id: Optional[int] = None
    # incremental: initial | change_data_feed | key_comparison | up_to_date | granularity_change
    method: Optional[str] = None
    previous_input_version: Optional[int] = None
    rows_in: int = 0
    rows_scored: int = 0
    null_texts: int = 0
    label_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    distributions: dict[str, dict[str, Any]] = field(default_factory=dict)
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)
    drifted: bool = False
    output_version: Optional[int] = None
    columns_added: list[str] = field(default_factory=list)  # added to an existing output (output.evolve_schema)
    write_attempts: Optional[int] = None
    rows_inserted: Optional[int] = None
    rows_updated: Optional[int] = None
    rows_deleted: Optional[int] = None
    seconds: float = 0.0
    rows_per_second: Optional[float] = None
    # per kind of worker CPU: the precision chosen, why, each candidate's probe rows/s, tasks that used it
    precision: list[dict[str, Any]] = field(default_factory=list)
    # output.mode stream: checkpoint, trigger, micro-batches (rows, label counts, input versions, commit each)
    stream: Optional[dict[str, Any]] = None
    mlflow_run_id: Optional[str] = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
