"""Which transaction ids were decided before: one lookup in the log for every request waiting.

HTTP answers an id sent again (a client's retry, a replayed file) with the decision the log keeps,
so every request asks the log about its ids before it is decided. A request arriving while a
lookup runs joins the next one, which starts as soon as the current one returns: under load one
query serves many requests, and no request goes unchecked because another was being looked up.

A log that is away or slow must not hold requests: each waits at most ``timeout_s`` and is then
decided anew (the log, when it is back, keeps the first decision). Once a request has waited a
lookup out, the log counts as hanging, and requests do not wait for it at all until it returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

logger = logging.getLogger("ray.serve")

Found = TypeVar("Found")


class ReplayLookup(Generic[Found]):
    """Coalesces the ids of concurrent requests into rounds of ``fetch`` (blocking, run in a
    thread), one round at a time. Runs on one event loop, which owns its state."""

    def __init__(self, fetch: Callable[[list[str]], Mapping[str, Found]], timeout_s: float) -> None:
        self.fetch = fetch
        self.timeout_s = timeout_s
        self._queued: dict[str, None] = {}
        self._next: asyncio.Future[Mapping[str, Found]] | None = None
        self._running = False
        self._hung = False  # a request gave up on the running lookup
        self._task: asyncio.Task[None] | None = None  # held: the loop keeps only a weak reference

    async def find(self, ids: Iterable[str]) -> dict[str, Found]:
        """The earlier decisions of those of ``ids`` the log has; none if it did not say in time."""
        wanted = list(dict.fromkeys(ids))
        if not wanted or self._hung:
            return {}
        self._queued.update(dict.fromkeys(wanted))
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        round_ = self._next
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            found = await asyncio.wait_for(asyncio.shield(round_), self.timeout_s)
        except TimeoutError:
            self._hung = self._running
            logger.warning("the decision log did not say in time which ids were decided before")
            return {}
        except Exception as error:  # the log is away: decide, as without it
            logger.warning("could not look up earlier decisions: %s", error)
            return {}
        return {tx: found[tx] for tx in wanted if tx in found}

    @property
    def running(self) -> bool:
        """A query is in flight."""
        return self._running

    async def _run(self) -> None:
        """Rounds until no request is waiting: each takes every id queued so far."""
        while self._queued:
            assert self._next is not None
            ids, round_ = list(self._queued), self._next
            self._queued, self._next = {}, None
            self._running = True
            try:
                round_.set_result(await asyncio.to_thread(self.fetch, ids))
            except Exception as error:
                round_.set_exception(error)
                round_.exception()  # retrieved: a round nobody waits for any more is not an error
            finally:
                self._running = self._hung = False
