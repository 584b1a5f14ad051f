"""Time the data pipeline as a user runs it: `fraud-ray simulate` then `fraud-ray features`.

Both commands run as subprocesses, so the figures include start-up (and Ray's, for the features).
Goals (issue 2): the default simulation (5,000 customers, 10,000 terminals, 183 days) gives 1.5-2.0M
rows with 0.5-1.2% fraud in under 60 s, and its offline features take under 60 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from report import write_section

CLI = [sys.executable, "-m", "fraud_ray.cli"]


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--days", type=int, default=183)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        raw, features = Path(scratch) / "raw", Path(scratch) / "features"
        simulate = timed(
            [
                *CLI,
                "simulate",
                "--customers",
                str(options.customers),
                "--terminals",
                str(options.terminals),
                "--days",
                str(options.days),
                "--seed",
                str(options.seed),
                "--out",
                str(raw),
            ]
        )
        table = pq.read_table(raw, columns=["is_fraud"])
        rows, frauds = table.num_rows, int(table.column("is_fraud").to_numpy().sum())
        build = timed([*CLI, "features", "--data", str(raw), "--out", str(features)])
        feature_count = len(pq.read_schema(next(features.glob("*.parquet"))).names)
    simulate_command = (
        f"fraud-ray simulate --customers {options.customers} --terminals {options.terminals} "
        f"--days {options.days} --seed {options.seed}"
    )
    rows_text = f"{rows:,} ({frauds / rows:.2%} fraud)"
    body = "\n".join(
        [
            "## Data pipeline",
            "",
            "| step | command | rows | wall time (s) | goal |",
            "|---|---|---|---|---|",
            f"| simulate | `{simulate_command}` | {rows_text} | {simulate:.1f} "
            "| < 60 s, 1.5-2.0M rows, 0.5-1.2% fraud |",
            f"| offline features | `fraud-ray features` (Ray Data on a local 2-CPU Ray) "
            f"| {rows:,} x {feature_count} columns | {build:.1f} | < 60 s |",
            "",
            "Wall times are whole commands, Python and Ray start-up included.",
        ]
    )
    print(body)
    write_section("data_pipeline", body)


if __name__ == "__main__":
    main()
