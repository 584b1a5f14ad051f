"""The feature definitions: the single list both the offline and the online path compute.

A feature is named once here, with the words an analyst reads in a decision's reasons. The offline
path (``offline.py``, vectorised over a history) and the online path (``online.py``, incremental
state) dispatch on the same ``Kind`` values and share the calendar arithmetic below; a consistency
test replays a stream through both to prove they agree.

Conventions, shared by both paths:
- Events are ordered by timestamp, ties broken by transaction id.
- Card and terminal windows cover ``[t - window, t)`` over the events *before* the transaction in
  that order: the transaction itself is never part of its own history.
- Terminal fraud rates cover ``[t - delay - window, t - delay)``: labels younger than the label
  delay are not known yet when a transaction is scored.
- A value that has no meaning yet (the mean amount of a card never seen) is NaN, not a made-up 0;
  so is an amount compared with an average of 0, a history of zero-amount card verifications.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fraud_ray.schema import DatasetMapping
    from fraud_ray.settings import FeatureSettings

MICROS_PER_SECOND = 1_000_000
MICROS_PER_HOUR = 3600 * MICROS_PER_SECOND
MICROS_PER_DAY = 24 * MICROS_PER_HOUR
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday is 0)


class Entity(StrEnum):
    TRANSACTION = "transaction"
    CARD = "card"
    TERMINAL = "terminal"


class Kind(StrEnum):
    AMOUNT = "amount"
    LOG_AMOUNT = "log_amount"
    HOUR = "hour"
    WEEKEND = "weekend"
    NIGHT = "night"
    ATTRIBUTE = "attribute"
    COUNT = "count"
    MEAN_AMOUNT = "mean_amount"
    AMOUNT_TO_MEAN = "amount_to_mean"
    SECONDS_SINCE_PREVIOUS = "seconds_since_previous"
    FRAUD_RATE = "fraud_rate"


@dataclass(frozen=True)
class FeatureDefinition:
    name: str
    entity: Entity
    kind: Kind
    description: str
    window_days: int | None = None


def hour_of_day(ts_us: np.ndarray | int) -> np.ndarray | int:
    """UTC hour of epoch microseconds, in integer arithmetic so both paths agree exactly."""
    return (ts_us // MICROS_PER_HOUR) % 24


def is_weekend(ts_us: np.ndarray | int) -> np.ndarray | int:
    return ((ts_us // MICROS_PER_DAY + EPOCH_WEEKDAY) % 7 >= 5) * 1


@dataclass(frozen=True)
class FeatureSpec:
    """Which features a model uses, derived from the settings and what the dataset provides."""

    windows_days: tuple[int, ...] = (1, 7, 30)
    label_delay_days: int = 7
    night_start_hour: int = 22
    night_end_hour: int = 6
    has_card: bool = True
    has_terminal: bool = True
    attributes: tuple[str, ...] = ()

    @classmethod
    def from_settings(
        cls, settings: FeatureSettings, mapping: DatasetMapping | None = None
    ) -> FeatureSpec:
        return cls(
            windows_days=tuple(settings.windows_days),
            label_delay_days=settings.label_delay_days,
            night_start_hour=settings.night_start_hour,
            night_end_hour=settings.night_end_hour,
            has_card=mapping.has_card if mapping else True,
            has_terminal=mapping.has_terminal if mapping else True,
            attributes=tuple(mapping.features) if mapping else (),
        )

    @cached_property
    def definitions(self) -> tuple[FeatureDefinition, ...]:
        tx, card, terminal = Entity.TRANSACTION, Entity.CARD, Entity.TERMINAL
        found: list[FeatureDefinition] = [
            FeatureDefinition("amount", tx, Kind.AMOUNT, "transaction amount"),
            FeatureDefinition("log_amount", tx, Kind.LOG_AMOUNT, "transaction amount (log scale)"),
            FeatureDefinition("hour", tx, Kind.HOUR, "hour of the day (UTC)"),
            FeatureDefinition("is_weekend", tx, Kind.WEEKEND, "made on a weekend"),
            FeatureDefinition("is_night", tx, Kind.NIGHT, "made at night"),
        ]
        found += [
            FeatureDefinition(name, tx, Kind.ATTRIBUTE, f"{name} (from the dataset)")
            for name in self.attributes
        ]
        if self.has_card:
            for days in self.windows_days:
                found += [
                    FeatureDefinition(
                        f"card_tx_count_{days}d",
                        card,
                        Kind.COUNT,
                        f"card's number of payments in the previous {_span(days)}",
                        days,
                    ),
                    FeatureDefinition(
                        f"card_mean_amount_{days}d",
                        card,
                        Kind.MEAN_AMOUNT,
                        f"card's average amount in the previous {_span(days)}",
                        days,
                    ),
                    FeatureDefinition(
                        f"amount_to_card_mean_{days}d",
                        card,
                        Kind.AMOUNT_TO_MEAN,
                        f"amount compared with the card's average of the previous {_span(days)}",
                        days,
                    ),
                ]
            found.append(
                FeatureDefinition(
                    "card_seconds_since_previous",
                    card,
                    Kind.SECONDS_SINCE_PREVIOUS,
                    "time since the card's previous payment",
                )
            )
        if self.has_terminal:
            for days in self.windows_days:
                found += [
                    FeatureDefinition(
                        f"terminal_tx_count_{days}d",
                        terminal,
                        Kind.COUNT,
                        f"terminal's number of payments in the previous {_span(days)}",
                        days,
                    ),
                    FeatureDefinition(
                        f"terminal_fraud_rate_{days}d",
                        terminal,
                        Kind.FRAUD_RATE,
                        f"terminal's confirmed fraud rate over {_span(days)}, "
                        f"{self.label_delay_days} days ago",
                        days,
                    ),
                ]
        return tuple(found)

    @property
    def names(self) -> list[str]:
        return [definition.name for definition in self.definitions]

    @property
    def label_delay_us(self) -> int:
        return self.label_delay_days * MICROS_PER_DAY

    @property
    def card_retention_us(self) -> int:
        """How far back a card's history must reach to answer every card window."""
        return max(self.windows_days) * MICROS_PER_DAY

    @property
    def terminal_retention_us(self) -> int:
        """Terminal history must also cover the delayed fraud-rate windows."""
        return (max(self.windows_days) + self.label_delay_days) * MICROS_PER_DAY

    def is_night(self, hour: np.ndarray | int) -> np.ndarray | int:
        start, end = self.night_start_hour, self.night_end_hour
        if start > end:
            return ((hour >= start) | (hour < end)) * 1
        return ((hour >= start) & (hour < end)) * 1


def _span(days: int) -> str:
    return "day" if days == 1 else f"{days} days"
