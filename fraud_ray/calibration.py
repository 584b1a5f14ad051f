"""Turning a model's raw scores into probabilities that can be taken at face value.

The cost decision multiplies the fraud probability by the amount at stake, so a score that says 0.3
must mean three frauds in ten. Boosted trees trained on resampled or re-weighted data do not give
that, so the scores are mapped onto probabilities on the validation split. Isotonic regression can
follow any monotone distortion but needs data; Platt scaling (a logistic curve in the logit of the
score) needs little data but only fixes sigmoid-shaped distortions. Which one suits a model is
decided out of sample, by a time-ordered cross-fit on the validation data.

Isotonic regression maps whole ranges of scores onto one probability: with few frauds in the
validation data the top of the range is one flat step, and every transaction on it would tie. The
booster's order is what catches fraud (average precision, the top cards of a day), so the
probabilities are nudged by one millionth of the raw score: strictly increasing in it, and no
further from the calibrated value than any cost decision can tell.

The fitted mapping is kept as a handful of plain numbers rather than scikit-learn objects, so a
calibrator stored with a model in MLflow still loads after scikit-learn is upgraded, and it can be
written as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, logit
from sklearn.exceptions import NotFittedError
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

CalibrationMethod = Literal["isotonic", "platt"]
TIE_BREAK = 1e-6  # the share of the raw score mixed into a probability to keep the booster's order


@dataclass(frozen=True, eq=False)
class _Isotonic:
    """A non-decreasing piecewise-linear map through ``(scores[i], probabilities[i])``.

    Scores outside the fitted range get the probability of the nearest end, which is what
    ``IsotonicRegression(out_of_bounds="clip")`` predicts.
    """

    scores: NDArray[np.float64]
    probabilities: NDArray[np.float64]

    @classmethod
    def fit(cls, scores: NDArray[np.float64], y: NDArray[np.int_]) -> _Isotonic:
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, y)
        return cls(np.asarray(model.X_thresholds_), np.asarray(model.y_thresholds_))

    def __call__(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.interp(scores, self.scores, self.probabilities)

    def to_dict(self) -> dict[str, Any]:
        return {"scores": self.scores.tolist(), "probabilities": self.probabilities.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _Isotonic:
        return cls(np.asarray(data["scores"], float), np.asarray(data["probabilities"], float))


@dataclass(frozen=True)
class _Platt:
    """``sigmoid(slope * logit(score) + intercept)``: a logistic recalibration of the score."""

    slope: float
    intercept: float

    @classmethod
    def fit(cls, scores: NDArray[np.float64], y: NDArray[np.int_]) -> _Platt:
        # Unpenalised: with two parameters and thousands of rows there is nothing to regularise.
        model = LogisticRegression(C=np.inf).fit(_logit(scores)[:, None], y)
        return cls(float(model.coef_[0, 0]), float(model.intercept_[0]))

    def __call__(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        return expit(self.slope * _logit(scores) + self.intercept)

    def to_dict(self) -> dict[str, Any]:
        return {"slope": self.slope, "intercept": self.intercept}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _Platt:
        return cls(float(data["slope"]), float(data["intercept"]))


# Platt first: on equal log loss the two-parameter map is the safer choice.
_METHODS: dict[CalibrationMethod, type[_Isotonic] | type[_Platt]] = {
    "platt": _Platt,
    "isotonic": _Isotonic,
}


class Calibrator:
    """Maps raw model scores in [0, 1] to calibrated fraud probabilities.

    ``fit`` expects the validation data in time order. Each method is fitted on one half and scored
    on the other, both ways round, and the method with the lower out-of-fold log loss is refitted
    on all the data: choosing on in-sample loss would always favour isotonic regression, which can
    fit its own data almost perfectly. After ``fit``, ``method_`` names the choice and ``log_loss_``
    holds each method's out-of-fold log loss.
    """

    method_: CalibrationMethod
    log_loss_: dict[CalibrationMethod, float]
    _mapping: _Isotonic | _Platt

    def fit(self, raw_scores: ArrayLike, y: ArrayLike) -> Self:
        scores = _scores(raw_scores)
        labels = np.asarray(y).ravel()
        if len(labels) != len(scores):
            raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
        if not np.all((labels == 0) | (labels == 1)):
            raise ValueError("labels must hold only 0 and 1")
        labels = labels.astype(int)
        half = len(scores) // 2
        first, second = slice(0, half), slice(half, None)
        for part in (first, second):
            if len(np.unique(labels[part])) < 2:
                raise ValueError(
                    "calibration needs frauds and legitimate transactions in both halves "
                    "of the (time-ordered) validation data"
                )
        losses: dict[CalibrationMethod, float] = {}
        for name, method in _METHODS.items():
            out_of_fold = np.empty_like(scores)
            for fit_part, score_part in ((first, second), (second, first)):
                mapping = method.fit(scores[fit_part], labels[fit_part])
                out_of_fold[score_part] = mapping(scores[score_part])
            losses[name] = float(log_loss(labels, np.clip(out_of_fold, 0, 1), labels=[0, 1]))
        self.log_loss_ = losses
        self.method_ = min(losses, key=losses.__getitem__)
        self._mapping = _METHODS[self.method_].fit(scores, labels)
        return self

    def transform(self, raw_scores: ArrayLike) -> NDArray[np.float64]:
        """Calibrated probabilities within [0, 1], strictly increasing in the raw score, so
        they rank transactions as the booster does."""
        if not hasattr(self, "_mapping"):
            raise NotFittedError("this Calibrator is not fitted yet: call fit first")
        scores = _scores(raw_scores)
        mapped = np.clip(self._mapping(scores), 0.0, 1.0)
        return (1.0 - TIE_BREAK) * mapped + TIE_BREAK * scores

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description that ``from_dict`` turns back into the same calibrator."""
        if not hasattr(self, "_mapping"):
            raise NotFittedError("this Calibrator is not fitted yet: call fit first")
        return {
            "method": self.method_,
            "log_loss": dict(self.log_loss_),
            "parameters": self._mapping.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        method: CalibrationMethod = data["method"]
        if method not in _METHODS:
            raise ValueError(f"unknown calibration method {method!r}")
        calibrator = cls()
        calibrator.method_ = method
        calibrator.log_loss_ = {name: float(loss) for name, loss in data["log_loss"].items()}
        calibrator._mapping = _METHODS[method].from_dict(data["parameters"])
        return calibrator


def _scores(values: ArrayLike) -> NDArray[np.float64]:
    scores = np.asarray(values, dtype=float).ravel()
    if not np.all((scores >= 0) & (scores <= 1)):
        raise ValueError("raw scores must lie in [0, 1] (use the model's probability output)")
    return scores


def _logit(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    # A score of exactly 0 or 1 would have an infinite logit; 1e-9 is far below any useful score.
    return logit(np.clip(scores, 1e-9, 1 - 1e-9))
