"""The dashboard's plots: matplotlib figures inlined as SVG, so the page fetches nothing.

Each ``Plot`` knows how many things it drew (hours, decisions, features, days, models), so that a
test can tell a drawn plot from a missing one; a plot with nothing to draw carries no SVG, and the
page says why instead.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

from fraud_ray.monitoring.summaries import (
    DashboardData,
    FeatureDrift,
    ModelComparison,
    ScoreHistogram,
)

UNDEFINED = "\N{EN DASH}"  # a ratio with nothing to divide by: not zero, and not shown as zero
LEGEND_WIDTH = 1.9  # inches right of a time series for its legend
SMALLEST_P = 1e-300  # a p-value of 0 (float underflow) drawn as this, not as an endless bar
NO_CHALLENGER = (
    "no decisions of a challenger (fraud-ray train --challenger) were logged beside the champion's"
)
# One palette for the plots and the page's badges, so an action has one colour everywhere.
COLOURS = {
    "approve": "#8fb3d9",
    "review": "#e8a33d",
    "decline": "#d1495b",
    "precision": "#2e6fba",
    "recall": "#8e44ad",
    "cost": "#d1495b",
    "savings": "#3a9d5d",
    "labelled": "#3a9d5d",
    "unlabelled": "#c9ced6",
    "drifted": "#d1495b",
    "steady": "#8fb3d9",
    "threshold": "#333333",
    "champion": "#2e6fba",
    "challenger": "#e8a33d",
}


@dataclass(frozen=True)
class Plot:
    """A drawn plot (``svg``) or the sentence that says why there is none (``empty``)."""

    name: str
    points: int = 0
    svg: str | None = None
    empty: str | None = None


def decisions_plot(data: DashboardData) -> Plot:
    """Hourly counts as filled steps over every hour of the window: one path per series rather
    than a bar per hour, which keeps a fortnight's page light, and quiet hours read as zero."""
    name = "decisions-over-time"
    if not data.hourly:
        return Plot(name, empty=_no_decisions(data))
    hours = pd.date_range(
        pd.Timestamp(data.window_start).floor("h"),
        pd.Timestamp(data.window_end).ceil("h"),
        freq="h",
    )
    counts = (
        pd.DataFrame([hour.model_dump() for hour in data.hourly])
        .set_index("hour")
        .reindex(hours[:-1], fill_value=0)
    )
    edges = date2num(hours.to_pydatetime())
    review = counts["review"].to_numpy()
    alerts = review + counts["decline"].to_numpy()
    figure = _figure(12, 3.8, bottom=0.55, right=LEGEND_WIDTH)
    everything, alerting = figure.subplots(2, 1, sharex=True, height_ratios=[1.2, 1])
    everything.stairs(
        alerts + counts["approve"].to_numpy(),
        edges,
        fill=True,
        color=COLOURS["approve"],
        label="all decisions",
    )
    everything.set(ylabel="decisions / hour", title="Decisions per hour of transaction time")
    alerting.stairs(review, edges, fill=True, color=COLOURS["review"], label="review")
    alerting.stairs(
        alerts, edges, baseline=review, fill=True, color=COLOURS["decline"], label="decline"
    )
    alerting.set(ylabel="alerts / hour", xlim=(edges[0], edges[-1]))
    alerting.xaxis_date(UTC)
    locator = AutoDateLocator(tz=UTC)
    alerting.xaxis.set_major_locator(locator)
    alerting.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
    for axes in (everything, alerting):
        _style(axes)
        _legend_beside(axes)
    return Plot(name, len(data.hourly), _svg(figure))


def score_plot(scores: ScoreHistogram) -> Plot:
    name = "score-distribution"
    counted = sum(scores.approved) + sum(scores.alerted)
    if counted == 0:
        return Plot(name, empty="No decisions in the window, so no scores to show.")
    edges = np.array(scores.edges)
    figure = _figure(6.4, 4.2, left=0.7, bottom=0.55)
    axes = figure.subplots()
    for label, counts, colour in (
        ("approved", scores.approved, COLOURS["approve"]),
        ("review or decline", scores.alerted, COLOURS["decline"]),
    ):
        axes.bar(
            edges[:-1],
            counts,
            np.diff(edges),
            align="edge",
            color=colour,
            alpha=0.75,
            log=True,
            label=f"{label} ({sum(counts):,})",
        )
    axes.set(
        xlabel="calibrated fraud probability",
        ylabel="decisions (log scale)",
        xlim=(0, 1),
        title="Score distribution",
    )
    _style(axes)
    axes.legend(loc="upper right", fontsize=8)
    return Plot(name, counted, _svg(figure))


def drift_plot(data: DashboardData) -> Plot:
    """A bar per column with its threshold marked; red bars drifted, longer bars drift more.

    A test's score is a p-value (drift below the threshold) or a distance (drift above it); the
    summary does not say which, but the verdict does, so columns of each kind get their own axes
    rather than one scale that would read backwards for half of them.
    """
    name = "drift"
    if data.drift is None:
        return Plot(name, empty=data.drift_unavailable)
    if not data.drift.features:
        return Plot(name, empty="The drift summary compares no columns.")
    groups = [
        (lower, sorted(group, key=lambda f: (not f.drifted, f.score if lower else -f.score)))
        for lower in (True, False)
        if (group := [f for f in data.drift.features if _lower_is_drift(f) == lower])
    ]
    rows = sum(len(group) for _, group in groups)
    longest = max(len(f.feature) for f in data.drift.features)
    row, gap = 0.22, 0.9  # inches: a bar, and the tick labels and title between two axes
    figure = _figure(
        6.4,
        0.9 + 0.2 * len(groups) + row * rows + gap * (len(groups) - 1),
        left=0.25 + 0.065 * longest,  # room for the column names, at 8 points
        bottom=0.62,
        hspace=gap / (0.1 + row * rows / len(groups)),  # a fraction of the mean axes height
    )
    axes_list = figure.subplots(
        len(groups), 1, squeeze=False, height_ratios=[len(g) for _, g in groups]
    )
    for axes, (lower, group) in zip(axes_list[:, 0], groups, strict=True):
        # p-values of a drifted column are far below any readable bar: drawn as -log10(p), a
        # longer bar is a stronger drift for either kind of test.
        length = _strength if lower else float
        y = np.arange(len(group))
        bars = axes.barh(
            y,
            [length(f.score) for f in group],
            color=[COLOURS["drifted" if f.drifted else "steady"] for f in group],
        )
        axes.vlines(
            [length(f.threshold) for f in group],
            y - 0.42,
            y + 0.42,
            colors=COLOURS["threshold"],
            lw=1.5,
        )
        axes.bar_label(bars, labels=[f"{f.score:.3g}" for f in group], padding=3, fontsize=7)
        axes.set_yticks(y, [_plain(f.feature) for f in group], fontsize=8)
        axes.invert_yaxis()
        methods = ", ".join(sorted({f.method for f in group}))
        measure = "-log10 p-value" if lower else "distance"
        axes.set_xlabel(f"{methods}\n{measure}: drift beyond the black mark", fontsize=8)
        axes.margins(x=0.15)
        _style(axes)
    axes_list[0, 0].set_title(
        f"Drift against the reference of model {_plain(data.drift.model_version)}"
    )
    return Plot(name, rows, _svg(figure))


def performance_plot(data: DashboardData) -> Plot:
    name = "performance"
    days = data.performance.days
    if not days:
        return Plot(name, empty=_no_decisions(data))
    if not any(day.labelled for day in days):
        waiting = sum(day.unlabelled for day in days)
        return Plot(
            name,
            empty=(
                f"No labels yet: precision, recall and realised cost appear as labels arrive "
                f"(chargebacks take about {data.label_delay}). "
                f"{waiting:,} decisions are waiting for one."
            ),
        )
    when = _noon([day.day for day in days])
    figure = _figure(12, 5.2, bottom=0.55, right=LEGEND_WIDTH)
    quality, cost, labels = figure.subplots(3, 1, sharex=True, height_ratios=[1.3, 1, 0.8])
    for metric in ("precision", "recall"):
        values = [_nan(getattr(day, metric)) for day in days]
        quality.plot(when, values, marker="o", color=COLOURS[metric], label=metric)
    quality.set(ylim=(0, 1.05), ylabel="share", title="Alerts judged by the labels known so far")
    offset = timedelta(hours=4)
    cost.bar(
        [d - offset for d in when],
        [_nan(day.realised_cost) for day in days],
        0.3,
        color=COLOURS["cost"],
        label="realised cost (labelled)",
    )
    cost.bar(
        [d + offset for d in when],
        [_nan(day.savings) for day in days],
        0.3,
        color=COLOURS["savings"],
        label="savings vs approving all",
    )
    cost.axhline(0, color=COLOURS["threshold"], lw=0.8)
    cost.set(ylabel="cost")
    labelled = [day.labelled for day in days]
    labels.bar(when, labelled, 0.7, color=COLOURS["labelled"], label="labelled")
    labels.bar(
        when,
        [day.unlabelled for day in days],
        0.7,
        bottom=labelled,
        color=COLOURS["unlabelled"],
        label="waiting for a label",
    )
    labels.set(ylabel="decisions")
    locator = AutoDateLocator(tz=UTC)
    labels.xaxis.set_major_locator(locator)
    labels.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
    for axes in (quality, cost, labels):
        _style(axes)
        _legend_beside(axes)
    return Plot(name, len(days), _svg(figure))


def comparison_plot(comparison: ModelComparison | None) -> Plot:
    name = "comparison"
    if comparison is None:
        return Plot(name, empty=f"No challenger in shadow: {NO_CHALLENGER}.")
    outcomes = comparison.outcomes
    if not outcomes:
        return Plot(
            name,
            empty="The challenger has no labelled transactions in common with the champion yet.",
        )
    figure = _figure(12, 3.6, bottom=0.4, wspace=0.15)
    quality, cost = figure.subplots(1, 2)
    metrics = ("average_precision", "precision", "recall")
    width = 0.8 / len(outcomes)
    x = np.arange(len(metrics))
    for i, outcome in enumerate(outcomes):
        values = [getattr(outcome, metric) for metric in metrics]
        bars = quality.bar(
            x + i * width,
            [_nan(value) for value in values],
            width,
            color=COLOURS.get(outcome.role),
            label=_plain(f"{outcome.role} v{outcome.model_version}"),
        )
        shown = [UNDEFINED if value is None else f"{value:.2f}" for value in values]
        quality.bar_label(bars, labels=shown, padding=2, fontsize=7)
    quality.set_xticks(x + width * (len(outcomes) - 1) / 2, ["AP", "precision", "recall"])
    quality.set(ylim=(0, 1.1), title=f"On {comparison.compared:,} labelled transactions")
    x = np.arange(len(outcomes))
    cost.bar(x - 0.2, [o.realised_cost for o in outcomes], 0.4, color=COLOURS["cost"])
    cost.bar(x + 0.2, [o.savings for o in outcomes], 0.4, color=COLOURS["savings"])
    cost.set_xticks(x, [_plain(f"{o.role} v{o.model_version}") for o in outcomes])
    cost.legend(["realised cost", "savings vs approving all"], loc="upper left", fontsize=8)
    cost.axhline(0, color=COLOURS["threshold"], lw=0.8)
    cost.set(title="Cost of each model's decisions")
    for axes in (quality, cost):
        _style(axes)
    quality.legend(loc="upper right", fontsize=8)
    return Plot(name, len(outcomes), _svg(figure))


def _no_decisions(data: DashboardData) -> str:
    return (
        f"No decisions in the decision log between {data.window_start:%Y-%m-%d %H:%M} and "
        f"{data.window_end:%Y-%m-%d %H:%M} UTC (transaction time)."
    )


def _lower_is_drift(feature: FeatureDrift) -> bool:
    return (feature.score < feature.threshold) == feature.drifted


def _strength(p_value: float) -> float:
    return -math.log10(max(p_value, SMALLEST_P))


def _nan(value: float | None) -> float:
    return np.nan if value is None else value


def _noon(days: list[date]) -> list[datetime]:
    """Bars centred on their day rather than starting at its midnight."""
    return [datetime(d.year, d.month, d.day, 12, tzinfo=UTC) for d in days]


def _plain(text: str) -> str:
    """Feature names and versions shown as they are: matplotlib reads ``$...$`` as maths."""
    return text.replace("$", r"\$")


def _figure(
    width: float,
    height: float,
    *,
    left: float = 0.8,
    right: float = 0.25,
    top: float = 0.4,
    bottom: float = 0.5,
    hspace: float = 0.12,
    wspace: float = 0.2,
) -> Figure:
    """A Figure of its own, never pyplot's (the app renders pages for as long as it runs), with
    margins in inches: constrained layout would find them itself, but doubles the drawing time."""
    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        top=1 - top / height,
        bottom=bottom / height,
        hspace=hspace,
        wspace=wspace,
    )
    return figure


def _style(axes: Axes) -> None:
    axes.grid(alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(labelsize=8)


def _legend_beside(axes: Axes) -> None:
    """Right of the axes, where it hides no bar: time series fill their axes edge to edge."""
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _svg(figure: Figure) -> str:
    """The figure as an ``<svg>`` element to inline: no XML prolog, no date, so that the same
    data gives the same page."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]
