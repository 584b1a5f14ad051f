"""The tuning RayJob's entrypoint and runtime env, with `ray job submit` against a `ray start` head
of its own (with `--model-name NAME --challenger` and one trial)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import mlflow
import ray
import yaml

from fraud_ray.settings import SimulatorSettings
from fraud_ray.simulator import write_simulation

from .ray_head import BIN, ray_head

REPO = Path(__file__).parents[2]


def test_tune_py_runs_as_a_job_and_registers_a_model(tmp_path: Path) -> None:
    ray.shutdown()  # this test's cluster is a separate `ray start` head on loopback
    raw = tmp_path / "raw"
    write_simulation(SimulatorSettings(customers=300, terminals=600, days=75), raw)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PATH": f"{BIN}:{os.environ['PATH']}"}
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = yaml.safe_load((REPO / "deploy" / "kuberay" / "rayjob-tune.yaml").read_text())["spec"]
    runtime_env = yaml.safe_load(job["runtimeEnvYAML"])
    # The RayJob's runtime env, with the repository here instead of its zip, and the locked
    # packages already installed instead of its pip list.
    runtime_env["working_dir"] = str(REPO)
    del runtime_env["pip"]
    runtime_env |= {
        "env_vars": {
            "RAY_AUTH_MODE": "disabled",
            "FRAUD_RAY_MLFLOW_TRACKING_URI": tracking,
            "FRAUD_RAY_MLFLOW_ARTIFACT_LOCATION": str(tmp_path / "artifacts"),
            "FRAUD_RAY_DATA_RAW_DIR": str(raw),
            "FRAUD_RAY_TRAINING_FAMILIES": '["xgboost"]',
            "FRAUD_RAY_TRAINING_NUM_BOOST_ROUND": "40",
            "FRAUD_RAY_SPLIT_TRAIN_DAYS": "14",
            "FRAUD_RAY_SPLIT_VALIDATION_FOLDS": "1",  # 75 days hold one fold, not four
        }
    }
    with ray_head(env, 2, tmp_path / "ray-head.log") as address:
        submit = [
            BIN / "ray",
            "job",
            "submit",
            "--address",
            address,
            "--runtime-env-json",
            json.dumps(runtime_env),
            "--",
            *shlex.split(job["entrypoint"]),  # the RayJob's, with this test's smaller run
            "--data",
            str(raw),
            "--trials",
            "1",
            "--model-name",
            "submitted",
            "--challenger",
        ]
        for _ in range(30):
            submitted = subprocess.run(
                submit, env=env, capture_output=True, text=True, timeout=1200
            )
            # A fresh head refuses connections, then answers before its job agent is up: until
            # the job is in, try again.
            if "submitted successfully" in submitted.stdout:
                break
            time.sleep(2)
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    assert "succeeded" in submitted.stdout
    lines = submitted.stdout.splitlines()
    summary = json.loads(next(line for line in lines if line.startswith("{")))
    assert summary["model_uri"] == "models:/submitted/1"
    assert summary["alias"] == "challenger"
    client = mlflow.MlflowClient(tracking_uri=tracking)
    assert client.get_model_version_by_alias("submitted", "challenger").version in (1, "1")
    assert "champion" not in client.get_registered_model("submitted").aliases
