"""Online execution of the feature definitions: incremental, one batch of transactions at a time.

Every value follows the conventions of ``definitions.py``: a transaction's history is what came
before it in (time, transaction id) order, so a late or repeated transaction gets the same features
the offline path gives it, and a repeat is not counted twice.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraud_ray.features.definitions import (
    MICROS_PER_SECOND,
    Entity,
    FeatureDefinition,
    FeatureSpec,
    Kind,
    hour_of_day,
    is_weekend,
)
from fraud_ray.features.offline import epoch_micros
from fraud_ray.features.state import (
    CardHistory,
    Event,
    FeatureState,
    MemoryState,
    RedisState,
    TerminalHistory,
)
from fraud_ray.schema import AMOUNT, CARD_ID, LABEL, TERMINAL_ID, TIMESTAMP, TRANSACTION_ID
from fraud_ray.settings import Settings

NAN = float("nan")


class OnlineFeatures:
    """Feature vectors for live transactions, kept current by the transactions and labels it sees.

    The definitions are compiled once into column plans (which column each window's count, mean
    and ratio go to), so a transaction costs a few binary searches per window rather than a walk
    over every definition: on the serving path this loop is the cost of a feature vector.
    """

    def __init__(self, spec: FeatureSpec, state: FeatureState) -> None:
        self.spec = spec
        self.state = state
        self._plan = _Plan.of(spec)

    def compute(self, events: Sequence[Event]) -> np.ndarray:
        """One row of features (``spec.names`` order) per event; the events join the history."""
        histories = self.state.histories(events)
        plan = self._plan
        rows = np.full((len(events), len(self.spec.definitions)), NAN)
        if not events:
            return rows
        self._transaction_columns(events, rows)
        for i, event in enumerate(events):
            row = rows[i]
            card = histories.cards.get(event.card_id) if event.card_id is not None else None
            terminal = (
                histories.terminals.get(event.terminal_id)
                if event.terminal_id is not None
                else None
            )
            if plan.has_card:
                _card_values(plan, card, event, row)
            if plan.has_terminal:
                _terminal_values(plan, terminal, event, self.spec.label_delay_us, row)
            inserted = card.insert(event) if card is not None else False
            inserted = (terminal.insert(event) if terminal is not None else False) or inserted
            if inserted:
                histories.added.append(event)
        self.state.commit(histories)
        return rows

    def compute_one(self, event: Event) -> dict[str, float]:
        return dict(zip(self.spec.names, self.compute([event])[0].tolist(), strict=True))

    def record_labels(self, labels: Iterable[tuple[str, int]]) -> int:
        """Labels (chargebacks, analyst verdicts) feed terminal fraud rates once past the delay."""
        return self.state.record_labels(labels)

    def _transaction_columns(self, events: Sequence[Event], rows: np.ndarray) -> None:
        """The per-transaction features, vectorised over the batch."""
        ts = np.fromiter((e.ts_us for e in events), dtype=np.int64, count=len(events))
        amounts = np.fromiter((e.amount for e in events), dtype=np.float64, count=len(events))
        hours = hour_of_day(ts)
        for column, definition in self._plan.transaction:
            match definition.kind:
                case Kind.AMOUNT:
                    rows[:, column] = amounts
                case Kind.LOG_AMOUNT:
                    rows[:, column] = np.log1p(amounts)
                case Kind.HOUR:
                    rows[:, column] = hours
                case Kind.WEEKEND:
                    rows[:, column] = is_weekend(ts)
                case Kind.NIGHT:
                    rows[:, column] = self.spec.is_night(hours)
                case Kind.ATTRIBUTE:
                    rows[:, column] = [e.attributes.get(definition.name, NAN) for e in events]
                case _:
                    raise ValueError(f"no online execution for {definition}")


def online_features(settings: Settings, spec: FeatureSpec) -> OnlineFeatures:
    """Online features over the state ``features.backend`` names: this process's memory, or
    Redis, which every replica that computes features shares."""
    state: FeatureState
    if settings.features.backend == "redis":
        state = RedisState.from_url(spec, settings.redis.url, settings.redis.prefix)
    else:
        state = MemoryState(spec)
    return OnlineFeatures(spec, state)


@dataclass(frozen=True)
class _Window:
    """The columns one window fills, -1 for a feature the spec leaves out."""

    micros: int
    count: int = -1
    mean: int = -1
    ratio: int = -1
    fraud_rate: int = -1


@dataclass(frozen=True)
class _Plan:
    transaction: tuple[tuple[int, FeatureDefinition], ...]
    card_windows: tuple[_Window, ...]
    terminal_windows: tuple[_Window, ...]
    seconds_since_previous: int
    has_card: bool
    has_terminal: bool

    @classmethod
    def of(cls, spec: FeatureSpec) -> _Plan:
        transaction = []
        card: dict[int, dict[str, int]] = {}
        terminal: dict[int, dict[str, int]] = {}
        since = -1
        for column, definition in enumerate(spec.definitions):
            window = definition.window_us
            match definition.entity, definition.kind:
                case Entity.TRANSACTION, _:
                    transaction.append((column, definition))
                case Entity.CARD, Kind.SECONDS_SINCE_PREVIOUS:
                    since = column
                case Entity.CARD, Kind.COUNT:
                    card.setdefault(window, {})["count"] = column
                case Entity.CARD, Kind.MEAN_AMOUNT:
                    card.setdefault(window, {})["mean"] = column
                case Entity.CARD, Kind.AMOUNT_TO_MEAN:
                    card.setdefault(window, {})["ratio"] = column
                case Entity.TERMINAL, Kind.COUNT:
                    terminal.setdefault(window, {})["count"] = column
                case Entity.TERMINAL, Kind.FRAUD_RATE:
                    terminal.setdefault(window, {})["fraud_rate"] = column
                case _:
                    raise ValueError(f"no online execution for {definition}")
        return cls(
            transaction=tuple(transaction),
            card_windows=tuple(_Window(w, **columns) for w, columns in card.items()),
            terminal_windows=tuple(_Window(w, **columns) for w, columns in terminal.items()),
            seconds_since_previous=since,
            has_card=bool(card) or since >= 0,
            has_terminal=bool(terminal),
        )


def _card_values(plan: _Plan, card: CardHistory | None, event: Event, row: np.ndarray) -> None:
    keys = card.keys if card else []
    end = bisect.bisect_left(keys, event.key)
    if plan.seconds_since_previous >= 0 and end:
        row[plan.seconds_since_previous] = (event.ts_us - keys[end - 1][0]) / MICROS_PER_SECOND
    for window in plan.card_windows:
        start = bisect.bisect_left(keys, (event.ts_us - window.micros,))
        count = end - start
        if window.count >= 0:
            row[window.count] = count
        if count == 0 or card is None:
            continue
        mean = sum(card.amounts[start:end]) / count
        if window.mean >= 0:
            row[window.mean] = mean
        if window.ratio >= 0 and mean > 0:
            row[window.ratio] = event.amount / mean


def _terminal_values(
    plan: _Plan, terminal: TerminalHistory | None, event: Event, delay_us: int, row: np.ndarray
) -> None:
    keys = terminal.keys if terminal else []
    end = bisect.bisect_left(keys, event.key)
    rate_end = bisect.bisect_left(keys, (event.ts_us - delay_us,))
    for window in plan.terminal_windows:
        if window.count >= 0:
            row[window.count] = end - bisect.bisect_left(keys, (event.ts_us - window.micros,))
        if window.fraud_rate < 0 or terminal is None:
            continue
        start = bisect.bisect_left(keys, (event.ts_us - delay_us - window.micros,))
        if rate_end > start:
            frauds = terminal.frauds
            hits = sum(1 for _, tx in keys[start:rate_end] if tx in frauds) if frauds else 0
            row[window.fraud_rate] = hits / (rate_end - start)


def replay(frame: pd.DataFrame, online: OnlineFeatures, max_batch: int = 512) -> np.ndarray:
    """Stream a labelled history through the online path, each label arriving at its label delay.

    Rows go in (time, transaction id) order, in batches as the serving path would send them. A batch
    ends where a fraud label falls due, so every transaction sees exactly the labels older than the
    delay (a legitimate label changes no rate, so those are only batched with the rest). Returns the
    feature rows in the frame's own row order: what the offline path would compute.
    """
    spec = online.spec
    ts = epoch_micros(frame[TIMESTAMP])
    ids = frame[TRANSACTION_ID].astype(str).to_numpy()
    order = np.lexsort((ids, ts))
    labels = frame[LABEL].to_numpy() if LABEL in frame else np.zeros(len(frame), dtype=np.int8)
    fraud_due = np.sort(ts[labels == 1] + spec.label_delay_us)
    due_before = np.searchsorted(fraud_due, ts[order], side="left")
    cards = frame[CARD_ID].to_numpy() if spec.has_card else None
    terminals = frame[TERMINAL_ID].to_numpy() if spec.has_terminal else None
    attributes = {name: frame[name].to_numpy(dtype=np.float64) for name in spec.attributes}
    amounts = frame[AMOUNT].to_numpy(dtype=np.float64)

    def event(i: int) -> Event:
        return Event(
            transaction_id=ids[i],
            ts_us=int(ts[i]),
            amount=float(amounts[i]),
            card_id=None if cards is None else str(cards[i]),
            terminal_id=None if terminals is None else str(terminals[i]),
            attributes={name: float(values[i]) for name, values in attributes.items()},
        )

    rows = np.empty((len(frame), len(spec.definitions)))
    labelled = 0
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and end - start < max_batch and due_before[end] == due_before[start]:
            end += 1
        first_ts = ts[order[start]]
        ready = labelled
        while ready < len(order) and ts[order[ready]] + spec.label_delay_us < first_ts:
            ready += 1
        online.record_labels((ids[j], int(labels[j])) for j in order[labelled:ready])
        labelled = ready
        batch = order[start:end]
        rows[batch] = online.compute([event(i) for i in batch])
        start = end
    return rows
