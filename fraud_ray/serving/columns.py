"""A batch of transactions as columns of plain values: what the streaming pool hands the ingress.

cloudpickle writes and reads lists of strings and numbers in C, where a list of pydantic models
costs it Python calls per object and field (docs/benchmarks.md). Kept apart from
``fraud_ray.serving.pipeline`` so that a consumer importing it does not import the boosters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fraud_ray.features.state import Event, epoch_micros
from fraud_ray.schema import Transaction


@dataclass(frozen=True)
class Columns:
    """A batch reduced to what deciding it needs; also the one mapping from a ``Transaction``
    to the feature state's ``Event``."""

    transaction_ids: list[str]
    ts_us: list[int]
    amounts: list[float]
    card_ids: list[str | None]
    terminal_ids: list[str | None]
    attributes: list[dict[str, float]]

    @classmethod
    def of(cls, transactions: Sequence[Transaction]) -> Columns:
        return cls(
            [t.transaction_id for t in transactions],
            [epoch_micros(t.timestamp) for t in transactions],
            [t.amount for t in transactions],
            [t.card_id for t in transactions],
            [t.terminal_id for t in transactions],
            [dict(t.attributes) for t in transactions],
        )

    def events(self) -> list[Event]:
        return list(
            map(
                Event,
                self.transaction_ids,
                self.ts_us,
                self.amounts,
                self.card_ids,
                self.terminal_ids,
                self.attributes,
            )
        )
