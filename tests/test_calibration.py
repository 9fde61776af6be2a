"""Temperature scaling and expected calibration error (monitoring/calibration.py) on known numbers."""

from __future__ import annotations

import numpy as np
import pytest
from spark_sentiment.monitoring.calibration import (
    expected_calibration_error,
    fit_temperature,
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
