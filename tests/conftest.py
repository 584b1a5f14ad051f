"""Fixtures for real services shared by the test directories: nothing here is a mock."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
import ray.data

from fraud_ray.model import FraudModel
from fraud_ray.registry import Registry
from fraud_ray.runtime import configure_data
from fraud_ray.settings import RaySettings, Settings, SimulatorSettings
from fraud_ray.simulator import write_simulation
from fraud_ray.training.job import train


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: ``FRAUD_RAY_REDIS_URL`` if set, else a private ``redis-server`` on loopback."""
    if url := os.environ.get("FRAUD_RAY_REDIS_URL"):
        yield url
        return
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail(
            "redis-server is not installed: run `apt-get install redis-server` (.ci/run does)"
        )
    port = free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def _ray_shutdown() -> Iterator[None]:
    yield
    ray.shutdown()


@pytest.fixture
def ray_session(_ray_shutdown: None) -> None:
    """One small local Ray for the whole session: starting Ray costs seconds, not milliseconds.

    Checked per test because a test that needs a cluster of its own (test_two_nodes.py) shuts
    this one down: the next test to ask for it starts it again.
    """
    ensure_ray()


@pytest.fixture(scope="module")
def ray_module(_ray_shutdown: None) -> None:
    """The same Ray, for module-scoped fixtures."""
    ensure_ray()


def ensure_ray() -> None:
    if ray.is_initialized():
        return
    os.environ["RAY_AUTH_MODE"] = "disabled"  # Ray 2.60 turns token auth on by default
    # With HAProxy (`make test` runs with `make serve`'s flags) an ingress replica stays 30 s after
    # it is told to stop, for load balancers elsewhere to notice; here nothing else routes to it.
    os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = "0"
    # HAProxy's stats and metrics ports are fixed (8404, 9101): a `make serve` running beside the
    # suite holds them, and the tests' Serve could not start its HAProxy.
    os.environ["RAY_SERVE_HAPROXY_STATS_PORT"] = str(free_port())
    os.environ["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(free_port())
    # A Ray of the tests' own, never one that another process on the machine started.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    configure_data(RaySettings())  # the Ray Data knobs production uses
    ray.data.DataContext.get_current().enable_progress_bars = False


def small_settings(root: Path, **training: object) -> Settings:
    """Settings that keep everything a test writes (registry, artifacts, Ray results) in ``root``."""
    return Settings(
        data={"raw_dir": root / "raw"},
        mlflow={
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "artifact_location": str(root / "artifacts"),
            "model_name": "fraud-test",
        },
        # The quickest layout, one fold and no refit; the job's own tests cover the default's.
        split={"train_days": 14, "layout": "after", "validation_folds": 1},
        training={"num_boost_round": 60, "families": ["xgboost"], "trials": 2, **training},
        decisions={"url": f"sqlite:///{root / 'decisions.db'}"},
    )


@pytest.fixture(scope="session")
def training_run(_ray_shutdown: None, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """One tuning run on a small simulation, shared by the training and the model tests: a run
    costs a minute or two on two cores."""
    ensure_ray()
    root = tmp_path_factory.mktemp("training")
    settings = small_settings(root)
    # Big enough for a 14-day training window to hold some twenty first purchases of new cards,
    # which the model must learn to take for the ordinary payments they mostly are.
    write_simulation(
        SimulatorSettings(customers=800, terminals=1600, days=90, compromised_cards_per_day=4),
        settings.data.raw_dir,
    )
    return settings, train(settings, settings.data.raw_dir, trials=2)


@pytest.fixture(scope="session")
def champion(training_run: tuple) -> FraudModel:
    """The model the training run registered as champion, loaded as serving loads it."""
    settings, _ = training_run
    return Registry(settings.mlflow).load("@champion")[0]
