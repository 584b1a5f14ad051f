"""Distributed XGBoost really spreads over machines: two Ray nodes, one worker on each.

A process joins one Ray at a time, so this test shuts down the session's local Ray (if another
test started it) and connects to a two-node cluster of its own; the next test that asks for
``ray_session`` starts the local one again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
import ray.data
from ray.cluster_utils import Cluster
from sklearn.metrics import average_precision_score

from fraud_ray.schema import LABEL
from fraud_ray.settings import TrainingSettings
from fraud_ray.training.distributed import train_model

FEATURES = ["signal", "noise"]


def synthetic(rows: int, seed: int) -> pd.DataFrame:
    """About 7% fraud, decided by one of the two features."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 2)), columns=FEATURES)
    frame[LABEL] = (frame["signal"] + rng.normal(scale=0.3, size=rows) > 1.5).astype("int8")
    return frame


@pytest.fixture
def two_nodes() -> Iterator[Cluster]:
    """A head and a worker node with one CPU each, so two training workers cannot share a node."""
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
