"""What monitoring reports: the bodies of ``/api/v1/monitoring/*``, the CLI's JSON and the dashboard's
data, defined once so that the three cannot disagree; and ``SummarySource``, what answers for them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from fraud_ray.decision_api import LoggedDecisionView


class Summary(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DayPerformance(Summary):
    """One day of decisions (by transaction time) judged against the labels known so far.

    Ratios are ``None`` where they are undefined (no labelled fraud, no alert): a day whose labels
    have not arrived yet must not read as a day of perfect or useless decisions.
    """

    day: date
    decisions: int
    alerts: int = Field(description="decisions other than approve")
    labelled: int
    unlabelled: int = Field(description="decisions still waiting for a label")
    frauds: int = Field(description="labelled frauds")
    precision: float | None = Field(description="labelled alerts that were fraud")
    recall: float | None = Field(description="labelled frauds that were alerted")
    average_precision: float | None
    card_precision_at_k: float | None
    expected_cost: float = Field(description="the model's own estimate, over all decisions")
    realised_cost: float | None = Field(description="cost of the decisions taken, labelled only")
    savings: float | None = Field(description="against approving every labelled transaction")


class PerformanceReport(Summary):
    model_version: str | None = Field(description="None: every version in the window")
    k: int = Field(description="cards per day in card precision@k")
    days: list[DayPerformance]


class FeatureDrift(Summary):
    feature: str
    method: str = Field(description="Evidently's statistical test or distance")
    score: float = Field(description="the test's p-value or the distance")
    threshold: float
    drifted: bool


class DriftSummary(Summary):
    model_version: str = Field(description="the model whose reference sample was compared")
    measured_at: datetime
    window_start: datetime
    window_end: datetime
    reference_rows: int
    current_rows: int
    drifted_share: float = Field(description="share of compared columns that drifted")
    share_threshold: float
    dataset_drift: bool = Field(description="drifted_share at or above share_threshold")
    features: list[FeatureDrift] = Field(description="the model's features and its score")
    report: str | None = Field(description="the saved Evidently HTML report")


class ModelOutcome(Summary):
    """One model's decisions on the labelled transactions both models saw."""

    role: str = Field(description="champion (served) or challenger (shadow)")
    model_version: str
    labelled: int
    average_precision: float | None
    precision: float | None
    recall: float | None
    realised_cost: float
    savings: float


class ModelComparison(Summary):
    window_start: datetime
    window_end: datetime
    compared: int = Field(description="labelled transactions decided by both models")
    agreement: float | None = Field(description="share of them given the same action")
    outcomes: list[ModelOutcome]


class SummarySource(Protocol):
    """What the dashboard and the monitoring routes ask for: ``fraud_ray.monitoring.monitor.Monitor``
    measures it, ``fraud_ray.monitoring.service.CachedMonitor`` keeps its drift verdict a while,
    and a test hands over summaries made by hand. Importing it costs no Evidently and no MLflow."""

    def performance(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        model_version: str | None = None,
    ) -> PerformanceReport: ...

    def drift(self, end: datetime | None = None) -> DriftSummary:
        """Raises ``fraud_ray.monitoring.drift.NotEnoughData`` when the window is too thin."""
        ...

    def comparison(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> ModelComparison | None:
        """``None`` when no challenger is scored in shadow."""
        ...


class HourlyDecisions(Summary):
    hour: datetime = Field(description="start of the hour of transaction time, UTC")
    approve: int
    review: int
    decline: int


class ScoreHistogram(Summary):
    edges: list[float] = Field(description="bin edges over the fraud probability, 0 to 1")
    approved: list[int]
    alerted: list[int] = Field(description="review and decline")


class DashboardData(Summary):
    """Everything the page shows, gathered once: rendering reads nothing else."""

    generated_at: datetime
    window_start: datetime
    window_end: datetime
    label_delay: str = Field(description="how long labels take, e.g. 7 days or 36 hours")
    decisions: int
    unlabelled: int
    hourly: list[HourlyDecisions]
    scores: ScoreHistogram
    drift: DriftSummary | None
    drift_unavailable: str | None = Field(
        description="why there is no drift verdict, in a sentence"
    )
    performance: PerformanceReport
    comparison: ModelComparison | None = Field(description="None: no challenger in shadow")
    recent_alerts: list[LoggedDecisionView]

    @property
    def reviews(self) -> int:
        return sum(hour.review for hour in self.hourly)

    @property
    def declines(self) -> int:
        return sum(hour.decline for hour in self.hourly)

    @property
    def alerts(self) -> int:
        return self.reviews + self.declines

    @property
    def alert_rate(self) -> float | None:
        return self.alerts / self.decisions if self.decisions else None

    @property
    def unlabelled_share(self) -> float | None:
        return self.unlabelled / self.decisions if self.decisions else None

    @property
    def latest_judged_day(self) -> DayPerformance | None:
        """The newest day whose labels say anything about precision or recall."""
        judged = [
            day
            for day in self.performance.days
            if day.precision is not None or day.recall is not None
        ]
        return judged[-1] if judged else None

    @property
    def drifted_features(self) -> list[FeatureDrift]:
        return [] if self.drift is None else [f for f in self.drift.features if f.drifted]
