"""A card-payment file of the shape public datasets have: two days, time in seconds since the
first payment, anonymised numeric columns, an amount with zeros, a 0/1 label, and no transaction
id, card or terminal. Frauds shift a few of the anonymised columns, so a model can find them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = 28
SHIFTED = 5  # V1..V5 move for frauds
SECONDS = 2 * 86_400


def two_day_frame(rows: int = 30_000, fraud_rate: float = 0.0025, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    is_fraud = (rng.random(rows) < fraud_rate).astype(int)
    values = rng.normal(size=(rows, COLUMNS))
    values[is_fraud == 1, :SHIFTED] += rng.normal(2.5, 1.0, size=(int(is_fraud.sum()), SHIFTED))
    amount = np.round(rng.lognormal(3.0, 1.2, rows), 2)
    amount[rng.random(rows) < 0.006] = 0.0  # card verifications
    frame = pd.DataFrame(values, columns=[f"V{i}" for i in range(1, COLUMNS + 1)])
    frame.insert(0, "Time", np.sort(rng.integers(0, SECONDS, rows)).astype(float))
    frame["Amount"] = amount
    frame["Class"] = is_fraud
    return frame


def write_two_day_file(path: Path, rows: int = 30_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    two_day_frame(rows).to_csv(path, index=False)
    return path
