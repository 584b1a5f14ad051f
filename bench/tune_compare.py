"""fraud-ray's tuning against plain Optuna in one process: same week, same space, same trials.

Goal (issue 13): wall time at most 1.5x plain Optuna's, best validation AP within 0.01 of plain's or
better. Both search the space of ``fraud_ray.training.search`` with the same boosters, resampling and
early stopping (``fraud_ray.training.trial.fit_frame``) and judge a trial by the same validation
metrics. The data are the default simulation's features, on the Handbook's layout: a training week
once the longest window has filled, a week's label delay, then the validation week. fraud-ray's
figure is the whole ``tune_models`` call (Ray is already up); plain Optuna boosts with all the cores
in its one process, fraud-ray runs one-CPU trials side by side.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd
import ray
from report import write_section

from fraud_ray.boosters import raw_scores
from fraud_ray.costs import CostPolicy
from fraud_ray.data import Fold, TimeWindow, read_transactions_pandas
from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.features.offline import compute_features
from fraud_ray.runtime import configure_data
from fraud_ray.schema import TIMESTAMP
from fraud_ray.settings import RaySettings, Settings, SimulatorSettings
from fraud_ray.simulator import write_simulation
from fraud_ray.training.search import search_space, tune_models
from fraud_ray.training.trial import fit_frame, validation_metrics


def week_and_validation(scratch: Path) -> tuple[pd.DataFrame, pd.DataFrame, Fold, list[str]]:
    write_simulation(SimulatorSettings(), scratch / "raw")
    history = read_transactions_pandas(scratch / "raw")
    spec = FeatureSpec()
    table = pd.concat([history, compute_features(history, spec)], axis=1)
    table = table.loc[:, ~table.columns.duplicated()].sort_values(TIMESTAMP, kind="stable")
    start = (table[TIMESTAMP].min() + max(spec.windows) + pd.Timedelta(days=1)).normalize()
    week = pd.Timedelta(days=7)
    train = table[(table[TIMESTAMP] >= start) & (table[TIMESTAMP] < start + week)]
    validation = table[
        (table[TIMESTAMP] >= start + 2 * week) & (table[TIMESTAMP] < start + 3 * week)
    ]
    fold = Fold(TimeWindow(start, start + week), TimeWindow(start + 2 * week, start + 3 * week))
    return train.reset_index(drop=True), validation.reset_index(drop=True), fold, spec.names


def load_average() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    options = parser.parse_args()
    cpus = os.cpu_count() or 2
    settings = Settings()
    training = settings.training
    policy = CostPolicy.from_settings(settings.costs)
    with tempfile.TemporaryDirectory() as scratch:
        train, validation, fold, features = week_and_validation(Path(scratch))
        matrix = validation[features].to_numpy(dtype="float64")

        load_before_plain = load_average()
        rounds = 0

        def objective(trial: optuna.Trial) -> float:
            nonlocal rounds
            search_space(trial, list(training.families))
            fitted = fit_frame(trial.params, train, validation, features, training, threads=cpus)
            rounds += fitted.rounds
            raw = raw_scores(fitted.booster, matrix)
            return validation_metrics(raw, validation, policy)["average_precision"]

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=training.seed)
        )
        started = time.perf_counter()
        study.optimize(objective, n_trials=options.trials)
        plain = time.perf_counter() - started
        plain_rounds = rounds

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        configure_data(RaySettings())
        ray.data.DataContext.get_current().enable_progress_bars = False
        dataset = ray.data.from_pandas(train).materialize()
        load_before_ray = load_average()
        started = time.perf_counter()
        outcome = tune_models(
            dataset,
            validation,
            (fold,),
            features,
            settings,
            policy,
            Path(scratch) / "ray_results",
            trials=options.trials,
            time_budget_s=training.time_budget_s,
        )
        tuned = time.perf_counter() - started
        load_after = load_average()
        ray.shutdown()

    lines = [
        "## Tuning: fraud-ray against plain Optuna in one process",
        "",
        f"{len(train):,} training rows (one week) and {len(validation):,} validation rows "
        f"(a week after a week's delay) x {len(features)} features; {options.trials} trials of "
        f"`search_space` ({', '.join(training.families)}), up to {training.num_boost_round} rounds, "
        f"early stopping after {training.early_stopping_rounds}; {cpus} cores.",
        "",
        "| | wall time (s) | best validation AP | trials stopped early | rounds trained |",
        "|---|---|---|---|---|",
        f"| plain Optuna, {cpus} threads | {plain:.1f} | {study.best_value:.4f} | 0 | "
        f"{plain_rounds:,} |",
        f"| fraud-ray `tune_models`, {cpus} one-CPU trials at a time | {tuned:.1f} | "
        f"{outcome.metrics['average_precision']:.4f} | {outcome.stopped_early} | "
        f"{outcome.rounds_trained:,} |",
        "",
        f"Ratio {tuned / plain:.2f} (goal <= 1.5); AP difference "
        f"{outcome.metrics['average_precision'] - study.best_value:+.4f} (goal >= -0.01).",
        "",
        "Nothing else ran on the machine (the load averages include the previous minutes' "
        "feature computation and each side's own work); `uptime` before plain Optuna: "
        f"`{load_before_plain}`; before fraud-ray: `{load_before_ray}`; after: `{load_after}`.",
    ]
    body = "\n".join(lines)
    print(body)
    write_section("tune_compare", body)


if __name__ == "__main__":
    main()
