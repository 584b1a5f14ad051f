"""PNG figures for reports, MLflow artifacts and the documentation.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas and never through pyplot, whose
global figure registry would leak memory in long-lived workers (Tune trials, Serve replicas) and
whose interactive backends need a display those machines do not have.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, precision_recall_curve

from fraud_ray.costs import CostPolicy


def plot_precision_recall(
    y: ArrayLike, scores: Mapping[str, ArrayLike], path: Path, title: str = "Precision-recall"
) -> Path:
    """Precision-recall curves of one or more models scored on the same labels ``y``.

    The legend carries each model's average precision; the dashed line is the fraud rate, which is
    what a model that knows nothing achieves, so the distance to it is the model's worth.
    """
    labels = np.asarray(y).ravel()
    figure, axes = _figure(title)
    for name, model_scores in scores.items():
        precision, recall, _ = precision_recall_curve(labels, model_scores)
        ap = average_precision_score(labels, model_scores)
        axes.step(recall, precision, where="post", label=f"{name} (AP {ap:.3f})")
    axes.axhline(
        labels.mean(), color="grey", linestyle="--", label=f"fraud rate {labels.mean():.3%}"
    )
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="upper right")
    return _save(figure, path)


def plot_cost_curve(
    probabilities: ArrayLike,
    amounts: ArrayLike,
    is_fraud: ArrayLike,
    policy: CostPolicy,
    path: Path,
    title: str = "Cost of a fixed threshold",
) -> Path:
    """Total realised cost of declining from each fixed threshold, against the cost policy.

    The two horizontal lines are the cost policy and "approve everything". The curve's minimum is
    the best any single threshold could have done with hindsight; the policy picks its thresholds
    per amount without the labels, and the gap between the two shows what that is worth.
    """
    thresholds = np.linspace(0.0, 1.0, 201)
    costs = policy.threshold_costs(probabilities, amounts, is_fraud, thresholds)
    savings = policy.savings(probabilities, amounts, is_fraud)
    figure, axes = _figure(title)
    axes.plot(thresholds, costs, label="decline from threshold")
    axes.plot([0.5], [savings.threshold_cost], "o", color="tab:blue", label="fixed 0.5 threshold")
    axes.axhline(savings.realised_cost, color="tab:green", label="cost policy")
    axes.axhline(savings.approve_all_cost, color="tab:red", linestyle="--", label="approve all")
    axes.set(xlabel="probability threshold", ylabel="total realised cost", xlim=(0, 1))
    # Near 0 every legitimate transaction is declined and the curve shoots up; the interesting
    # part is around the baselines, so the axis stops a little above them.
    baselines = max(savings.approve_all_cost, savings.threshold_cost, savings.realised_cost)
    axes.set_ylim(0, 1.5 * baselines if baselines > 0 else None)
    axes.legend(loc="best")
    return _save(figure, path)


def plot_calibration(
    y: ArrayLike,
    raw_scores: ArrayLike,
    probabilities: ArrayLike,
    path: Path,
    bins: int = 10,
    strategy: Literal["uniform", "quantile"] = "quantile",
    title: str = "Calibration",
) -> Path:
    """Reliability diagram of the raw scores and the calibrated probabilities.

    A calibrated model lies on the diagonal: among transactions given 0.2, one in five is a fraud.
    Quantile bins are the default because fraud scores crowd near zero, where uniform bins would
    put nearly every transaction into the first one.
    """
    labels = np.asarray(y).ravel()
    figure, axes = _figure(title)
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    highest = 0.0
    for name, values in (("raw scores", raw_scores), ("calibrated", probabilities)):
        observed, predicted = calibration_curve(labels, values, n_bins=bins, strategy=strategy)
        brier = brier_score_loss(labels, values)
        axes.plot(predicted, observed, marker="o", label=f"{name} (Brier {brier:.4f})")
        highest = max(highest, predicted.max(), observed.max())
    # Fraud probabilities rarely go far above zero: zoom onto the range the bins actually cover.
    limit = min(1.0, 1.1 * highest) or 1.0
    axes.set(xlabel="mean predicted probability", ylabel="fraud rate")
    axes.set(xlim=(0, limit), ylim=(0, limit))
    axes.legend(loc="upper left")
    return _save(figure, path)


def _figure(title: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(6.4, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.set_title(title)
    axes.grid(alpha=0.3)
    return figure, axes


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return path
