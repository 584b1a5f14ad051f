"""The ingestion pool: Ray actors, one Kafka consumer each, all in one group, feeding the Serve graph.

Each ``Consumer`` runs a ``StreamLoop`` on a thread of its own, so the actor still answers
``stats`` and ``drain`` while it consumes. Ray restarts an actor that dies (``max_restarts=-1``):
the new one joins the group again and resumes from the committed offsets, so a crash costs a replay,
never a transaction. The ``ConsumerPool`` on the driver starts, resizes and drains them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

# By module, not by name: Ray pickles the actor class by value, and cloudpickle then mistakes
# an imported class named Consumer for the actor class of the same name.
import confluent_kafka
import ray
from ray import serve
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayError, RayTaskError
from ray.serve.exceptions import RayServeException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from fraud_ray.decision_log import DecisionLog, feature_maps
from fraud_ray.schema import DecisionRecord, Transaction
from fraud_ray.serving.columns import Columns
from fraud_ray.settings import Settings
from fraud_ray.streaming.clients import consumer_config, producer_config
from fraud_ray.streaming.loop import LoopStats, StreamLoop, Unavailable
from fraud_ray.streaming.telemetry import PoolMetrics

logger = logging.getLogger(__name__)


# A consumer calls the graph's handle from its own thread, outside any event loop: that needs the
# handle's router in a loop of its own, which RAY_SERVE_THROUGHPUT_OPTIMIZED=1 turns off for
# every process of the cluster (and `make serve` sets it). Measured: without this every batch
# failed with "No event loop running".
CONSUMER_ENV = {"env_vars": {"RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "1"}}
# How long a starting consumer waits to reach the graph before it joins the group anyway: a graph
# that is away holds up its first batch, not the pool's start.
WARM_UP_TIMEOUT_S = 10.0


@ray.remote(max_restarts=-1, max_task_retries=0)
class Consumer:
    """One member of the consumer group, in pool slot ``slot``."""

    def __init__(self, settings: Settings, slot: int) -> None:
        kafka = settings.kafka
        self.slot = slot
        self.consumer = confluent_kafka.Consumer(consumer_config(kafka))
        self.producer = confluent_kafka.Producer(producer_config(kafka, slot))
        if kafka.exactly_once:
            self.producer.init_transactions(kafka.delivery_timeout_s)
        self.graph = serve.get_app_handle(settings.serving.app_name)
        self.log = DecisionLog(settings.decisions.url)
        max_future = settings.serving.max_future_s
        self.loop = StreamLoop(
            self.consumer,
            self.producer,
            self._decide,
            self._write_log,
            self._look_up_log,
            kafka,
            PoolMetrics(kafka.group, slot),
            max_future=None if max_future is None else timedelta(seconds=max_future),
            start_decide=self._start_decide,
            overlap=kafka.overlap,
        )
        self.timeout_s = kafka.graph_timeout_s
        self._features: list[dict[str, float]] | None = None
        self._warm_up()
        self.consumer.subscribe([kafka.transactions_topic])
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"consumer-{slot}", daemon=True)
        self._thread.start()

    def _warm_up(self) -> None:
        """Reach the graph and the log once before joining the group.

        A handle routes nothing until its router has learnt the graph's replicas from the
        controller and connected to one, and the log opens its connection on first use: done on
        the first batch, that wait holds up every partition the consumer was just given, and a
        paced stream starts behind. Done here, the group waits for none of it. Neither service
        needs to be up yet: a batch that finds one away is retried like any other.
        """
        try:
            with graph_errors():
                self.graph.health.remote().result(timeout_s=WARM_UP_TIMEOUT_S)
            with log_errors():
                self.log.logged([])
        except Exception as error:  # warming up is an optimisation, never a reason not to start
            logger.warning("consumer %d could not warm up: %s", self.slot, error)

    def _decide(self, transactions: list[Transaction]) -> list[DecisionRecord]:
        return self._start_decide(transactions)()

    def _start_decide(self, transactions: list[Transaction]) -> Callable[[], list[DecisionRecord]]:
        """Send the batch to the graph; the wait returns its decisions, and keeps their
        features for the log (drift reads them) until the loop's write of the same batch, which
        always follows the wait before the next one."""
        with graph_errors():
            response = self.graph.decide_for_log.remote(Columns.of(transactions))

        def wait() -> list[DecisionRecord]:
            with graph_errors():
                decisions, names, rows = response.result(timeout_s=self.timeout_s)
            self._features = feature_maps(names, rows)
            return decisions

        return wait

    def _write_log(self, decisions: list[DecisionRecord], transactions: list[Transaction]) -> int:
        features, self._features = self._features, None
        with log_errors():
            return self.log.write(decisions, transactions, features)

    def _look_up_log(self, transaction_ids: list[str]) -> Mapping[str, DecisionRecord]:
        with log_errors():
            return self.log.logged(transaction_ids)

    def _run(self) -> None:
        try:
            self.loop.run(self._stopping.is_set)
            self.producer.flush(self.loop.settings.delivery_timeout_s)
            self.consumer.close()
            self.log.close()
        except BaseException:
            # The loop is the actor's whole job; a loop that died would leave a live actor holding
            # partitions it never reads. Ending the process lets Ray restart it from the commit.
            logger.exception("consumer %d failed; exiting so that Ray restarts it", self.slot)
            os._exit(1)
        finally:
            self._stopped.set()

    def ready(self) -> int:
        return self.slot

    def stats(self) -> LoopStats:
        return self.loop.stats

    def drain(self, timeout_s: float) -> LoopStats:
        """Stop polling, finish and commit the batch in hand, leave the group, close."""
        self._stopping.set()
        if not self._stopped.wait(timeout_s):
            raise TimeoutError(f"consumer {self.slot} did not drain within {timeout_s} s")
        return self.loop.stats


# Causes, inside a replica, that say a service behind the graph is away rather than anything about
# the batch: a deployment it calls died or is late, Redis (the feature state) is unreachable.
AWAY_IN_THE_GRAPH: tuple[type[BaseException], ...] = (
    RayError,
    RayServeException,
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
)


@contextmanager
def graph_errors() -> Iterator[None]:
    """The graph's failures that mean "away" (a replica or actor dead, restarting, or late, the
    feature state unreachable) as ``Unavailable``. Any other exception raised by a replica's own
    code comes as a ``RayTaskError`` that is also an instance of its cause: it says something
    about the batch, and stays as it is."""
    try:
        yield
    except RayTaskError as error:
        if isinstance(error.cause, AWAY_IN_THE_GRAPH):
            cause = error.cause
            raise Unavailable(f"the Serve graph: {type(cause).__name__}: {cause}") from error
        raise
    except (RayError, RayServeException) as error:
        raise Unavailable(f"the Serve graph: {type(error).__name__}: {error}") from error


@contextmanager
def log_errors() -> Iterator[None]:
    """The decision log's failures that mean "unreachable" as ``Unavailable``; the others (a
    value the database refuses) say something about the batch and stay as they are."""
    try:
        yield
    except (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError) as error:
        cause = getattr(error, "orig", None) or error
        raise Unavailable(f"the decision log: {cause}") from error


class ConsumerPool:
    """N ``Consumer`` actors in slots 0..N-1; ``resize`` adds or drains the highest slots."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.with_absolute_paths()
        self.actors: list[Any] = []

    @property
    def size(self) -> int:
        return len(self.actors)

    def start(self, size: int | None = None) -> None:
        self.resize(self.settings.kafka.pool_size if size is None else size)

    def resize(self, size: int) -> list[LoopStats]:
        """Start consumers in the new slots, or drain those past ``size``; returns the drained
        consumers' final stats."""
        if size < 0:
            raise ValueError(f"a pool has 0 or more consumers, not {size}")
        kafka = self.settings.kafka
        added = [
            Consumer.options(  # type: ignore[attr-defined]
                num_cpus=kafka.consumer_cpus,
                runtime_env=CONSUMER_ENV,
                scheduling_strategy="SPREAD" if kafka.spread_consumers else "DEFAULT",
            ).remote(self.settings, slot)
            for slot in range(len(self.actors), size)
        ]
        leaving = self.actors[size:]
        self.actors = self.actors[:size]
        self._wait_started(added)
        self.actors += added
        # All asked at once, so the consumers finish their batches side by side.
        asked = [actor.drain.remote(kafka.drain_timeout_s) for actor in leaving]
        try:
            return [self._drain(actor, ref) for actor, ref in zip(leaving, asked, strict=True)]
        finally:
            # Even when one did not drain in time: a consumer left alive would go on reading
            # and holding its CPUs and partitions after the pool let it go.
            for actor in leaving:
                ray.kill(actor, no_restart=True)

    def _wait_started(self, added: list[Any]) -> None:
        """Wait for new consumers to be placed and warmed up; on ``kafka.start_timeout_s``,
        end them and say why, rather than wait for ever for CPUs no node has."""
        kafka = self.settings.kafka
        try:
            ray.get([actor.ready.remote() for actor in added], timeout=kafka.start_timeout_s)
        except GetTimeoutError:
            for actor in added:
                ray.kill(actor, no_restart=True)
            raise PoolNotStarted(
                f"{len(added)} new consumers did not start within {kafka.start_timeout_s} s "
                f"(kafka.start_timeout_s): each needs {kafka.consumer_cpus} free CPUs "
                "(kafka.consumer_cpus) on a node of the cluster"
            ) from None

    def _drain(self, actor: Any, asked: Any) -> LoopStats:
        """The drained consumer's stats; one that Ray is restarting is asked again until it is
        back, since it may hold partitions and must leave the group cleanly like the others."""
        kafka = self.settings.kafka
        deadline = time.monotonic() + kafka.drain_timeout_s
        while True:
            try:
                return ray.get(asked)
            except ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(kafka.retry_backoff_s)
                asked = actor.drain.remote(kafka.drain_timeout_s)

    def stats(self) -> list[LoopStats]:
        return ray.get([actor.stats.remote() for actor in self.actors])

    def stop(self) -> list[LoopStats]:
        """Drain every consumer: each finishes and commits its batch before it goes."""
        return self.resize(0)


def run_until_signalled(
    settings: Settings,
    report: Callable[[list[LoopStats]], None],
    report_every_s: float,
) -> list[LoopStats]:
    """Run a pool until SIGTERM or SIGINT, then drain it: every batch in hand is finished and
    committed before the consumers leave. ``report`` gets the consumers' stats now and then."""
    graph = settings.serving.app_name
    try:
        serve.get_app_handle(graph)
    except RayServeException as error:
        raise GraphNotRunning(
            f"no Serve application {graph!r} in this Ray cluster ({error}); start it first: "
            "serve run serve_app:graph"
        ) from None
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    pool = ConsumerPool(settings)
    try:
        pool.start()
        while not stop.wait(report_every_s):
            report(pool.stats())
    finally:
        final = pool.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return final


class GraphNotRunning(RuntimeError):
    """The Serve application the pool would feed is not there."""


class PoolNotStarted(RuntimeError):
    """New consumers could not be placed on the cluster in time."""
