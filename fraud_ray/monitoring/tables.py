"""Monitoring reports as terminal tables: what ``fraud-ray monitor`` and the demo print.

Narrow enough for a day's figures to fit an 80-column terminal unabbreviated; undefined ratios (no
label yet) print as a dash, never as 0.
"""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table

from fraud_ray.monitoring.summaries import DriftSummary, ModelComparison, PerformanceReport


def performance_table(report: PerformanceReport) -> RenderableType:
    if not report.days:
        return "no logged decisions in the window"
    versions = (
        "every model version"
        if report.model_version is None
        else f"model version {report.model_version}"
    )
    table = _table(
        f"Decisions of {versions} by UTC day",
        [
            *("day", "decided", "alerts", "labels", "frauds", "prec.", "recall", "AP", "CP@k"),
            *("cost", "saved"),
        ],
        caption=f"prec.: labelled alerts that were fraud; CP@k: card precision@{report.k}; cost: "
        "realised on the labelled decisions; saved: against approving them all",
    )
    for day in report.days:
        table.add_row(
            day.day.isoformat(),
            f"{day.decisions:,}",
            f"{day.alerts:,}",
            f"{day.labelled:,}",
            f"{day.frauds:,}",
            _ratio(day.precision),
            _ratio(day.recall),
            _ratio(day.average_precision),
            _ratio(day.card_precision_at_k),
            _money(day.realised_cost),
            _money(day.savings),
        )
    return table


def drift_table(summary: DriftSummary) -> RenderableType:
    """Each column's test, then the verdict and where the HTML report is."""
    table = _table(
        f"{summary.current_rows:,} decisions against the {summary.reference_rows:,} reference "
        f"rows of model version {summary.model_version}",
        ["column", "method", "score", "threshold", "drifted"],
        left=2,
    )
    for feature in summary.features:
        table.add_row(
            feature.feature,
            feature.method,
            f"{feature.score:.4g}",
            f"{feature.threshold:g}",
            "[red]yes[/red]" if feature.drifted else "no",
        )
    verdict = "[red]dataset drift[/red]" if summary.dataset_drift else "no dataset drift"
    return Group(
        table,
        f"{verdict}: {summary.drifted_share:.0%} of the columns drifted (alarm at "
        f"{summary.share_threshold:.0%})\nreport: {summary.report}",
    )


def comparison_table(comparison: ModelComparison) -> RenderableType:
    table = _table(
        f"Champion and challengers on {comparison.compared:,} labelled transactions",
        ["role", "version", "labels", "AP", "prec.", "recall", "cost", "saved"],
        caption=f"same action on {_ratio(comparison.agreement)} of them; cost: realised on them; "
        "saved: against approving them all",
    )
    for outcome in comparison.outcomes:
        table.add_row(
            outcome.role,
            outcome.model_version,
            f"{outcome.labelled:,}",
            _ratio(outcome.average_precision),
            _ratio(outcome.precision),
            _ratio(outcome.recall),
            _money(outcome.realised_cost),
            _money(outcome.savings),
        )
    return table


def _table(title: str, columns: list[str], caption: str | None = None, left: int = 1) -> Table:
    """The first ``left`` columns are names, the rest numbers."""
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, padding=0, show_edge=False)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i < left else "right", no_wrap=True)
    return table


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"
