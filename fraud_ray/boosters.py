"""The model families, XGBoost and LightGBM: everything that differs between them, in one place.

Parameters, fitting with early stopping, saving, loading, raw scores and contributions. Both the
training floor (a Tune trial's own process, a Ray Train worker) and the servable bundle
(``fraud_ray.model``) go through here, so nowhere else asks which library a booster comes from.
No Ray here: a Ray Train worker sets up the collective around ``fit`` and hands its network
parameters in with ``params``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import xgboost as xgb

Family = Literal["xgboost", "lightgbm"]
Booster = xgb.Booster | lgb.Booster
Arrays = tuple[np.ndarray, np.ndarray]
OnRound = Callable[[Booster, int, float], None]

BOOSTER_FILES: dict[str, str] = {"xgboost": "booster.json", "lightgbm": "booster.txt"}
# The validation metric each library computes while boosting, under the library's own name.
VALIDATION_METRICS: dict[str, str] = {"xgboost": "aucpr", "lightgbm": "average_precision"}
VALIDATION = "validation"
# Predictions run on one thread. They are called per request batch (a Serve replica, a stream
# consumer, a Ray Data block), where waking an OpenMP pool costs more than the trees: parallelism
# comes from replicas and blocks, each on its own CPU. bench/serve.py shows the difference.
PREDICT_THREADS = 1

_TUNED: dict[str, frozenset[str]] = {
    "xgboost": frozenset(
        {
            "max_depth",
            "eta",
            "learning_rate",
            "subsample",
            "colsample_bytree",
            "min_child_weight",
            "lambda",
        }
    ),
    "lightgbm": frozenset(
        {"num_leaves", "learning_rate", "feature_fraction", "bagging_fraction", "min_data_in_leaf"}
    ),
}


@dataclass(frozen=True)
class Fitted:
    """A booster with where early stopping left it; ``best_iteration`` counts from 0 in both
    families (LightGBM's own count starts at 1)."""

    booster: Booster
    best_iteration: int
    rounds: int


def booster_params(
    family: Family,
    params: dict[str, Any],
    threads: int,
    scale_pos_weight: float = 1.0,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """The library's parameter dict for a family's tunable hyperparameters.

    Each family keeps its own names (a search space is written per family), and a name the family
    does not know is refused rather than silently ignored by the library. XGBoost takes ``eta`` or
    its alias ``learning_rate``. LightGBM ignores ``bagging_fraction`` unless bagging runs every
    so many rounds, so asking for it turns bagging on every round.
    """
    if family not in _TUNED:
        raise ValueError(f"unknown model family {family!r}: choose xgboost or lightgbm")
    unknown = sorted(set(params) - _TUNED[family])
    if unknown:
        raise ValueError(
            f"{family} does not tune {', '.join(unknown)}; it tunes {', '.join(sorted(_TUNED[family]))}"
        )
    if family == "xgboost":
        if "eta" in params and "learning_rate" in params:
            raise ValueError("xgboost: give eta or learning_rate, not both")
        tuned = {("eta" if k == "learning_rate" else k): v for k, v in params.items()}
        return {
            "objective": "binary:logistic",
            "eval_metric": VALIDATION_METRICS[family],
            "tree_method": "hist",
            "nthread": threads,
            "seed": seed,
            "verbosity": 0,
            "scale_pos_weight": scale_pos_weight,
            **tuned,
        }
    bagging = {"bagging_freq": 1} if params.get("bagging_fraction", 1.0) < 1.0 else {}
    return {
        "objective": "binary",
        "metric": VALIDATION_METRICS[family],
        "num_threads": threads,
        "seed": seed,
        "verbosity": -1,
        "scale_pos_weight": scale_pos_weight,
        **bagging,
        **params,
    }


def fit(
    family: Family,
    params: dict[str, Any],
    train: Arrays,
    validation: Arrays | None,
    features: list[str],
    num_boost_round: int,
    early_stopping_rounds: int,
    callbacks: Sequence[Any] = (),
) -> Fitted:
    """Boost on ``train``, stopping early on ``validation`` and keeping the best round.

    Without ``validation`` (the refit of a tuned model) every round is kept. ``callbacks`` are the
    library's own (an XGBoost ``TrainingCallback``, a LightGBM callable) and see the validation
    set under the name ``validation``: a Tune trial reports through them as it boosts.
    """
    if family == "xgboost":
        return _fit_xgboost(
            params, train, validation, features, num_boost_round, early_stopping_rounds, callbacks
        )
    return _fit_lightgbm(
        params, train, validation, features, num_boost_round, early_stopping_rounds, callbacks
    )


def load_booster(family: str, path: Path) -> Booster:
    if family == "xgboost":
        booster = xgb.Booster()
        booster.load_model(str(path))
        booster.set_param({"nthread": PREDICT_THREADS})
        return booster
    return lgb.Booster(model_file=str(path))


def raw_scores(booster: Booster, matrix: np.ndarray) -> np.ndarray:
    """Uncalibrated fraud probabilities of either family."""
    if isinstance(booster, xgb.Booster):
        return np.asarray(booster.inplace_predict(matrix), dtype=np.float64)
    return np.asarray(booster.predict(matrix, num_threads=PREDICT_THREADS), dtype=np.float64)


def contributions(booster: Booster, matrix: np.ndarray, features: list[str]) -> np.ndarray:
    """Per-feature contributions to the log-odds, the bias last: shape (n, features + 1).

    The booster's own explanation (XGBoost ``pred_contribs``, LightGBM ``pred_contrib``) is exact
    for this model, not a post-hoc approximation.
    """
    if isinstance(booster, xgb.Booster):
        data = xgb.DMatrix(matrix, feature_names=features, nthread=PREDICT_THREADS)
        return np.asarray(booster.predict(data, pred_contribs=True), dtype=np.float64)
    values = booster.predict(matrix, pred_contrib=True, num_threads=PREDICT_THREADS)
    return np.asarray(values, dtype=np.float64)


def trees(booster: Booster) -> int:
    """Boosting rounds the booster holds (one tree each for a binary objective)."""
    if isinstance(booster, xgb.Booster):
        return booster.num_boosted_rounds()
    return booster.num_trees()


def _fit_xgboost(
    params: dict[str, Any],
    train: Arrays,
    validation: Arrays | None,
    features: list[str],
    num_boost_round: int,
    early_stopping_rounds: int,
    callbacks: Sequence[Any],
) -> Fitted:
    threads = params.get("nthread", 1)
    # Histogram boosting only needs each feature's bins: QuantileDMatrix sketches them straight
    # from the array, without the float copy a DMatrix keeps (and inside a Rabit collective the
    # sketch is merged over the workers).
    dtrain = xgb.QuantileDMatrix(train[0], label=train[1], feature_names=features, nthread=threads)
    if validation is None:
        booster = xgb.train(
            params, dtrain, num_boost_round=num_boost_round, callbacks=list(callbacks)
        )
        rounds = booster.num_boosted_rounds()
        return Fitted(booster, rounds - 1, rounds)
    dvalid = xgb.QuantileDMatrix(
        validation[0], label=validation[1], feature_names=features, nthread=threads, ref=dtrain
    )
    history: dict[str, Any] = {}
    stopping = xgb.callback.EarlyStopping(
        rounds=early_stopping_rounds,
        metric_name=VALIDATION_METRICS["xgboost"],
        data_name=VALIDATION,
        maximize=True,
        save_best=True,
    )
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=num_boost_round,
        evals=[(dvalid, VALIDATION)],
        evals_result=history,
        callbacks=[*callbacks, stopping],
        verbose_eval=False,
    )
    rounds = len(history[VALIDATION][VALIDATION_METRICS["xgboost"]])
    return Fitted(booster, booster.best_iteration, rounds)


def _fit_lightgbm(
    params: dict[str, Any],
    train: Arrays,
    validation: Arrays | None,
    features: list[str],
    num_boost_round: int,
    early_stopping_rounds: int,
    callbacks: Sequence[Any],
) -> Fitted:
    train_set = lgb.Dataset(train[0], label=train[1], feature_name=features)
    if validation is None:
        booster = lgb.train(
            params, train_set, num_boost_round=num_boost_round, callbacks=list(callbacks)
        )
        rounds = booster.current_iteration()
        return Fitted(booster, rounds - 1, rounds)
    valid_set = lgb.Dataset(validation[0], label=validation[1], reference=train_set)
    history: dict[str, Any] = {}
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=num_boost_round,
        valid_sets=[valid_set],
        valid_names=[VALIDATION],
        callbacks=[
            *callbacks,
            lgb.early_stopping(early_stopping_rounds, verbose=False),
            lgb.record_evaluation(history),
        ],
    )
    rounds = len(history[VALIDATION][VALIDATION_METRICS["lightgbm"]])
    return Fitted(booster, booster.best_iteration - 1, rounds)


class _XGBoostProgress(xgb.callback.TrainingCallback):
    def __init__(self, on_round: OnRound) -> None:
        self._on_round = on_round

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict[str, Any]) -> bool:
        history = evals_log[VALIDATION][VALIDATION_METRICS["xgboost"]]
        self._on_round(model, epoch + 1, float(max(history)))
        return False  # never asks to stop: early stopping and the scheduler decide that


class _LightGBMProgress:
    order = 25  # after LightGBM's evaluation is recorded, before early stopping may end the run

    def __init__(self, on_round: OnRound) -> None:
        self._on_round = on_round
        self._best = float("-inf")

    def __call__(self, env: Any) -> None:
        for data, name, value, _ in env.evaluation_result_list:
            if data == VALIDATION and name == VALIDATION_METRICS["lightgbm"]:
                self._best = max(self._best, float(value))
        self._on_round(env.model, env.iteration + 1, self._best)


def progress_callback(family: Family, on_round: OnRound) -> Any:
    """The library callback that calls ``on_round(booster, rounds, best)`` after every round,
    ``best`` being the best validation metric so far (the round early stopping would keep)."""
    if family == "xgboost":
        return _XGBoostProgress(on_round)
    return _LightGBMProgress(on_round)
