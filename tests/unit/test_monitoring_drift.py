"""Drift with Evidently on generated feature frames: a shift injected into two features is found
on those two only, a fresh sample of the same generator is not, and the alarm follows."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from fraud_ray.monitoring.drift import NotEnoughData, alarm, measure_drift
from fraud_ray.monitoring.summaries import DriftSummary
from fraud_ray.settings import MonitoringSettings

from ..conftest import free_port
from ..feature_samples import COLUMNS, SHIFTED, features

WINDOW = (datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 2, tzinfo=UTC))
# Two of six columns drift: a share of 1/3, which this threshold counts as dataset drift.
SETTINGS = MonitoringSettings(drift_min_rows=100, drift_share=0.3)


def measure(current: pd.DataFrame, reports: Path, settings: MonitoringSettings) -> DriftSummary:
    """Against a reference as large as training saves (``REFERENCE_ROWS``); the tests' current
    windows hold a few thousand rows, since on a few hundred Evidently's distance on a
    heavy-tailed amount varies too much to tell a fresh sample from a shifted one reliably."""
    return measure_drift(
        features(seed=1, rows=5000),
        current,
        settings,
        model_version="7",
        window=WINDOW,
        reports_dir=reports,
    )


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> DriftSummary:
    return measure(features(2, 3000, shifted=True), tmp_path_factory.mktemp("shifted"), SETTINGS)


@pytest.fixture(scope="module")
def same(tmp_path_factory: pytest.TempPathFactory) -> DriftSummary:
    return measure(features(3, 3000), tmp_path_factory.mktemp("same"), SETTINGS)


def drifted(summary: DriftSummary) -> set[str]:
    return {feature.feature for feature in summary.features if feature.drifted}


def test_a_shift_is_found_on_the_shifted_features_only(shifted: DriftSummary) -> None:
    assert drifted(shifted) == SHIFTED
    assert [feature.feature for feature in shifted.features] == COLUMNS
    assert shifted.drifted_share == pytest.approx(2 / 6)
    assert shifted.dataset_drift
    assert (shifted.reference_rows, shifted.current_rows) == (5000, 3000)
    assert (shifted.window_start, shifted.window_end, shifted.model_version) == (*WINDOW, "7")
    for feature in shifted.features:
        # Evidently's own choice of test per column, its score and its default threshold.
        assert feature.method
        assert feature.threshold > 0
        assert (feature.score >= feature.threshold) == feature.drifted


def test_the_html_report_is_saved(shifted: DriftSummary, same: DriftSummary) -> None:
    for summary in (shifted, same):
        assert summary.report is not None
        report = Path(summary.report)
        assert report.is_file()
        html = report.read_text(encoding="utf-8")
        assert html.lstrip().startswith("<!DOCTYPE html>")
        assert "card_tx_count_1d" in html


def test_a_fresh_sample_of_the_same_data_does_not_drift(
    same: DriftSummary, caplog: pytest.LogCaptureFixture
) -> None:
    assert drifted(same) == set()
    assert not same.dataset_drift
    with caplog.at_level(logging.WARNING):
        assert alarm(same, SETTINGS) is False
    assert caplog.records == []


def test_the_alarm_names_the_drifted_features(
    shifted: DriftSummary, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert alarm(shifted, SETTINGS) is True
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "amount, card_tx_count_1d" in record.getMessage()
    assert "hour" not in record.getMessage()


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> DriftSummary:
    """A threshold of our own, and a feature that stopped arriving in the current window."""
    current = features(2, 3000, shifted=True).assign(terminal_fraud_rate_30d=np.nan)
    settings = SETTINGS.model_copy(update={"drift_threshold": 0.5})
    return measure(current, tmp_path_factory.mktemp("configured"), settings)


def test_the_configured_threshold_replaces_evidentlys(configured: DriftSummary) -> None:
    assert {feature.threshold for feature in configured.features} == {0.5}
    assert drifted(configured) == SHIFTED


def test_a_column_without_values_is_left_out(configured: DriftSummary) -> None:
    assert "terminal_fraud_rate_30d" not in [feature.feature for feature in configured.features]
    assert configured.drifted_share == pytest.approx(2 / 5)


def test_too_few_rows_give_no_verdict(tmp_path: Path) -> None:
    with pytest.raises(NotEnoughData, match=r"99 logged decisions .* at least 100"):
        measure(features(2, 99), tmp_path, SETTINGS)
    assert list(tmp_path.iterdir()) == []


class Webhook(BaseHTTPRequestHandler):
    """A real HTTP endpoint: keeps what it is sent, answers 500 under /broken."""

    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        Webhook.received.append(json.loads(body))
        self.send_response(500 if self.path.startswith("/broken") else 204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        return


@pytest.fixture
def webhook() -> Iterator[str]:
    Webhook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_webhook_is_posted_the_summary(shifted: DriftSummary, webhook: str) -> None:
    assert alarm(shifted, SETTINGS.model_copy(update={"webhook_url": f"{webhook}/drift"}))
    assert Webhook.received == [json.loads(shifted.model_dump_json())]


def test_no_webhook_without_drift(same: DriftSummary, webhook: str) -> None:
    assert not alarm(same, SETTINGS.model_copy(update={"webhook_url": webhook}))
    assert Webhook.received == []


@pytest.mark.parametrize("broken", ["answers 500", "is not listening"])
def test_a_failing_webhook_is_logged_not_raised(
    shifted: DriftSummary, webhook: str, broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    base = f"{webhook}/broken" if broken == "answers 500" else f"http://127.0.0.1:{free_port()}"
    settings = SETTINGS.model_copy(update={"webhook_url": f"{base}/T0K3N", "webhook_timeout_s": 2})

    assert alarm(shifted, settings)

    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "drift webhook to 127.0.0.1" in errors[0].getMessage()
    assert "T0K3N" not in caplog.text  # webhook URLs carry tokens
