"""The KubeRay manifests: valid for KubeRay's CRDs, free of secrets, and what the generator writes now."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from fraud_ray.kuberay import (
    CLUSTER_ENV,
    METRICS_PORT,
    built_serve_config,
    cluster_settings,
    manifests,
    pods_needed,
    ray_version,
    runtime_requirements,
    serving_cpus,
    working_dir_of,
)
from fraud_ray.serving.flags import SERVE_FLAGS

ROOT = Path(__file__).parents[2]
FOLDER = ROOT / "deploy" / "kuberay"
CRDS = ROOT.parent / "shared" / "kuberay"
LOCK = (ROOT / "requirements.lock").read_text()
CRD_FOR = {"RayService": "ray.io_rayservices.yaml", "RayJob": "ray.io_rayjobs.yaml"}
RAY_MANIFESTS = ["rayservice.yaml", "rayjob-tune.yaml", "rayjob-simulate.yaml"]
SECRETISH = re.compile(r"TOKEN|PASSWORD|SECRET|KEY|_URL$|_URI$|DSN")


def manifest(name: str) -> dict[str, Any]:
    return yaml.safe_load((FOLDER / name).read_text())


def crd_schema(kind: str) -> dict[str, Any]:
    """The served v1 schema, without the ``x-kubernetes-*`` keys JSON Schema does not know."""
    crd = yaml.safe_load((CRDS / CRD_FOR[kind]).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return strip_extensions(version["schema"]["openAPIV3Schema"])


def strip_extensions(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: strip_extensions(value)
            for key, value in node.items()
            if not key.startswith("x-kubernetes-")
        }
    if isinstance(node, list):
        return [strip_extensions(value) for value in node]
    return node


def containers(node: Any) -> Iterator[dict[str, Any]]:
    """Every container anywhere in a manifest: head, workers, submitter."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "containers":
                yield from value
            else:
                yield from containers(value)
    elif isinstance(node, list):
        for value in node:
            yield from containers(value)


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


def secret_leaks(document: dict[str, Any]) -> list[str]:
    """Credentials written into a manifest: a secret-looking variable with a literal value, or a
    URL with a user and password anywhere (the embedded Serve config and runtime env included)."""
    leaks = [
        f"{container['name']}: {variable['name']} has a literal value"
        for container in containers(document)
        for variable in container.get("env", [])
        if SECRETISH.search(variable["name"])
        and "secretKeyRef" not in variable.get("valueFrom", {})
    ]
    leaks += [text for text in strings(document) if re.search(r"://[^/\s:@]+:[^/\s@]+@", text)]
    return leaks


@pytest.mark.parametrize("name", RAY_MANIFESTS)
def test_manifests_validate_against_the_kuberay_crds(name: str) -> None:
    document = manifest(name)
    jsonschema.validate(document, crd_schema(document["kind"]))


def test_the_crd_validation_would_catch_a_broken_manifest() -> None:
    document = manifest("rayservice.yaml")
    document["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["replicas"] = "two"
    with pytest.raises(jsonschema.ValidationError, match="two"):
        jsonschema.validate(document, crd_schema("RayService"))


@pytest.mark.parametrize("name", sorted(path.name for path in FOLDER.glob("*.yaml")))
def test_no_secret_value_in_a_manifest(name: str) -> None:
    assert secret_leaks(manifest(name)) == []


def test_the_secret_check_would_catch_a_literal_credential() -> None:
    document = manifest("rayservice.yaml")
    head = document["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    head["containers"][0]["env"].append(
        {"name": "FRAUD_RAY_DECISIONS_URL", "value": "postgresql://fraud:hunter2@db/fraud"}
    )
    assert len(secret_leaks(document)) == 2


def test_manifests_are_what_the_generator_writes_now() -> None:
    """The sync check: serveConfigV2 from `serve build`, sizes from the settings, pins from the
    lock. A change to any of them without `python scripts/kuberay.py generate` fails here."""
    working_dir = working_dir_of((FOLDER / "rayservice.yaml").read_text())
    wanted = manifests(ROOT, working_dir)
    assert sorted(wanted) == sorted(path.name for path in FOLDER.glob("*.yaml"))
    for name, text in wanted.items():
        assert (FOLDER / name).read_text() == text, f"{name}: python scripts/kuberay.py generate"


def test_serve_config_carries_the_settings_deployment_options() -> None:
    settings = cluster_settings()
    service = manifest("rayservice.yaml")
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    (application,) = config["applications"]
    assert application["name"] == settings.serving.app_name
    assert application["import_path"] == "serve_app:graph"
    deployments = {d["name"]: d for d in application["deployments"]}
    assert deployments["Ingress"]["num_replicas"] == settings.serving.ingress_replicas
    assert deployments["Ingress"]["ray_actor_options"]["num_cpus"] == settings.serving.ingress_cpus
    scorer = deployments["Scorer"]["autoscaling_config"]
    assert scorer["max_replicas"] == settings.serving.max_replicas
    assert config["http_options"]["port"] == settings.serving.port


def test_serve_build_bounds_replicas_per_node_only_when_told() -> None:
    """Set, every step (the cluster's fused graph has two) carries the bound; unset, the
    deployments are written as before."""
    bounded = built_serve_config(
        ROOT, {**CLUSTER_ENV, "FRAUD_RAY_SERVING_MAX_REPLICAS_PER_NODE": "1"}
    )
    (application,) = bounded["applications"]
    assert {d["name"]: d.get("max_replicas_per_node") for d in application["deployments"]} == {
        "Ingress": 1,
        "Scorer": 1,
    }
    config = yaml.safe_load(manifest("rayservice.yaml")["spec"]["serveConfigV2"])
    (application,) = config["applications"]
    assert all("max_replicas_per_node" not in d for d in application["deployments"])


def test_every_ray_container_runs_the_locked_ray_with_token_auth() -> None:
    version = ray_version(LOCK)
    for name in RAY_MANIFESTS:
        document = manifest(name)
        cluster = document["spec"].get("rayClusterConfig") or document["spec"]["rayClusterSpec"]
        assert cluster["rayVersion"] == version
        for container in containers(document):
            assert container["image"] == f"rayproject/ray:{version}-py311"
            env = {variable["name"]: variable for variable in container["env"]}
            assert env["RAY_AUTH_MODE"]["value"] == "token"
            assert "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]


def test_pods_get_the_cluster_settings_and_room_for_serving_and_the_pool() -> None:
    service = manifest("rayservice.yaml")
    cluster = service["spec"]["rayClusterConfig"]
    for container in containers(service):
        values = {v["name"]: v["value"] for v in container["env"] if "value" in v}
        assert CLUSTER_ENV.items() <= values.items()
    (workers,) = cluster["workerGroupSpecs"]
    cpus = int(workers["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"])
    assert workers["replicas"] * cpus >= sum(serving_cpus(cluster_settings()))
    probe = workers["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    assert probe == {"path": "/health", "port": 8000}


def test_prometheus_scrapes_the_port_ray_exports_metrics_on() -> None:
    monitor = manifest("podmonitor.yaml")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    service = manifest("rayservice.yaml")
    for container in containers(service):
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert ports[endpoint["port"]] == METRICS_PORT  # KubeRay's --metrics-export-port
    labels = service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["metadata"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels["labels"].items()
    dashboard = (ROOT / "deploy" / "grafana" / "fraud-ray.json").read_text()
    assert re.findall(r"ray_(?:fraud_ray|serve)_\w+", dashboard), "Ray's exporter names them"


def test_runtime_requirements_keep_the_runtime_closure_of_the_lock() -> None:
    with (ROOT / "pyproject.toml").open("rb") as pyproject:
        project = tomllib.load(pyproject)["project"]
    pins = runtime_requirements(LOCK, project["dependencies"])
    names = {pin.split("==")[0] for pin in pins}
    assert {"xgboost-cpu", "mlflow", "fastapi", "jsonschema"} <= names  # direct, and via ray
    assert not {"ray", "pytest", "ruff", "schemathesis", "jsonschema-rs"} & names
    assert all(pin in LOCK.splitlines() for pin in pins)


def test_runtime_requirements_follow_via_chains() -> None:
    lock = (
        "a==1\n    # via fraud-ray (pyproject.toml)\nb==2\n    # via\n    #   a\n    #   t\nt==3\n"
    )
    assert runtime_requirements(lock, ["a"]) == ["a==1", "b==2"]
    with pytest.raises(ValueError, match="pins no c"):
        runtime_requirements(lock, ["c==1"])


def test_pods_needed_packs_actors_first_fit_decreasing() -> None:
    assert pods_needed([1.0, 1.0, 0.5, 0.5, 0.5, 0.5], 2) == 2
    assert pods_needed([1.5, 1.5, 0.5, 0.5], 2) == 2
    assert pods_needed([], 2) == 1
    with pytest.raises(ValueError, match="does not fit"):
        pods_needed([3.0], 2)


def test_cluster_settings_ignore_the_callers_own_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FRAUD_RAY_SERVING_INGRESS_REPLICAS", "7")
    monkeypatch.setenv("FRAUD_RAY_SERVING_PORT", "9999")
    settings = cluster_settings()
    assert settings.serving.ingress_replicas == int(
        CLUSTER_ENV["FRAUD_RAY_SERVING_INGRESS_REPLICAS"]
    )
    assert settings.serving.port == 8000
    assert os.environ["FRAUD_RAY_SERVING_INGRESS_REPLICAS"] == "7", "restored afterwards"


def test_every_ray_pod_of_the_service_runs_serve_with_the_flags_make_serve_uses() -> None:
    """A cluster serves the way a laptop does: the pods' environment carries Serve's flags, and
    they are the Makefile's ``SERVE_FLAGS`` (``make serve``, ``make demo``, ``make test``)."""
    (line,) = [
        line
        for line in (ROOT / "Makefile").read_text().splitlines()
        if line.startswith("SERVE_FLAGS :=")
    ]
    in_makefile = dict(flag.split("=", 1) for flag in line.split(":=", 1)[1].split())
    assert in_makefile == SERVE_FLAGS
    cluster = manifest("rayservice.yaml")["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        (container,) = group["template"]["spec"]["containers"]
        env = {variable["name"]: variable.get("value") for variable in container["env"]}
        assert SERVE_FLAGS.items() <= env.items()
