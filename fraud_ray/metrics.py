"""How a fraud model is judged on labelled transactions.

Fraud is rare, so ROC AUC alone flatters every model; average precision and recall at a very low
false-positive rate say more about the few alerts a bank can afford. Card precision@k measures what
an investigation team actually does, checking the k most suspicious cards each day, and the cost
figures say what the decisions are worth in money. Every model is reported with all of them, under
keys that are valid MLflow metric names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

from fraud_ray.costs import CostPolicy
from fraud_ray.schema import AMOUNT, CARD_ID, LABEL, TIMESTAMP


class CardPrecision(NamedTuple):
    """Card precision@k: the mean over days, and each day's value indexed by the UTC day."""

    mean: float
    per_day: pd.Series


def card_precision_at_k(frame: pd.DataFrame, scores: ArrayLike, k: int = 100) -> CardPrecision:
    """Daily share of frauds among the k cards with the highest scores, as in the Fraud Detection
    Handbook (Le Borgne et al., "Precision top-k metrics").

    An investigator checks cards, not transactions, so a card's score for a day is the highest of
    its scores that day and it counts as found when any of its transactions that day is a fraud.
    A card found once is blocked, so it is left out of the later days rather than found again. Each
    day is divided by k even when fewer cards were active: idle investigators are a loss too. Equal
    scores are ranked by card id, so the figure does not depend on the row order.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if CARD_ID not in frame.columns:
        raise ValueError(f"card precision needs a {CARD_ID} column")
    cards = pd.DataFrame(
        {
            "day": pd.to_datetime(frame[TIMESTAMP], utc=True).dt.normalize().to_numpy(),
            "card": frame[CARD_ID].to_numpy(),
            "score": _scores(scores, len(frame)),
            "fraud": frame[LABEL].to_numpy(),
        }
    )
    daily = cards.groupby(["day", "card"], sort=True).agg(
        score=("score", "max"), fraud=("fraud", "max")
    )
    found: set[object] = set()
    precision: dict[pd.Timestamp, float] = {}
    for day, day_cards in daily.groupby(level="day", sort=True):
        day_cards = day_cards.droplevel("day")
        day_cards = day_cards[~day_cards.index.isin(found)]
        top = day_cards.sort_values("score", ascending=False, kind="stable").head(k)
        hits = top.index[top["fraud"] == 1]
        precision[day] = len(hits) / k
        found.update(hits)
    per_day = pd.Series(precision, name=f"card_precision_at_{k}", dtype=float)
    per_day.index.name = "day"
    return CardPrecision(float(per_day.mean()), per_day)


def recall_at_fpr(y: ArrayLike, scores: ArrayLike, fpr: float) -> float:
    """The best recall of a score threshold whose false-positive rate is at most ``fpr``.

    Thresholds are taken between distinct scores only: transactions with equal scores are flagged
    together, so ties between a fraud and a legitimate one are not split in the model's favour.
    NaN when ``y`` lacks either class.
    """
    labels = np.asarray(y).ravel()
    if not _both_classes(labels):
        return float("nan")
    false_positive_rate, true_positive_rate, _ = roc_curve(
        labels, _scores(scores, len(labels)), drop_intermediate=False
    )
    return float(true_positive_rate[false_positive_rate <= fpr].max())


def average_precision(y: ArrayLike, scores: ArrayLike) -> float:
    """Average precision of ``scores``; NaN when ``y`` lacks either class, where it says nothing
    about the ranking (all frauds: 1.0 whatever the scores)."""
    labels = np.asarray(y).ravel()
    if not _both_classes(labels):
        return float("nan")
    return float(average_precision_score(labels, _scores(scores, len(labels))))


def evaluate(
    frame: pd.DataFrame,
    probabilities: ArrayLike,
    policy: CostPolicy,
    k: int = 100,
    fprs: Sequence[float] = (0.001, 0.01),
    threshold: float = 0.5,
) -> dict[str, float]:
    """Every figure a model is reported with, on the labelled ``frame`` it scored.

    ``probabilities`` must be calibrated: the costs take them at face value. Ranking metrics that
    the labels cannot support (one class only) are NaN rather than missing, so every run logs the
    same keys; card precision is left out when the data have no cards. Costs are totals over
    ``frame``: ``expected_cost`` is what the policy expected its decisions to cost, the rest come
    from ``CostPolicy.savings`` (``threshold`` is that of the fixed-threshold baseline).
    """
    y = frame[LABEL].to_numpy()
    amounts = frame[AMOUNT].to_numpy(dtype=float)
    p = _scores(probabilities, len(frame))
    both = _both_classes(y)
    metrics = {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "average_precision": average_precision(y, p),
        # The costs take the probabilities at face value: their calibration is a figure too, as
        # the Brier score and as the frauds the probabilities add up to per fraud found (1: right
        # on the whole; above 1: they overstate the risk).
        "brier": float(brier_score_loss(y, p)) if len(y) else float("nan"),
        "expected_to_actual_frauds": float(p.sum() / y.sum()) if y.sum() else float("nan"),
    }
    for rate in fprs:
        metrics[f"recall_at_fpr_{_metric_suffix(rate)}"] = recall_at_fpr(y, p, rate)
    if CARD_ID in frame.columns:
        metrics[f"card_precision_at_{k}"] = card_precision_at_k(frame, p, k).mean
    _, expected = policy.decide(p, amounts)
    metrics["expected_cost"] = float(expected.sum())
    metrics.update(asdict(policy.savings(p, amounts, y, threshold)))
    return metrics


def _metric_suffix(rate: float) -> str:
    """0.001 -> "0_001": a plain identifier reads the same in MLflow, Tune's results and pandas."""
    return f"{rate:g}".replace(".", "_")


def _scores(scores: ArrayLike, rows: int) -> np.ndarray:
    values = np.asarray(scores, dtype=float).ravel()
    if len(values) != rows:
        raise ValueError(f"{len(values)} scores for {rows} transactions")
    return values


def _both_classes(labels: np.ndarray) -> bool:
    return bool(np.any(labels == 1) and np.any(labels == 0))
