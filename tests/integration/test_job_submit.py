"""`ray job submit -- python tune.py --model-name NAME --challenger` against its own `ray start`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import ray

from fraud_ray.settings import SimulatorSettings
from fraud_ray.simulator import write_simulation

from ..conftest import free_port

REPO = Path(__file__).parents[2]
BIN = Path(sys.executable).parent


def test_tune_py_runs_as_a_job_and_registers_a_model(tmp_path: Path) -> None:
    ray.shutdown()  # this test's cluster is a separate `ray start` head on loopback
    raw = tmp_path / "raw"
    write_simulation(SimulatorSettings(customers=300, terminals=600, days=75), raw)
    dashboard = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    subprocess.run(
        [
            BIN / "ray",
            "start",
            "--head",
            f"--port={free_port()}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            "--disable-usage-stats",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runtime_env = {
        "env_vars": {
            "RAY_AUTH_MODE": "disabled",
            "FRAUD_RAY_MLFLOW_TRACKING_URI": tracking,
            "FRAUD_RAY_MLFLOW_ARTIFACT_LOCATION": str(tmp_path / "artifacts"),
            "FRAUD_RAY_DATA_RAW_DIR": str(raw),
            "FRAUD_RAY_TRAINING_FAMILIES": '["xgboost"]',
            "FRAUD_RAY_TRAINING_NUM_BOOST_ROUND": "40",
            "FRAUD_RAY_SPLIT_TRAIN_DAYS": "14",
        }
    }
    submit = [
        BIN / "ray",
        "job",
        "submit",
        "--address",
        f"http://127.0.0.1:{dashboard}",
        "--working-dir",
        str(REPO),
        "--runtime-env-json",
        json.dumps(runtime_env),
        "--",
        sys.executable,
        "tune.py",
        "--data",
        str(raw),
        "--trials",
        "1",
        "--model-name",
        "submitted",
        "--challenger",
    ]
    try:
        for _ in range(30):
            job = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=1200)
            # A fresh head answers HTTP before its job agent is up; Ray says so and asks to retry.
            if "No available agent" not in job.stderr:
                break
            time.sleep(2)
    finally:
        subprocess.run([BIN / "ray", "stop", "--force"], env=env, capture_output=True)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "succeeded" in job.stdout
    summary = json.loads(next(line for line in job.stdout.splitlines() if line.startswith("{")))
    assert summary["model_uri"] == "models:/submitted/1"
    assert summary["alias"] == "challenger"
    client = mlflow.MlflowClient(tracking_uri=tracking)
    assert client.get_model_version_by_alias("submitted", "challenger").version in (1, "1")
    assert "champion" not in client.get_registered_model("submitted").aliases
