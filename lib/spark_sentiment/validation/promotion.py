"""Champion/challenger: promote the candidate only when it beats the champion by the margin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlflow.tracking import MlflowClient

from ..model.registry import CHAMPION, ResolvedModel

PREVIOUS_CHAMPION = "previous_champion"  # kept on the version that was champion, for a one-step rollback


@dataclass(frozen=True)
class Decision:
    outcome: str  # promoted | kept_champion | same_version | evaluated
    reason: str
    exit_code: int  # 0 promoted / same / evaluated only; kept_champion_exit_code (3 by default) not promoted


def decide(
    candidate: dict[str, Any],
    champion: dict[str, Any] | None,
    metric: str,
    margin: float,
    promote: bool,
    kept_champion_exit_code: int = 3,
) -> Decision:
    """Compare ``metric`` of the two evaluations (dicts from :func:`metrics.binary_metrics`); a candidate
    that does not win exits with ``kept_champion_exit_code`` (0 for schedulers that only know 0/non-0)."""
    if champion is None:
        if not promote:
            return Decision("evaluated", "no champion; promotion disabled", 0)
        return Decision("promoted", "no champion yet", 0)
    gain = candidate[metric] - champion[metric]
    text = (
        f"candidate {metric} {candidate[metric]:.4f} vs champion {champion[metric]:.4f} "
        f"(gain {gain:+.4f}, margin {margin})"
    )
    if gain <= margin:
        return Decision("kept_champion", text, kept_champion_exit_code)
    if not promote:
        return Decision("evaluated", text + "; promotion disabled", 0)
    return Decision("promoted", text, 0)


def promote(candidate: ResolvedModel, champion: ResolvedModel | None) -> None:
    """Move ``@champion`` to the candidate's version; the old champion keeps ``@previous_champion``."""
    client = MlflowClient()
    if champion is not None and champion.name == candidate.name and champion.version:
        client.set_registered_model_alias(champion.name, PREVIOUS_CHAMPION, champion.version)
    client.set_registered_model_alias(candidate.name, CHAMPION, candidate.version)
