"""Online execution of the feature definitions: incremental, one batch of transactions at a time.

Every value follows the conventions of ``definitions.py``: a transaction's history is what came
before it in (time, transaction id) order, so a late or repeated transaction gets the same features
the offline path gives it, and a repeat is not counted twice.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from fraud_ray.features.definitions import (
    MICROS_PER_DAY,
    MICROS_PER_SECOND,
    Entity,
    FeatureSpec,
    Kind,
    hour_of_day,
    is_weekend,
)
from fraud_ray.features.offline import epoch_micros
from fraud_ray.features.state import CardHistory, Event, FeatureState, TerminalHistory
from fraud_ray.schema import AMOUNT, CARD_ID, LABEL, TERMINAL_ID, TIMESTAMP, TRANSACTION_ID

NAN = float("nan")


class OnlineFeatures:
    """Feature vectors for live transactions, kept current by the transactions and labels it sees."""

    def __init__(self, spec: FeatureSpec, state: FeatureState) -> None:
        self.spec = spec
        self.state = state

    def compute(self, events: Sequence[Event]) -> np.ndarray:
        """One row of features (``spec.names`` order) per event; the events join the history."""
        histories = self.state.histories(events)
        rows = np.empty((len(events), len(self.spec.definitions)))
        for i, event in enumerate(events):
            card = histories.cards.get(event.card_id) if event.card_id is not None else None
            terminal = (
                histories.terminals.get(event.terminal_id)
                if event.terminal_id is not None
                else None
            )
            rows[i] = self._row(event, card, terminal)
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

    def _row(
        self, event: Event, card: CardHistory | None, terminal: TerminalHistory | None
    ) -> list[float]:
        spec = self.spec
        t = event.ts_us
        hour = hour_of_day(t)
        row: list[float] = []
        for definition in spec.definitions:
            window = (definition.window_days or 0) * MICROS_PER_DAY
            match definition.entity, definition.kind:
                case Entity.TRANSACTION, Kind.AMOUNT:
                    row.append(event.amount)
                case Entity.TRANSACTION, Kind.LOG_AMOUNT:
                    row.append(math.log1p(event.amount))
                case Entity.TRANSACTION, Kind.HOUR:
                    row.append(float(hour))
                case Entity.TRANSACTION, Kind.WEEKEND:
                    row.append(float(is_weekend(t)))
                case Entity.TRANSACTION, Kind.NIGHT:
                    row.append(float(spec.is_night(hour)))
                case Entity.TRANSACTION, Kind.ATTRIBUTE:
                    row.append(event.attributes.get(definition.name, NAN))
                case Entity.CARD, _:
                    row.append(_card_value(definition.kind, card, event, window))
                case Entity.TERMINAL, Kind.COUNT:
                    keys = terminal.keys if terminal else []
                    end = bisect.bisect_left(keys, event.key)
                    row.append(float(end - bisect.bisect_left(keys, (t - window,))))
                case Entity.TERMINAL, Kind.FRAUD_RATE:
                    row.append(_fraud_rate(terminal, t - spec.label_delay_us, window))
                case _:
                    raise ValueError(f"no online execution for {definition}")
        return row


def _card_value(kind: Kind, card: CardHistory | None, event: Event, window: int) -> float:
    keys = card.keys if card else []
    end = bisect.bisect_left(keys, event.key)
    if kind == Kind.SECONDS_SINCE_PREVIOUS:
        return (event.ts_us - keys[end - 1][0]) / MICROS_PER_SECOND if end else NAN
    start = bisect.bisect_left(keys, (event.ts_us - window,))
    count = end - start
    if kind == Kind.COUNT:
        return float(count)
    if count == 0 or card is None:
        return NAN
    mean = sum(card.amounts[start:end]) / count
    return mean if kind == Kind.MEAN_AMOUNT else event.amount / mean


def _fraud_rate(terminal: TerminalHistory | None, end_us: int, window: int) -> float:
    if terminal is None:
        return NAN
    start = bisect.bisect_left(terminal.keys, (end_us - window,))
    end = bisect.bisect_left(terminal.keys, (end_us,))
    if end == start:
        return NAN
    frauds = sum(1 for _, tx in terminal.keys[start:end] if tx in terminal.frauds)
    return frauds / (end - start)


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
