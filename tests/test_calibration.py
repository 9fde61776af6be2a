"""Temperature scaling (plain and by length) and expected calibration error (monitoring/calibration.py) on known
numbers."""

from __future__ import annotations

import numpy as np
import pytest
from spark_sentiment.model.window import Temperature
from spark_sentiment.monitoring.calibration import (
    expected_calibration_error,
    fit_temperature,
    fit_temperature_by_length,
    negative_log_likelihood,
    softmax,
)


def overconfident(rows: int = 4000, temperature: float = 3.0, seed: int = 0):
    """Logits of a 3-class model whose calibrated logits, multiplied by ``temperature``, are what it outputs."""
    rng = np.random.default_rng(seed)
    calibrated = rng.normal(0, 1.5, size=(rows, 3))
    labels = np.array([rng.choice(3, p=p) for p in softmax(calibrated)])
    return calibrated * temperature, labels


def test_fitted_temperature_recovers_the_overconfidence_and_lowers_ece():
    logits, labels = overconfident()
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits, temperature), labels)
    assert before > 0.1 and after < 0.03
    # the minimum: a little either side is worse
    best = negative_log_likelihood(logits, labels, temperature)
    assert best < negative_log_likelihood(logits, labels, temperature * 1.05)
    assert best < negative_log_likelihood(logits, labels, temperature / 1.05)


def test_temperature_never_changes_the_predicted_label():
    logits, labels = overconfident(500)
    temperature = fit_temperature(logits, labels)
    assert (softmax(logits, temperature).argmax(1) == logits.argmax(1)).all()


def test_ece_by_hand():
    # two bins hit: 0.9 with 2 of 2 right (|1 - 0.9| = 0.1), 0.6 with 1 of 2 right (|0.5 - 0.6| = 0.1)
    probabilities = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 0])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.1)
    assert expected_calibration_error(np.zeros((0, 2)), np.zeros(0)) == 0.0
    assert fit_temperature(np.zeros((0, 2)), np.zeros(0)) == 1.0


def sentences_and_reviews(rows: int = 3000):
    """Short texts (20 tokens) whose logits are 2x too sure, long ones (400 tokens) 0.7x: what a model trained on
    sentences and reviews at once does."""
    short, short_labels = overconfident(rows, 2.0, seed=1)
    long, long_labels = overconfident(rows, 0.7, seed=2)
    lengths = np.r_[np.full(rows, 20), np.full(rows, 400)]
    return np.r_[short, long], np.r_[short_labels, long_labels], lengths


def test_the_temperature_by_length_finds_each_length_its_own_and_beats_one_temperature():
    logits, labels, lengths = sentences_and_reviews()
    fitted = fit_temperature_by_length(logits, labels, lengths)
    assert fitted.per_row([20, 400]) == pytest.approx([2.0, 0.7], rel=0.1)
    assert (fitted.low, fitted.high) == (20, 400)
    one = fit_temperature(logits, labels)
    short = lengths == 20
    for rows in (short, ~short):  # each length calibrated, where one temperature leaves both off
        by_length = expected_calibration_error(fitted.probabilities(logits[rows], lengths[rows]), labels[rows])
        assert by_length < 0.03 < expected_calibration_error(softmax(logits[rows], one), labels[rows])
    assert (fitted.probabilities(logits, lengths).argmax(1) == logits.argmax(1)).all()
    # beyond the fitted lengths it does not extrapolate: a 5-token text is as a 20-token one, 4,000 as 400
    assert fitted.per_row([5, 4000]) == pytest.approx(fitted.per_row([20, 400]))


def test_lengths_that_do_not_vary_give_plain_temperature_scaling():
    logits, labels = overconfident()
    fitted = fit_temperature_by_length(logits, labels, np.full(len(labels), 512))
    assert fitted == Temperature(fit_temperature(logits, labels))
    assert fitted.per_row([3, 512]) == pytest.approx([fitted.value] * 2)


def test_a_temperature_round_trips_through_the_model_config_and_the_package_meta():
    fitted = Temperature(value=1.1, slope=0.08, reference=50.0, low=3, high=512)
    attributes = fitted.config_attributes()
    assert attributes["spark_sentiment_temperature"] == 1.1  # the key models before the slope recorded
    assert Temperature.of_config(attributes) == fitted
    assert Temperature.from_dict(fitted.to_dict()) == fitted
    # models that recorded a bare temperature (or none) read as they always did
    assert Temperature.of_config({"spark_sentiment_temperature": 1.3}) == Temperature(1.3)
    assert Temperature.of_config({}) == Temperature.from_dict(None) == Temperature()
    assert Temperature(1.3).config_attributes()["spark_sentiment_temperature_length"] is None
    with pytest.raises(ValueError, match="temperature must be positive"):
        Temperature(value=0.0)
