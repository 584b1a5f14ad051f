"""Feature frames like the decision log's and a model's reference sample, drawn from one generator
so that drift tests know which columns moved: monitoring's unit tests share them."""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = [
    "amount",
    "hour",
    "is_night",
    "card_tx_count_1d",
    "terminal_fraud_rate_30d",
    "fraud_probability",
]
SHIFTED = {"amount", "card_tx_count_1d"}


def features(seed: int, rows: int, shifted: bool = False) -> pd.DataFrame:
    """Feature rows and scores; amounts x3 and card counts +3 when ``shifted``."""
    rng = np.random.default_rng(seed)
    hour = rng.integers(0, 24, rows).astype(float)
    fraud_rate = rng.beta(1, 80, rows)
    fraud_rate[rng.random(rows) < 0.05] = np.nan  # terminals without a history yet
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3.5, 0.8, rows) * (3 if shifted else 1),
            "hour": hour,
            "is_night": ((hour >= 22) | (hour < 6)).astype(float),
            "card_tx_count_1d": rng.poisson(2, rows) + (3.0 if shifted else 0.0),
            "terminal_fraud_rate_30d": fraud_rate,
            "fraud_probability": rng.beta(1, 60, rows),
        }
    )
