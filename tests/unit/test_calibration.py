"""Calibration: the right method is chosen out of sample, and the result survives storage."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.exceptions import NotFittedError
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, log_loss

from fraud_ray.calibration import Calibrator

Synthetic = Callable[[int], tuple[np.ndarray, np.ndarray]]


def _step_shaped(seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose fraud rate jumps from 5% to 60% at 0.5: no logistic curve can follow that."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0, 1, n)
    truth = np.where(scores < 0.5, 0.05, 0.6)
    return scores, (rng.uniform(size=n) < truth).astype(int)


def _sigmoid_shaped(seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Overconfident scores whose true probability is exactly a logistic curve of their logit."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.001, 0.999, n)
    truth = expit(0.5 * logit(scores) - 1.5)
    return scores, (rng.uniform(size=n) < truth).astype(int)


def test_step_shaped_miscalibration_picks_isotonic() -> None:
    calibrator = Calibrator().fit(*_step_shaped(0))
    assert calibrator.method_ == "isotonic"
    assert calibrator.log_loss_["isotonic"] < calibrator.log_loss_["platt"]


def test_sigmoid_shaped_miscalibration_picks_platt() -> None:
    calibrator = Calibrator().fit(*_sigmoid_shaped(0))
    assert calibrator.method_ == "platt"
    assert calibrator.log_loss_["platt"] < calibrator.log_loss_["isotonic"]


@pytest.mark.parametrize("make", [_step_shaped, _sigmoid_shaped])
def test_calibration_improves_log_loss_on_new_data(make: Synthetic) -> None:
    calibrator = Calibrator().fit(*make(0))
    scores, y = make(1)
    calibrated = calibrator.transform(scores)
    assert log_loss(y, calibrated) < log_loss(y, scores) - 0.02
    # and the probabilities now average out to the observed fraud rate
    assert abs(calibrated.mean() - y.mean()) < 0.02


@pytest.mark.parametrize("make", [_step_shaped, _sigmoid_shaped])
def test_probabilities_are_monotone_and_bounded(make: Synthetic) -> None:
    calibrator = Calibrator().fit(*make(0))
    grid = np.linspace(0, 1, 1001)  # includes 0 and 1, where the logit is infinite
    probabilities = calibrator.transform(grid)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert np.all(np.diff(probabilities) > 0)  # strictly: no two scores tie


def test_few_frauds_keep_the_boosters_order() -> None:
    """Nine frauds among 3,000: isotonic regression makes the top of the range one flat step,
    on which the frauds would tie with the legitimate payments there."""
    rng = np.random.default_rng(5)
    y = np.zeros(3000, dtype=int)
    y[rng.choice(3000, 9, replace=False)] = 1
    scores = np.clip(rng.beta(1, 30, 3000) + 0.3 * y * rng.uniform(0.5, 1, 3000), 0, 1)
    isotonic = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(scores, y)
    assert len(np.unique(isotonic.predict(scores))) < 20  # the ties the calibrator must not keep
    calibrator = Calibrator.from_dict(
        {
            "method": "isotonic",
            "log_loss": {},
            "parameters": {
                "scores": isotonic.X_thresholds_.tolist(),
                "probabilities": isotonic.y_thresholds_.tolist(),
            },
        }
    )
    probabilities = calibrator.transform(scores)

    assert len(np.unique(probabilities)) == len(np.unique(scores))
    assert average_precision_score(y, probabilities) == pytest.approx(
        average_precision_score(y, scores)
    )
    np.testing.assert_allclose(probabilities, isotonic.predict(scores), atol=1e-6)


def test_isotonic_map_predicts_like_scikit_learn() -> None:
    scores, y = _step_shaped(0)
    calibrator = Calibrator().fit(scores, y)
    reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(scores, y)
    grid = np.linspace(0, 1, 997)
    # The same map, up to the one-in-a-million share of the raw score that breaks its ties.
    np.testing.assert_allclose(calibrator.transform(grid), reference.predict(grid), atol=1e-6)


@pytest.mark.parametrize("make", [_step_shaped, _sigmoid_shaped])
def test_survives_pickle_and_json(make: Synthetic) -> None:
    calibrator = Calibrator().fit(*make(0))
    grid = np.linspace(0, 1, 101)
    from_pickle = pickle.loads(pickle.dumps(calibrator))
    from_json = Calibrator.from_dict(json.loads(json.dumps(calibrator.to_dict())))
    for restored in (from_pickle, from_json):
        assert restored.method_ == calibrator.method_
        assert restored.log_loss_ == calibrator.log_loss_
        np.testing.assert_array_equal(restored.transform(grid), calibrator.transform(grid))


def test_each_half_needs_both_classes() -> None:
    scores = np.linspace(0, 1, 8)
    # every fraud in the second half: the first half cannot fit a logistic curve
    with pytest.raises(ValueError, match="both halves"):
        Calibrator().fit(scores, [0, 0, 0, 0, 1, 0, 1, 1])


def test_refuses_scores_outside_the_unit_interval() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Calibrator().fit([0.1, 1.5, 0.2, 0.3], [0, 1, 0, 1])


def test_transform_before_fit_fails() -> None:
    with pytest.raises(NotFittedError):
        Calibrator().transform([0.5])
