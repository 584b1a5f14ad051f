"""Scale-out on two Ray nodes: distributed XGBoost, one worker on each, and the Serve graph and the
Kafka pool spread over both, sharing the features in Redis and the decision log in PostgreSQL.

A process joins one Ray at a time, so these tests shut down the session's local Ray (if another
test started it) and connect to a two-node cluster of their own; the next test that asks for
``ray_session`` starts the local one again.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import ray
import ray.data
import sqlalchemy as sa
from ray import serve
from ray.cluster_utils import Cluster
from sklearn.metrics import average_precision_score

from fraud_ray.decision_log import DecisionLog, decisions_table
from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.features.offline import card_features, transaction_features
from fraud_ray.model import FraudModel
from fraud_ray.schema import LABEL, TIMESTAMP, TRANSACTION_ID
from fraud_ray.serving.graph import build_graph
from fraud_ray.settings import TrainingSettings
from fraud_ray.streaming.pool import ConsumerPool
from fraud_ray.training.distributed import train_model

from ..conftest import free_port
from .conftest import KafkaBroker
from .test_streaming import (
    DEADLINE_S,
    Served,
    assert_nothing_lost,
    produce_transactions,
    stream_for,
    transactions,
    wait_until_consumed,
)

FEATURES = ["signal", "noise"]


def synthetic(rows: int, seed: int) -> pd.DataFrame:
    """About 7% fraud, decided by one of the two features."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 2)), columns=FEATURES)
    frame[LABEL] = (frame["signal"] + rng.normal(scale=0.3, size=rows) > 1.5).astype("int8")
    return frame


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[Cluster]:
    """A head and a worker node with one CPU each, so two training workers cannot share a node;
    one cluster for the module, since starting one is most of a test's time."""
    if ray.is_initialized():
        ray.shutdown()
    os.environ["RAY_AUTH_MODE"] = "disabled"  # Ray 2.60 turns token auth on by default
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        ray.data.DataContext.get_current().enable_progress_bars = False
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_xgboost_workers_train_together_on_both_nodes(two_nodes: Cluster, tmp_path: Path) -> None:
    train, validation, test = synthetic(2000, 5), synthetic(1000, 6), synthetic(1000, 7)
    settings = TrainingSettings(num_workers=2, num_boost_round=5, early_stopping_rounds=50)
    model = train_model(
        ray.data.from_pandas(train),
        ray.data.from_pandas(validation),
        FEATURES,
        "xgboost",
        {"max_depth": 3},
        settings,
        storage_path=str(tmp_path),
    )

    nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    assert len(nodes) == 2
    assert {run.node_id for run in model.workers} == nodes
    assert all(run.world_size == 2 for run in model.workers)  # one Rabit collective, not two
    assert model.rounds == settings.num_boost_round  # no early stop: the round cap holds
    assert average_precision_score(test[LABEL], model.predict_raw(test)) > 0.5


# Enough batches (of BATCH_SIZE) that each consumer's cards pass through both FeatureStep
# replicas many times over.
TRANSACTIONS = 3000
BATCH_SIZE = 100
PARTITIONS = 4
# Serve names each replica's actor so: SERVE_REPLICA::<app>#<deployment>#<replica id>.
REPLICA_ACTOR = "SERVE_REPLICA::{app}#{deployment}#"
REQUESTS_SERVED = re.compile(
    r'^ray_serve_deployment_request_counter_total\{.*application="(?P<app>[^"]*)".*'
    r'deployment="(?P<deployment>[^"]*)".*replica="(?P<replica>[^"]*)".*\} (?P<count>\S+)$'
)


@pytest.fixture
def graph_on_two_nodes(
    two_nodes: Cluster,
    training_run: tuple,
    kafka_broker: KafkaBroker,
    postgres_url: str,
    redis_url: str,
) -> Iterator[Served]:
    """The graph with two FeatureStep and two Scorer replicas, at most one of each per node, the
    features in Redis (a prefix of this test's own) and the decision log in PostgreSQL.

    CPUs are cut so that a node's share of everything (a replica of each step, the ingress and
    decision step, one consumer) fits in its one CPU. HTTP is served on the head node only: two
    proxies on one machine would want the same port.
    """
    settings, _ = training_run
    settings = settings.updated(
        {
            "features": {"backend": "redis"},
            "redis": {"url": redis_url, "prefix": f"two-nodes-{uuid.uuid4().hex[:8]}"},
            "decisions": {"url": postgres_url},
            "kafka": {
                "bootstrap": kafka_broker.bootstrap,
                "pool_size": 2,
                "consumer_cpus": 0.2,
                "batch_size": BATCH_SIZE,
            },
            "serving": {
                "feature_replicas": 2,
                "scorer_replicas": 2,
                "max_replicas_per_node": 1,
                "ingress_cpus": 0.2,
                "feature_cpus": 0.2,
                "scorer_cpus": 0.2,
                "decision_cpus": 0.1,
            },
            "monitoring": {"drift_check_s": None},
        }
    )
    port = free_port()
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(build_graph(settings), name=settings.serving.app_name, route_prefix="/")
        yield Served(f"http://127.0.0.1:{port}", settings)
    finally:
        serve.shutdown()


def node_of(actor: ray.actor.ActorHandle) -> str:
    """The node the actor runs on, as the actor itself sees it. A lambda, which travels by value:
    a function of this module would have the actor import the module, and with it the tests'
    imports, which took 20 s a process on a loaded machine."""
    return ray.get(
        actor.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id()), timeout=60
    )


def replica_nodes(app: str, deployment: str) -> dict[str, str]:
    """Each live replica of the deployment (by replica id) and the node it runs on."""
    prefix = REPLICA_ACTOR.format(app=app, deployment=deployment)
    return {
        actor["name"].removeprefix(prefix): node_of(
            ray.get_actor(actor["name"], namespace=actor["namespace"])
        )
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["name"].startswith(prefix)
    }


def requests_served(app: str) -> dict[tuple[str, str], float]:
    """Requests each replica of the app has finished, by (deployment, replica id): Serve's own
    counter, which each node's metrics agent exports for the replicas on that node."""
    served: dict[tuple[str, str], float] = {}
    for node in ray.nodes():
        if not node["Alive"]:
            continue
        text = httpx.get(f"http://127.0.0.1:{node['MetricsExportPort']}/metrics", timeout=30).text
        for line in text.splitlines():
            found = REQUESTS_SERVED.match(line)
            if found and found["app"] == app:
                key = (found["deployment"], found["replica"])
                served[key] = served.get(key, 0.0) + float(found["count"])
    return served


def wait_for_assignment(pool: ConsumerPool, partitions: int) -> None:
    """Until every consumer holds partitions and together they hold them all: the group is
    settled before the first message, so no rebalance moves a partition mid-stream."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        assigned = [stats.assigned for stats in pool.stats()]
        if all(assigned) and len({p for held in assigned for p in held}) == partitions:
            return
        assert time.monotonic() < deadline, f"the group did not settle: {assigned}"
        time.sleep(0.5)


def logged_features(log_url: str, prefix: str, names: list[str]) -> pd.DataFrame:
    """The features the decision log keeps for each of the prefix's transactions (NaN for the
    nulls JSON holds instead)."""
    log = DecisionLog(log_url)
    try:
        with log.engine.connect() as connection:
            column = decisions_table.c[TRANSACTION_ID]
            rows = connection.execute(
                sa.select(column, decisions_table.c.features).where(column.like(f"{prefix}-%"))
            ).all()
    finally:
        log.close()
    return pd.DataFrame(
        [features for _, features in rows], index=[tx for tx, _ in rows], columns=names
    ).astype("float64")


def single_process_features(sent: list[dict], spec: FeatureSpec) -> pd.DataFrame:
    """What one process computes for the transactions' own and their cards' features."""
    frame = pd.DataFrame(sent)
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
    features = pd.concat([transaction_features(frame, spec), card_features(frame, spec)], axis=1)
    return features.set_axis(frame[TRANSACTION_ID])


def test_the_graph_and_the_pool_spread_over_two_nodes_and_lose_nothing(
    graph_on_two_nodes: Served, champion: FraudModel
) -> None:
    """Every transaction decided, logged and produced once, the group committed to the end, the
    replicas and consumers on both nodes and each of them working, and each card's features what
    one process would compute.

    A card's transactions are all in one partition, so one consumer sends them in order; its
    batches go to either FeatureStep replica. A replica that kept its own history would miss
    what the other node's replica recorded, and the card's counts and averages would come out
    short. Terminal features are left out: a terminal's transactions come from both consumers,
    whose batches interleave in no fixed order.
    """
    served = graph_on_two_nodes
    app = served.settings.serving.app_name
    nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    assert len(nodes) == 2
    stream = stream_for(served, partitions=PARTITIONS)
    sent = transactions(stream.prefix, TRANSACTIONS, cards=150, seed=16)
    pool = ConsumerPool(stream.settings)
    pool.start()
    try:
        wait_for_assignment(pool, PARTITIONS)
        produce_transactions(stream, sent)
        wait_until_consumed(stream)
        consumer_nodes = [node_of(actor) for actor in pool.actors]
    finally:
        final = pool.stop()

    decisions = assert_nothing_lost(stream, sent, served.settings.decisions.url)
    assert len(decisions) == len(sent), "one decision message per transaction, none twice"
    assert sorted(consumer_nodes) == sorted(nodes)
    assert all(stats.decided > 0 for stats in final), [stats.decided for stats in final]
    assert sum(stats.decided for stats in final) == len(sent)

    replicas = {step: replica_nodes(app, step) for step in ("FeatureStep", "Scorer")}
    for step, placed in replicas.items():
        assert sorted(placed.values()) == sorted(nodes), f"{step} replicas on {placed}"
    wanted = {(step, replica) for step, placed in replicas.items() for replica in placed}
    deadline = time.monotonic() + DEADLINE_S
    while not wanted <= {key for key, count in requests_served(app).items() if count > 0}:
        # Each agent exports every ten seconds or so: wait for it, do not time it.
        assert time.monotonic() < deadline, f"not every replica served: {requests_served(app)}"
        time.sleep(2)

    spec = champion.spec
    expected = single_process_features(sent, spec)
    got = logged_features(served.settings.decisions.url, stream.prefix, list(expected.columns))
    got = got.loc[expected.index]
    assert expected["card_tx_count_1d"].max() >= 10, "cards with a history to count"
    mismatched = ~np.isclose(got, expected, rtol=1e-9, atol=0, equal_nan=True)
    wrong = sorted({expected.columns[column] for column in np.nonzero(mismatched)[1]})
    assert not wrong, f"{mismatched.sum()} values differ from one process's in {wrong}"
