"""The MLflow model registry: where trained fraud models are kept, versioned and found by alias.

A version is an MLflow pyfunc model whose artifacts hold the ``FraudModel`` bundle, plus the plots,
the reference feature sample for drift, and tags for the training-data fingerprint. Serving loads
the version under the alias ``champion``; ``challenger`` is scored in shadow.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel, PythonModelContext

from fraud_ray.costs import CostPolicy
from fraud_ray.model import FraudModel
from fraud_ray.schema import AMOUNT
from fraud_ray.settings import MlflowSettings

EXPERIMENT = "fraud-ray"
BUNDLE_ARTIFACT = "bundle"
# Logged at the root of each version's run by training; drift compares the decision log with it.
REFERENCE_SAMPLE = "reference_sample.parquet"
# Passing requirements explicitly spares MLflow ~7 s of inferring them at every log_model.
REQUIREMENTS = ("xgboost-cpu", "lightgbm", "scikit-learn", "pandas", "numpy", "pydantic")


class FraudPyfunc(PythonModel):
    """Lets MLflow's own tools (``mlflow models serve``, ``pyfunc.load_model``) use a bundle.

    Those tools never read fraud-ray's settings, so the costs come from the pyfunc's
    ``model_config``: the settings' costs when the version was registered, replaced by whatever a
    caller passes as ``mlflow.pyfunc.load_model(uri, model_config={"review_cost": ...})``.
    """

    def load_context(self, context: PythonModelContext) -> None:
        self.model = FraudModel.load(Path(context.artifacts[BUNDLE_ARTIFACT]))
        self.policy = CostPolicy(**{key: float(v) for key, v in context.model_config.items()})

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        probabilities = self.model.frame_probabilities(model_input)
        actions, expected_costs = self.policy.decide(probabilities, model_input[AMOUNT])
        return pd.DataFrame(
            {
                "fraud_probability": probabilities,
                "decision": actions,
                "expected_cost": expected_costs,
            }
        )


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    uri: str
    run_id: str
    alias: str | None


class Registry:
    def __init__(self, settings: MlflowSettings) -> None:
        self.settings = settings
        mlflow.set_tracking_uri(settings.tracking_uri)
        self.client = MlflowClient(tracking_uri=settings.tracking_uri)

    def experiment_id(self, name: str = EXPERIMENT) -> str:
        """The experiment, created with an explicit artifact location: with a database tracking URI
        MLflow would otherwise drop artifacts into ``./mlruns`` wherever the command runs."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = self.settings.artifact_location
        if "://" not in location:
            location = Path(location).resolve().as_uri()
        return self.client.create_experiment(name, artifact_location=location)

    def register(
        self,
        model: FraudModel,
        *,
        policy: CostPolicy,
        params: dict[str, Any],
        metrics: dict[str, float],
        tags: dict[str, str],
        artifacts: list[Path],
        alias: str | None = "champion",
        run_name: str | None = None,
    ) -> RegisteredModel:
        """Log the winner's run and register it as the next version of the model; ``policy`` is
        only the pyfunc's default (fraud-ray itself decides with the settings' costs)."""
        name = self.settings.model_name
        with (
            tempfile.TemporaryDirectory() as scratch,
            mlflow.start_run(experiment_id=self.experiment_id(), run_name=run_name) as run,
        ):
            bundle = model.save(Path(scratch) / BUNDLE_ARTIFACT)
            mlflow.log_params({key: str(value)[:500] for key, value in params.items()})
            mlflow.log_metrics(metrics)
            mlflow.set_tags(tags)
            for artifact in artifacts:
                mlflow.log_artifact(str(artifact))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=FraudPyfunc(),
                artifacts={BUNDLE_ARTIFACT: str(bundle)},
                model_config=policy.fees(),
                pip_requirements=[f"{p}=={installed_version(p)}" for p in REQUIREMENTS],
            )
        created: ModelVersion = mlflow.register_model(info.model_uri, name, tags=tags)
        if alias:
            self.client.set_registered_model_alias(name, alias, created.version)
        return RegisteredModel(
            name=name,
            version=str(created.version),
            uri=f"models:/{name}/{created.version}",
            run_id=run.info.run_id,
            alias=alias,
        )

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.settings.model_name, alias, version)

    def promote(
        self, challenger: str = "challenger", champion: str = "champion"
    ) -> tuple[str, str]:
        """Move ``champion`` to the challenger's version and retire the ``challenger`` alias, so the
        old champion is not scored in shadow against itself; returns (old, new) versions."""
        name = self.settings.model_name
        new = str(self.client.get_model_version_by_alias(name, challenger).version)
        old = str(self.client.get_model_version_by_alias(name, champion).version)
        self.set_alias(champion, new)
        self.client.delete_registered_model_alias(name, challenger)
        return old, new

    def resolve(self, reference: str) -> ModelVersion:
        """A version from ``models:/name@alias``, ``models:/name/3``, ``@alias`` or ``3``."""
        name = self.settings.model_name
        target = reference.removeprefix("models:/")
        if "/" in target or ("@" in target and not target.startswith("@")):
            name, _, target = target.replace("@", "/@", 1).partition("/")
        if target.startswith("@"):
            return self.client.get_model_version_by_alias(name, target[1:])
        return self.client.get_model_version(name, target)

    def load(self, reference: str = "@champion") -> tuple[FraudModel, ModelVersion]:
        """The bundle of a registered version, downloaded next to the process."""
        found = self.resolve(reference)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{found.name}/{found.version}",
                tracking_uri=self.settings.tracking_uri,
            )
        )
        model = FraudModel.load(local / "artifacts" / BUNDLE_ARTIFACT)
        model.metadata.setdefault("name", found.name)
        model.metadata["version"] = str(found.version)
        return model, found

    def reference_sample(self, reference: str) -> pd.DataFrame:
        """The features and scores of validation data saved with a version (any form ``resolve``
        takes), which drift is measured against."""
        found = self.resolve(reference)
        with tempfile.TemporaryDirectory() as scratch:
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=found.run_id,
                    artifact_path=REFERENCE_SAMPLE,
                    dst_path=scratch,
                    tracking_uri=self.settings.tracking_uri,
                )
            except MlflowException as error:
                raise MlflowException(
                    f"no {REFERENCE_SAMPLE} for model version {found.name}/{found.version} "
                    f"(run {found.run_id}): {error.message}"
                ) from error
            return pd.read_parquet(path)
