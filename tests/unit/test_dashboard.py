"""The dashboard page and the monitoring routes, over a real SQLite decision log.

The monitor is a small hand-written object returning summaries written by hand: the page is
judged on what it draws from given summaries, not on how they are measured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fraud_ray.access import tokens
from fraud_ray.decision_log import DecisionLog
from fraud_ray.monitoring.app import create_app
from fraud_ray.monitoring.dashboard import collect, render
from fraud_ray.monitoring.drift import NotEnoughData
from fraud_ray.monitoring.service import CachedMonitor, MonitoringService
from fraud_ray.monitoring.summaries import (
    DayPerformance,
    DriftSummary,
    FeatureDrift,
    ModelComparison,
    ModelOutcome,
    PerformanceReport,
)
from fraud_ray.schema import MAX_FUTURE, Action, Decision, Fees, ModelRef, Reason, Transaction
from fraud_ray.settings import Settings

from ..dashboard_page import PLOTS, assert_self_contained, read_page

FEES = Fees(review_cost=3.0, decline_cost=10.0)

START = datetime(2025, 6, 1, tzinfo=UTC)
DAYS = 3
STEP = timedelta(minutes=37)
TOO_FEW = "12 logged rows in the window, 200 needed"


def logged_decision(i: int, transaction_id: str | None = None) -> tuple[Decision, Transaction]:
    """Every 37 minutes a payment; its score climbs and falls, so a few are reviews or declines."""
    when = START + i * STEP
    probability = (i * 7 % 100) / 100
    action = (
        Action.DECLINE
        if probability >= 0.9
        else Action.REVIEW
        if probability >= 0.7
        else Action.APPROVE
    )
    reasons = (
        []
        if action is Action.APPROVE
        else [
            Reason(feature="amount", description="transaction amount", contribution=1.4),
            Reason(feature="is_night", description="made at night", contribution=0.3),
        ]
    )
    tx = transaction_id or f"tx-{i:05d}"
    decision = Decision(
        transaction_id=tx,
        fraud_probability=probability,
        decision=action,
        expected_cost=3.0,
        reasons=reasons,
        model=ModelRef(name="fraud-ray", version="3"),
        costs=FEES,
        scored_at=when + timedelta(milliseconds=40),
        latency_ms=4.0,
    )
    transaction = Transaction(
        transaction_id=tx,
        timestamp=when,
        card_id=f"card-{i % 11}",
        terminal_id=f"terminal-{i % 5}",
        amount=10.0 + i,
    )
    return decision, transaction


def fill(log: DecisionLog, count: int = DAYS * 24 * 60 // 37) -> list[Decision]:
    pairs = [logged_decision(i) for i in range(count)]
    log.write([d.model_dump(mode="json") for d, _ in pairs], [t for _, t in pairs])
    # The first day is labelled, the rest still waits for chargebacks.
    first_day = [t.transaction_id for d, t in pairs if t.timestamp < START + timedelta(days=1)]
    log.record_labels((tx, int(i % 9 == 0)) for i, tx in enumerate(first_day))
    return [d for d, _ in pairs]


def drift_summary() -> DriftSummary:
    def feature(
        name: str, score: float, drifted: bool, method: str = "wasserstein"
    ) -> FeatureDrift:
        threshold = 0.05 if method == "ks" else 0.1
        return FeatureDrift(
            feature=name, method=method, score=score, threshold=threshold, drifted=drifted
        )

    return DriftSummary(
        model_version="3",
        measured_at=START + timedelta(days=DAYS),
        window_start=START + timedelta(days=DAYS - 1),
        window_end=START + timedelta(days=DAYS),
        reference_rows=5000,
        current_rows=38,
        drifted_share=0.4,
        share_threshold=0.5,
        dataset_drift=False,
        features=[
            feature("amount", 0.31, True),
            feature("log_amount", 0.04, False),
            feature("hour", 0.02, False),
            feature("card_tx_count_1d", 0.2, False, "ks"),
            feature("fraud_probability", 0.001, True, "ks"),
        ],
        report=None,
    )


def day_performance(day: int, labelled: bool) -> DayPerformance:
    judged = 0.5 if labelled else None
    return DayPerformance(
        day=date(2025, 6, 1) + timedelta(days=day),
        decisions=39,
        alerts=12,
        labelled=39 if labelled else 0,
        unlabelled=0 if labelled else 39,
        frauds=5 if labelled else 0,
        precision=judged,
        recall=0.8 if labelled else None,
        average_precision=0.61 if labelled else None,
        card_precision_at_k=0.04 if labelled else None,
        expected_cost=120.0,
        realised_cost=98.5 if labelled else None,
        savings=310.0 if labelled else None,
    )


def performance_report(labelled_days: int = 1) -> PerformanceReport:
    return PerformanceReport(
        model_version=None,
        k=100,
        days=[day_performance(day, day < labelled_days) for day in range(DAYS)],
    )


def model_comparison() -> ModelComparison:
    def outcome(role: str, version: str, precision: float) -> ModelOutcome:
        return ModelOutcome(
            role=role,
            model_version=version,
            labelled=39,
            average_precision=0.6,
            precision=precision,
            recall=0.8,
            realised_cost=98.5,
            savings=310.0,
        )

    return ModelComparison(
        window_start=START,
        window_end=START + timedelta(days=DAYS),
        compared=39,
        agreement=0.92,
        outcomes=[outcome("champion", "3", 0.5), outcome("challenger", "4", 0.55)],
    )


@dataclass
class HandMadeMonitor:
    """Answers like a Monitor with the summaries it was given, and remembers what it was asked.
    No drift summary means too few rows for one."""

    drift_summary: DriftSummary | None = field(default_factory=drift_summary)
    report: PerformanceReport = field(default_factory=performance_report)
    challenger: ModelComparison | None = field(default_factory=model_comparison)
    asked: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)

    def performance(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        model_version: str | None = None,
    ) -> PerformanceReport:
        self.asked.append(("performance", (start, end, model_version)))
        return self.report

    def drift(self, end: datetime | None = None) -> DriftSummary:
        self.asked.append(("drift", (end,)))
        if self.drift_summary is None:
            raise NotEnoughData(TOO_FEW)
        return self.drift_summary

    def comparison(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> ModelComparison | None:
        self.asked.append(("comparison", (start, end)))
        return self.challenger


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(decisions={"url": f"sqlite:///{tmp_path / 'decisions.db'}"})


@pytest.fixture
def log(settings: Settings) -> Iterator[DecisionLog]:
    opened = DecisionLog(settings.decisions.url)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def filled_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Decision], str]:
    """One rendered page over a filled log: drawing five plots takes a second or two."""
    log = DecisionLog(f"sqlite:///{tmp_path_factory.mktemp('page') / 'decisions.db'}")
    decisions = fill(log)
    page = render(collect(HandMadeMonitor(), log, Settings()))
    log.close()
    return decisions, page


def test_a_page_with_data_draws_every_plot(filled_page: tuple[list[Decision], str]) -> None:
    decisions, html = filled_page
    page = read_page(html)
    assert set(page.plots) == PLOTS
    assert all(points > 0 for points in page.plots.values()), page.plots
    assert page.empty == {}
    alerts = [d for d in decisions if d.decision is not Action.APPROVE]
    assert page.alert_rows == min(len(alerts), Settings().monitoring.dashboard_alerts)
    assert_self_contained(page)


def test_each_plot_counts_what_it_draws(filled_page: tuple[list[Decision], str]) -> None:
    decisions, html = filled_page
    page = read_page(html)
    hours = {(START + i * STEP).replace(minute=0) for i in range(len(decisions))}
    assert page.plots == {
        "decisions-over-time": len(hours),
        "score-distribution": len(decisions),
        "drift": len(drift_summary().features),
        "performance": DAYS,
        "comparison": 2,
    }


def test_the_summary_strip_reads_the_window(filled_page: tuple[list[Decision], str]) -> None:
    decisions, html = filled_page
    tiles = read_page(html).tiles
    alerts = sum(d.decision is not Action.APPROVE for d in decisions)
    assert f"{len(decisions):,}" in tiles["decisions"]
    assert f"{alerts / len(decisions):.1%}" in tiles["alert-rate"]
    assert "2 of 5" in tiles["drift"]
    assert "50.0% / 80.0%" in tiles["precision-recall"]
    assert "on 2025-06-01" in tiles["precision-recall"]
    labelled = len([i for i in range(len(decisions)) if START + i * STEP < START + timedelta(1)])
    assert f"{(len(decisions) - labelled) / len(decisions):.1%}" in tiles["unlabelled"]


def test_an_empty_log_renders_a_page_of_explanations(log: DecisionLog, settings: Settings) -> None:
    monitor = HandMadeMonitor(
        drift_summary=None,
        report=PerformanceReport(model_version=None, k=100, days=[]),
        challenger=None,
    )
    page = read_page(render(collect(monitor, log, settings)))
    assert page.plots == {}
    assert set(page.empty) == PLOTS | {"alerts"}
    assert page.empty["decisions-over-time"].startswith("No decisions in the decision log")
    assert TOO_FEW in page.empty["drift"]
    assert page.empty["comparison"].startswith("No challenger in shadow")
    assert page.empty["alerts"] == "No alerts in the decision log yet."
    assert "no verdict yet" in page.tiles["drift"]
    assert "no labels yet" in page.tiles["precision-recall"]
    assert_self_contained(page)


def test_without_labels_the_page_says_they_are_awaited(
    log: DecisionLog, settings: Settings
) -> None:
    fill(log)
    monitor = HandMadeMonitor(report=performance_report(labelled_days=0))
    page = read_page(render(collect(monitor, log, settings)))
    assert "performance" not in page.plots
    assert page.empty["performance"] == (
        "No labels yet: precision, recall and realised cost appear as labels arrive "
        f"(chargebacks take about 7 days). {DAYS * 39:,} decisions are waiting for one."
    )
    assert set(page.plots) == PLOTS - {"performance"}
    assert page.alert_rows > 0


def test_not_enough_data_for_drift_says_why_and_the_rest_is_drawn(
    log: DecisionLog, settings: Settings
) -> None:
    fill(log)
    page = read_page(render(collect(HandMadeMonitor(drift_summary=None), log, settings)))
    assert page.empty == {"drift": f"Not enough data for a drift verdict yet: {TOO_FEW}"}
    assert set(page.plots) == PLOTS - {"drift"}


def test_a_drift_that_fails_leaves_the_rest_of_the_page(
    log: DecisionLog, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Monitor.drift raises MLflow's error when a version lacks its reference sample."""

    class NoReference(HandMadeMonitor):
        def drift(self, end: datetime | None = None) -> DriftSummary:
            raise LookupError("no reference_sample.parquet for model version fraud-ray/3")

    fill(log)
    page = read_page(render(collect(NoReference(), log, settings)))
    assert page.empty == {
        "drift": "Drift could not be measured: no reference_sample.parquet for model version "
        "fraud-ray/3"
    }
    assert set(page.plots) == PLOTS - {"drift"}
    assert "the dashboard shows no drift" in caplog.text


def test_no_challenger_and_an_unjudged_one_are_told_apart(
    log: DecisionLog, settings: Settings
) -> None:
    fill(log)
    page = read_page(render(collect(HandMadeMonitor(challenger=None), log, settings)))
    assert page.empty["comparison"].startswith("No challenger in shadow")
    unjudged = model_comparison().model_copy(update={"compared": 0, "outcomes": []})
    page = read_page(render(collect(HandMadeMonitor(challenger=unjudged), log, settings)))
    assert page.empty["comparison"] == (
        "The challenger has no labelled transactions in common with the champion yet."
    )


def test_text_from_the_log_is_escaped(log: DecisionLog, settings: Settings) -> None:
    decision, transaction = logged_decision(13, transaction_id="<script>alert(1)</script>")
    assert decision.decision is not Action.APPROVE
    log.write([decision.model_dump(mode="json")], [transaction])
    html = render(collect(HandMadeMonitor(), log, settings))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert read_page(html).alert_rows == 1


def test_the_window_ends_with_the_day_of_the_newest_transaction(
    log: DecisionLog, settings: Settings
) -> None:
    decisions = fill(log)
    monitor = HandMadeMonitor()
    data = collect(monitor, log, settings)
    assert data.window_end == START + timedelta(days=DAYS)
    assert data.window_start == data.window_end - timedelta(days=14)
    assert data.decisions == len(decisions)
    window = (data.window_start, data.window_end)
    # Drift is asked at the same moment as the API asks, so the two share a cached summary.
    assert monitor.asked == [
        ("drift", (None,)),
        ("performance", (*window, None)),
        ("comparison", window),
    ]


def test_an_explicit_end_sets_the_window(log: DecisionLog, settings: Settings) -> None:
    fill(log)
    end = START + timedelta(days=1, hours=6)
    data = collect(HandMadeMonitor(), log, settings, end=end)
    assert (data.window_start, data.window_end) == (end - timedelta(days=14), end)
    assert data.decisions == len(range(0, 30 * 60 // 37 + 1))
    assert sum(h.approve + h.review + h.decline for h in data.hourly) == data.decisions
    assert sum(data.scores.approved) + sum(data.scores.alerted) == data.decisions


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_drift_is_measured_once_per_cache_period() -> None:
    monitor = HandMadeMonitor()
    clock = Clock()
    cache = CachedMonitor(monitor, ttl_s=60, clock=clock)
    first = cache.drift()
    clock.now = 59
    assert cache.drift() is first
    assert len(monitor.asked) == 1
    cache.drift(START)  # another moment is another question
    assert len(monitor.asked) == 2
    clock.now = 200
    cache.drift(START)
    assert len(monitor.asked) == 3


def test_each_fresh_drift_summary_is_published_once() -> None:
    published: list[DriftSummary] = []
    clock = Clock()
    cache = CachedMonitor(HandMadeMonitor(), ttl_s=60, clock=clock, on_drift=published.append)
    first = cache.drift()
    cache.drift()
    clock.now = 61
    cache.drift()
    assert published[0] is first and len(published) == 2


def test_not_enough_data_is_kept_as_long_as_a_summary() -> None:
    monitor = HandMadeMonitor(drift_summary=None)
    cache = CachedMonitor(monitor, ttl_s=60, clock=Clock())
    for _ in range(2):
        with pytest.raises(NotEnoughData, match=TOO_FEW):
            cache.drift()
    assert len(monitor.asked) == 1


def client_for(settings: Settings, monitor: HandMadeMonitor, log: DecisionLog) -> TestClient:
    return TestClient(
        create_app(settings, MonitoringService(settings, monitor, log)), headers=analyst(settings)
    )


def analyst(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.serving.analyst_token}"}


def test_the_dashboard_route_serves_the_page(log: DecisionLog, settings: Settings) -> None:
    fill(log)
    with client_for(settings, HandMadeMonitor(), log) as client:
        answer = client.get("/dashboard")
        assert client.get("/", follow_redirects=False).headers["location"] == "/dashboard"
        assert client.get("/health").json() == {"status": "ok"}
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert set(read_page(answer.text).plots) == PLOTS


def test_drift_route_answers_the_summary_or_409(log: DecisionLog, settings: Settings) -> None:
    with client_for(settings, HandMadeMonitor(), log) as client:
        answer = client.get("/api/v1/monitoring/drift")
    assert answer.status_code == 200
    assert DriftSummary.model_validate(answer.json()) == drift_summary()

    with client_for(settings, HandMadeMonitor(drift_summary=None), log) as client:
        refused = client.get("/api/v1/monitoring/drift")
    assert refused.status_code == 409
    assert refused.json() == {
        "message": f"not enough data for a drift verdict: {TOO_FEW}",
        "errors": [],
    }


def test_drift_route_says_why_drift_cannot_be_measured(
    log: DecisionLog, settings: Settings
) -> None:
    class NoCommonColumn(HandMadeMonitor):
        def drift(self, end: datetime | None = None) -> DriftSummary:
            raise ValueError("the logged features share no column with the reference sample")

    with client_for(settings, NoCommonColumn(), log) as client:
        refused = client.get("/api/v1/monitoring/drift")
    assert refused.status_code == 409
    assert refused.json()["message"] == (
        "drift cannot be measured: the logged features share no column with the reference sample"
    )


def test_drift_route_reuses_a_recent_summary(log: DecisionLog, settings: Settings) -> None:
    monitor = HandMadeMonitor()
    with client_for(settings, monitor, log) as client:
        for _ in range(3):
            assert client.get("/api/v1/monitoring/drift").status_code == 200
    assert monitor.asked == [("drift", (None,))]


def test_performance_route_passes_the_window_in_utc(log: DecisionLog, settings: Settings) -> None:
    monitor = HandMadeMonitor()
    with client_for(settings, monitor, log) as client:
        answer = client.get(
            "/api/v1/monitoring/performance",
            params={
                "start": "2025-06-01T00:00:00",
                "end": "2025-06-03T02:00:00+02:00",
                "model_version": "3",
            },
        )
    assert answer.status_code == 200
    assert PerformanceReport.model_validate(answer.json()) == performance_report()
    assert monitor.asked == [
        ("performance", (START, START + timedelta(days=2), "3")),
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "2025-06-02", "end": "2025-06-01"}, "start: 2025-06-02T00:00:00+00:00 must be"),
        ({"start": "0001-01-01T00:00:00+01:00"}, "start: 0001-01-01T00:00:00+01:00 is outside"),
        ({"end": "9999-12-31T23:59:59"}, "end: 9999-12-31T23:59:59 is outside"),
        ({"start": "yesterday"}, "query.start: Input should be a valid datetime"),
        ({"start": "0.5"}, "query.start: Value error, must be an ISO 8601 time, not a number"),
    ],
)
def test_performance_route_refuses_a_bad_window(
    log: DecisionLog, settings: Settings, params: dict[str, str], message: str
) -> None:
    monitor = HandMadeMonitor()
    with client_for(settings, monitor, log) as client:
        answer = client.get("/api/v1/monitoring/performance", params=params)
    assert answer.status_code == 422
    assert message in answer.json()["message"]
    assert monitor.asked == []


def test_comparison_route_answers_the_comparison_or_404(
    log: DecisionLog, settings: Settings
) -> None:
    with client_for(settings, HandMadeMonitor(), log) as client:
        answer = client.get("/api/v1/monitoring/comparison")
    assert answer.status_code == 200
    assert ModelComparison.model_validate(answer.json()) == model_comparison()

    with client_for(settings, HandMadeMonitor(challenger=None), log) as client:
        missing = client.get("/api/v1/monitoring/comparison")
    assert missing.status_code == 404
    assert missing.json()["message"].startswith("no challenger in shadow")


def test_an_app_without_monitoring_state_says_what_is_missing(settings: Settings) -> None:
    app = create_app(settings)
    del app.state.monitoring
    with (
        TestClient(app, raise_server_exceptions=True, headers=analyst(settings)) as client,
        pytest.raises(RuntimeError, match=r"app\.state\.monitoring = Monitoring"),
    ):
        client.get("/api/v1/monitoring/drift")


def test_the_serve_ingress_app_serves_the_same_routes(log: DecisionLog, settings: Settings) -> None:
    """The graph's FastAPI app, without Ray: the router is included and reads the state that
    the Ingress replica sets."""
    from fraud_ray.serving.graph import api

    api.state.monitoring = MonitoringService(settings, HandMadeMonitor(challenger=None), log)
    api.state.tokens = tokens(settings.serving)
    try:
        with TestClient(api, headers=analyst(settings)) as client:
            drift = client.get("/api/v1/monitoring/drift")
            missing = client.get("/api/v1/monitoring/comparison")
            paths = set(client.get("/openapi.json").json()["paths"])
    finally:
        del api.state.monitoring, api.state.tokens
    assert drift.status_code == 200
    assert missing.status_code == 404 and "message" in missing.json()
    assert {
        "/dashboard",
        "/api/v1/monitoring/drift",
        "/api/v1/monitoring/performance",
        "/api/v1/monitoring/comparison",
    } <= paths


class FlakyMonitor(HandMadeMonitor):
    """Too few rows, then a database away, then a verdict: what a scheduled check meets."""

    def drift(self, end: datetime | None = None) -> DriftSummary:
        self.asked.append(("drift", (end,)))
        checks = len(self.asked)
        if checks == 1:
            raise NotEnoughData(TOO_FEW)
        if checks == 2:
            raise ConnectionError("the decision log is away")
        assert self.drift_summary is not None
        return self.drift_summary


def test_scheduled_drift_checks_survive_failures_and_raise_the_alarm(settings: Settings) -> None:
    settings = settings.model_copy(
        update={"monitoring": settings.monitoring.model_copy(update={"drift_cache_s": 0})}
    )
    monitor = FlakyMonitor()
    alarms: list[DriftSummary] = []
    monitoring = MonitoringService(settings, monitor, on_drift=alarms.append)

    async def three_checks() -> None:
        task = asyncio.create_task(monitoring.check_drift_every(0.01))
        while len(monitor.asked) < 3:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(asyncio.wait_for(three_checks(), timeout=30))
    assert [kind for kind, _ in monitor.asked[:3]] == ["drift"] * 3
    assert alarms and alarms[0] == monitor.drift_summary


def test_one_transaction_dated_far_ahead_does_not_move_the_window(
    log: DecisionLog, settings: Settings
) -> None:
    """A row logged before the schema bounded future times (or with the bound off) is left out
    of where the window ends, so the page still shows the traffic."""
    decisions = fill(log)
    decision, transaction = logged_decision(len(decisions), "from-2150")
    far = transaction.model_dump() | {"timestamp": datetime(2150, 1, 1, tzinfo=UTC)}
    log.write(
        [decision.model_dump(mode="json")],
        [Transaction.model_validate(far, context={MAX_FUTURE: None})],
    )
    data = collect(HandMadeMonitor(), log, settings)
    assert data.window_end == START + timedelta(days=DAYS)
    assert data.decisions == len(decisions)
