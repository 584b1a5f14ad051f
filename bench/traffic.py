"""The transactions the HTTP benches send: the simulator's, in time order.

Synthetic traffic with every card paying every half hour round the clock looks like card testing
to a model: it flagged 55% of such transactions, and each flagged one gets its reasons (the
booster's contributions, a hundred times a prediction), so a bench sending it measured the
explanations. The simulator's cards behave like the model's training data (about 3% flagged).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pandas as pd

from fraud_ray.schema import AMOUNT, CARD_ID, TERMINAL_ID, TIMESTAMP
from fraud_ray.settings import SimulatorSettings
from fraud_ray.simulator import simulate_days

# Five days of 5,000 cards: about 50,000 transactions, more than one server's run sends.
SIMULATION = SimulatorSettings(customers=5000, terminals=10000, days=5, seed=11)


@cache
def simulated() -> list[dict[str, Any]]:
    """The simulation's transactions as the API takes them, oldest first, without ids."""
    days = pd.concat([day for _, day in simulate_days(SIMULATION)], ignore_index=True)
    days = days.sort_values(TIMESTAMP, kind="stable")
    return [
        {
            "timestamp": moment.isoformat(),
            "card_id": str(card),
            "terminal_id": str(terminal),
            "amount": float(amount),
        }
        for moment, card, terminal, amount in zip(
            days[TIMESTAMP], days[CARD_ID], days[TERMINAL_ID], days[AMOUNT], strict=True
        )
    ]


def transaction(i: int, run: str) -> dict[str, Any]:
    """The ``i``-th simulated transaction (wrapping round), with an id unique to ``run``: a
    repeated id would be answered from the decision log instead of decided."""
    every = simulated()
    return {"transaction_id": f"{run}-{i}", **every[i % len(every)]}
