"""Sentences of a review as character offsets into the original text.

Paragraph breaks are cut first, by this module: IMDB-style ``<br />`` tags (any case, with or without the
slash) and blank lines. Each paragraph is then split by `sentencex <https://github.com/wikimedia/sentencex>`_
(Wikimedia's rule-based segmenter, ~300 languages, code-point offsets), chosen by
``benchmarks/sentence_splitters.py`` over pysbd, syntok and blingfire: it alone keeps abbreviations, ellipses
and quotes while splitting sentences written without a space after the period (docs/quality.md has the
table). Spans are trimmed of surrounding white space; spans without a letter, digit or symbol are dropped.

Offsets are code points, as Python indexes ``str`` and Spark's ``substring`` counts characters: the span
``(start, end)`` of a text ``t`` is ``t[start:end]`` in Python and ``substring(t, start + 1, end - start)``
in SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

# The model config attribute (config.json) holding the fitted :class:`Aggregation`, beside the temperature.
AGGREGATION_ATTRIBUTE = "spark_sentiment_sentence_aggregation"
PARAGRAPH_BREAK = re.compile(r"<br\s*/?\s*>|\n[ \t\r\f\v]*\n", re.IGNORECASE)
DEFAULT_LANGUAGE = "en"


def paragraphs(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of the stretches between paragraph breaks (possibly empty)."""
    spans, start = [], 0
    for found in PARAGRAPH_BREAK.finditer(text):
        spans.append((start, found.start()))
        start = found.end()
    spans.append((start, len(text)))
    return spans


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def sentence_spans(text: str, language: str = DEFAULT_LANGUAGE) -> list[tuple[int, int]]:
    """``(start, end)`` code-point offsets of each sentence of ``text``, in order, covering every sentence.

    Raises
    ------
    ImportError
        sentencex is not installed (it is a dependency of the package; an executor environment without it
        cannot score at sentence granularity).
    """
    from sentencex import get_sentence_boundaries

    out = []
    for first, last in paragraphs(text):
        first, last = _trimmed(text, first, last)
        if first == last:
            continue
        paragraph = text[first:last]
        for boundary in get_sentence_boundaries(language, paragraph):
            start, end = _trimmed(paragraph, int(boundary["start_index"]), int(boundary["end_index"]))
            if end > start and any(not ch.isspace() for ch in paragraph[start:end]):
                out.append((first + start, first + end))
    return out


@dataclass(frozen=True)
class Aggregation:
    """How a review's label follows from its sentences' probabilities, with thresholds fitted at training on
    held-out rows (:func:`fit_aggregation`) and recorded with the model.

    A sentence is *clearly* positive (negative) when that is its label with probability of at least ``clear``.
    Each sentence weighs its token count; ``W+`` and ``W-`` are the shares of the review's tokens in clearly
    positive and clearly negative sentences. The review is:

    - MIXED when ``W+ > mixed`` and ``W- > mixed`` (both sides carry weight);
    - NEUTRAL, for a model with a NEUTRAL label, when NEUTRAL has the highest probability in the review's
      probabilities (the token-weighted mean of its sentences') and ``W+ + W- <= polar`` (no clear polarity);
    - else POSITIVE or NEGATIVE, whichever has the higher review probability. A model without NEUTRAL
      never says NEUTRAL.
    """

    clear: float
    mixed: float
    polar: float
    fitted: Mapping[str, Any] = field(default_factory=dict)  # how, and on which rows (for people)

    def to_dict(self) -> dict[str, Any]:
        return {"clear": self.clear, "mixed": self.mixed, "polar": self.polar, "fitted": dict(self.fitted)}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any] | None) -> Aggregation | None:
        if not value:
            return None
        return cls(float(value["clear"]), float(value["mixed"]), float(value["polar"]), dict(value.get("fitted") or {}))


MIXED = "MIXED"
NEUTRAL = "NEUTRAL"
POSITIVE = "POSITIVE"
NEGATIVE = "NEGATIVE"


@dataclass
class SentencePlan:
    """The sentences of a batch of reviews, tokenized and cut into pieces a model reads whole.

    ``pieces`` are token ids with the special tokens (a sentence longer than the window is cut into several
    pieces, each read whole); ``piece_sentence`` maps a piece to its sentence, ``sentence_review`` a sentence
    to its review (an index into the texts), ``spans`` holds each sentence's offsets, ``weights`` its tokens."""

    pieces: list[list[int]]
    piece_sentence: np.ndarray
    piece_tokens: np.ndarray
    sentence_review: np.ndarray
    spans: list[tuple[int, int]]
    weights: np.ndarray

    def sentence_probabilities(self, piece_probabilities: np.ndarray) -> np.ndarray:
        """Each sentence's probabilities: its pieces' mean, weighted by their tokens."""
        out = np.zeros((len(self.spans), piece_probabilities.shape[1]), dtype=np.float64)
        np.add.at(out, self.piece_sentence, piece_probabilities * self.piece_tokens[:, None])
        return out / np.maximum(self.weights, 1)[:, None]


def plan_sentences(
    tokenizer: Any, texts: Sequence[str], body: int, prefix: list[int], suffix: list[int]
) -> SentencePlan:
    """Split ``texts`` into sentences and tokenize them (``body`` tokens at most per piece, between ``prefix``
    and ``suffix``, the model's special tokens)."""
    spans, review = [], []
    for i, text in enumerate(texts):
        found = sentence_spans(text)
        spans.extend(found)
        review.extend([i] * len(found))
    sentences = [texts[r][a:b] for r, (a, b) in zip(review, spans)]
    # Long sentences are cut below, not by the tokenizer: mark its "longer than the maximum" warning as given.
    warned = getattr(tokenizer, "deprecation_warnings", None)
    if isinstance(warned, dict):
        warned["sequence-length-is-longer-than-the-specified-maximum"] = True
    ids = (
        tokenizer(sentences, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)[
            "input_ids"
        ]
        if sentences
        else []
    )
    pieces, owner, tokens = [], [], []
    for s, row in enumerate(ids):
        row = row or [tokenizer.unk_token_id or 0]  # a sentence of characters the vocabulary drops
        for start in range(0, len(row), body):
            part = row[start : start + body]
            pieces.append(prefix + part + suffix)
            owner.append(s)
            tokens.append(len(part))
    weights = np.zeros(len(spans), dtype=np.float64)
    np.add.at(weights, np.asarray(owner, dtype=np.int64), np.asarray(tokens, dtype=np.float64))
    return SentencePlan(
        pieces,
        np.asarray(owner, dtype=np.int64),
        np.asarray(tokens, dtype=np.float64),
        np.asarray(review, dtype=np.int64),
        spans,
        weights,
    )


@dataclass(frozen=True)
class ReviewResult:
    label: str
    score: float
    probabilities: np.ndarray  # the review's, per model label
    evidence: int  # index of the sentence (within the review) that most supports the label
    positive_share: float  # W+
    negative_share: float  # W-


def polar_indices(labels: Sequence[str]) -> tuple[int, int, int | None]:
    """Indices of POSITIVE, NEGATIVE and (if any) NEUTRAL among a model's labels.

    Raises
    ------
    ValueError
        The model has no POSITIVE or no NEGATIVE label.
    """
    if POSITIVE not in labels or NEGATIVE not in labels:
        raise ValueError(f"sentence granularity needs labels {POSITIVE} and {NEGATIVE}; the model has {list(labels)}")
    return labels.index(POSITIVE), labels.index(NEGATIVE), labels.index(NEUTRAL) if NEUTRAL in labels else None


def shares(probabilities: np.ndarray, weights: np.ndarray, clear: float, labels: Sequence[str]) -> tuple[float, float]:
    """``(W+, W-)``: the token shares of the clearly positive and clearly negative sentences of one review."""
    pos, neg, _ = polar_indices(labels)
    best = probabilities.argmax(axis=1)
    total = float(weights.sum()) or 1.0
    clear_pos = (best == pos) & (probabilities[:, pos] >= clear)
    clear_neg = (best == neg) & (probabilities[:, neg] >= clear)
    return float(weights[clear_pos].sum()) / total, float(weights[clear_neg].sum()) / total


def aggregate(probabilities: np.ndarray, weights: np.ndarray, labels: Sequence[str], rule: Aggregation) -> ReviewResult:
    """One review's label, score, probabilities and evidence from its sentences' (see :class:`Aggregation`)."""
    pos, neg, neutral = polar_indices(labels)
    review = (probabilities * weights[:, None]).sum(axis=0) / (float(weights.sum()) or 1.0)
    w_pos, w_neg = shares(probabilities, weights, rule.clear, labels)
    if w_pos > rule.mixed and w_neg > rule.mixed:
        # the weaker side's strongest sentence is what makes the review mixed
        side = pos if w_pos < w_neg else neg
        return ReviewResult(
            MIXED, float(review[pos] + review[neg]), review, int(probabilities[:, side].argmax()), w_pos, w_neg
        )
    if neutral is not None and int(review.argmax()) == neutral and w_pos + w_neg <= rule.polar:
        chosen = neutral
    else:
        chosen = pos if review[pos] >= review[neg] else neg
    return ReviewResult(
        labels[chosen], float(review[chosen]), review, int(probabilities[:, chosen].argmax()), w_pos, w_neg
    )


def fit_aggregation(
    review_probabilities: np.ndarray,
    truth: np.ndarray,
    sentences: Sequence[tuple[np.ndarray, np.ndarray]],
    labels: Sequence[str],
    clear_precision: float,
    mixed_rate: float,
    neutral_rate: float,
) -> Aggregation:
    """Fit the thresholds of :class:`Aggregation` on held-out labeled rows.

    Parameters
    ----------
    review_probabilities
        Each row's calibrated probabilities as the model reads it whole (rows x labels).
    truth
        Each row's true label id.
    sentences
        Each row's ``(sentence probabilities, sentence weights)``.
    clear_precision
        ``clear`` is the lowest probability at which the rows the model calls POSITIVE or NEGATIVE with at least
        that probability are right this often.
    mixed_rate, neutral_rate
        ``mixed`` and ``polar`` are set so that at most these fractions of the rows whose true label is POSITIVE
        or NEGATIVE come out MIXED, and NEUTRAL, at sentence granularity (no data holds mixed reviews graded
        as such, so the rule is held to a false-alarm rate on polar ones): ``mixed`` as the (1 - rate)
        quantile of their weaker side's share, ``polar`` as the largest polarity share at which no more than
        that many of them whose sentences lean NEUTRAL on average would be called so.
    """
    pos, neg, neutral = polar_indices(labels)
    truth = np.asarray(truth, dtype=np.int64)
    predicted = review_probabilities.argmax(axis=1)
    top = review_probabilities.max(axis=1)
    polar_call = np.isin(predicted, [pos, neg])
    clear = 1.0
    for threshold in np.unique(np.round(top[polar_call], 4)):
        chosen = polar_call & (top >= threshold)
        if chosen.any() and float((predicted[chosen] == truth[chosen]).mean()) >= clear_precision:
            clear = float(threshold)
            break
    w = np.array([shares(p, weights, clear, labels) for p, weights in sentences]).reshape(-1, 2)
    leans_neutral = np.array(
        [
            neutral is not None and len(p) > 0 and int(np.average(p, axis=0, weights=weights).argmax()) == neutral
            for p, weights in sentences
        ],
        dtype=bool,
    )
    polar_rows = np.isin(truth, [pos, neg])
    minority, polarity = w.min(axis=1), w.sum(axis=1)
    mixed, polar = 1.0, 1.0
    if polar_rows.any():
        mixed = float(np.quantile(minority[polar_rows], 1 - mixed_rate, method="higher"))
        allowed = int(np.floor(neutral_rate * polar_rows.sum()))
        candidates = np.sort(polarity[polar_rows & leans_neutral])
        if len(candidates) > allowed:
            # halfway below the (allowed+1)-th smallest share, past its ties: at most `allowed` polar rows called
            upper = candidates[allowed]
            below = candidates[candidates < upper]
            polar = float((below.max() + upper) / 2) if below.size else float(upper - 1) / 2
    fitted: dict[str, Any] = {
        "rows": int(len(truth)),
        "polar_rows": int(polar_rows.sum()),
        "clear_precision": clear_precision,
        "mixed_rate": mixed_rate,
        "neutral_rate": neutral_rate,
        "polar_rows_mixed": round(float((polar_rows & (minority > mixed)).sum() / max(polar_rows.sum(), 1)), 4),
    }
    if neutral is not None:
        called = leans_neutral & (polarity <= polar) & ~(minority > mixed)  # as aggregate() decides NEUTRAL
        fitted["polar_rows_neutral"] = round(float((polar_rows & called).sum() / max(polar_rows.sum(), 1)), 4)
        neutral_rows = truth == neutral
        if neutral_rows.any():
            fitted["neutral_rows"] = int(neutral_rows.sum())
            fitted["neutral_rows_neutral"] = round(float(called[neutral_rows].mean()), 4)
    return Aggregation(round(clear, 4), round(mixed, 4), round(polar, 4), fitted)
