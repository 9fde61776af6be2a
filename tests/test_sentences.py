"""Sentence spans, the sentence plan and the review aggregation rule (inference/sentences.py), on inline
text and known numbers."""

from __future__ import annotations

import numpy as np
import pytest
from spark_sentiment.inference.sentences import (
    Aggregation,
    aggregate,
    fit_aggregation,
    plan_sentences,
    sentence_spans,
)

LABELS3 = ["NEGATIVE", "NEUTRAL", "POSITIVE"]
LABELS2 = ["NEGATIVE", "POSITIVE"]


def texts_of(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


@pytest.mark.parametrize(
    "text, sentences",
    [
        (
            "Great film.<br /><br />The ending though was weak.",
            ["Great film.", "The ending though was weak."],
        ),
        ("Loved the cast<br /><br />Hated the plot", ["Loved the cast", "Hated the plot"]),
        ("It was... fine, I guess. Then it got worse.", ["It was... fine, I guess.", "Then it got worse."]),
        ('"Why?" she asked. He said nothing.', ['"Why?" she asked.', "He said nothing."]),
        ("Mr. Smith and Dr. Jones star. It is great.", ["Mr. Smith and Dr. Jones star.", "It is great."]),
        ("Awful acting.The plot was worse.", ["Awful acting.", "The plot was worse."]),
        ("  Café était génial 😀. Très bien.\n\nÑandú!  ", ["Café était génial 😀.", "Très bien.", "Ñandú!"]),
        ("", []),
        ("<br /> <br/>  ", []),
    ],
)
def test_sentences_are_offsets_into_the_original_text(text, sentences):
    assert texts_of(text) == sentences
    spans = sentence_spans(text)
    assert all(0 <= a < b <= len(text) for a, b in spans)
    assert spans == sorted(spans)


class WordTokenizer:
    """One token id per word (its length), so token counts are easy to reason about."""

    unk_token_id = 1

    def __call__(self, texts, **_):
        return {"input_ids": [[len(w) for w in t.split()] for t in texts]}


def test_plan_cuts_a_sentence_longer_than_the_window_into_pieces_read_whole():
    texts = ["Short one. " + " ".join(["word"] * 10) + ".", "Alone."]
    plan = plan_sentences(WordTokenizer(), texts, body=4, prefix=[101], suffix=[102])
    assert plan.spans == [(0, 10), (11, 11 + 50), (0, 6)]
    assert plan.sentence_review.tolist() == [0, 0, 1]
    # the 10-word sentence: pieces of 4, 4 and 2 tokens, each between the special tokens
    assert [len(p) - 2 for p in plan.pieces] == [2, 4, 4, 2, 1]
    assert all(p[0] == 101 and p[-1] == 102 for p in plan.pieces)
    assert plan.weights.tolist() == [2, 10, 1]
    pieces = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    # sentence 1 = token-weighted mean of its pieces: (4*[0,1] + 4*[0,1] + 2*[1,0]) / 10
    assert plan.sentence_probabilities(pieces)[1].tolist() == pytest.approx([0.2, 0.8])


RULE = Aggregation(clear=0.8, mixed=0.2, polar=0.3)


def review(*sentences):
    """Sentence probabilities (NEGATIVE, NEUTRAL, POSITIVE) and token weights."""
    return np.array([p for p, _ in sentences], dtype=float), np.array([w for _, w in sentences], dtype=float)


def test_clearly_positive_and_clearly_negative_sentences_with_weight_make_a_mixed_review():
    p, w = review(([0.05, 0.05, 0.9], 10), ([0.9, 0.05, 0.05], 5), ([0.1, 0.8, 0.1], 5))
    found = aggregate(p, w, LABELS3, RULE)
    assert found.label == "MIXED"
    assert (found.positive_share, found.negative_share) == (0.5, 0.25)
    assert found.evidence == 1  # the weaker side's strongest sentence
    assert found.probabilities.sum() == pytest.approx(1.0)


def test_no_clear_polarity_makes_a_neutral_review_and_a_binary_model_never_says_neutral():
    p, w = review(([0.1, 0.8, 0.1], 10), ([0.3, 0.1, 0.6], 10))
    found = aggregate(p, w, LABELS3, RULE)
    assert (found.label, found.evidence) == ("NEUTRAL", 0)
    assert found.score == pytest.approx(0.45)
    binary = aggregate(np.array([[0.4, 0.6], [0.45, 0.55]]), np.array([10.0, 10.0]), LABELS2, RULE)
    assert binary.label == "POSITIVE" and binary.evidence == 0


def test_one_sided_review_takes_the_side_with_more_probability():
    p, w = review(([0.05, 0.05, 0.9], 3), ([0.1, 0.8, 0.1], 20), ([0.85, 0.1, 0.05], 1))
    found = aggregate(p, w, LABELS3, Aggregation(clear=0.8, mixed=0.1, polar=0.1))
    # W+ = 3/24, W- = 1/24: the negative side carries too little weight for MIXED
    assert found.label == "POSITIVE" and found.evidence == 0


def test_thresholds_are_fitted_to_the_false_alarm_rates_on_polar_rows():
    rng = np.random.default_rng(0)
    rows, truth, sentences = [], [], []
    for i in range(200):
        label = [0, 2][i % 2]
        top = rng.uniform(0.6, 1.0)
        probabilities = np.full(3, (1 - top) / 2)
        probabilities[label] = top
        rows.append(probabilities)
        truth.append(label)
        sentence = np.tile(probabilities, (5, 1))
        sentence[0] = probabilities[::-1]  # one sentence of the other side in every review
        sentences.append((sentence, np.arange(1.0, 6.0)))
    rule = fit_aggregation(np.array(rows), np.array(truth), sentences, LABELS3, 0.9, 0.05, 0.05)
    assert 0.6 <= rule.clear < 1.0
    assert rule.fitted["polar_rows"] == 200
    assert rule.fitted["polar_rows_mixed"] <= 0.05 and rule.fitted["polar_rows_neutral"] <= 0.05
    again = Aggregation.from_dict(rule.to_dict())
    assert again == rule
    assert Aggregation.from_dict(None) is None


def test_sentence_granularity_needs_positive_and_negative_labels():
    with pytest.raises(ValueError, match="needs labels POSITIVE and NEGATIVE; the model has"):
        aggregate(np.ones((1, 2)) / 2, np.ones(1), ["BAD", "GOOD"], RULE)


def test_neutral_threshold_keeps_polar_rows_under_the_rate_and_calls_neutral_rows():
    neutral_sentence = [0.1, 0.8, 0.1]
    rows, truth, sentences = [], [], []
    for i in range(100):  # polar reviews: 30 lean neutral on average, with polarity shares 0.0 .. 0.29
        label = [0, 2][i % 2]
        clear = np.full(3, 0.05)
        clear[label] = 0.9
        weights = np.array([1.0, 9.0]) if i < 30 else np.array([9.0, 1.0])
        share = i / 100 if i < 30 else 0.9
        sentences.append(
            (np.array([clear, neutral_sentence]), np.array([share, 1 - share]) * 10 if i < 30 else weights)
        )
        rows.append(clear)
        truth.append(label)
    for _ in range(20):  # neutral sentences
        sentences.append((np.array([neutral_sentence]), np.array([5.0])))
        rows.append(np.array(neutral_sentence))
        truth.append(1)
    rule = fit_aggregation(np.array(rows), np.array(truth), sentences, LABELS3, 0.85, 0.05, 0.05)
    assert rule.fitted["polar_rows_neutral"] <= 0.05
    assert rule.fitted["neutral_rows_neutral"] == 1.0
    assert 0.0 <= rule.polar < 0.06
