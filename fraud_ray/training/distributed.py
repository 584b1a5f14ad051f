"""Distributed gradient boosting on Ray Train: XGBoost and LightGBM behind one call.

Each Ray Train worker reads its shard of the training split into memory and runs the library's own
``train`` inside the collective that Ray Train sets up (Rabit for XGBoost, LightGBM's socket
network), so the workers build one model together. Every worker holds the whole validation split:
LightGBM evaluates on each machine without combining the results, so only identical validation
data makes every worker stop at the same round.

Reports are few on purpose: a worker's first ``ray.train.report`` returns at once, but each later
one waits for the Train controller's next poll of the workers (every 2 s,
``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S``), far longer than a boosting round. So the workers train
every round with the library's own early stopping and report once, at the end, with the
validation metrics and the model. The caller starts
Ray (``fraud_ray.runtime``); nothing here calls ``ray.init``, so ``train_model`` also runs inside a
Ray Tune trial.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import ray
import ray.data
import ray.train
import xgboost as xgb
from ray.train import CheckpointConfig, RunConfig, ScalingConfig
from ray.train.lightgbm import LightGBMTrainer, get_network_params
from ray.train.xgboost import XGBoostTrainer
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud_ray.boosters import (
    BOOSTER_FILES,
    Booster,
    Family,
    booster_params,
    contributions,
    fit,
    load_booster,
    raw_scores,
)
from fraud_ray.schema import LABEL
from fraud_ray.settings import TrainingSettings

_TRAINERS = {"xgboost": XGBoostTrainer, "lightgbm": LightGBMTrainer}


@dataclass(frozen=True)
class WorkerRun:
    """Where one Ray Train worker ran and what it trained on: proof the work was shared."""

    rank: int
    node_id: str
    train_rows: int
    world_size: int


@dataclass(frozen=True)
class TrainedModel:
    """A booster with what is needed to use it: its features, where it stopped, how it scored."""

    booster: Booster
    family: Family
    features: tuple[str, ...]
    best_iteration: int
    rounds: int
    metrics: dict[str, float]
    workers: tuple[WorkerRun, ...] = field(default=())

    def predict_raw(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Fraud probabilities before calibration; a frame is read by feature name."""
        return raw_scores(self.booster, self._matrix(rows))

    def contributions(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Per-feature contributions to the log-odds, the bias last: shape (n, features + 1)."""
        return contributions(self.booster, self._matrix(rows), list(self.features))

    def _matrix(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        if isinstance(rows, pd.DataFrame):
            return rows[list(self.features)].to_numpy(dtype="float64")
        matrix = np.asarray(rows, dtype="float64")
        if matrix.ndim != 2 or matrix.shape[1] != len(self.features):
            raise ValueError(
                f"expected rows of {len(self.features)} features, got an array of {matrix.shape}"
            )
        return matrix


def train_model(
    train: ray.data.Dataset,
    validation: ray.data.Dataset | None,
    features: list[str],
    family: Family,
    params: dict[str, Any],
    settings: TrainingSettings,
    storage_path: str | None = None,
    *,
    scale_pos_weight: float = 1.0,
) -> TrainedModel:
    """Train one model on Ray Train and bring it back with its validation metrics.

    ``scale_pos_weight`` is what ``resample_dataset`` returns for class weights. Without
    ``validation`` (the refit of a tuned model, whose number of rounds was chosen on validation
    data it no longer has) every one of ``settings.num_boost_round`` rounds is kept and the
    metrics are empty.

    The datasets are cut to the features and the label, executed and (for several workers) split
    into one shard per worker before the workers start, and each worker gets its shard's Arrow
    blocks as object references: reading a shard through Ray Train's dataset iterator costs a split
    coordinator actor and a streaming executor per worker, where ``ray.get`` of the blocks costs
    next to nothing; and the workers hold their CPUs for the whole run, so a pipeline still to be
    executed could wait for CPUs they never free. Shards are equal in size (at most one row per
    extra worker is left out) so no worker waits for a bigger one at each round. One worker runs
    in Ray Train's local mode, in this process. ``storage_path`` is where Ray Train keeps the run;
    on a multi-node cluster it must be storage every node reaches.
    """
    if not features:
        raise ValueError("training needs at least one feature")
    config = {
        "family": family,
        "features": list(features),
        "params": booster_params(
            family, params, settings.threads_per_worker, scale_pos_weight, seed=settings.seed
        ),
        "num_boost_round": settings.num_boost_round,
        "early_stopping_rounds": settings.early_stopping_rounds,
    }
    columns = [*features, LABEL]
    train = train.select_columns(columns)
    if settings.num_workers == 1:
        config["train_shards"] = [train.to_arrow_refs()]
    else:
        config["train_shards"] = [
            shard.to_arrow_refs()
            for shard in train.materialize().split(settings.num_workers, equal=True)
        ]
    config["validation"] = (
        None if validation is None else validation.select_columns(columns).to_arrow_refs()
    )
    with tempfile.TemporaryDirectory() as local_checkpoint:
        if settings.num_workers == 1:
            config["checkpoint_dir"] = local_checkpoint
        trainer = _TRAINERS[family](
            _train_per_worker,
            train_loop_config=config,
            scaling_config=ScalingConfig(
                # One worker has nothing to coordinate: Ray Train's local mode runs the same
                # function in this process, without the controller and worker group start-up.
                num_workers=0 if settings.num_workers == 1 else settings.num_workers,
                resources_per_worker={"CPU": settings.cpus_per_worker},
            ),
            run_config=RunConfig(
                storage_path=storage_path, checkpoint_config=CheckpointConfig(num_to_keep=1)
            ),
        )
        result = trainer.fit()
        if result.checkpoint is None:
            raise RuntimeError("Ray Train finished without a model checkpoint")
        with result.checkpoint.as_directory() as folder:
            root = Path(folder)
            booster: Booster = load_booster(family, root / BOOSTER_FILES[family])
            workers = tuple(
                sorted(
                    (
                        WorkerRun(**json.loads(path.read_text()))
                        for path in root.glob("worker-*.json")
                    ),
                    key=lambda run: run.rank,
                )
            )
    metrics = dict(result.metrics)
    return TrainedModel(
        booster=booster,
        family=family,
        features=tuple(features),
        best_iteration=int(metrics.pop("best_iteration")),
        rounds=int(metrics.pop("rounds")),
        metrics=metrics,
        workers=workers,
    )


def _train_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: fit on this shard with the others, then report once."""
    started = time.perf_counter()
    features: list[str] = config["features"]
    family: Family = config["family"]
    rank = ray.train.get_context().get_world_rank()
    train = _arrays(config["train_shards"][rank], features)
    validation = None if config["validation"] is None else _arrays(config["validation"], features)
    params, world_size = _join_collective(family, config["params"])
    fitted = fit(
        family,
        params,
        train,
        validation,
        features,
        config["num_boost_round"],
        config["early_stopping_rounds"],
    )
    run = WorkerRun(
        rank=rank,
        node_id=ray.get_runtime_context().get_node_id(),
        train_rows=len(train[1]),
        world_size=world_size,
    )
    with _checkpoint_dir(config.get("checkpoint_dir")) as folder:
        root = Path(folder)
        (root / f"worker-{rank}.json").write_text(json.dumps(asdict(run)))
        metrics: dict[str, float] = {
            "best_iteration": fitted.best_iteration,
            "rounds": fitted.rounds,
        }
        if rank == 0:
            fitted.booster.save_model(str(root / BOOSTER_FILES[family]))
            if validation is not None:
                scores = raw_scores(fitted.booster, validation[0])
                metrics["average_precision"] = float(average_precision_score(validation[1], scores))
                metrics["roc_auc"] = float(roc_auc_score(validation[1], scores))
            metrics["worker_seconds"] = time.perf_counter() - started
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


@contextmanager
def _checkpoint_dir(kept: str | None) -> Iterator[str]:
    """Where a worker writes its checkpoint: a folder of its own, which Ray Train copies to
    storage when the report returns, or in local mode the caller's folder, since local mode keeps
    the reported checkpoint where it was written."""
    if kept is not None:
        yield kept
        return
    with tempfile.TemporaryDirectory() as folder:
        yield folder


def _join_collective(family: Family, params: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The parameters that make this worker boost with the others, and the world size the
    library itself sees: XGBoost's Rabit collective is opened around this function by
    ``XGBoostTrainer``, LightGBM needs the machine list ``LightGBMTrainer`` prepared."""
    if family == "xgboost":
        return params, xgb.collective.get_world_size()
    world_size = ray.train.get_context().get_world_size()
    if world_size > 1:
        params = {
            **params,
            "tree_learner": "data_parallel",
            "pre_partition": True,
            **get_network_params(),
        }
    return params, world_size


def _arrays(blocks: list[ray.ObjectRef], features: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels as float arrays, straight from the Arrow blocks in the object store."""
    table = pa.concat_tables(ray.get(blocks))
    matrix = np.empty((table.num_rows, len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        matrix[:, j] = _floats(table.column(name))
    return matrix, _floats(table.column(LABEL))


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    """Nulls become NaN, the missing value both libraries understand."""
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
