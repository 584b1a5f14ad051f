"""The batch endpoint's steps in one process, without Ray: microseconds per transaction for each.

A request of 1,000 transactions goes through what ``POST /api/v1/predict/batch`` runs: the body
read into transactions, the future bound, events, online features, the model and cost policy,
the decision records and the JSON answer. Issue 16 asks for 30,000 tx/s through the Serve graph,
which leaves 33 us per transaction for all of it: this says which step spends them, and stays
rerunnable as the steps change (``--profile`` adds cProfile's view of the slowest functions).

The model is trained here on a small simulation (seconds), with the library's own fitting and
calibration, unless ``--model`` names a registry version (``@champion``).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import traffic

from fraud_ray.boosters import booster_params, fit
from fraud_ray.calibration import Calibrator
from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.features.offline import compute_features
from fraud_ray.features.online import OnlineFeatures
from fraud_ray.features.state import MemoryState
from fraud_ray.model import FraudModel
from fraud_ray.schema import LABEL, ModelRef, to_json
from fraud_ray.serving.api import BatchRequest, refuse_future
from fraud_ray.serving.pipeline import (
    ServingModel,
    amounts_of,
    events_from,
    render,
    transaction_ids,
)
from fraud_ray.settings import Settings, SimulatorSettings, load_settings
from fraud_ray.simulator import simulate_days

BATCH = 1000


def body(batch: int) -> bytes:
    return json.dumps(
        {"transactions": [traffic.transaction(batch * BATCH + i, "bench") for i in range(BATCH)]}
    ).encode()


def trained_model(spec: FeatureSpec) -> FraudModel:
    """XGBoost on 40 simulated days, early-stopped and calibrated on the last ten: the size and
    depth of trees a tuning run picks, so scoring costs what it costs in production."""
    simulated = SimulatorSettings(customers=1000, terminals=2000, days=40)
    history = pd.concat([day for _, day in simulate_days(simulated)], ignore_index=True)
    features = compute_features(history, spec).to_numpy()
    labels = history[LABEL].to_numpy()
    cut = int(len(history) * 0.75)
    params = booster_params("xgboost", {"max_depth": 6, "learning_rate": 0.1}, os.cpu_count() or 1)
    fitted = fit(
        "xgboost",
        params,
        (features[:cut], labels[:cut]),
        (features[cut:], labels[cut:]),
        spec.names,
        num_boost_round=200,
        early_stopping_rounds=20,
    )
    model = FraudModel(fitted.booster, "xgboost", Calibrator(), spec)
    model.calibrator.fit(model.raw_scores(features[cut:]), labels[cut:])
    return model


def serving_model(settings: Settings, reference: str | None) -> ServingModel:
    if reference is None:
        spec = FeatureSpec.from_settings(settings.features)
        model, ref = trained_model(spec), ModelRef(name="bench", version="1")
    else:
        from fraud_ray.registry import Registry

        model, version = Registry(settings.mlflow).load(reference)
        ref = ModelRef(name=version.name, version=str(version.version))
    return ServingModel.for_settings(model, ref, model.spec, settings)


def run_batch(
    content: bytes, online: OnlineFeatures, model: ServingModel, max_future_s: float | None
) -> dict[str, float]:
    """One request through every step; seconds spent in each."""
    spent: dict[str, float] = {}
    clock = time.perf_counter

    def step(name: str, call: Callable[[], Any]) -> Any:
        started = clock()
        result = call()
        spent[name] = clock() - started
        return result

    received_at = datetime.now(UTC)
    request = step("parse body", lambda: BatchRequest.model_validate(json.loads(content)))
    transactions = request.transactions
    step("future bound", lambda: refuse_future(transactions, max_future_s, batch=True))
    events = step("events_from", lambda: events_from(transactions))
    rows = step("features", lambda: online.compute(events))
    amounts = step("amounts", lambda: amounts_of(transactions))
    ids = step("ids", lambda: transaction_ids(transactions))
    scored = step("score", lambda: model.score(rows, amounts))
    decisions = step("render", lambda: render(ids, scored, online.spec, received_at))
    step("encode", lambda: to_json({"decisions": decisions}))
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="a registry reference (@champion); default: train one")
    parser.add_argument("--warm", type=int, default=20, help="batches before measuring")
    parser.add_argument("--batches", type=int, default=30, help="batches measured")
    parser.add_argument("--profile", action="store_true", help="also print cProfile's top 25")
    options = parser.parse_args()
    settings = load_settings()
    model = serving_model(settings, options.model)
    online = OnlineFeatures(model.model.spec, MemoryState(model.model.spec))
    max_future_s = settings.serving.max_future_s
    bodies = [body(b) for b in range(options.warm + options.batches)]
    for content in bodies[: options.warm]:
        run_batch(content, online, model, max_future_s)
    profiler = cProfile.Profile() if options.profile else None
    runs = []
    for content in bodies[options.warm :]:
        if profiler:
            profiler.enable()
        runs.append(run_batch(content, online, model, max_future_s))
        if profiler:
            profiler.disable()
    print(f"{BATCH} transactions a batch, median of {len(runs)} batches, us per transaction")
    total = 0.0
    for name in runs[0]:
        micros = statistics.median(run[name] for run in runs) * 1e6 / BATCH
        total += micros
        print(f"  {name:<14} {micros:8.2f}")
    print(f"  {'total':<14} {total:8.2f}  ({1e6 / total:,.0f} tx/s on one core)")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
