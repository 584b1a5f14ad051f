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
    and ratio go to). A batch then costs one pass per entity that only binary-searches each
    transaction's history for its window bounds and adds up the amounts inside; every count,
    mean, ratio and rate is then computed for the whole batch at once in NumPy. Each transaction
    joins its card's and terminal's history right after its own bounds are found, so a later one
    in the batch sees it, exactly as if the transactions had come one at a time.
    """

    def __init__(self, spec: FeatureSpec, state: FeatureState) -> None:
        self.spec = spec
        self.state = state
        self._plan = _Plan.of(spec)

    def compute(self, events: Sequence[Event]) -> np.ndarray:
        """One row of features (``spec.names`` order) per event; the events join the history."""
        histories = self.state.histories(events)
        rows = np.full((len(events), len(self.spec.definitions)), NAN)
        if not events:
            return rows
        ts = np.fromiter((e.ts_us for e in events), dtype=np.int64, count=len(events))
        amounts = np.fromiter((e.amount for e in events), dtype=np.float64, count=len(events))
        self._transaction_columns(events, ts, amounts, rows)
        inserted = np.zeros(len(events), dtype=bool)
        if self._plan.has_card:
            inserted |= _card_columns(self._plan, events, histories.cards, ts, amounts, rows)
        if self._plan.has_terminal:
            inserted |= _terminal_columns(
                self._plan, events, histories.terminals, self.spec.label_delay_us, rows
            )
        histories.added.extend(events[i] for i in np.flatnonzero(inserted))
        self.state.commit(histories)
        return rows

    def compute_one(self, event: Event) -> dict[str, float]:
        return dict(zip(self.spec.names, self.compute([event])[0].tolist(), strict=True))

    def record_labels(self, labels: Iterable[tuple[str, int]]) -> int:
        """Labels (chargebacks, analyst verdicts) feed terminal fraud rates once past the delay."""
        return self.state.record_labels(labels)

    def _transaction_columns(
        self, events: Sequence[Event], ts: np.ndarray, amounts: np.ndarray, rows: np.ndarray
    ) -> None:
        """The per-transaction features, vectorised over the batch."""
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


def _card_columns(
    plan: _Plan,
    events: Sequence[Event],
    cards: dict[str, CardHistory],
    ts: np.ndarray,
    amounts: np.ndarray,
    rows: np.ndarray,
) -> np.ndarray:
    """The card features of every event; returns which events the card histories gained.

    Per event, only the searches and the window sums (Python's own ``sum``, so a mean is the
    same to the last bit however the batch is cut); the arithmetic is done over the batch.
    """
    windows = [window.micros for window in plan.card_windows]
    empty = [0] * len(windows)
    counts: list[int] = []
    sums: list[float] = []
    previous: list[int] = []
    has_previous: list[bool] = []
    inserted: list[bool] = []
    for event in events:
        card = cards.get(event.card_id) if event.card_id is not None else None
        if card is None:
            counts += empty
            sums += empty
            previous.append(0)
            has_previous.append(False)
            inserted.append(False)
            continue
        times, kept = card.times, card.amounts
        end = card.position(event.ts_us, event.transaction_id)
        previous.append(times[end - 1] if end else 0)
        has_previous.append(end > 0)
        for window in windows:
            start = bisect.bisect_left(times, event.ts_us - window)
            counts.append(end - start)
            sums.append(sum(kept[start:end]))
        inserted.append(card.insert_at(end, event))
    shape = (len(events), len(windows))
    count = np.array(counts, dtype=np.int64).reshape(shape)
    total = np.array(sums, dtype=np.float64).reshape(shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(count > 0, total / count, NAN)
        ratio = np.where(mean > 0, amounts[:, None] / mean, NAN)
    for k, window in enumerate(plan.card_windows):
        if window.count >= 0:
            rows[:, window.count] = count[:, k]
        if window.mean >= 0:
            rows[:, window.mean] = mean[:, k]
        if window.ratio >= 0:
            rows[:, window.ratio] = ratio[:, k]
    if plan.seconds_since_previous >= 0:
        seconds = (ts - np.array(previous, dtype=np.int64)) / MICROS_PER_SECOND
        rows[:, plan.seconds_since_previous] = np.where(has_previous, seconds, NAN)
    return np.array(inserted, dtype=bool)


def _terminal_columns(
    plan: _Plan,
    events: Sequence[Event],
    terminals: dict[str, TerminalHistory],
    delay_us: int,
    rows: np.ndarray,
) -> np.ndarray:
    """The terminal features of every event; returns which events the terminal histories gained.

    A fraud rate counts the labelled ids among the events in its delayed window, so the ids are
    looked at only where the terminal has a fraud on record at all.
    """
    windows = [window.micros for window in plan.terminal_windows]
    empty = [0] * len(windows)
    counts: list[int] = []
    labelled: list[int] = []
    hits: list[int] = []
    known: list[bool] = []
    inserted: list[bool] = []
    for event in events:
        terminal = terminals.get(event.terminal_id) if event.terminal_id is not None else None
        if terminal is None:
            counts += empty
            labelled += empty
            hits += empty
            known.append(False)
            inserted.append(False)
            continue
        times, frauds = terminal.times, terminal.frauds
        ts = event.ts_us
        end = terminal.position(ts, event.transaction_id)
        rate_end = bisect.bisect_left(times, ts - delay_us)
        for window in windows:
            counts.append(end - bisect.bisect_left(times, ts - window))
            start = bisect.bisect_left(times, ts - delay_us - window)
            labelled.append(rate_end - start)
            hits.append(
                sum(1 for tx in terminal.ids[start:rate_end] if tx in frauds) if frauds else 0
            )
        known.append(True)
        inserted.append(terminal.insert_at(end, event))
    shape = (len(events), len(windows))
    count = np.array(counts, dtype=np.int64).reshape(shape)
    labelled_count = np.array(labelled, dtype=np.int64).reshape(shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.array(hits, dtype=np.int64).reshape(shape) / labelled_count
    rate[(labelled_count == 0) | ~np.array(known)[:, None]] = NAN
    for k, window in enumerate(plan.terminal_windows):
        if window.count >= 0:
            rows[:, window.count] = count[:, k]
        if window.fraud_rate >= 0:
            rows[:, window.fraud_rate] = rate[:, k]
    return np.array(inserted, dtype=bool)


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
