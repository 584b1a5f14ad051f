"""The dashboard in a real browser, with no internet: the standalone monitoring app under uvicorn,
over a decision log of decisions made the way the Serve graph makes them, read by headless
Chromium whose every host name but the app's fails to resolve.

The decisions come from the simulator, offline features and a small XGBoost model registered in
MLflow with its reference sample, decided by the serving pipeline's own code; older days carry
their labels, a weaker challenger is logged in shadow, and the last day's amounts rise by half (a
sale season), so that drift has something to find. ``FRAUD_RAY_SAVE_SCREENSHOT=1`` writes the
screenshot to docs/dashboard.png (in place of the README's picture of `make demo`); otherwise it
goes to a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import uvicorn
import xgboost as xgb

from fraud_ray.calibration import Calibrator
from fraud_ray.costs import CostPolicy
from fraud_ray.decision_log import DecisionLog
from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.features.offline import compute_features
from fraud_ray.model import FraudModel
from fraud_ray.monitoring.app import create_app
from fraud_ray.monitoring.monitor import Monitor
from fraud_ray.monitoring.service import MonitoringService
from fraud_ray.monitoring.summaries import DriftSummary, ModelComparison, PerformanceReport
from fraud_ray.registry import REFERENCE_SAMPLE, Registry
from fraud_ray.schema import AMOUNT, LABEL, TIMESTAMP, Action, DecisionRecord, ModelRef, Transaction
from fraud_ray.serving.pipeline import ServingModel, render
from fraud_ray.settings import CostSettings, Settings, SimulatorSettings
from fraud_ray.simulator import simulate_days

from ..conftest import free_port
from ..dashboard_page import PLOTS, assert_self_contained, read_page

ROOT = Path(__file__).parents[2]
SCREENSHOT = ROOT / "docs" / "dashboard.png"
SAVE_SCREENSHOT = "FRAUD_RAY_SAVE_SCREENSHOT"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")  # as scripts/install-services.sh
SIMULATION = SimulatorSettings(
    customers=400,
    terminals=800,
    days=60,
    start=date(2025, 5, 1),
    compromised_cards_per_day=1,
    compromised_terminals_per_day=1,
)
TRAIN_DAYS, VALIDATION_DAYS = (30, 40), (40, 46)  # the first 30 days fill the feature windows
SERVED_FROM = 46


@dataclass(frozen=True)
class Logged:
    settings: Settings
    log: DecisionLog
    decisions: int
    alerts: int


def fit(
    settings: Settings,
    rows: np.ndarray,
    labels: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray],
    depth: int,
    rounds: int,
) -> FraudModel:
    spec = FeatureSpec.from_settings(settings.features)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": depth, "eta": 0.1, "nthread": 1},
        xgb.DMatrix(rows, label=labels, feature_names=spec.names),
        num_boost_round=rounds,
    )
    calibrator = Calibrator().fit(booster.inplace_predict(validation[0]), validation[1])
    return FraudModel(booster, "xgboost", calibrator, spec)


def decided(
    model: FraudModel, ref: ModelRef, transactions: list[Transaction], rows: np.ndarray
) -> list[DecisionRecord]:
    """The serving pipeline's decisions, scored 40 ms after each transaction rather than now."""
    serving = ServingModel(model, ref, model.spec, CostPolicy.from_settings(CostSettings()), 3)
    amounts = np.array([t.amount for t in transactions])
    made = render(
        [t.transaction_id for t in transactions],
        serving.score(rows, amounts),
        model.spec,
        datetime.now(UTC),
    )
    for decision, transaction in zip(made, transactions, strict=True):
        decision["scored_at"] = transaction.timestamp + timedelta(milliseconds=40)
    return made


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logged]:
    root = tmp_path_factory.mktemp("dashboard")
    settings = Settings(
        decisions={"url": f"sqlite:///{root / 'decisions.db'}"},
        mlflow={
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "artifact_location": str(root / "artifacts"),
            "model_name": "fraud-dashboard",
        },
        # Evidently's reports go to the test's folder; a day of this small simulation holds
        # about 800 decisions, fewer than the default minimum for a verdict.
        monitoring={"reports_dir": str(root / "reports"), "drift_min_rows": 500},
    )
    frame = pd.concat([day for _, day in simulate_days(SIMULATION)], ignore_index=True)
    day = (frame[TIMESTAMP] - frame[TIMESTAMP].min().normalize()).dt.days.to_numpy()
    frame.loc[day == SIMULATION.days - 1, AMOUNT] *= 1.5
    spec = FeatureSpec.from_settings(settings.features)
    features = compute_features(frame, spec)
    rows = features.to_numpy(dtype=np.float64)
    labels = frame[LABEL].to_numpy()
    train = (day >= TRAIN_DAYS[0]) & (day < TRAIN_DAYS[1])
    validation = (day >= VALIDATION_DAYS[0]) & (day < VALIDATION_DAYS[1])
    held_out = (rows[validation], labels[validation])
    champion = fit(settings, rows[train], labels[train], held_out, depth=4, rounds=80)
    challenger = fit(settings, rows[train], labels[train], held_out, depth=2, rounds=15)

    reference = features[validation].assign(
        fraud_probability=champion.probabilities(rows[validation])
    )
    reference.sample(n=3000, random_state=0).to_parquet(root / REFERENCE_SAMPLE, index=False)
    registry = Registry(settings.mlflow)
    champion_ref, challenger_ref = (
        ModelRef(name=registered.name, version=registered.version)
        for registered in (
            registry.register(
                model,
                policy=CostPolicy.from_settings(settings.costs),
                params={},
                metrics={},
                tags={},
                artifacts=[root / REFERENCE_SAMPLE],
                alias=alias,
            )
            for model, alias in ((champion, "champion"), (challenger, "challenger"))
        )
    )

    served = day >= SERVED_FROM
    transactions = [
        Transaction(
            transaction_id=t.transaction_id,
            timestamp=t.timestamp,
            card_id=t.card_id,
            terminal_id=t.terminal_id,
            amount=t.amount,
        )
        for t in frame[served].itertuples()
    ]
    decisions = decided(champion, champion_ref, transactions, rows[served])
    log = DecisionLog(settings.decisions.url)
    log.write(decisions, transactions, features[served].to_dict("records"))
    log.write_shadow(decided(challenger, challenger_ref, transactions, rows[served]))
    # Chargebacks arrive after the label delay: only the older days know their labels.
    labelled_until = frame[TIMESTAMP].max().normalize() - settings.features.label_delay
    known = frame[served & (frame[TIMESTAMP] < labelled_until).to_numpy()]
    log.record_labels(zip(known["transaction_id"], known[LABEL].astype(int), strict=True))
    alerts = sum(decision["decision"] != Action.APPROVE for decision in decisions)
    yield Logged(settings, log, len(decisions), alerts)
    log.close()


@pytest.fixture(scope="module")
def dashboard_url(logged: Logged) -> Iterator[str]:
    """The standalone app on a free port, in a thread of this process."""
    settings, log = logged.settings, logged.log
    app = create_app(settings, MonitoringService(settings, Monitor(settings, log), log))
    # open: headless Chromium sends no credentials (tests/unit/test_access.py covers the guard)
    app.state.tokens = {"analyst": None}
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the monitoring app did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def chromium(profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium that can reach only this machine: any other host name fails to
    resolve, so a page that fetched anything from the internet would show it."""
    program = next(filter(None, map(shutil.which, BROWSERS)), None)
    if program is None:
        pytest.fail("chromium is not installed: run `apt-get install chromium` (.ci/run does)")
    command = [
        program,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        *arguments,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_the_browser_shows_every_plot_with_data_and_the_alerts(
    dashboard_url: str, logged: Logged, tmp_path: Path
) -> None:
    dom = chromium(tmp_path / "profile", "--dump-dom", f"{dashboard_url}/dashboard").stdout
    page = read_page(dom)
    assert set(page.plots) == PLOTS, page.empty
    assert all(points > 0 for points in page.plots.values()), page.plots
    assert page.plots["score-distribution"] == logged.decisions
    assert page.plots["performance"] == 14
    assert page.plots["comparison"] == 2
    assert page.alert_rows == min(logged.alerts, logged.settings.monitoring.dashboard_alerts)
    assert f"{logged.decisions:,}" in page.tiles["decisions"]
    assert "the latest labelled day" in page.tiles["precision-recall"]
    assert "of" in page.tiles["drift"]
    assert_self_contained(page)


def test_a_screenshot_of_the_dashboard(dashboard_url: str, tmp_path: Path) -> None:
    """docs/dashboard.png when FRAUD_RAY_SAVE_SCREENSHOT=1, a temporary file otherwise."""
    path = SCREENSHOT if os.environ.get(SAVE_SCREENSHOT) == "1" else tmp_path / "dashboard.png"
    chromium(
        tmp_path / "profile",
        f"--screenshot={path}",
        "--window-size=1400,2600",
        "--hide-scrollbars",
        f"{dashboard_url}/dashboard",
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (2600, 1400)
    assert pixels[..., :3].std() > 0.05  # plots and tables, not a blank or an error page


def test_the_json_endpoints_answer_from_the_same_log(dashboard_url: str, logged: Logged) -> None:
    with httpx.Client(base_url=dashboard_url, timeout=60) as client:
        drift = client.get("/api/v1/monitoring/drift")
        performance = client.get("/api/v1/monitoring/performance")
        comparison = client.get("/api/v1/monitoring/comparison")
    assert drift.status_code == 200
    assert DriftSummary.model_validate(drift.json()).drifted_share > 0  # the sale season
    report = PerformanceReport.model_validate(performance.json())
    assert sum(day.decisions for day in report.days) == logged.decisions
    assert any(day.labelled for day in report.days) and report.days[-1].labelled == 0
    assert comparison.status_code == 200
    roles = [o.role for o in ModelComparison.model_validate(comparison.json()).outcomes]
    assert roles == ["champion", "challenger"]


def test_monitor_py_serves_the_monitoring_app(logged: Logged) -> None:
    """The entry point as a user starts it, in its own process."""
    port = free_port()
    env = {**os.environ, "FRAUD_RAY_DECISIONS_URL": logged.settings.decisions.url}
    process = subprocess.Popen(
        [sys.executable, "monitor.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            while True:
                try:
                    health = client.get("/health")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        process.kill()
                        pytest.fail(f"monitor.py serve did not start:\n{process.communicate()[0]}")
                    time.sleep(0.2)
            paths = set(client.get("/openapi.json").json()["paths"])
        assert health.json() == {"status": "ok"}
        assert {"/dashboard", "/api/v1/monitoring/drift", "/api/v1/monitoring/performance"} <= paths
    finally:
        process.terminate()
        process.wait(timeout=30)
