"""Which model the Serve graph serves: a registered version loaded and probed, the challenger
scored in shadow, and the rollout actor that moves every Scorer replica to a new version.

``POST /api/v1/model/reload`` loads and probes the new version in the ingress first (a version that
fails is refused and nothing changes), then sets it as the ``ModelRollout`` target; each Scorer
replica polls the target, loads it beside the old model, probes it and swaps one reference, so
requests in flight finish on the model they started with and none is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import ray
from mlflow.exceptions import MlflowException

from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.registry import Registry
from fraud_ray.schema import ModelRef
from fraud_ray.serving.pipeline import ModelRefused, ServingModel
from fraud_ray.settings import ServingSettings, Settings

logger = logging.getLogger("ray.serve")


@dataclass(frozen=True)
class ModelAbout:
    """What ``/api/v1/model/info`` says about a serving model: small enough to send anywhere."""

    ref: ModelRef
    alias: str
    trained_at: str | None
    metrics: dict[str, float]
    loaded_at: datetime


@dataclass(frozen=True)
class LoadedModel:
    model: ServingModel
    about: ModelAbout


def load_model(settings: Settings, spec: FeatureSpec, reference: str) -> LoadedModel:
    """Load a registered version and probe it; ``ModelRefused`` says why it cannot serve."""
    registry = Registry(settings.mlflow)
    try:
        bundle, version = registry.load(reference)
    except Exception as error:  # a missing alias, a broken artifact: refuse with the reason
        raise ModelRefused(f"cannot load model {reference}: {error}") from error
    ref = ModelRef(name=version.name, version=str(version.version))
    model = ServingModel.for_settings(bundle, ref, spec, settings)
    model.probe()
    metrics = registry.client.get_run(version.run_id).data.metrics if version.run_id else {}
    about = ModelAbout(
        ref=ref,
        alias=settings.serving.model_alias,
        trained_at=bundle.metadata.get("trained_at"),
        metrics={key: float(value) for key, value in metrics.items()},
        loaded_at=datetime.now(UTC),
    )
    return LoadedModel(model, about)


def serving_spec(settings: Settings) -> FeatureSpec:
    """The feature definitions the graph computes: those of the model serving when it starts."""
    alias = settings.serving.model_alias
    try:
        bundle, _ = Registry(settings.mlflow).load(f"@{alias}")
    except Exception as error:  # no such model or alias yet: say what to run
        raise ModelRefused(
            f"no model {settings.mlflow.model_name}@{alias} in the registry at "
            f"{settings.mlflow.tracking_uri} ({error}); train one first: fraud-ray train"
        ) from None
    return bundle.spec


def challenger(
    registry: Registry,
    settings: Settings,
    spec: FeatureSpec,
    alias: str,
    current: ServingModel | None,
) -> ServingModel | None:
    """The model to score in shadow: the alias's version, unless it is missing, is the champion,
    or cannot serve these features (then it is logged and skipped, and the graph serves on)."""
    name = settings.mlflow.model_name
    try:
        version = str(registry.resolve(f"@{alias}").version)
    except MlflowException:
        return None
    if current is not None and current.ref.version == version:
        return current
    if version == str(registry.resolve(f"@{settings.serving.model_alias}").version):
        return None
    try:
        loaded = load_model(settings, spec, version)
    except ModelRefused as refused:
        logger.warning("not scoring %s@%s in shadow: %s", name, alias, refused)
        return None
    logger.info("scoring %s version %s (%s) in shadow", name, version, alias)
    return loaded.model


@ray.remote(num_cpus=0)
class ModelRollout:
    """Which version every Scorer replica should serve, and which one each replica serves."""

    def __init__(self) -> None:
        self.target: str | None = None
        self.replicas: dict[str, tuple[str, str | None, float]] = {}

    def set_target(self, version: str) -> None:
        self.target = version

    def heartbeat(self, replica: str, version: str, error: str | None) -> str | None:
        self.replicas[replica] = (version, error, time.monotonic())
        return self.target

    def status(self, stale_after_s: float) -> dict[str, tuple[str, str | None]]:
        now = time.monotonic()
        return {
            replica: (version, error)
            for replica, (version, error, seen) in self.replicas.items()
            if now - seen <= stale_after_s
        }


def rollout_actor(app_name: str) -> Any:
    """The application's rollout actor, created by the first replica that asks.

    Not detached: it lives as long as the replica that created it, so a new deployment of the
    application never inherits an old one's target. Losing it is harmless: its target is always
    the version the alias named at the last reload, which is what a replica loads without one;
    whoever finds it gone asks again and gets a new one.
    """
    return ModelRollout.options(  # type: ignore[attr-defined]
        name=f"rollout-{app_name}", namespace="fraud-ray", get_if_exists=True
    ).remote()


class RolloutTimeout(TimeoutError):
    """Not every live Scorer replica reported the new version in time."""


async def roll_out(app_name: str, version: str, previous: str, serving: ServingSettings) -> int:
    """Make ``version`` the target and wait until every live Scorer replica serves it; returns how
    many do.

    A replica that refuses it (``ModelRefused``: it failed to load or probe there) puts the
    ``previous`` version back as the target, so the replicas that had switched return to it, and
    the refusal is raised; ``RolloutTimeout`` when ``serving.reload_timeout_s`` runs out first.
    """
    rollout = rollout_actor(app_name)
    await rollout.set_target.remote(version)
    deadline = time.monotonic() + serving.reload_timeout_s
    stale_after = 4 * serving.reload_poll_s
    while True:
        replicas = await rollout.status.remote(stale_after)
        errors = [error for v, error in replicas.values() if error and v != version]
        if errors:
            await rollout.set_target.remote(previous)
            raise ModelRefused(f"reload refused by a Scorer replica: {errors[0]}")
        if replicas and all(v == version for v, _ in replicas.values()):
            return len(replicas)
        if time.monotonic() > deadline:
            raise RolloutTimeout(f"Scorer replicas did not all load version {version}")
        await asyncio.sleep(serving.reload_poll_s / 2)
