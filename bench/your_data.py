"""A user's short file: the tuned model against plain baselines on the same split.

The file is the tests' two-day generator (time in seconds, 28 anonymised columns, zero amounts,
no id, card or terminal). `fraud_ray.training.train` tunes on the issue's command (label delay 0,
8-hour validation before the end of training at 36 hours); XGBoost with default parameters and a
logistic regression train on the same training rows; all three are scored on the last 12 hours.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import xgboost as xgb
from report import write_section
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fraud_ray.data import read_transactions_pandas
from fraud_ray.features.offline import compute_features
from fraud_ray.mapping import read_sample, suggest_mapping
from fraud_ray.registry import Registry
from fraud_ray.schema import LABEL, TIMESTAMP
from fraud_ray.settings import Settings
from fraud_ray.training.job import train

sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.two_day_file import write_two_day_file

START = datetime(1970, 1, 1, tzinfo=UTC)
TRAIN_END = START + timedelta(hours=36)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--trials", type=int, default=4)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        data = write_two_day_file(root / "payments.csv", rows=options.rows)
        mapping = suggest_mapping(read_sample(data)).mapping
        settings = Settings(
            data={"raw_dir": root / "raw"},
            mlflow={
                "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                "artifact_location": str(root / "artifacts"),
                "model_name": "your-data",
            },
            features={"label_delay": "0h"},
            split={"validation_window": "8h", "layout": "before"},
        )
        started = time.perf_counter()
        result = train(
            settings, data, mapping, train_start=START, train_end=TRAIN_END, trials=options.trials
        )
        seconds = time.perf_counter() - started
        load = os.getloadavg()[0]
        model, _ = Registry(settings.mlflow).load(result.registered.uri)
        frame = read_transactions_pandas(data, mapping)
        features = compute_features(frame, model.spec)
        before = (frame[TIMESTAMP] < TRAIN_END).to_numpy()
        x_train, y_train = features[before].to_numpy(), frame.loc[before, LABEL].to_numpy()
        x_test, y_test = features[~before].to_numpy(), frame.loc[~before, LABEL].to_numpy()
        plain = xgb.XGBClassifier(n_jobs=1, random_state=0).fit(x_train, y_train)
        linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        linear.fit(np.nan_to_num(x_train), y_train)
        scores = {
            f"fraud-ray train ({options.trials} trials, {result.config['family']}, "
            f"{result.config['resampling']})": model.probabilities(x_test),
            "XGBoost, default parameters": plain.predict_proba(x_test)[:, 1],
            "logistic regression (standardised)": linear.predict_proba(np.nan_to_num(x_test))[:, 1],
        }
    rows = "\n".join(
        f"| {name} | {average_precision_score(y_test, p):.3f} |" for name, p in scores.items()
    )
    body = f"""## Your data: a two-day file of the public dataset's shape

`tests/two_day_file.py` with {options.rows:,} rows ({int(y_train.sum() + y_test.sum())} frauds):
trained on the first 36 hours with `--label-delay 0h --validation-window 8h --layout before`,
tested on the last 12 ({len(y_test):,} rows, {int(y_test.sum())} frauds). Training took
{seconds:.0f} s at load average {load:.1f} (1 min, measured after training).

| model | test AP |
|---|---|
{rows}
"""
    print(body)
    write_section("your_data", body)


if __name__ == "__main__":
    main()
