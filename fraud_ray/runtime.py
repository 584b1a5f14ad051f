"""Joining or starting Ray: the one place the library touches ``ray.init``.

The same commands run on a laptop (a local Ray started here) and on a cluster (``ray.address``
set to ``auto`` or a ``ray://`` URL), so nothing else in the code knows which it is.
"""

from __future__ import annotations

import os

import ray
import ray.data
from ray.data.context import ShuffleStrategy

from fraud_ray.settings import RaySettings, Settings


def init_ray(settings: Settings) -> None:
    configure_data(settings.ray)
    if ray.is_initialized():
        return
    address = settings.ray.address or os.environ.get("RAY_ADDRESS")
    if address is None:
        # A private single-machine cluster needs no tokens; Ray 2.60 asks for one by default.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address=address, include_dashboard=False, log_to_driver=True)


def configure_data(settings: RaySettings) -> None:
    """Ray Data defaults that cost minutes on two cores (docs/benchmarks.md has the figures).

    The V2 Parquet reader starts a pool of footer-reading actors for every read, and the default
    shuffle starts aggregator actors; on a small machine both spend longer starting than working.
    Hundreds of tiny read blocks (one per simulated day) multiply per-task overhead.
    """
    context = ray.data.DataContext.get_current()
    context.use_datasource_v2 = settings.parquet_reader_v2
    context.shuffle_strategy = ShuffleStrategy(settings.shuffle)
    context.read_op_min_num_blocks = settings.read_min_blocks
