"""Online feature state: the recent history of every card and terminal, in memory or in Redis.

The online path (``online.py``) asks a state for the histories a batch of transactions needs, works
on them in process, and hands back the new events to keep. Redis therefore costs two round trips per
batch, not per transaction, and the feature arithmetic lives in one place for both backends.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from fraud_ray.features.definitions import MICROS_PER_SECOND, FeatureSpec

if TYPE_CHECKING:
    import redis

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(slots=True)
class Event:
    """A transaction reduced to what the feature state needs, with its time in epoch microseconds.

    Not frozen, though nothing changes one: a frozen dataclass sets each field through
    ``object.__setattr__``, which made building the events of a batch cost several times as much.
    """

    transaction_id: str
    ts_us: int
    amount: float
    card_id: str | None = None
    terminal_id: str | None = None
    attributes: dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> tuple[int, str]:
        return (self.ts_us, self.transaction_id)


def epoch_micros(moment: datetime) -> int:
    """Exact integer microseconds; ``datetime.timestamp()`` goes through a float and can be 1 µs off."""
    return (moment - EPOCH) // _MICROSECOND


@dataclass
class Timeline:
    """An entity's events in (time, transaction id) order, times and ids side by side: a window's
    bounds are then binary searches over plain integers, not over tuples."""

    times: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def position(self, ts_us: int, transaction_id: str) -> int:
        """Where (ts_us, transaction_id) is or would go: how many events come before it."""
        times = self.times
        at = bisect.bisect_left(times, ts_us)
        if at < len(times) and times[at] == ts_us:
            return bisect.bisect_left(
                self.ids, transaction_id, at, bisect.bisect_right(times, ts_us, at)
            )
        return at

    def holds(self, at: int, event: Event) -> bool:
        """Whether ``event`` is already kept at ``at``, where ``position`` placed it: a repeat."""
        return (
            at < len(self.times)
            and self.times[at] == event.ts_us
            and self.ids[at] == event.transaction_id
        )

    def cut(self, ts_us: int) -> int:
        """How many events are older than ``ts_us``: most often none, which costs no search."""
        times = self.times
        if not times or times[0] >= ts_us:
            return 0
        return bisect.bisect_left(times, ts_us)


@dataclass
class CardHistory(Timeline):
    """A card's events with their amounts."""

    amounts: list[float] = field(default_factory=list)

    def insert_at(self, at: int, event: Event) -> bool:
        """Insert ``event`` where ``position`` put it, unless it is a repeat."""
        if self.holds(at, event):
            return False
        self.times.insert(at, event.ts_us)
        self.ids.insert(at, event.transaction_id)
        self.amounts.insert(at, event.amount)
        return True

    def insert(self, event: Event) -> bool:
        return self.insert_at(self.position(event.ts_us, event.transaction_id), event)

    def forget_before(self, ts_us: int) -> None:
        cut = self.cut(ts_us)
        del self.times[:cut], self.ids[:cut], self.amounts[:cut]


@dataclass
class TerminalHistory(Timeline):
    """A terminal's events and the ids labelled as fraud."""

    frauds: set[str] = field(default_factory=set)

    def insert_at(self, at: int, event: Event) -> bool:
        """Insert ``event`` where ``position`` put it, unless it is a repeat."""
        if self.holds(at, event):
            return False
        self.times.insert(at, event.ts_us)
        self.ids.insert(at, event.transaction_id)
        return True

    def insert(self, event: Event) -> bool:
        return self.insert_at(self.position(event.ts_us, event.transaction_id), event)

    def forget_before(self, ts_us: int) -> list[str]:
        """Drop the events before ``ts_us``; returns their transaction ids."""
        cut = self.cut(ts_us)
        forgotten = self.ids[:cut]
        self.frauds.difference_update(forgotten)
        del self.times[:cut], self.ids[:cut]
        return forgotten


@dataclass
class Histories:
    """The histories one batch works on; ``added`` collects what the batch appended."""

    cards: dict[str, CardHistory] = field(default_factory=dict)
    terminals: dict[str, TerminalHistory] = field(default_factory=dict)
    added: list[Event] = field(default_factory=list)


class FeatureState(Protocol):
    def histories(self, events: Sequence[Event]) -> Histories:
        """The histories of every card and terminal in ``events``, far enough back for all windows."""
        ...

    def commit(self, histories: Histories) -> None:
        """Keep the events the batch added to ``histories`` and forget what no window needs."""
        ...

    def record_labels(self, labels: Iterable[tuple[str, int]]) -> int:
        """Store (transaction_id, is_fraud) labels; returns how many named a known transaction."""
        ...


class MemoryState:
    """State in this process: for one replica, the tests and offline replays.

    Each card and terminal forgets what is older than its retention before the newest of its
    own events in a batch, as the Redis state does: a transaction dated years ahead empties its
    own card's and terminal's history, never every other card's and terminal's.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._cards: dict[str, CardHistory] = {}
        self._terminals: dict[str, TerminalHistory] = {}
        self._terminal_of: dict[str, str] = {}

    def histories(self, events: Sequence[Event]) -> Histories:
        found = Histories()
        cards, terminals = found.cards, found.terminals
        for event in events:
            card_id, terminal_id = event.card_id, event.terminal_id
            if card_id is not None and card_id not in cards:
                card = self._cards.get(card_id)
                if card is None:  # built only when missing: a dataclass costs a microsecond
                    card = self._cards[card_id] = CardHistory()
                cards[card_id] = card
            if terminal_id is not None and terminal_id not in terminals:
                terminal = self._terminals.get(terminal_id)
                if terminal is None:
                    terminal = self._terminals[terminal_id] = TerminalHistory()
                terminals[terminal_id] = terminal
        return found

    def commit(self, histories: Histories) -> None:
        if not histories.added:
            return
        latest_card: dict[str, int] = {}
        latest_terminal: dict[str, int] = {}
        for event in histories.added:
            if event.card_id is not None:
                latest_card[event.card_id] = max(latest_card.get(event.card_id, 0), event.ts_us)
            if event.terminal_id is not None:
                self._terminal_of[event.transaction_id] = event.terminal_id
                latest_terminal[event.terminal_id] = max(
                    latest_terminal.get(event.terminal_id, 0), event.ts_us
                )
        for card_id, latest in latest_card.items():
            histories.cards[card_id].forget_before(latest - self.spec.card_retention_us)
        for terminal_id, latest in latest_terminal.items():
            cut = latest - self.spec.terminal_retention_us
            for transaction_id in histories.terminals[terminal_id].forget_before(cut):
                self._terminal_of.pop(transaction_id, None)

    def record_labels(self, labels: Iterable[tuple[str, int]]) -> int:
        known = 0
        for transaction_id, is_fraud in labels:
            terminal_id = self._terminal_of.get(transaction_id)
            if terminal_id is None:
                continue
            known += 1
            frauds = self._terminals[terminal_id].frauds
            if is_fraud:
                frauds.add(transaction_id)
            else:
                frauds.discard(transaction_id)
        return known


class RedisState:
    """State shared by every replica and node through Redis.

    Keys (under ``prefix``): ``card:<id>`` and ``terminal:<id>`` are sorted sets of transaction ids
    scored by time (a card member carries its amount), ``terminal:<id>:fraud`` holds the ids labelled
    fraud, and ``tx:<id>`` remembers a transaction's time and terminal so a label can find it. Each
    key expires once no window can reach it (its retention after its last write), so a card or
    terminal never seen again leaves nothing behind.
    """

    def __init__(self, spec: FeatureSpec, client: redis.Redis, prefix: str = "fraud-ray") -> None:
        self.spec = spec
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, spec: FeatureSpec, url: str, prefix: str = "fraud-ray") -> RedisState:
        import redis

        return cls(spec, redis.Redis.from_url(url, decode_responses=True), prefix)

    def _card_key(self, card_id: str) -> str:
        return f"{self.prefix}:card:{card_id}"

    def _terminal_key(self, terminal_id: str) -> str:
        return f"{self.prefix}:terminal:{terminal_id}"

    def _tx_key(self, transaction_id: str) -> str:
        return f"{self.prefix}:tx:{transaction_id}"

    def histories(self, events: Sequence[Event]) -> Histories:
        if not events:
            return Histories()
        earliest = min(event.ts_us for event in events)
        cards = sorted({e.card_id for e in events if e.card_id is not None})
        terminals = sorted({e.terminal_id for e in events if e.terminal_id is not None})
        pipe = self.client.pipeline(transaction=False)
        for card_id in cards:
            # The whole set, which commit trims to the windows before the card's latest payment:
            # the time since the previous payment needs that payment however old it is, as the
            # offline path and the memory state have it.
            pipe.zrange(self._card_key(card_id), 0, -1, withscores=True)
        since = earliest - self.spec.terminal_retention_us
        for terminal_id in terminals:
            pipe.zrangebyscore(self._terminal_key(terminal_id), since, "+inf", withscores=True)
            pipe.zrangebyscore(self._terminal_key(terminal_id) + ":fraud", since, "+inf")
        replies = iter(pipe.execute())
        found = Histories()
        for card_id in cards:
            rows = sorted((int(score), *member.rsplit("|", 1)) for member, score in next(replies))
            found.cards[card_id] = CardHistory(
                times=[ts for ts, _, _ in rows],
                ids=[tx for _, tx, _ in rows],
                amounts=[float(a) for _, _, a in rows],
            )
        for terminal_id in terminals:
            keys = sorted((int(score), member) for member, score in next(replies))
            found.terminals[terminal_id] = TerminalHistory(
                times=[ts for ts, _ in keys], ids=[tx for _, tx in keys], frauds=set(next(replies))
            )
        return found

    def commit(self, histories: Histories) -> None:
        if not histories.added:
            return
        pipe = self.client.pipeline(transaction=False)
        latest_card: dict[str, int] = {}
        latest_terminal: dict[str, int] = {}
        ttl = max(1, self.spec.terminal_retention_us // MICROS_PER_SECOND)
        for event in histories.added:
            if event.card_id is not None:
                member = f"{event.transaction_id}|{event.amount!r}"
                pipe.zadd(self._card_key(event.card_id), {member: event.ts_us})
                latest_card[event.card_id] = max(latest_card.get(event.card_id, 0), event.ts_us)
            if event.terminal_id is not None:
                key = self._terminal_key(event.terminal_id)
                pipe.zadd(key, {event.transaction_id: event.ts_us})
                pipe.set(
                    self._tx_key(event.transaction_id), f"{event.ts_us}|{event.terminal_id}", ex=ttl
                )
                latest_terminal[event.terminal_id] = max(
                    latest_terminal.get(event.terminal_id, 0), event.ts_us
                )
        card_ttl = max(1, self.spec.card_retention_us // MICROS_PER_SECOND)
        for card_id, latest in latest_card.items():
            cut = latest - self.spec.card_retention_us
            key = self._card_key(card_id)
            pipe.zremrangebyscore(key, "-inf", f"({cut}")
            pipe.expire(key, card_ttl)
        for terminal_id, latest in latest_terminal.items():
            cut = latest - self.spec.terminal_retention_us
            key = self._terminal_key(terminal_id)
            pipe.zremrangebyscore(key, "-inf", f"({cut}")
            pipe.zremrangebyscore(key + ":fraud", "-inf", f"({cut}")
            pipe.expire(key, ttl)
        pipe.execute()

    def record_labels(self, labels: Iterable[tuple[str, int]]) -> int:
        labels = list(labels)
        if not labels:
            return 0
        ttl = max(1, self.spec.terminal_retention_us // MICROS_PER_SECOND)
        located = self.client.mget([self._tx_key(tx) for tx, _ in labels])
        pipe = self.client.pipeline(transaction=False)
        known = 0
        for (transaction_id, is_fraud), where in zip(labels, located, strict=True):
            if where is None:
                continue
            known += 1
            ts, terminal_id = where.split("|", 1)
            key = self._terminal_key(terminal_id) + ":fraud"
            if is_fraud:
                pipe.zadd(key, {transaction_id: int(ts)})
                pipe.expire(key, ttl)
            else:
                pipe.zrem(key, transaction_id)
        pipe.execute()
        return known
