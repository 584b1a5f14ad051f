"""The monitoring dashboard: one HTML page that an analyst opens in a browser with no internet.

``collect`` gathers what the page shows from the decision log and a monitor; ``render`` turns it
into the page. Plots are drawn by ``charts`` with matplotlib as inline SVG; the page fetches no script,
font or stylesheet, so it works on a closed network and when saved as a file. Each plot is a
``<figure class="plot" data-plot="NAME" data-points="N">``, N counting what it draws (hours,
decisions, features, days, models), so that a test can tell a drawn plot from a missing one; a
plot with nothing to draw is a ``<p class="empty" data-plot="NAME">`` saying why instead.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import cache

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, Template, select_autoescape

from fraud_ray.decision_api import LoggedDecisionView
from fraud_ray.decision_log import DecisionLog
from fraud_ray.durations import describe_duration
from fraud_ray.monitoring.charts import (
    COLOURS,
    UNDEFINED,
    comparison_plot,
    decisions_plot,
    drift_plot,
    performance_plot,
    score_plot,
)
from fraud_ray.monitoring.drift import NotEnoughData
from fraud_ray.monitoring.summaries import (
    DashboardData,
    DriftSummary,
    HourlyDecisions,
    ScoreHistogram,
    SummarySource,
)
from fraud_ray.schema import LABEL, TIMESTAMP, Action, latest_accepted
from fraud_ray.settings import Settings

logger = logging.getLogger(__name__)


def collect(
    monitor: SummarySource, log: DecisionLog, settings: Settings, end: datetime | None = None
) -> DashboardData:
    """What the dashboard shows over ``monitoring.dashboard_days`` of transaction time.

    The window ends at ``end``, or by default at the end of the day of the newest logged
    transaction, so whole days are shown and a replayed history is shown too. Drift is asked for
    at ``end`` as given: the page and ``/api/v1/monitoring/drift`` then share one cached summary.
    """
    monitoring = settings.monitoring
    newest = log.last_transaction_time(latest_accepted(settings.serving.max_future_s))
    window_end = end or _end_of_day(newest or datetime.now(UTC))
    window_start = window_end - timedelta(days=monitoring.dashboard_days)
    frame = log.frame(window_start, window_end)
    drift: DriftSummary | None = None
    unavailable: str | None = None
    try:
        drift = monitor.drift(end)
    except NotEnoughData as error:
        unavailable = f"Not enough data for a drift verdict yet: {error}"
    except Exception as error:  # a version without its reference sample, Evidently refusing
        # The rest of the page does not depend on drift: show it, and say why drift is missing.
        logger.exception("the dashboard shows no drift")
        unavailable = f"Drift could not be measured: {error}"
    return DashboardData(
        generated_at=datetime.now(UTC),
        window_start=window_start,
        window_end=window_end,
        label_delay=describe_duration(settings.features.label_delay),
        decisions=len(frame),
        unlabelled=int(frame[LABEL].isna().sum()),
        hourly=_hourly(frame),
        scores=_histogram(frame, monitoring.score_bins),
        drift=drift,
        drift_unavailable=unavailable,
        performance=monitor.performance(window_start, window_end),
        comparison=monitor.comparison(window_start, window_end),
        recent_alerts=[
            LoggedDecisionView.of(alert) for alert in log.alerts(monitoring.dashboard_alerts)
        ],
    )


def render(data: DashboardData) -> str:
    """The page, whole: styles and plots inline."""
    return _template().render(
        data=data,
        colours=COLOURS,
        plots={
            "decisions": decisions_plot(data),
            "scores": score_plot(data.scores),
            "drift": drift_plot(data),
            "performance": performance_plot(data),
            "comparison": comparison_plot(data.comparison),
        },
    )


def _hourly(frame: pd.DataFrame) -> list[HourlyDecisions]:
    if frame.empty:
        return []
    actions = [action.value for action in Action]
    counts = pd.crosstab(frame[TIMESTAMP].dt.floor("h"), frame["decision"])
    counts = counts.reindex(columns=actions, fill_value=0)
    return [
        HourlyDecisions(hour=hour.to_pydatetime(), **{a: int(row[a]) for a in actions})
        for hour, row in counts.iterrows()
    ]


def _histogram(frame: pd.DataFrame, bins: int) -> ScoreHistogram:
    edges = np.linspace(0.0, 1.0, bins + 1)
    probabilities = frame["fraud_probability"].to_numpy(dtype=np.float64)
    alerted = (frame["decision"] != Action.APPROVE.value).to_numpy()
    approved_counts, _ = np.histogram(probabilities[~alerted], edges)
    alerted_counts, _ = np.histogram(probabilities[alerted], edges)
    return ScoreHistogram(
        edges=edges.tolist(), approved=approved_counts.tolist(), alerted=alerted_counts.tolist()
    )


def _end_of_day(moment: datetime) -> datetime:
    day = moment.astimezone(UTC).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


@cache
def _template() -> Template:
    environment = Environment(
        loader=PackageLoader("fraud_ray.monitoring", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["count"] = lambda n: f"{n:,}"
    environment.filters["share"] = lambda x: UNDEFINED if x is None else f"{x:.1%}"
    environment.filters["score"] = lambda x: UNDEFINED if x is None else f"{x:.3f}"
    environment.filters["money"] = lambda x: UNDEFINED if x is None else f"{x:,.2f}"
    environment.filters["when"] = lambda t: f"{t.astimezone(UTC):%Y-%m-%d %H:%M}"
    return environment.get_template("dashboard.html")
