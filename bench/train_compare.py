"""Ray Train's XGBoost against boosting in one plain process: same data, parameters and work.

Goal (training issue): `train_model` on Ray Train within 2x of plain XGBoost at 4M rows. Both
boost the same number of rounds (early stopping set out of reach) with the same threads in all and
evaluate the same validation rows every round; plain is `fraud_ray.boosters.fit` on NumPy arrays
already in memory (the in-process trial's path), the Ray figure the whole `train_model` call: data
hand-over, start-up, boosting, report. Ray Train runs in local mode for one worker (the function in
the caller's process) and as a two-worker group, the latter with the controller's default poll
interval and with a short one.

Rows beyond the default simulation's (about 1.2M once the feature windows are full) repeat it:
boosting costs the same on repeated rows as on new ones, so the timing holds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import ray
from report import write_section

from fraud_ray.boosters import booster_params, fit
from fraud_ray.data import read_transactions_pandas
from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.features.offline import compute_features
from fraud_ray.runtime import configure_data
from fraud_ray.schema import LABEL, TIMESTAMP
from fraud_ray.settings import RaySettings, SimulatorSettings, TrainingSettings
from fraud_ray.simulator import write_simulation
from fraud_ray.training.distributed import train_model

PARAMS = {"max_depth": 6, "learning_rate": 0.1}
VALIDATION_ROWS = 200_000
INTERVAL = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
# (label, workers, threads per worker, controller poll interval in seconds or None for Ray's 2 s)
VARIANTS = (
    ("local mode, 1 x 2 threads", 1, 2, None),
    ("2 workers x 1 thread", 2, 1, None),
    ("2 workers x 1 thread, poll 0.25 s", 2, 1, 0.25),
)


def feature_table(scratch: Path) -> tuple[pd.DataFrame, list[str]]:
    """The default simulation's features in time order, from the first day all windows are full."""
    write_simulation(SimulatorSettings(), scratch / "raw")
    history = read_transactions_pandas(scratch / "raw")
    spec = FeatureSpec()
    table = pd.concat([history, compute_features(history, spec)], axis=1)
    table = table.loc[:, ~table.columns.duplicated()].sort_values(TIMESTAMP, kind="stable")
    warm = table[table[TIMESTAMP] >= table[TIMESTAMP].min() + pd.Timedelta(days=31)]
    columns = [*spec.names, LABEL]
    return warm[columns].astype(np.float64).reset_index(drop=True), spec.names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[250_000, 1_000_000, 4_000_000])
    parser.add_argument("--rounds", type=int, default=100)
    options = parser.parse_args()
    cpus = os.cpu_count() or 2
    load = os.getloadavg()[0]
    rows_out = []
    with tempfile.TemporaryDirectory() as scratch:
        table, features = feature_table(Path(scratch))
        validation, pool = table.iloc[-VALIDATION_ROWS:], table.iloc[:-VALIDATION_ROWS]
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        configure_data(RaySettings())
        ray.data.DataContext.get_current().enable_progress_bars = False
        valid_ds = ray.data.from_pandas(validation).materialize()
        for rows in options.rows:
            train = pd.concat([pool] * -(-rows // len(pool)), ignore_index=True).iloc[:rows]
            arrays = (train[features].to_numpy(), train[LABEL].to_numpy())
            valid = (validation[features].to_numpy(), validation[LABEL].to_numpy())
            started = time.perf_counter()
            fit(
                "xgboost",
                booster_params("xgboost", PARAMS, cpus, seed=0),
                arrays,
                valid,
                features,
                options.rounds,
                options.rounds,
            )
            plain = time.perf_counter() - started
            print(f"{rows:,} rows: plain {plain:.1f} s", flush=True)
            train_ds = ray.data.from_pandas(train).materialize()
            del arrays
            for label, workers, threads, interval in VARIANTS:
                if interval is None:
                    os.environ.pop(INTERVAL, None)
                else:
                    os.environ[INTERVAL] = str(interval)
                settings = TrainingSettings(
                    num_workers=workers,
                    cpus_per_worker=threads,
                    threads_per_worker=threads,
                    num_boost_round=options.rounds,
                    early_stopping_rounds=options.rounds,
                )
                started = time.perf_counter()
                model = train_model(
                    train_ds,
                    valid_ds,
                    features,
                    "xgboost",
                    PARAMS,
                    settings,
                    str(Path(scratch) / "ray"),
                )
                wall = time.perf_counter() - started
                inside = model.metrics["worker_seconds"]
                rows_out.append((rows, plain, label, wall, inside))
                print(f"  {label}: {wall:.1f} s ({inside:.1f} s in the worker)", flush=True)
            os.environ.pop(INTERVAL, None)
            del train_ds
        ray.shutdown()
    lines = [
        "## Training: Ray Train XGBoost against plain XGBoost in one process",
        "",
        f"{len(features)} features, {options.rounds} rounds, max_depth 6, {cpus} threads in all, "
        f"{VALIDATION_ROWS:,} validation rows evaluated every round; plain is "
        "`fraud_ray.boosters.fit` (QuantileDMatrix, `xgboost.train`) on arrays in memory. "
        f"Load average {load:.2f} when the run started, alone on the machine.",
        "",
        "| training rows | plain (s) | Ray Train | `train_model` wall (s) | in the worker (s) "
        "| ratio | goal at 4M |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {rows:,} | {plain:.1f} | {label} | {wall:.1f} | {inside:.1f} | {wall / plain:.2f} "
        "| <= 2 |"
        for rows, plain, label, wall, inside in rows_out
    ]
    lines += [
        "",
        "The worker time covers reading its shard's Arrow blocks into arrays, the QuantileDMatrix, "
        "boosting, scoring validation and writing the checkpoint; the rest of the wall time is "
        "the driver handing the data over (select, for two workers materialise and split, "
        "Arrow block references) and, for a worker group, Ray Train starting its controller and "
        "worker processes and collecting the report.",
    ]
    body = "\n".join(lines)
    print(body)
    write_section("train_compare", body)


if __name__ == "__main__":
    main()
