"""A decide function called the way the pool's handle calls the graph, for the loop's tests."""

from __future__ import annotations

from collections.abc import Callable

from fraud_ray.schema import DecisionRecord, Transaction

Decide = Callable[[list[Transaction]], list[DecisionRecord]]


def eagerly(decide: Decide) -> Callable[[list[Transaction]], Callable[[], list[DecisionRecord]]]:
    """The graph called when a batch is sent, as the pool's handle does; its answer or its
    failure comes when the loop waits for it."""

    def start(transactions: list[Transaction]) -> Callable[[], list[DecisionRecord]]:
        try:
            decisions = decide(transactions)
        except Exception as error:
            failure = error

            def failed() -> list[DecisionRecord]:
                raise failure

            return failed
        return lambda: decisions

    return start
