"""Start-up: what a Python process of fraud-ray costs before it does any work, with and without
compiled bytecode.

Every Ray worker, Serve replica, Tune trial and Ray Train worker is a fresh Python process that
imports Ray, pandas, scikit-learn and a booster library. Where ``PYTHONDONTWRITEBYTECODE`` is set
(this machine, and many container images) and the environment was installed without compiling
bytecode (uv's default), each of them compiles those libraries from source as it starts. The
"no bytecode" rows stand that in by pointing ``PYTHONPYCACHEPREFIX`` at an empty folder with
writing turned off (which also leaves the standard library uncompiled, a few tenths of a second
more than an environment without its own bytecode); the other rows use the environment as
``make install`` leaves it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from report import write_section

MODULES = ("fraud_ray.serving.graph", "fraud_ray.training.distributed")

FIT = """
import json, time
import numpy as np, pandas as pd, ray, ray.data
t0 = time.perf_counter()
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
from fraud_ray.schema import LABEL
from fraud_ray.settings import TrainingSettings
from fraud_ray.training.distributed import train_model
started = time.perf_counter() - t0

def frame(rows, seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, 4))
    data = pd.DataFrame(values, columns=["a", "b", "c", "d"])
    data[LABEL] = (values[:, 0] + 0.5 * values[:, 1] > 1.9).astype("int8")
    return data

fits = []
for _ in range(2):
    t = time.perf_counter()
    train_model(
        ray.data.from_pandas(frame(3000, 1)), ray.data.from_pandas(frame(1500, 2)),
        ["a", "b", "c", "d"], "xgboost", {"learning_rate": 0.3},
        TrainingSettings(num_workers=2, num_boost_round=60, early_stopping_rounds=4),
        storage_path=STORAGE,
    )
    fits.append(time.perf_counter() - t)
print("FIGURES " + json.dumps({"ray_init": started, "fits": fits}))
"""


def environment(compiled: bool, empty: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "RAY_AUTH_MODE": "disabled"}
    if not compiled:
        env["PYTHONPYCACHEPREFIX"] = empty
    else:
        env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def import_seconds(module: str, env: dict[str, str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], env=env, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fit_seconds(env: dict[str, str], storage: str) -> dict:
    code = FIT.replace("STORAGE", repr(storage))
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    (line,) = [row for row in done.stdout.splitlines() if row.startswith("FIGURES ")]
    return json.loads(line.removeprefix("FIGURES "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="imports timed per module")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as empty, tempfile.TemporaryDirectory() as storage:
        for compiled in (True, False):
            env = environment(compiled, empty)
            label = "compiled bytecode" if compiled else "no bytecode"
            imports = [import_seconds(m, env, args.rounds) for m in MODULES]
            fit = fit_seconds(env, storage)
            rows.append((label, imports, fit))
            print(label, imports, fit, flush=True)
    table = [
        "| environment | "
        + " | ".join(f"`import {m}` (s)" for m in MODULES)
        + " | `ray.init` (s) | two-worker Ray Train fit, first (s) | second (s) |",
        "|---" * (len(MODULES) + 4) + "|",
    ]
    for label, imports, fit in rows:
        cells = [f"{s:.1f}" for s in imports] + [f"{fit['ray_init']:.1f}"]
        cells += [f"{s:.1f}" for s in fit["fits"]]
        table.append(f"| {label} | " + " | ".join(cells) + " |")
    body = "\n".join(
        [
            "## Start-up: a fresh process, with and without compiled bytecode",
            "",
            "Each import is a fresh `python -c` (median of "
            f"{args.rounds}); the fit is `train_model` with two Ray Train workers on 3,000 rows, "
            "twice in one Ray session, each fit starting its own controller and worker group. "
            "`make install` compiles bytecode (`uv pip install --compile-bytecode`); the "
            '"no bytecode" row is what every process paid before, with '
            "`PYTHONDONTWRITEBYTECODE=1` set as it is on this machine.",
            "",
            *table,
            "",
            f"The machine's 1-minute load average when the run started was {load:.2f} on "
            f"{os.cpu_count()} cores.",
        ]
    )
    write_section("startup", body)


if __name__ == "__main__":
    main()
