"""Whether what the model sees now still looks like what it was validated on.

The reference is the sample of validation features and scores saved with each model version; the
current data are the features the logged decisions were made on. Evidently tests each column
(choosing the test by column type and sample size, as its documentation describes) and the share
of drifted columns decides whether the data as a whole drifted. Evidently takes seconds to import,
so only ``measure_drift`` imports it: the performance pages and the other commands never pay for it.
"""

from __future__ import annotations

import json
import logging
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd

from fraud_ray.monitoring.summaries import DriftSummary, FeatureDrift
from fraud_ray.settings import MonitoringSettings

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

logger = logging.getLogger(__name__)

VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
DRIFTED = "FAIL"  # Evidently's per-column test fails when the column drifted


class NotEnoughData(ValueError):
    """Too few logged decisions for a drift verdict; the message names the counts."""


def check_enough_rows(
    current_rows: int, settings: MonitoringSettings, window: tuple[datetime, datetime]
) -> None:
    """Refuse a verdict on a handful of rows, where every test is noise."""
    if current_rows < settings.drift_min_rows:
        start, end = window
        raise NotEnoughData(
            f"{current_rows} logged decisions with features between {start:%Y-%m-%d %H:%M} and "
            f"{end:%Y-%m-%d %H:%M} UTC; a drift verdict needs at least {settings.drift_min_rows} "
            "(monitoring.drift_min_rows)"
        )


def measure_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: MonitoringSettings,
    *,
    model_version: str,
    window: tuple[datetime, datetime],
    reports_dir: Path,
) -> DriftSummary:
    """Compare the columns both frames share (the model's features and ``fraud_probability``) and
    save Evidently's HTML report in ``reports_dir``.

    A column with no value at all in one of the frames cannot be tested (Evidently refuses it); it
    is left out with a warning, since a feature that stopped arriving is worth a look of its own.
    """
    check_enough_rows(len(current), settings, window)
    if reference.empty:
        raise NotEnoughData(f"the reference sample of model version {model_version} has no rows")
    columns = _testable_columns(reference, current)
    if not columns:
        raise ValueError(
            f"the logged features share no column with values with the reference sample of "
            f"model version {model_version} (reference: {', '.join(reference.columns)}; "
            f"logged: {', '.join(current.columns)})"
        )
    measured_at = datetime.now(UTC)
    snapshot = _run_evidently(reference[columns], current[columns], settings)
    features = _column_drift(json.loads(snapshot.json()), columns)
    reports_dir.mkdir(parents=True, exist_ok=True)
    report = reports_dir / f"drift-{measured_at:%Y%m%dT%H%M%S}-model-{model_version}.html"
    snapshot.save_html(str(report))
    share = sum(feature.drifted for feature in features) / len(features)
    return DriftSummary(
        model_version=model_version,
        measured_at=measured_at,
        window_start=window[0],
        window_end=window[1],
        reference_rows=len(reference),
        current_rows=len(current),
        drifted_share=share,
        share_threshold=settings.drift_share,
        dataset_drift=share >= settings.drift_share,
        features=features,
        report=str(report.resolve()),
    )


def alarm(summary: DriftSummary, settings: MonitoringSettings) -> bool:
    """Raise the alarm when the data drifted; returns whether it did.

    A WARNING names the drifted columns; ``settings.webhook_url``, when set, is POSTed the summary.
    A webhook that fails is logged and never raised: monitoring must not stop because a chat
    service is down. Only the webhook's host is logged, since such URLs often carry a token.
    """
    if not summary.dataset_drift:
        return False
    drifted = [feature.feature for feature in summary.features if feature.drifted]
    logger.warning(
        "data drift for model version %s between %s and %s: %d of %d columns drifted (%s); "
        "report %s",
        summary.model_version,
        f"{summary.window_start:%Y-%m-%d %H:%M}",
        f"{summary.window_end:%Y-%m-%d %H:%M}",
        len(drifted),
        len(summary.features),
        ", ".join(drifted),
        summary.report,
    )
    if settings.webhook_url:
        _post(settings.webhook_url, summary, settings.webhook_timeout_s)
    return True


def _post(url: str, summary: DriftSummary, timeout_s: float) -> None:
    host = httpx.URL(url).host
    try:
        response = httpx.post(
            url,
            content=summary.model_dump_json(),
            headers={"content-type": "application/json"},
            timeout=timeout_s,
        )
    except httpx.HTTPError as error:
        logger.error("drift webhook to %s failed: %s: %s", host, type(error).__name__, error)
        return
    if response.is_error:
        logger.error("drift webhook to %s answered HTTP %d", host, response.status_code)


def _testable_columns(reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    shared = [column for column in reference.columns if column in current.columns]
    empty = [c for c in shared if reference[c].isna().all() or current[c].isna().all()]
    if empty:
        logger.warning("no values to compare, left out of the drift report: %s", ", ".join(empty))
    return [column for column in shared if column not in empty]


def _run_evidently(
    reference: pd.DataFrame, current: pd.DataFrame, settings: MonitoringSettings
) -> Snapshot:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    preset = DataDriftPreset(
        columns=list(reference.columns),
        drift_share=settings.drift_share,
        threshold=settings.drift_threshold,
    )
    # The per-column verdicts are Evidently's tests, which it only attaches when asked to.
    report = Report([preset], include_tests=True)
    # A column that is constant in a window (is_weekend over one day) makes the correlation
    # plots of the HTML report divide by a zero deviation; the verdicts are unaffected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return report.run(current_data=current, reference_data=reference)


def _column_drift(snapshot: dict[str, Any], columns: list[str]) -> list[FeatureDrift]:
    """Per-column method, score and threshold from the ValueDrift metrics of the snapshot's JSON,
    and the drifted flag from the test Evidently bound to each of them."""
    status = {test["metric_config"]["metric_id"]: test["status"] for test in snapshot["tests"]}
    found = {
        metric["config"]["column"]: FeatureDrift(
            feature=metric["config"]["column"],
            method=metric["config"]["method"],
            score=metric["value"],
            threshold=metric["config"]["threshold"],
            drifted=status[metric["id"]] == DRIFTED,
        )
        for metric in snapshot["metrics"]
        if metric["config"]["type"] == VALUE_DRIFT
    }
    return [found[column] for column in columns]
