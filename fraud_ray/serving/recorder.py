"""What the graph decided, written to the decision log off the request path, and what a challenger
would have decided, scored in shadow on the same feature rows.

Writing one row per request would put a database round trip on every answer; the ingress hands
each answered batch to a ``DecisionRecorder`` instead and flushes it every
``serving.record_flush_s`` in one write. The challenger is scored at flush time, on all the rows
gathered since the last flush: one model call, never on the request path, so shadow scoring cannot
change or delay a returned decision.

HTTP answers are logged here. The streaming pool logs its own decisions before it commits offsets
(its guarantee), so for its batches the recorder only scores the challenger. Until a decision is
written, the recorder is where it can be found (``answered``): a transaction sent again within
the flush interval gets the same answer as one sent again later, which the log gives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from fraud_ray.decision_log import DecisionLog, feature_maps
from fraud_ray.schema import DecisionRecord, Transaction
from fraud_ray.serving.pipeline import ServingModel, decision_records

logger = logging.getLogger(__name__)


@dataclass
class Pending:
    """Answered batches since the last flush: each decision with its amount (the challenger's
    costs need it) and, when the recorder logs it, its transaction."""

    decisions: list[DecisionRecord] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    amounts: list[float] = field(default_factory=list)
    transactions: list[Transaction | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.decisions)


@dataclass(frozen=True)
class Flushed:
    logged: int
    shadowed: int


class DecisionRecorder:
    """Buffers answered batches; ``flush`` writes them and the challenger's shadow decisions.

    ``max_pending`` bounds the memory a stalled database can take: beyond it the oldest unflushed
    HTTP decisions are dropped, and ``on_drop`` hears how many at once, on the event loop, so the
    alert on dropped decisions fires during an outage rather than after it (the caller already
    has its answer; streamed decisions are logged by the pool and never depend on this buffer).
    """

    def __init__(
        self,
        open_log: Callable[[], DecisionLog],
        names: Sequence[str],
        max_pending: int,
        on_drop: Callable[[int], None] = lambda count: None,
    ) -> None:
        self.open_log = open_log
        self.names = list(names)
        self.max_pending = max_pending
        self.on_drop = on_drop
        self.pending = Pending()
        # The decisions not yet written, pending or being flushed, by transaction id.
        self.unwritten: dict[str, DecisionRecord] = {}

    def add(
        self,
        decisions: list[DecisionRecord],
        rows: np.ndarray,
        amounts: Sequence[float],
        *,
        transactions: Sequence[Transaction] | None,
    ) -> None:
        """``transactions``: what the decisions are logged with; None when the caller logs them
        itself (the streaming pool), and the recorder only scores the challenger on them."""
        pending = self.pending
        pending.decisions.extend(decisions)
        pending.rows.append(rows)
        pending.amounts.extend(amounts)
        pending.transactions.extend(transactions or [None] * len(decisions))
        self.unwritten.update((decision["transaction_id"], decision) for decision in decisions)
        self._bound()

    def answered(self, transaction_ids: Sequence[str]) -> dict[str, DecisionRecord]:
        """The decisions answered but not yet written for any of these ids."""
        unwritten = self.unwritten
        return {tx: unwritten[tx] for tx in transaction_ids if tx in unwritten}

    def take(self) -> Pending:
        """Hand over what is pending (on the event loop, so no batch is half-taken)."""
        taken, self.pending = self.pending, Pending()
        return taken

    def written(self, pending: Pending) -> None:
        """``pending`` (from ``take``) was flushed: the log answers for its ids from now on."""
        for decision in pending.decisions:
            self.unwritten.pop(decision["transaction_id"], None)

    def restore(self, pending: Pending) -> None:
        """Put back a batch whose flush failed, ahead of what arrived since."""
        newer = self.pending
        self.pending = Pending(
            pending.decisions + newer.decisions,
            pending.rows + newer.rows,
            pending.amounts + newer.amounts,
            pending.transactions + newer.transactions,
        )
        self._bound()

    def flush(self, pending: Pending, shadow: ServingModel | None) -> Flushed:
        """Write ``pending`` (from ``take``); blocking, so the ingress runs it in a thread. It
        touches only ``pending``, never the recorder's own state, which the event loop owns."""
        if not pending:
            return Flushed(0, 0)
        rows = _stacked(pending.rows, self.names)
        log = self.open_log()
        keep = [i for i, transaction in enumerate(pending.transactions) if transaction is not None]
        logged = 0
        if keep:
            logged = log.write(
                [pending.decisions[i] for i in keep],
                [t for t in pending.transactions if t is not None],
                feature_maps(self.names, rows[keep]),
            )
        shadowed = 0
        if shadow is not None:
            shadowed = log.write_shadow(self._shadow_decisions(shadow, pending, rows))
        return Flushed(logged, shadowed)

    def _shadow_decisions(
        self, shadow: ServingModel, pending: Pending, rows: np.ndarray
    ) -> list[DecisionRecord]:
        """The challenger's decisions, by the same costs as the champion's; without reasons,
        which nobody reads in shadow."""
        probabilities = shadow.model.probabilities(rows)
        amounts = np.asarray(pending.amounts, dtype=np.float64)
        actions, costs = shadow.policy.decide(probabilities, amounts)
        return decision_records(
            [decision["transaction_id"] for decision in pending.decisions],
            probabilities,
            actions,
            costs,
            None,
            shadow.ref,
            shadow.policy,
            datetime.now(UTC),
            latency_ms=0.0,
        )

    def _bound(self) -> None:
        """Drop the oldest decisions beyond ``max_pending``: whole batches, and a slice of the
        first one kept, so a long outage never re-stacks every pending row on the event loop."""
        count = len(self.pending) - self.max_pending
        if count <= 0:
            return
        pending = self.pending
        rows, left = list(pending.rows), count
        while left and len(rows[0]) <= left:
            left -= len(rows.pop(0))
        if left:
            rows[0] = rows[0][left:]
        for decision in pending.decisions[:count]:
            self.unwritten.pop(decision["transaction_id"], None)
        self.pending = Pending(
            pending.decisions[count:],
            rows,
            pending.amounts[count:],
            pending.transactions[count:],
        )
        self.on_drop(count)
        logger.warning("decision log behind: %d answered decisions not logged", count)


def _stacked(rows: list[np.ndarray], names: Sequence[str]) -> np.ndarray:
    return np.vstack(rows) if rows else np.empty((0, len(names)))
