"""The report figures are real PNGs with something drawn on them, made without pyplot."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from fraud_ray.costs import CostPolicy
from fraud_ray.plots import plot_calibration, plot_cost_curve, plot_precision_recall

Scored = tuple[np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def scored() -> Scored:
    """Labels, scores that separate the classes only partly, and amounts."""
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=2000) < 0.05).astype(int)
    scores = np.clip(0.3 * y + rng.uniform(0, 0.7, size=2000), 0, 1)
    amounts = rng.lognormal(4, 1, size=2000)
    return y, scores, amounts


def _assert_drawn_png(path: Path, written: Path) -> None:
    assert written == path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels[..., :3].std() > 0.01  # not a blank canvas


def test_precision_recall_with_several_models(tmp_path: Path, scored: Scored) -> None:
    y, scores, _ = scored
    path = tmp_path / "nested" / "pr.png"
    written = plot_precision_recall(y, {"model": scores, "amount only": scores**3}, path)
    _assert_drawn_png(path, written)


def test_cost_curve(tmp_path: Path, scored: Scored) -> None:
    y, scores, amounts = scored
    path = tmp_path / "cost.png"
    _assert_drawn_png(path, plot_cost_curve(scores, amounts, y, CostPolicy(3.0, 10.0), path))


def test_calibration_curve(tmp_path: Path, scored: Scored) -> None:
    y, scores, _ = scored
    path = tmp_path / "calibration.png"
    calibrated = scores * 0.1
    _assert_drawn_png(path, plot_calibration(y, scores, calibrated, path))


def test_no_pyplot_figures_are_left_behind(tmp_path: Path, scored: Scored) -> None:
    import matplotlib.pyplot as plt

    y, scores, amounts = scored
    plot_precision_recall(y, {"model": scores}, tmp_path / "pr.png")
    plot_calibration(y, scores, scores, tmp_path / "calibration.png", strategy="uniform")
    plot_cost_curve(scores, amounts, y, CostPolicy(3.0, 10.0), tmp_path / "cost.png")
    assert plt.get_fignums() == []
