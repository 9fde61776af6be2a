"""Calibration of a classifier's probabilities: temperature scaling and expected calibration error.

Temperature scaling (Guo et al. 2017, *On Calibration of Modern Neural Networks*) divides the logits by one
scalar ``T`` fitted on held-out rows by minimising their negative log-likelihood; the predicted label never
changes, only how sure the model says it is. :func:`fit_temperature_by_length` lets ``T`` depend on how many
tokens a text is read as (:class:`..model.window.Temperature`): a model trained on short sentences and long
reviews at once is over-confident on the first and under-confident on the second. The training job fits it on
its eval rows, read as scoring reads them, and records it with the model; scoring divides by it before the
softmax.
"""

from __future__ import annotations

import math

import numpy as np

from ..model.window import INVERSE_TEMPERATURE_RANGE, Temperature

ECE_BINS = 15  # equal-width confidence bins, as in Guo et al.
TEMPERATURE_RANGE = (0.05, 20.0)


def softmax(logits: np.ndarray, temperature: float | np.ndarray = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (float64; ``temperature`` one number or one per row)."""
    temperature = np.asarray(temperature, dtype=np.float64)
    scaled = np.asarray(logits, dtype=np.float64) / (temperature[:, None] if temperature.ndim else temperature)
    exp = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float | np.ndarray) -> float:
    """Mean NLL of the true labels under ``softmax(logits / temperature)`` (one temperature or one per row)."""
    temperature = np.asarray(temperature, dtype=np.float64)
    scaled = np.asarray(logits, dtype=np.float64) / (temperature[:, None] if temperature.ndim else temperature)
    top = scaled.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(scaled - top).sum(axis=1))
    return float(np.mean(log_norm - scaled[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, iterations: int = 60) -> float:
    """The temperature in :data:`TEMPERATURE_RANGE` that minimises the NLL of ``labels``.

    The NLL is convex in ``1/T``, so it has one minimum along ``log T``: golden-section search finds it to
    about 1e-9 relative in 60 steps, without an optimiser dependency. No rows: 1.0 (no change).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 1.0
    low, high = (math.log(bound) for bound in TEMPERATURE_RANGE)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a = negative_log_likelihood(logits, labels, math.exp(a))
    loss_b = negative_log_likelihood(logits, labels, math.exp(b))
    for _ in range(iterations):
        if loss_a <= loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = negative_log_likelihood(logits, labels, math.exp(a))
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = negative_log_likelihood(logits, labels, math.exp(b))
    return float(math.exp((low + high) / 2))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: over equal-width bins of the predicted label's probability, the row-weighted mean of
    ``|accuracy - mean probability|``. 0 for no rows."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    return binned_calibration_error(confidence, correct, bins)


def binned_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE from each row's confidence and whether its label was right."""
    index = np.minimum((np.asarray(confidence) * bins).astype(np.int64), bins - 1)
    total, error = len(index), 0.0
    for b in range(bins):
        rows = index == b
        if rows.any():
            error += rows.sum() / total * abs(float(np.mean(correct[rows])) - float(np.mean(confidence[rows])))
    return float(error)


def fit_temperature_by_length(
    logits: np.ndarray, labels: np.ndarray, lengths: np.ndarray, iterations: int = 50
) -> Temperature:
    """The :class:`~..model.window.Temperature` (inverse temperature linear in the log token count) that
    minimises the NLL of ``labels``; ``lengths`` is each row's token count as scoring reads it.

    The NLL is convex in each row's inverse temperature and that is affine in the two parameters, so Newton's
    method with a backtracking line search finds the one minimum. Lengths that hardly vary (one source, or
    texts all cut to the window) leave the slope undetermined: plain :func:`fit_temperature` then.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    lengths = np.maximum(np.asarray(lengths, dtype=np.float64), 1.0)
    scalar = Temperature(fit_temperature(logits, labels))
    if len(labels) < 2 or np.std(np.log(lengths)) < 0.1:
        return scalar
    reference = float(np.exp(np.mean(np.log(lengths))))  # centres x, so the two parameters hardly correlate
    x = np.log(lengths / reference)
    true = logits[np.arange(len(labels)), labels]
    features = np.stack([np.ones_like(x), x], axis=1)

    def per_row(theta: np.ndarray) -> np.ndarray:  # each row's temperature
        return 1.0 / np.clip(features @ theta, *INVERSE_TEMPERATURE_RANGE)

    def loss(theta: np.ndarray) -> float:
        return negative_log_likelihood(logits, labels, per_row(theta))

    theta = np.array([1.0 / scalar.value, 0.0])
    current = loss(theta)
    for _ in range(iterations):
        temperature = per_row(theta)
        p = softmax(logits, temperature)
        mean = (p * logits).sum(axis=1)
        gradient = features.T @ (mean - true) / len(labels)  # d NLL / d inverse = E_p[z] - z_true
        curvature = (p * logits**2).sum(axis=1) - mean**2  # d2 NLL / d inverse2 = Var_p[z] >= 0
        hessian = (features * curvature[:, None]).T @ features / len(labels) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-4 and loss(theta - scale * step) > current:
            scale /= 2
        if scale <= 1e-4:
            break
        theta = theta - scale * step
        improved, current = current, loss(theta)
        if improved - current < 1e-12:
            break
    if not current < negative_log_likelihood(logits, labels, scalar.value):
        return scalar
    low, high = int(lengths.min()), int(math.ceil(lengths.max()))
    base = 1.0 / float(np.clip(theta[0], *INVERSE_TEMPERATURE_RANGE))
    return Temperature(value=base, slope=float(theta[1]), reference=reference, low=low, high=high)
