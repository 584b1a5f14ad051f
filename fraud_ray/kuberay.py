"""KubeRay manifests for fraud-ray: a RayService for the Serve graph and the ingestion pool, a RayJob
for tuning, derived from the settings so that nothing in them is written twice.

The cluster's settings are the ``FRAUD_RAY_*`` variables in ``CLUSTER_ENV`` (plus the Secrets in
``SECRET_ENV``): the pods get them as environment variables, and the same variables size the
worker groups and feed ``serve build``, whose output becomes ``serveConfigV2``. Deployment options
in a Serve config override those in code, so a ``serveConfigV2`` built from other settings than the
pods' would silently win; generating both from one mapping rules that out.

Code reaches the pods as a ``runtime_env``: the repository as a zip (``working_dir``) and the locked
requirements as a ``pip`` list, on the stock ``rayproject/ray`` image of the locked Ray version.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from fraud_ray.serving.flags import SERVE_FLAGS
from fraud_ray.settings import Settings, load_settings

NAME = "fraud-ray"
SECRET = "fraud-ray"
LABELS = {"app.kubernetes.io/name": NAME}
PYTHON_TAG = "py311"
WORKER_CPUS = 2
WORKER_MEMORY = "4Gi"
HEAD_RESOURCES = {"cpu": "1", "memory": "4Gi"}
METRICS_PORT = 8080
DATA_VOLUME = "/data/fraud-ray"
SERVE_BUILD_NOTE = (
    "# `serve build serve_app:graph` on Ray v{version}, then name, port and runtime_env\n"
)
WORKING_DIR = "https://artifacts.example.com/fraud-ray/fraud-ray.zip"

# Non-secret settings of the cluster, the same on every pod. Serving: the steps fused into the
# ingress (one hop; bench/stream.py), feature state in Redis so ingress replicas share it, the
# Scorer autoscaled. Paths are on the ReadWriteMany volume every pod mounts at DATA_VOLUME.
CLUSTER_ENV: dict[str, str] = {
    "FRAUD_RAY_SERVING_HOST": "0.0.0.0",
    "FRAUD_RAY_SERVING_FUSE_STEPS": "true",
    "FRAUD_RAY_SERVING_INGRESS_REPLICAS": "2",
    "FRAUD_RAY_SERVING_INGRESS_CPUS": "1",
    "FRAUD_RAY_SERVING_SCORER_CPUS": "1",
    "FRAUD_RAY_SERVING_AUTOSCALING": "true",
    "FRAUD_RAY_SERVING_MAX_REPLICAS": "4",
    "FRAUD_RAY_FEATURES_BACKEND": "redis",
    "FRAUD_RAY_KAFKA_BOOTSTRAP": "fraud-ray-kafka-bootstrap.kafka.svc:9092",
    "FRAUD_RAY_KAFKA_POOL_SIZE": "4",
    "FRAUD_RAY_KAFKA_CONSUMER_CPUS": "0.5",
    "FRAUD_RAY_DATA_RAW_DIR": f"{DATA_VOLUME}/raw",
    "FRAUD_RAY_DATA_FEATURES_DIR": f"{DATA_VOLUME}/features",
    "FRAUD_RAY_MLFLOW_ARTIFACT_LOCATION": f"{DATA_VOLUME}/mlartifacts",
    "FRAUD_RAY_MONITORING_REPORTS_DIR": f"{DATA_VOLUME}/monitoring",
    "FRAUD_RAY_TRAINING_NUM_WORKERS": "2",
    "FRAUD_RAY_TRAINING_CPUS_PER_WORKER": "2",
    "FRAUD_RAY_TRAINING_THREADS_PER_WORKER": "2",
    "FRAUD_RAY_TRAINING_MAX_CONCURRENT_TRIALS": "2",
    "FRAUD_RAY_TRAINING_TRIALS": "40",
    "FRAUD_RAY_TRAINING_TIME_BUDGET_S": "3600",
    "FRAUD_RAY_RAY_READ_MIN_BLOCKS": "32",
}

# Environment variables whose values are credentials: each comes from a key of the Secret.
SECRET_ENV: dict[str, str] = {
    "RAY_AUTH_TOKEN": "ray-auth-token",
    "FRAUD_RAY_MLFLOW_TRACKING_URI": "mlflow-tracking-uri",
    "FRAUD_RAY_DECISIONS_URL": "decisions-url",
    "FRAUD_RAY_REDIS_URL": "redis-url",
    "FRAUD_RAY_SERVING_OPERATOR_TOKEN": "operator-token",
    "FRAUD_RAY_SERVING_ANALYST_TOKEN": "analyst-token",
}
# A key the Secret may leave out: no webhook is then called.
OPTIONAL_SECRET_ENV: dict[str, str] = {"FRAUD_RAY_MONITORING_WEBHOOK_URL": "webhook-url"}


@contextmanager
def cluster_environment(env: Mapping[str, str] = CLUSTER_ENV) -> Iterator[None]:
    """The process environment a pod has: exactly ``env`` among the ``FRAUD_RAY_*`` variables,
    so a developer's own overrides cannot leak into what is generated."""
    saved = {key: value for key, value in os.environ.items() if key.startswith("FRAUD_RAY_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(env)
    try:
        yield
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)


def cluster_settings(env: Mapping[str, str] = CLUSTER_ENV) -> Settings:
    with cluster_environment(env):
        return load_settings()


def ray_version(lock: str) -> str:
    found = re.search(r"^ray==(\S+)$", lock, re.MULTILINE)
    if found is None:
        raise ValueError("requirements.lock pins no ray version")
    return found.group(1)


def runtime_requirements(lock: str, direct: list[str]) -> list[str]:
    """The pins of ``lock`` that the project needs at run time, without ``ray`` (the image has it).

    ``uv pip compile`` notes under each pin what requires it (``# via``); a package is needed when
    it is a direct dependency or something needed requires it, so the dev tools drop out.
    """
    pins: dict[str, str] = {}
    parents: dict[str, set[str]] = {}
    current = ""
    for line in lock.splitlines():
        if match := re.match(r"^([A-Za-z0-9_.\-]+(?:\[[^\]]*\])?)==(\S+)", line):
            current = canonical(match.group(1).split("[")[0])
            pins[current] = line.split()[0]
            parents[current] = set()
        elif (match := re.match(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9_.\-]+)", line)) and current:
            parents[current].add(canonical(match.group(1)))
    needed = {canonical(re.split(r"[\[=<>~! ]", requirement)[0]) for requirement in direct}
    missing = needed - pins.keys()
    if missing:
        raise ValueError(f"requirements.lock pins no {', '.join(sorted(missing))}")
    changed = True
    while changed:
        changed = False
        for package, via in parents.items():
            if package not in needed and via & needed:
                needed.add(package)
                changed = True
    return [pins[package] for package in sorted(needed - {"ray"})]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pods_needed(cpus: list[float], per_pod: float) -> int:
    """Pods of ``per_pod`` CPUs that hold actors of these CPUs, first-fit by decreasing size."""
    free: list[float] = []
    for need in sorted(cpus, reverse=True):
        if need > per_pod:
            raise ValueError(f"an actor of {need} CPUs does not fit a pod of {per_pod}")
        for index, left in enumerate(free):
            if need <= left + 1e-9:
                free[index] = left - need
                break
        else:
            free.append(per_pod - need)
    return max(len(free), 1)


def serving_cpus(settings: Settings) -> list[float]:
    """One entry per actor the Serve app and the ingestion pool may run, at their most replicas."""
    serving = settings.serving
    scorers = serving.max_replicas if serving.autoscaling else serving.scorer_replicas
    actors = [serving.ingress_cpus] * serving.ingress_replicas + [serving.scorer_cpus] * scorers
    if not serving.fuse_steps:
        actors += [serving.feature_cpus] * serving.feature_replicas
        actors += [serving.decision_cpus] * serving.decision_replicas
    return actors + [settings.kafka.consumer_cpus] * settings.kafka.pool_size


def tuning_cpus(settings: Settings) -> list[float]:
    """One entry per Ray Train worker of the trials that run at once."""
    training = settings.training
    workers = training.num_workers * training.max_concurrent_trials
    return [training.cpus_per_worker] * workers


def serve_config(built: dict[str, Any], settings: Settings, runtime_env: dict[str, Any]) -> dict:
    """``serve build``'s output with what it leaves to the user: the application's name (it says
    ``app1``), the port, and how the code reaches the replicas."""
    config = dict(built)
    config["http_options"] = {**built["http_options"], "port": settings.serving.port}
    (application,) = built["applications"]
    config["applications"] = [
        {**application, "name": settings.serving.app_name, "runtime_env": runtime_env}
    ]
    return config


def runtime_env(working_dir: str, requirements: list[str]) -> dict[str, Any]:
    return {"working_dir": working_dir, "pip": {"packages": requirements, "pip_check": False}}


def environment() -> list[dict[str, Any]]:
    """The containers' variables: token auth on, Serve's flags, the settings, and the credentials
    by reference."""
    env: list[dict[str, Any]] = [{"name": "RAY_AUTH_MODE", "value": "token"}]
    env += [{"name": key, "value": value} for key, value in SERVE_FLAGS.items()]
    env += [{"name": key, "value": value} for key, value in CLUSTER_ENV.items()]
    env += [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": secret_key}}}
        for key, secret_key in SECRET_ENV.items()
    ]
    env += [
        {
            "name": key,
            "valueFrom": {"secretKeyRef": {"name": SECRET, "key": secret_key, "optional": True}},
        }
        for key, secret_key in OPTIONAL_SECRET_ENV.items()
    ]
    return env


def pod_template(
    image: str, resources: dict[str, str], ports: list[dict[str, Any]], **container: Any
) -> dict[str, Any]:
    """A Ray pod: the data volume, the metrics port Prometheus scrapes, requests equal to limits
    (Ray counts the limits as the node's resources)."""
    return {
        "metadata": {
            "labels": dict(LABELS),
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(METRICS_PORT),
            },
        },
        "spec": {
            "containers": [
                {
                    "name": "ray",
                    "image": image,
                    "env": environment(),
                    "ports": [{"containerPort": METRICS_PORT, "name": "metrics"}, *ports],
                    "resources": {"requests": dict(resources), "limits": dict(resources)},
                    "volumeMounts": [{"name": "data", "mountPath": DATA_VOLUME}],
                    **container,
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": f"{NAME}-data"}}],
        },
    }


def cluster_spec(version: str, group: str, workers: int, readiness: bool) -> dict[str, Any]:
    """A head that runs Ray's control plane and the job drivers only (no CPUs for tasks), and one
    group of workers unless the job runs no Ray tasks."""
    image = f"rayproject/ray:{version}-{PYTHON_TAG}"
    head_ports = [
        {"containerPort": 6379, "name": "gcs-server"},
        {"containerPort": 8265, "name": "dashboard"},
        {"containerPort": 10001, "name": "client"},
        {"containerPort": 8000, "name": "serve"},
    ]
    worker_extra: dict[str, Any] = {}
    worker_ports: list[dict[str, Any]] = []
    if readiness:
        worker_ports = [{"containerPort": 8000, "name": "serve"}]
        worker_extra["readinessProbe"] = {
            "httpGet": {"path": "/health", "port": 8000},
            "periodSeconds": 5,
            "failureThreshold": 3,
        }
    worker_resources = {"cpu": str(WORKER_CPUS), "memory": WORKER_MEMORY}
    return {
        "rayVersion": version,
        "headGroupSpec": {
            "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
            "template": pod_template(image, HEAD_RESOURCES, head_ports),
        },
        "workerGroupSpecs": [
            {
                "groupName": group,
                "replicas": workers,
                "minReplicas": workers,
                "maxReplicas": workers,
                "rayStartParams": {},
                "template": pod_template(image, worker_resources, worker_ports, **worker_extra),
            }
        ]
        if workers
        else [],
    }


def rayservice(settings: Settings, version: str, config: dict[str, Any]) -> dict[str, Any]:
    """The Serve app and room for the ingestion pool; the Serve Service only sends traffic to
    workers whose ``/health`` answers."""
    workers = pods_needed(serving_cpus(settings), WORKER_CPUS)
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": NAME, "labels": dict(LABELS)},
        "spec": {
            "excludeHeadPodFromServeSvc": True,
            "serveConfigV2": SERVE_BUILD_NOTE.format(version=version) + dump(config),
            "rayClusterConfig": cluster_spec(version, "serving", workers, readiness=True),
        },
    }


def rayjob(
    name: str, entrypoint: str, version: str, env: dict[str, Any], workers: int
) -> dict[str, Any]:
    """A job on a cluster of its own, deleted when the job ends; the submitter pod carries the
    token so ``ray job submit`` is let in."""
    submitter_env = [
        variable for variable in environment() if variable["name"].startswith("RAY_AUTH")
    ]
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": f"{NAME}-{name}", "labels": dict(LABELS)},
        "spec": {
            "entrypoint": entrypoint,
            "runtimeEnvYAML": dump(env),
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": 600,
            "submitterPodTemplate": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "ray-job-submitter",
                            "image": f"rayproject/ray:{version}-{PYTHON_TAG}",
                            "env": submitter_env,
                        }
                    ],
                }
            },
            "rayClusterSpec": cluster_spec(version, name, workers, readiness=False),
        },
    }


def data_volume() -> dict[str, Any]:
    """The storage every pod mounts: the transactions, features, model artifacts and reports."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"{NAME}-data", "labels": dict(LABELS)},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": "50Gi"}},
        },
    }


def podmonitor() -> dict[str, Any]:
    """Prometheus Operator's scrape of every Ray pod's metrics port: Ray's and Serve's metrics
    and the ``ray_fraud_ray_*`` ones the Grafana dashboard plots come out of it."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": NAME, "labels": dict(LABELS)},
        "spec": {
            "selector": {"matchLabels": dict(LABELS)},
            "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "10s"}],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Writes text of several lines as a literal block, so ``serveConfigV2`` reads as YAML."""


_Dumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None
    ),
)


def dump(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100)


def built_serve_config(root: Path, env: Mapping[str, str] = CLUSTER_ENV) -> dict[str, Any]:
    """What ``serve build serve_app:graph`` writes, run in a pod's environment.

    Importing ``serve_app`` builds the graph, which reads the feature spec of the registry's
    champion; the spec is an argument bound to the deployments, which ``serve build`` does not
    write out. So the settings' spec stands in for it here, and generating needs no trained model.
    The tokens come from the Secret in the pods, so the exposure check waits for them there.
    """
    from unittest import mock

    from click.testing import CliRunner
    from ray.serve.scripts import build

    from fraud_ray.features.definitions import FeatureSpec
    from fraud_ray.serving import graph

    sys.modules.pop("serve_app", None)  # built afresh under this environment
    try:
        with (
            tempfile.TemporaryDirectory() as folder,
            cluster_environment(env),
            mock.patch.object(
                graph, "serving_spec", lambda s: FeatureSpec.from_settings(s.features)
            ),
            mock.patch.object(graph, "check_exposure", lambda host, tokens: None),
        ):
            out = Path(folder) / "serve-build.yaml"
            result = CliRunner().invoke(
                build, ["serve_app:graph", "--app-dir", str(root), "-o", str(out)]
            )
            if result.exit_code != 0:
                raise RuntimeError(f"serve build failed: {result.output}") from result.exception
            return yaml.safe_load(out.read_text())
    finally:
        sys.modules.pop("serve_app", None)


def manifests(root: Path, working_dir: str) -> dict[str, str]:
    """Every manifest's file name and text, from the settings, the lock and ``serve build``."""
    lock = (root / "requirements.lock").read_text()
    with (root / "pyproject.toml").open("rb") as pyproject:
        direct = tomllib.load(pyproject)["project"]["dependencies"]
    version = ray_version(lock)
    settings = cluster_settings()
    env = runtime_env(working_dir, runtime_requirements(lock, direct))
    config = serve_config(built_serve_config(root), settings, env)
    tune_workers = pods_needed(tuning_cpus(settings), WORKER_CPUS)
    header = (
        "# Generated by `python scripts/kuberay.py generate` from fraud_ray/kuberay.py, the settings\n"
        "# and requirements.lock; `python scripts/kuberay.py check` fails when it is out of date.\n"
    )
    return {
        "rayservice.yaml": header + dump(rayservice(settings, version, config)),
        "rayjob-tune.yaml": header
        + dump(rayjob("tune", "python tune.py", version, env, tune_workers)),
        "rayjob-simulate.yaml": header
        + dump(rayjob("simulate", "python -m fraud_ray.cli simulate", version, env, 0)),
        "data-volume.yaml": header + dump(data_volume()),
        "runtime-env.yaml": header + dump(env),
        "podmonitor.yaml": header + dump(podmonitor()),
    }


def working_dir_of(manifest: str) -> str:
    """The ``working_dir`` a generated RayService names, so a check keeps the URL it was given."""
    service = yaml.safe_load(manifest)
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    return config["applications"][0]["runtime_env"]["working_dir"]
