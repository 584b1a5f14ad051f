"""Model quality with the Fraud Detection Handbook's protocol, next to the handbook's own figures.

Goal (training issue): on the built-in simulation with its default settings (5,000 customers,
183 days), train 7 days, leave a 7-day label delay, test the next 7 days without the cards already
known compromised, and beat the handbook's published tuned XGBoost (ROC AUC 0.869, AP 0.687, card
precision@100 0.303); XGBoost on the amount alone shows what the features add. The tuned model is
the project's own training job, `fraud_ray.training.job.train`, as `fraud-ray train` runs it with
`split.validation: before` (the handbook's layout; `--validation after` measures the other one),
so the figures and its wall time for 20 trials are what a user gets. Its test report is recomputed here
on the bench's own copy of the test rows, which the baseline and the raw-score row share, with
the library's metric and test-set functions.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray
import ray.data
import xgboost as xgb
from mlflow.entities import Run
from ray.data.aggregate import Count, Max, Min, Sum
from ray.data.expressions import col
from report import write_section

from fraud_ray.costs import CostPolicy
from fraud_ray.data import (
    TimeSplits,
    TimeWindow,
    filter_window,
    read_transactions,
    time_splits,
    without_known_compromised_cards,
)
from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.features.distributed import build_features
from fraud_ray.metrics import evaluate
from fraud_ray.registry import Registry
from fraud_ray.runtime import init_ray
from fraud_ray.schema import AMOUNT, CARD_ID, LABEL, TIMESTAMP
from fraud_ray.settings import Settings, SimulatorSettings, TrainingSettings
from fraud_ray.simulator import write_simulation
from fraud_ray.training.job import TUNING_EXPERIMENT, train

# The handbook's XGBoost with hyperparameters chosen by prequential validation (Chapter 5, Model
# selection): test figures, each the mean of four consecutive weekly test folds.
HANDBOOK = {"roc_auc": 0.869, "average_precision": 0.687, "card_precision_at_100": 0.303}
METRICS = tuple(HANDBOOK)
# The handbook's reference training start, 2018-07-25, is day 115 of its data (from 2018-04-01).
HANDBOOK_TRAIN_DAY = 115
WEEK = 7


@dataclass(frozen=True)
class Quality:
    """What one run measured, for the report."""

    data: str
    rows: int
    frauds: int
    first_day: pd.Timestamp
    splits: TimeSplits
    longest_window: int
    test_rows: int
    unseen_rows: int
    unseen_frauds: int
    rounds: int
    served: dict[str, float]
    raw: dict[str, float]
    amount_only: dict[str, float]
    matches_train_report: bool
    config: dict[str, Any]
    calibration: str
    trials: list[Run]
    train_seconds: float
    training: TrainingSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, help="an existing simulation (fraud-ray simulate)")
    parser.add_argument("--customers", type=int, default=SimulatorSettings().customers)
    parser.add_argument("--terminals", type=int, default=SimulatorSettings().terminals)
    parser.add_argument("--days", type=int, default=SimulatorSettings().days)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument(
        "--train-day",
        type=int,
        default=HANDBOOK_TRAIN_DAY,
        help="first training day, counted from the first day of the data",
    )
    parser.add_argument(
        "--time-budget-s",
        type=float,
        default=4 * 3600.0,
        help="Tune's budget; the default (30 min) could cut 20 trials short on two cores",
    )
    parser.add_argument(
        "--validation",
        choices=["before", "after"],
        default="before",
        help="split.validation: tune before the training week and refit (the handbook's layout), "
        "or validate between training and test",
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        quality = measure(options, Path(scratch))
    body = report(quality, options)
    print(body)
    write_section("quality", body)


def measure(options: argparse.Namespace, scratch: Path) -> Quality:
    """Simulate, train with the project's job, and score the test week three ways."""
    settings = Settings(
        data={"raw_dir": scratch / "raw"},  # Ray Tune's results go next to it: scratch/ray_results
        mlflow={
            "tracking_uri": f"sqlite:///{scratch / 'mlflow.db'}",
            "artifact_location": str(scratch / "artifacts"),
            "model_name": "fraud-ray-quality",
        },
        features={"label_delay": timedelta(days=WEEK)},
        split={
            "train_window": timedelta(days=WEEK),
            "validation_window": timedelta(days=WEEK),
            "test_window": timedelta(days=WEEK),
            "layout": options.validation,
        },
    )
    simulator = SimulatorSettings(
        customers=options.customers, terminals=options.terminals, days=options.days
    )
    data = options.data
    if data is None:
        print(f"simulating {simulator.customers:,} customers, {simulator.days} days", flush=True)
        data = settings.data.raw_dir
        write_simulation(simulator, data)

    init_ray(settings)
    ray.data.DataContext.get_current().enable_progress_bars = False
    print("features (the bench's copy of the test rows)", flush=True)
    spec = FeatureSpec.from_settings(settings.features)
    longest = max(spec.windows).days
    if options.train_day <= longest:
        raise SystemExit(f"--train-day must leave the {longest}-day feature windows full")
    table = build_features(read_transactions(data), spec, settings.features.partitions)
    table = table.materialize()
    summary = table.aggregate(Count(), Sum(LABEL), Min(TIMESTAMP), Max(TIMESTAMP))
    # Ray's aggregates drop the time zone: the values are UTC.
    first_day = pd.Timestamp(summary[f"min({TIMESTAMP})"], tz="UTC").normalize()
    end = pd.Timestamp(summary[f"max({TIMESTAMP})"], tz="UTC").normalize() + timedelta(days=1)
    splits = time_splits(
        first_day + timedelta(days=options.train_day), settings.split, spec.label_delay
    )
    if splits.test.end > end:
        raise SystemExit(f"the data end before the test window does ({splits.test.end:%Y-%m-%d})")
    test = _rows(filter_window(table, splits.test), spec)
    frauds = table.select_columns([CARD_ID, TIMESTAMP, LABEL]).filter(expr=col(LABEL) == 1)
    unseen = without_known_compromised_cards(test, frauds.to_pandas(), splits, spec.label_delay)

    print(f"tuning {options.trials} trials (fraud_ray.training.job.train)", flush=True)
    started = time.perf_counter()
    result = train(
        settings,
        data,
        train_start=splits.train.start,
        trials=options.trials,
        time_budget_s=options.time_budget_s,
    )
    train_seconds = time.perf_counter() - started
    if result.splits != splits:
        raise RuntimeError(f"train used other windows than the bench: {result.splits}")
    registry = Registry(settings.mlflow)
    model, _ = registry.load(result.registered.uri)
    rounds = int(registry.client.get_run(result.registered.run_id).data.params["rounds"])
    features = unseen[spec.names].to_numpy()
    policy = CostPolicy.from_settings(settings.costs)
    served = evaluate(unseen, model.probabilities(features), policy)

    print("baseline: XGBoost on the amount only", flush=True)
    train_rows = filter_window(table, splits.train).select_columns([AMOUNT, LABEL]).to_pandas()
    baseline = xgb.XGBClassifier(n_estimators=100, random_state=0)  # XGBoost's defaults
    baseline.fit(train_rows[[AMOUNT]], train_rows[LABEL])
    quality = Quality(
        data=f"`{options.data}`"
        if options.data
        else f"the built-in simulator, {simulator.customers:,} customers, "
        f"{simulator.terminals:,} terminals, {simulator.days} days from {simulator.start}, "
        f"seed {simulator.seed}",
        rows=int(summary["count()"]),
        frauds=int(summary[f"sum({LABEL})"]),
        first_day=first_day,
        splits=splits,
        longest_window=longest,
        test_rows=len(test),
        unseen_rows=len(unseen),
        unseen_frauds=int(unseen[LABEL].sum()),
        rounds=rounds,
        served=served,
        raw=evaluate(unseen, model.raw_scores(features), policy),
        amount_only=evaluate(unseen, baseline.predict_proba(unseen[[AMOUNT]])[:, 1], policy),
        matches_train_report=all(
            math.isclose(served[m], result.test.get(m, math.nan)) for m in METRICS
        ),
        config=result.config,
        calibration=model.calibrator.method_,
        trials=_tuning_runs(settings),
        train_seconds=train_seconds,
        training=settings.training,
    )
    ray.shutdown()
    return quality


def report(q: Quality, options: argparse.Namespace) -> str:
    """The markdown section for docs/benchmarks.md."""
    spans = [(run.info.start_time, run.info.end_time) for run in q.trials if run.info.end_time]
    tuning = (max(end for _, end in spans) - min(start for start, _ in spans)) / 1000
    per_trial = [(end - start) / 1000 for start, end in spans]
    families = Counter(run.data.params["family"] for run in q.trials)
    winner = next(
        (
            f"trial {number} of {len(q.trials)}"
            for number, run in enumerate(q.trials, start=1)
            if all(run.data.params.get(key) == str(value) for key, value in q.config.items())
        ),
        f"one of the {len(q.trials)} trials",
    )
    above = ", ".join(
        f"{name} {'yes' if q.served[m] > HANDBOOK[m] else 'no'}"
        for m, name in zip(METRICS, ("ROC AUC", "AP", "card precision@100"), strict=True)
    )
    calibration = "Platt" if q.calibration == "platt" else q.calibration
    lines = [
        "## Quality: the Fraud Detection Handbook's protocol",
        "",
        f"Data: {q.data}: {q.rows:,} transactions, {q.frauds:,} frauds ({q.frauds / q.rows:.2%}).",
        "",
        *_layout(q),
        f"- test: {_days(q.splits.test, q.first_day)}, scored once after the choice: "
        f"{q.unseen_rows:,} of its {q.test_rows:,} transactions ({q.unseen_frauds:,} frauds) "
        "remain once the cards known compromised are removed: on each test day, the cards with a "
        "fraud from the training start up to that day minus the 7-day delay "
        "(`fraud_ray.data.without_known_compromised_cards`, as in the handbook).",
        "",
        "| model | ROC AUC | AP | card precision@100 |",
        "|---|---|---|---|",
        _row(f"fraud-ray tuned (winner: {q.config['family']}), served probabilities", q.served),
        _row("the same booster, raw scores (before calibration)", q.raw),
        _row("XGBoost on amount only", q.amount_only),
        _row("Handbook tuned XGBoost (published)", HANDBOOK),
        "",
        f"Goal, above the published figures (served probabilities): {above}.",
        "",
        f"Winner: {winner}, {_describe(q.config)}. Trials per family: "
        f"{', '.join(f'{name} {count}' for name, count in sorted(families.items()))}. The served "
        f"row is what `train` reports and `fraud-ray score` outputs, after {calibration} "
        "calibration (isotonic ties scores, which can cost ranking metrics; Platt keeps the "
        "order); the raw row is the like-for-like comparison with the handbook's uncalibrated "
        "classifier. Recomputed here on the bench's copy of the test rows, the served figures "
        + ("match `train`'s own report." if q.matches_train_report else "differ from `train`'s."),
        "",
        f"Tuning wall time: **{tuning:.0f} s for {len(q.trials)} trials**, "
        f"{tuning / len(q.trials):.0f} s per trial (first trial start to last trial end, from "
        f"the MLflow tuning runs; one trial took {min(per_trial):.0f}-{max(per_trial):.0f} s), "
        f"{q.training.max_concurrent_trials} at a time, each on {q.training.num_workers} Ray "
        f"Train worker(s) with {q.training.cpus_per_worker:g} CPU and "
        f"{q.training.num_boost_round} rounds at most. The whole `train` call (features, tuning, "
        f"calibration, evaluation, registration) took {q.train_seconds:.0f} s.",
        "",
        "Not the handbook's setup in every respect: "
        + (
            ""
            if q.splits.refit
            else "its test week follows the training week after the 7-day delay, here the "
            "validation week and a second delay sit in between, so the model is scored two weeks "
            "later (`--validation before` lays the weeks out as the handbook does); "
        )
        + "its figures are means over four test weeks (prequential, training weeks from "
        "2018-07-25 to 2018-08-15), these are one week's; it chooses among a grid of XGBoost "
        "parameters by prequential validation over several weeks, here Optuna chooses among "
        "XGBoost and LightGBM, their parameters and the resampling on one validation week; and "
        "the simulator follows the handbook's description, not its code or seeds, so the data "
        "are alike but not the same. Why the layout matters: `bench/quality_gap.py`'s section. "
        "The amount-only baseline is plain `xgboost.XGBClassifier` "
        "with XGBoost's defaults (100 trees, depth 6), in process rather than on Ray Train, "
        "trained on the training week's `amount` and scored on the same test rows.",
    ]
    if len(q.trials) < options.trials:
        lines += [
            "",
            f"Only {len(q.trials)} of {options.trials} trials ran within the "
            f"{options.time_budget_s:.0f} s budget.",
        ]
    return "\n".join(lines)


def _layout(q: Quality) -> list[str]:
    """The protocol and its windows, days counted from the first day of the data."""
    train = (
        f"{_days(q.splits.train, q.first_day)}; the handbook's reference training start, "
        f"2018-07-25, is day {HANDBOOK_TRAIN_DAY} of its data, and the {q.longest_window}-day "
        f"feature windows are full from day {q.longest_window + 1}"
    )
    common = (
        "Protocol: 7 training days, a 7-day label delay, 7 test days, and cards already known "
        "compromised removed from the test set."
    )
    if not q.splits.refit:
        return [
            f"{common} `fraud_ray.training.job.train` with `split.validation: after` lays its windows "
            "out as train | delay | validation | delay | test:",
            "",
            f"- train: {train};",
            f"- validation: {_days(q.splits.validation, q.first_day)}: early stopping, the choice "
            "among the trials (validation average precision) and the calibration. Model choice "
            "and calibration saw no test label;",
        ]
    return [
        f"{common} `fraud_ray.training.job.train` with `split.validation: before` lays them out as "
        "the handbook does: train | delay | test for the registered model, and the same layout "
        "shifted back by a delay and a validation week for the choice among the trials:",
        "",
        f"- tuning: {_days(q.splits.tuning, q.first_day)}: each trial trains here;",
        f"- validation: {_days(q.splits.validation, q.first_day)}, the training week, whose "
        "labels are all known when the test week starts: early stopping, the choice among the "
        "trials (validation average precision) and the calibration, on the trials' own scores. "
        "Model choice and calibration saw no test label;",
        f"- train: {train}. The winner's configuration (resampling included) is trained again "
        f"here for the {q.rounds} rounds early stopping kept, and keeps the calibration fitted "
        "on its validation scores;",
    ]


def _rows(dataset: ray.data.Dataset, spec: FeatureSpec) -> pd.DataFrame:
    """A split with NumPy feature columns: Ray's Arrow-backed ones hold ``pd.NA``, not NaN."""
    frame = dataset.to_pandas()
    frame[spec.names] = frame[spec.names].to_numpy(dtype=np.float64, na_value=np.nan)
    frame[LABEL] = frame[LABEL].astype(np.int8)
    return frame


def _tuning_runs(settings: Settings) -> list[Run]:
    """The trials' MLflow runs (Tune's MLflow callback logs one per trial), in start order."""
    registry = Registry(settings.mlflow)
    runs = registry.client.search_runs([registry.experiment_id(TUNING_EXPERIMENT)])
    return sorted(runs, key=lambda run: run.info.start_time)


def _days(window: TimeWindow, first_day: pd.Timestamp) -> str:
    last = window.end - timedelta(days=1)
    return (
        f"{window.start:%Y-%m-%d} .. {last:%Y-%m-%d} (days {(window.start - first_day).days}-"
        f"{(last - first_day).days})"
    )


def _row(name: str, metrics: dict[str, float]) -> str:
    return f"| {name} | " + " | ".join(f"{metrics[m]:.3f}" for m in METRICS) + " |"


def _describe(config: dict[str, Any]) -> str:
    """The winner's configuration, numbers to three significant digits."""
    return ", ".join(
        f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"
        for key, value in config.items()
    )


if __name__ == "__main__":
    main()
