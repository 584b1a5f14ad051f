"""The integration tests: Ray and real services, started by the fixtures here and in ``tests/conftest.py``.

Kafka and PostgreSQL come from ``scripts/kafka.sh`` and ``scripts/postgres.sh``, the same scripts a
developer runs by hand, so the tests exercise the way the services are really started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..conftest import free_port

HERE = Path(__file__).parent
SCRIPTS = HERE.parents[1] / "scripts"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this directory, so ``-m "not integration"`` skips them all."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def run_script(script: str, command: str, env: dict[str, str]) -> str:
    """Run one of ``scripts/``; its own message says what went wrong, so the test shows it whole."""
    result = subprocess.run(
        [str(SCRIPTS / script), command],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/{script} {command} failed:\n{result.stderr}{result.stdout}")
    return result.stdout


def distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


@dataclass
class OwnServer:
    """A server of ours, started by one of ``scripts/``, that a test may take down and bring back.

    A restart keeps the port and the data dir, as a production restart does, so what a test
    checks is that clients ride it out. ``env`` is what the script needs to find this server; an
    external one (named by an environment variable) has none and is not ours to stop.
    """

    address: str
    script: str = field(repr=False)
    env: dict[str, str] | None = field(default=None, repr=False)

    def start(self) -> None:
        run_script(self.script, "start", self._own_env())

    def stop(self) -> None:
        run_script(self.script, "stop", self._own_env())

    def ensure_running(self) -> None:
        """Start it again if a test before left it down (a fault it injected, then failed before
        the restart): one failure must not turn every later test into a wait for a dead server.
        An external server is not ours to start."""
        if self.env is not None:
            self.start()

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """Down for the body of the ``with``, and up again after it even if the body fails, so
        one failing test does not leave the rest of the session without the server."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def _own_env(self) -> dict[str, str]:
        if self.env is None:
            pytest.skip(
                f"the server at {self.address} was given, not started here: not ours to stop"
            )
        return self.env


class KafkaBroker(OwnServer):
    def __init__(self, bootstrap: str, env: dict[str, str] | None = None) -> None:
        super().__init__(bootstrap, "kafka.sh", env)

    @property
    def bootstrap(self) -> str:
        return self.address


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A real Kafka: ``FRAUD_RAY_KAFKA_BOOTSTRAP`` if set, else a private KRaft broker on free ports."""
    if bootstrap := os.environ.get("FRAUD_RAY_KAFKA_BOOTSTRAP"):
        yield KafkaBroker(bootstrap)
        return
    port, controller_port = distinct_free_ports(2)
    broker = KafkaBroker(
        f"127.0.0.1:{port}",
        {
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(controller_port),
            "KAFKA_DIR": str(tmp_path_factory.mktemp("kafka")),
        },
    )
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    """``bootstrap.servers`` of the session's Kafka, for tests that never restart it."""
    return kafka_broker.bootstrap


@pytest.fixture(scope="session")
def postgres() -> Iterator[OwnServer]:
    """A real PostgreSQL, its address a SQLAlchemy URL: ``FRAUD_RAY_TEST_POSTGRES_URL`` if set,
    else a private server on a free port with an empty ``fraud_ray`` database."""
    if url := os.environ.get("FRAUD_RAY_TEST_POSTGRES_URL"):
        yield OwnServer(url, "postgres.sh")
        return
    # As root the server runs as the user postgres, which cannot enter pytest's private temp
    # folders: the data dir gets a folder of its own directly under the system's temp dir.
    directory = Path(tempfile.mkdtemp(prefix="fraud-ray-postgres-"))
    env = {"POSTGRES_PORT": str(free_port()), "POSTGRES_DIR": str(directory)}
    try:
        output = run_script("postgres.sh", "start", env)
        yield OwnServer(output.strip().splitlines()[-1], "postgres.sh", env)
    finally:
        run_script("postgres.sh", "stop", env)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres: OwnServer) -> str:
    """The session's PostgreSQL as a SQLAlchemy URL, for tests that never stop it."""
    return postgres.address
