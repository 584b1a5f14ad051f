"""The replay lookup: concurrent requests share the log's queries, and a slow log holds nobody."""

from __future__ import annotations

import asyncio
import threading

from fraud_ray.serving.replay import ReplayLookup


class Log:
    """A decision log that knows the ids starting with ``old-``, records each query, and can be
    told to hold queries until released (as a log that hangs does)."""

    def __init__(self) -> None:
        self.queries: list[list[str]] = []
        self.release = threading.Event()
        self.release.set()
        self.fail = False

    def logged(self, ids: list[str]) -> dict[str, str]:
        self.queries.append(ids)
        self.release.wait(timeout=5)
        if self.fail:
            raise ConnectionError("the database is away")
        return {tx: f"decision of {tx}" for tx in ids if tx.startswith("old-")}


def test_requests_arriving_during_a_lookup_share_the_next_one_and_none_goes_unchecked() -> None:
    log = Log()

    async def scenario() -> list[dict[str, str]]:
        lookup = ReplayLookup(log.logged, timeout_s=5)
        log.release.clear()
        first = asyncio.create_task(lookup.find(["new-0"]))
        await asyncio.sleep(0.05)  # the first query is running in its thread
        others = [asyncio.create_task(lookup.find([f"new-{i}", f"old-{i}"])) for i in range(1, 9)]
        await asyncio.sleep(0.05)
        log.release.set()
        return await asyncio.gather(first, *others)

    found = asyncio.run(scenario())

    assert found[0] == {}
    assert found[1:] == [{f"old-{i}": f"decision of old-{i}"} for i in range(1, 9)]
    assert len(log.queries) == 2, "the eight waiting requests are one query"
    assert sorted(log.queries[1]) == sorted(
        [f"new-{i}" for i in range(1, 9)] + [f"old-{i}" for i in range(1, 9)]
    )


def test_a_hanging_log_costs_a_request_the_timeout_and_the_next_ones_nothing() -> None:
    log = Log()

    async def scenario() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        lookup = ReplayLookup(log.logged, timeout_s=0.1)
        log.release.clear()
        timed_out = await lookup.find(["old-1"])
        during = await lookup.find(["old-2"])
        log.release.set()
        while lookup.running:
            await asyncio.sleep(0.01)
        return timed_out, during, await lookup.find(["old-3"])

    timed_out, during, after = asyncio.run(scenario())

    assert timed_out == {} and during == {}
    assert log.queries == [["old-1"], ["old-3"]], (
        "a request arriving while the log hangs is not queued behind it; once the log answers, "
        "it is asked again"
    )
    assert after == {"old-3": "decision of old-3"}


def test_a_log_that_fails_answers_nothing_and_is_asked_again() -> None:
    log = Log()

    async def scenario() -> tuple[dict[str, str], dict[str, str]]:
        lookup = ReplayLookup(log.logged, timeout_s=1)
        log.fail = True
        failed = await lookup.find(["old-1"])
        log.fail = False
        return failed, await lookup.find(["old-1"])

    failed, recovered = asyncio.run(scenario())

    assert failed == {}
    assert recovered == {"old-1": "decision of old-1"}
    assert len(log.queries) == 2
