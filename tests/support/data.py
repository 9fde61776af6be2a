"""Inline test data and the names of the models and data the suite shares."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


# Real IMDB beside the repo (CI lays ../shared next to the clone); $IMDB_DATA wins.
IMDB = Path(os.environ.get("IMDB_DATA") or REPO.parent / "shared" / "data" / "imdb")


POSITIVE = [
    "I love this movie, the acting was wonderful and the story moving.",
    "A brilliant, beautiful film. Great cast and a great script.",
    "One of the best movies I have seen this year; funny and warm.",
    "Excellent direction, superb soundtrack, I enjoyed every minute.",
]


NEGATIVE = [
    "This movie was the worst, boring and far too long.",
    "Terrible acting, awful dialogue, a complete waste of time.",
    "I hated it. The plot made no sense and the ending was stupid.",
    "Dull, lifeless and badly edited; avoid this film.",
]


def labeled_rows(n: int = 64) -> list[tuple[str, str, int]]:
    """``(review_id, text, label)`` rows cycling through short positive and negative reviews."""
    rows = []
    for i in range(n):
        texts, label = (POSITIVE, 1) if i % 2 else (NEGATIVE, 0)
        rows.append((f"r{i}", texts[(i // 2) % len(texts)], label))
    return rows


# 40 short reviews, two of them unscorable (null and blank), for the cluster test.
ROWS_FOR_CLUSTER = [(i, (POSITIVE + NEGATIVE)[i % 8]) for i in range(38)] + [(38, None), (39, "  ")]


MINILM = "MiniLM"  # registered name of the session's fine-tuned MiniLM


# Incremental and fault tests: a keyed table with a change data feed, changed by three commits.
TINY = "models:/TinySentiment@champion"


# Tests that compare the scores of separate runs pin fp32: under `precision: auto` each Python worker times
# fp32 against bf16 (the tiny model records full bf16 agreement), two workers may choose differently, and bf16
# scores move with a batch's padded width (CI saw 8e-6 to 4e-5 on the tiny model's ~0.507).
EXACT = "score.precision=fp32"


KEY_SCHEMA = "id int, text string"


def key_rows(n: int = 6) -> list[tuple[int, str]]:
    return [(i, (POSITIVE + NEGATIVE)[i % 8]) for i in range(1, n + 1)]
