"""The monitoring reports as the terminal shows them: every figure in, and nothing invented."""

from __future__ import annotations

from datetime import UTC, date, datetime

from rich.console import Console, RenderableType

from fraud_ray.monitoring.summaries import (
    DayPerformance,
    DriftSummary,
    FeatureDrift,
    ModelComparison,
    ModelOutcome,
    PerformanceReport,
)
from fraud_ray.monitoring.tables import comparison_table, drift_table, performance_table

NOW = datetime(2025, 6, 3, tzinfo=UTC)


def shown(renderable: RenderableType) -> str:
    console = Console(width=80, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def day(labelled: int, precision: float | None) -> DayPerformance:
    return DayPerformance(
        day=date(2025, 6, 1),
        decisions=1234,
        alerts=12,
        labelled=labelled,
        unlabelled=1234 - labelled,
        frauds=5 if labelled else 0,
        precision=precision,
        recall=None,
        average_precision=None,
        card_precision_at_k=None,
        expected_cost=40.0,
        realised_cost=None if precision is None else 1500.4,
        savings=None,
    )


def test_a_day_without_labels_shows_dashes_not_zeros() -> None:
    text = shown(performance_table(PerformanceReport(model_version="7", k=50, days=[day(0, None)])))
    assert "model version 7" in text and "card precision@50" in text
    row = next(line for line in text.splitlines() if "2025-06-01" in line)
    assert "1,234" in row
    assert " 0.000" not in row and row.count("-") >= 5


def test_a_labelled_day_shows_its_ratios_and_costs() -> None:
    text = shown(
        performance_table(PerformanceReport(model_version=None, k=100, days=[day(9, 0.25)]))
    )
    assert "every model version" in text
    assert "0.250" in text and "1,500" in text


def test_no_decisions_is_said_in_words() -> None:
    report = PerformanceReport(model_version=None, k=100, days=[])
    assert shown(performance_table(report)).strip() == "no logged decisions in the window"


def test_the_drift_table_names_the_drifted_columns_and_the_verdict() -> None:
    summary = DriftSummary(
        model_version="3",
        measured_at=NOW,
        window_start=NOW,
        window_end=NOW,
        reference_rows=5000,
        current_rows=1200,
        drifted_share=0.5,
        share_threshold=0.3,
        dataset_drift=True,
        features=[
            FeatureDrift(
                feature="amount", method="wasserstein", score=0.31, threshold=0.1, drifted=True
            ),
            FeatureDrift(feature="hour", method="ks", score=0.2, threshold=0.05, drifted=False),
        ],
        report="/reports/drift.html",
    )
    text = shown(drift_table(summary))
    amount = next(line for line in text.splitlines() if "amount" in line)
    assert "yes" in amount
    assert "dataset drift: 50% of the columns drifted (alarm at 30%)" in text
    assert "/reports/drift.html" in text


def test_the_comparison_table_has_a_row_per_model() -> None:
    def outcome(role: str, version: str) -> ModelOutcome:
        return ModelOutcome(
            role=role,
            model_version=version,
            labelled=39,
            average_precision=0.6,
            precision=None,
            recall=0.8,
            realised_cost=98.5,
            savings=3100.0,
        )

    comparison = ModelComparison(
        window_start=NOW,
        window_end=NOW,
        compared=39,
        agreement=0.92,
        outcomes=[outcome("champion", "3"), outcome("challenger", "4")],
    )
    text = shown(comparison_table(comparison))
    assert "same action on 0.920 of them" in text
    rows = [
        line.split() for line in text.splitlines() if "champion" in line or "challenger" in line
    ]
    assert [row[:2] for row in rows if row[0] in ("champion", "challenger")] == [
        ["champion", "3"],
        ["challenger", "4"],
    ]
    assert all("3,100" in row for row in rows if row[0] in ("champion", "challenger"))
