"""The servable fraud model: booster, calibration and feature spec, saved as one folder.

Scoring and serving load this bundle, so a probability is computed the same way wherever it is
computed. The costs that turn a probability into an action are not part of it: they are a business
setting (``settings.costs``, applied by ``costs.CostPolicy``) that changes without retraining. No
Ray and no MLflow here: ``registry.py`` stores and finds bundles.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud_ray.boosters import BOOSTER_FILES, Booster, contributions, load_booster, raw_scores
from fraud_ray.calibration import Calibrator
from fraud_ray.features.definitions import FeatureSpec

BUNDLE_FILE = "bundle.json"


@dataclass
class FraudModel:
    booster: Booster
    family: str
    calibrator: Calibrator
    spec: FeatureSpec
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return self.spec.names

    def raw_scores(self, rows: np.ndarray) -> np.ndarray:
        matrix = np.asarray(rows, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.features):
            raise ValueError(f"expected rows of {len(self.features)} features, got {matrix.shape}")
        return raw_scores(self.booster, matrix)

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """Calibrated fraud probabilities: what the cost policy needs to weigh amounts correctly."""
        return self.calibrator.transform(self.raw_scores(rows))

    def frame_probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        return self.probabilities(frame[self.features].to_numpy(dtype=np.float64))

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """Each feature's additive contribution to each row's log-odds, rows by features.

        The booster's own explanation (XGBoost ``pred_contribs``, LightGBM ``pred_contrib``) is
        exact for this model, not a post-hoc approximation; the bias column is dropped. It costs
        far more than a prediction (a LightGBM forest of 200 trees: about 1.6 ms a row), so
        callers ask for it only for the rows someone will read.
        """
        matrix = np.asarray(rows, dtype=np.float64)
        return contributions(self.booster, matrix, self.features)[:, : len(self.features)]

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / BOOSTER_FILES[self.family]))
        bundle = {
            "family": self.family,
            "spec": asdict(self.spec),
            "calibrator": self.calibrator.to_dict(),
            "metadata": self.metadata,
        }
        (folder / BUNDLE_FILE).write_text(json.dumps(bundle, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: Path) -> FraudModel:
        bundle = json.loads((folder / BUNDLE_FILE).read_text())
        family = bundle["family"]
        spec = bundle["spec"]
        return cls(
            booster=load_booster(family, folder / BOOSTER_FILES[family]),
            family=family,
            calibrator=Calibrator.from_dict(bundle["calibrator"]),
            spec=FeatureSpec(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
            ),
            metadata=bundle["metadata"],
        )
