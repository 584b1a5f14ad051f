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

from dataclasses import InitVar, dataclass
from datetime import timedelta
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from fraud_ray.durations import describe_duration, format_duration

if TYPE_CHECKING:
    from fraud_ray.schema import DatasetMapping
    from fraud_ray.settings import FeatureSettings

MICROS_PER_SECOND = 1_000_000
MICROS_PER_HOUR = 3600 * MICROS_PER_SECOND
MICROS_PER_DAY = 24 * MICROS_PER_HOUR
SECONDS_PER_DAY = 86_400
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
    window_s: int | None = None

    @property
    def window_us(self) -> int:
        return (self.window_s or 0) * MICROS_PER_SECOND


def hour_of_day(ts_us: np.ndarray | int) -> np.ndarray | int:
    """UTC hour of epoch microseconds, in integer arithmetic so both paths agree exactly."""
    return (ts_us // MICROS_PER_HOUR) % 24


def is_weekend(ts_us: np.ndarray | int) -> np.ndarray | int:
    return ((ts_us // MICROS_PER_DAY + EPOCH_WEEKDAY) % 7 >= 5) * 1


@dataclass(frozen=True)
class FeatureSpec:
    """Which features a model uses, derived from the settings and what the dataset provides.

    Windows and the label delay are whole seconds, so a model bundle stores them as plain JSON
    numbers. Bundles saved before durations spelt them in days (``windows_days``,
    ``label_delay_days``); those keywords are still taken, so every registered model loads.
    """

    windows_s: tuple[int, ...] = (SECONDS_PER_DAY, 7 * SECONDS_PER_DAY, 30 * SECONDS_PER_DAY)
    label_delay_s: int = 7 * SECONDS_PER_DAY
    night_start_hour: int = 22
    night_end_hour: int = 6
    has_card: bool = True
    has_terminal: bool = True
    attributes: tuple[str, ...] = ()
    windows_days: InitVar[tuple[int, ...] | None] = None
    label_delay_days: InitVar[int | None] = None

    def __post_init__(
        self, windows_days: tuple[int, ...] | None, label_delay_days: int | None
    ) -> None:
        if windows_days is not None:
            object.__setattr__(
                self, "windows_s", tuple(days * SECONDS_PER_DAY for days in windows_days)
            )
        if label_delay_days is not None:
            object.__setattr__(self, "label_delay_s", label_delay_days * SECONDS_PER_DAY)
        object.__setattr__(self, "windows_s", tuple(int(s) for s in self.windows_s))
        if not self.windows_s or min(self.windows_s) <= 0:
            raise ValueError(f"feature windows must be longer than 0, got {self.windows_s}")
        if self.label_delay_s < 0:
            raise ValueError(f"the label delay cannot be negative, got {self.label_delay_s} s")

    @classmethod
    def from_settings(
        cls, settings: FeatureSettings, mapping: DatasetMapping | None = None
    ) -> FeatureSpec:
        return cls(
            windows_s=tuple(window // timedelta(seconds=1) for window in settings.windows),
            label_delay_s=settings.label_delay // timedelta(seconds=1),
            night_start_hour=settings.night_start_hour,
            night_end_hour=settings.night_end_hour,
            has_card=mapping.has_card if mapping else True,
            has_terminal=mapping.has_terminal if mapping else True,
            attributes=tuple(mapping.features) if mapping else (),
        )

    @property
    def windows(self) -> tuple[timedelta, ...]:
        return tuple(timedelta(seconds=seconds) for seconds in self.windows_s)

    @property
    def label_delay(self) -> timedelta:
        return timedelta(seconds=self.label_delay_s)

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
            for seconds, window in zip(self.windows_s, self.windows, strict=True):
                suffix, span = format_duration(window), describe_duration(window, bare_one=True)
                found += [
                    FeatureDefinition(
                        f"card_tx_count_{suffix}",
                        card,
                        Kind.COUNT,
                        f"card's number of payments in the previous {span}",
                        seconds,
                    ),
                    FeatureDefinition(
                        f"card_mean_amount_{suffix}",
                        card,
                        Kind.MEAN_AMOUNT,
                        f"card's average amount in the previous {span}",
                        seconds,
                    ),
                    FeatureDefinition(
                        f"amount_to_card_mean_{suffix}",
                        card,
                        Kind.AMOUNT_TO_MEAN,
                        f"amount compared with the card's average of the previous {span}",
                        seconds,
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
            lag = (
                f" before the last {describe_duration(self.label_delay)} (labels take that long)"
                if self.label_delay_s
                else ""
            )
            for seconds, window in zip(self.windows_s, self.windows, strict=True):
                suffix, span = format_duration(window), describe_duration(window, bare_one=True)
                found += [
                    FeatureDefinition(
                        f"terminal_tx_count_{suffix}",
                        terminal,
                        Kind.COUNT,
                        f"terminal's number of payments in the previous {span}",
                        seconds,
                    ),
                    FeatureDefinition(
                        f"terminal_fraud_rate_{suffix}",
                        terminal,
                        Kind.FRAUD_RATE,
                        f"terminal's confirmed fraud rate over the {'' if lag else 'previous '}{span}{lag}",
                        seconds,
                    ),
                ]
        return tuple(found)

    @property
    def names(self) -> list[str]:
        return [definition.name for definition in self.definitions]

    @property
    def label_delay_us(self) -> int:
        return self.label_delay_s * MICROS_PER_SECOND

    @property
    def card_retention_us(self) -> int:
        """How far back a card's history must reach to answer every card window."""
        return max(self.windows_s) * MICROS_PER_SECOND

    @property
    def terminal_retention_us(self) -> int:
        """Terminal history must also cover the delayed fraud-rate windows."""
        return (max(self.windows_s) + self.label_delay_s) * MICROS_PER_SECOND

    def is_night(self, hour: np.ndarray | int) -> np.ndarray | int:
        start, end = self.night_start_hour, self.night_end_hour
        if start > end:
            return ((hour >= start) | (hour < end)) * 1
        return ((hour >= start) & (hour < end)) * 1
