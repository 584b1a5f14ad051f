"""The RayService's serveConfigV2, deployed with `serve deploy` on a local head that has a pod's
environment, answers a predict request: the config the cluster would run is the config tested.

What a pod has and this machine has not is stood in for: the Secret's keys by a test registry, a
private Redis and SQLite decision log; the data volume by a temporary folder; the zip and the pip
list of ``runtime_env`` by the repository on PYTHONPATH in the already-installed environment; the
cluster's CPUs by as many logical CPUs on the head. In the config itself only that runtime_env and
the HTTP address (port 8000 may be taken here) change.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import ray
import yaml

from fraud_ray.kuberay import DATA_VOLUME, cluster_settings, serving_cpus

from ..conftest import free_port
from .ray_head import BIN, ray_head

REPO = Path(__file__).parents[2]
TOKEN = "kuberay-test-ray-token"


def pod_environment(service: dict, secrets: dict[str, str], volume: Path) -> dict[str, str]:
    """The head container's variables, Secret references resolved from ``secrets``."""
    (container,) = service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"][
        "containers"
    ]
    env: dict[str, str] = {}
    for variable in container["env"]:
        if "value" in variable:
            env[variable["name"]] = variable["value"].replace(DATA_VOLUME, str(volume))
        else:
            reference = variable["valueFrom"]["secretKeyRef"]
            if reference["key"] in secrets:
                env[variable["name"]] = secrets[reference["key"]]
            else:
                assert reference.get("optional"), f"the Secret needs {reference['key']}"
    return env


def test_the_rayservice_serve_config_deploys_and_decides(
    training_run: tuple, redis_url: str, tmp_path: Path
) -> None:
    settings, _ = training_run
    ray.shutdown()  # this test's cluster is a `ray start` head of its own
    registry = tmp_path / "mlflow.db"
    shutil.copy(settings.mlflow.tracking_uri.removeprefix("sqlite:///"), registry)
    service = yaml.safe_load((REPO / "deploy" / "kuberay" / "rayservice.yaml").read_text())
    secrets = {
        "ray-auth-token": TOKEN,
        "mlflow-tracking-uri": f"sqlite:///{registry}",
        "decisions-url": f"sqlite:///{tmp_path / 'decisions.db'}",
        "redis-url": redis_url,
        "operator-token": "kuberay-test-operator-token",
        "analyst-token": "kuberay-test-analyst-token",
    }
    pod = pod_environment(service, secrets, tmp_path / "volume")
    pod["FRAUD_RAY_MLFLOW_MODEL_NAME"] = settings.mlflow.model_name  # the test registry's name
    assert pod["RAY_AUTH_MODE"] == "token"
    env = {**os.environ, **pod, "PYTHONPATH": str(REPO)}

    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    port = free_port()
    config["http_options"] = {**config["http_options"], "host": "127.0.0.1", "port": port}
    for application in config["applications"]:
        del application["runtime_env"]  # the zip and the pip list: here, PYTHONPATH and .venv
    deployed = tmp_path / "serve-config.yaml"
    deployed.write_text(yaml.safe_dump(config))

    cpus = math.ceil(sum(serving_cpus(cluster_settings())))
    with ray_head(env, cpus, tmp_path / "ray-head.log") as address:
        for _ in range(60):
            deploy = subprocess.run(
                [BIN / "serve", "deploy", str(deployed), "--address", address],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if deploy.returncode == 0:
                break
            time.sleep(2)  # the head's dashboard is not up yet
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        base = f"http://127.0.0.1:{port}"
        answer = None
        for _ in range(150):
            try:
                answer = httpx.get(f"{base}/health", timeout=5)
                if answer.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        status = subprocess.run(
            [BIN / "serve", "status", "--address", address], env=env, capture_output=True, text=True
        )
        assert answer is not None and answer.status_code == 200, status.stdout + status.stderr
        # KubeRay's readiness probe of a serving pod; the pods run Serve behind HAProxy.
        assert httpx.get(f"{base}/-/healthz", timeout=5).status_code == 200
        decision = httpx.post(
            f"{base}/api/v1/predict/single",
            json={
                "transaction_id": "kuberay-1",
                "timestamp": "2025-06-02T14:00:00+00:00",
                "card_id": "card-kuberay",
                "terminal_id": "terminal-kuberay",
                "amount": 42.0,
            },
            timeout=60,
        )
        assert decision.status_code == 200, decision.text
        body = decision.json()
        assert body["transaction_id"] == "kuberay-1"
        assert body["decision"] in {"approve", "review", "decline"}
        assert body["model"]["name"] == settings.mlflow.model_name
        serve_status = yaml.safe_load(status.stdout)
        (application,) = serve_status["applications"].values()
        assert set(application["deployments"]) == {
            d["name"] for d in config["applications"][0]["deployments"]
        }
