"""One typed settings object for every part of fraud-ray.

Values come, from strongest to weakest, from keyword arguments, ``FRAUD_RAY_*`` environment variables,
the YAML file (``configs/default.yaml`` unless ``FRAUD_RAY_CONFIG`` or ``--config`` names another) and
the defaults below. Environment variables name a section and a key separated by one underscore, e.g.
``FRAUD_RAY_KAFKA_BOOTSTRAP`` or ``FRAUD_RAY_FEATURES_LABEL_DELAY``: section names are single words
so that the first underscore always separates the section from the key.

Overrides after loading go through ``Settings.updated``, never ``model_copy``, so that they meet the
same rules. The module is one file over 400 lines on purpose: it is the one place a setting is
declared, and most of it is fields and their descriptions.

Windows and delays are ``Duration`` values (``90m``, ``36h``, ``7d``, ``PT36H``; a plain number means
days). Their keys were once counted in days (``label_delay_days``, ``windows_days``, ``train_days``,
...) and ``split.validation`` named the layout: those keys are still read, so older files work.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from fraud_ray.durations import format_duration, parse_duration
from fraud_ray.schema import DEFAULT_MAX_FUTURE_S

DEFAULT_CONFIG = Path("configs/default.yaml")
CONFIG_ENV = "FRAUD_RAY_CONFIG"


def _positive(duration: timedelta) -> timedelta:
    if duration <= timedelta(0):
        raise ValueError("must be longer than 0")
    return duration


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
SplitLayout = Literal["after", "before"]


class Section(BaseModel):
    """A settings section: unknown keys are typos, so they are refused rather than ignored.

    ``former_keys`` maps keys that files and variables written by earlier versions still use to
    today's: a value under a former key is read as today's key unless that one is given too (a
    YAML file of old keys merged with an override of new ones).
    """

    model_config = ConfigDict(extra="forbid")
    former_keys: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _read_former_keys(cls, values: Any) -> Any:
        if not isinstance(values, dict) or not cls.former_keys:
            return values
        values = dict(values)
        for former, key in cls.former_keys.items():
            if former in values:
                value = values.pop(former)
                values.setdefault(key, value)
        return values


class DataSettings(Section):
    raw_dir: Path = Path("data/raw")
    features_dir: Path = Path("data/features")
    mapping: Path | None = None


class SimulatorSettings(Section):
    """The transaction simulator; the defaults give about 1.5M transactions and 0.8% fraud."""

    customers: PositiveInt = 5000
    terminals: PositiveInt = 10000
    days: PositiveInt = 183
    start: date = date(2025, 4, 1)
    seed: int = 1
    grid_size: PositiveFloat = 100.0
    radius: PositiveFloat = 5.0
    mean_amount_range: tuple[PositiveFloat, PositiveFloat] = (5.0, 100.0)
    transactions_per_day_range: tuple[float, float] = (0.0, 4.0)
    time_of_day_std_s: PositiveFloat = 20_000.0
    compromised_terminals_per_day: int = Field(2, ge=0)
    compromised_terminal_days: PositiveInt = 28
    compromised_cards_per_day: int = Field(3, ge=0)
    compromised_card_days: PositiveInt = 14
    compromised_card_share: float = Field(1 / 3, gt=0, le=1)
    compromised_card_multiplier: PositiveFloat = 5.0
    large_amount_threshold: PositiveFloat = 220.0
    new_card_share: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="share of cards issued during the period (on a day drawn uniformly) rather "
        "than before it: a portfolio gains customers, and every window holds first purchases",
    )
    closed_card_share: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="share of cards closed before the period ends, on a day drawn uniformly "
        "after they were issued",
    )


class FeatureSettings(Section):
    former_keys: ClassVar[dict[str, str]] = {
        "windows_days": "windows",
        "label_delay_days": "label_delay",
    }

    windows: list[PositiveDuration] = Field(
        default_factory=lambda: [DAY, WEEK, 30 * DAY],
        min_length=1,
        description="card and terminal windows, e.g. [1h, 1d, 7d]",
    )
    label_delay: Duration = Field(
        WEEK,
        description="labels younger than this are not known yet",
    )
    night_start_hour: int = Field(22, ge=0, le=23)
    night_end_hour: int = Field(6, ge=0, le=23)
    backend: Literal["memory", "redis"] = "memory"
    partitions: PositiveInt = 8

    @field_validator("windows", mode="before")
    @classmethod
    def _windows_from_text(cls, value: Any) -> Any:
        """``[30, 2]`` as text: what ``FRAUD_RAY_FEATURES_WINDOWS_DAYS`` holds, a former key that
        pydantic-settings does not know to decode as a list."""
        if isinstance(value, str):
            return [part.strip() for part in value.strip().strip("[]").split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _sorted_unique_windows(self) -> FeatureSettings:
        if len(set(self.windows)) != len(self.windows):
            raise ValueError("windows must not repeat a window")
        self.windows = sorted(self.windows)
        return self


class SplitSettings(Section):
    """Time-ordered splits; the gap between two splits is the label delay.

    ``layout`` says where model selection happens. ``after``: train | delay | validation |
    delay | test, one model trained once, so the registered model is the one validated, but it is
    tested (and deployed) a validation week and a delay later than its newest labels. ``before``:
    the Fraud Detection Handbook's layout, train | delay | test for the registered model, with the
    hyperparameters, the number of rounds and the calibration chosen on the same layout shifted
    back so that validation ends where training ends; the chosen model is then refit on the
    training window, so it learns from the newest labels there are.
    """

    train_window: PositiveDuration = WEEK
    validation_window: PositiveDuration = WEEK
    test_window: PositiveDuration = WEEK
    layout: SplitLayout = "before"
    validation_folds: PositiveInt = Field(
        4,
        description="prequential folds a trial is judged on (mean over them): the tuning and "
        "validation windows, and copies shifted back one validation window at a time",
    )

    former_keys: ClassVar[dict[str, str]] = {
        "train_days": "train_window",
        "validation_days": "validation_window",
        "test_days": "test_window",
        "validation": "layout",
    }


class TrainingSettings(Section):
    """Distributed training and tuning; the search space lives in ``fraud_ray.training.search``."""

    num_workers: PositiveInt = Field(
        1, description="Ray Train workers per fit when the split is above in_process_max_rows"
    )
    cpus_per_worker: PositiveFloat = 1.0
    threads_per_worker: PositiveInt = 1
    in_process_max_rows: PositiveInt = Field(
        1_000_000,
        description="a training split up to this many rows (or any split with num_workers 1) "
        "is boosted inside each Tune trial's own process, not on Ray Train",
    )
    cpus_per_trial: PositiveInt = Field(
        1, description="CPUs, and boosting threads, of a trial that boosts in its own process"
    )
    report_every: PositiveInt = Field(
        10, description="boosting rounds between a trial's reports, the points ASHA judges it at"
    )
    num_boost_round: PositiveInt = 200
    early_stopping_rounds: PositiveInt = 20
    families: list[Literal["xgboost", "lightgbm"]] = Field(
        default_factory=lambda: ["xgboost", "lightgbm"], min_length=1
    )
    objective: Literal["average_precision", "expected_cost"] = "average_precision"
    trials: PositiveInt = 20
    time_budget_s: PositiveFloat = 1800.0
    max_concurrent_trials: PositiveInt | None = Field(
        None, description="trials at a time; null: as many as the cluster's CPUs hold"
    )
    seed: int = 7


class CostSettings(Section):
    """Example-dependent costs: approving a fraud loses its amount, the rest are fixed fees."""

    review_cost: float = Field(3.0, ge=0)
    decline_cost: float = Field(10.0, ge=0)


class MlflowSettings(Section):
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_location: str = "mlartifacts"
    model_name: str = "fraud-ray"


class KafkaSettings(Section):
    bootstrap: str = "127.0.0.1:9092"
    transactions_topic: str = "transactions"
    decisions_topic: str = "decisions"
    alerts_topic: str = "alerts"
    dlq_topic: str = "transactions.dlq"
    group: str = "fraud-ray"
    pool_size: PositiveInt = Field(2, description="consumer actors in the ingestion pool")
    consumer_cpus: float = Field(0.25, ge=0, description="Ray CPUs each consumer actor reserves")
    spread_consumers: bool = Field(
        True,
        description="place the consumer actors on as many nodes as have room (Ray's SPREAD); "
        "false: Ray's default, which fills the driver's node first",
    )
    batch_size: PositiveInt = Field(
        4000,
        description="messages one graph call decides at most; a slow stream is not held back "
        "(a consumer takes what it has fetched), a fast one gets 1.4-1.7x the throughput of 1,000",
    )
    batch_wait_s: PositiveFloat = Field(
        0.05,
        description="how long a consumer with nothing fetched waits for messages, and the "
        "longest a broker holds a fetch; one with messages in hand never waits to fill a batch",
    )
    exactly_once: bool = Field(
        False, description="Kafka transactions: read_committed readers see each decision once"
    )
    overlap: bool = Field(
        True,
        description="send the next batch to the graph while writing out the one before (not with "
        "exactly_once, whose Kafka transaction would stay open across a poll)",
    )
    graph_timeout_s: PositiveFloat = Field(60.0, description="longest wait for the Serve graph")
    delivery_timeout_s: PositiveFloat = Field(
        120.0, description="longest wait for the broker to take a batch's output before retrying"
    )
    session_timeout_s: float = Field(
        10.0, ge=6, description="a silent (killed) consumer's partitions move on after this long"
    )
    linger_ms: int = Field(5, ge=0, description="producer: wait to fill a request with messages")
    fetch_min_bytes: PositiveInt = Field(
        65536,
        description="consumer: bytes the broker gathers before it answers a fetch (or "
        "batch_wait_s passes); fewer, fuller fetches cost the broker far less CPU",
    )
    retry_backoff_s: PositiveFloat = Field(
        1.0, description="pause before a failed batch is retried"
    )
    drain_timeout_s: PositiveFloat = Field(120.0, description="longest wait for a draining actor")
    start_timeout_s: PositiveFloat = Field(
        120.0, description="longest wait for a new consumer actor to be placed and warmed up"
    )
    max_attempts: PositiveInt = Field(
        3,
        description="tries of a batch that fails on its data (not on an unreachable service) before "
        "it is split to isolate the message at fault, and tries of that message before it goes "
        "to the dead-letter topic",
    )

    @model_validator(mode="after")
    def _output_is_not_read_back(self) -> KafkaSettings:
        """The pool would decide its own decisions (or dead letters) again, without end."""
        outputs = ("decisions_topic", "alerts_topic", "dlq_topic")
        same = [name for name in outputs if getattr(self, name) == self.transactions_topic]
        if same:
            raise ValueError(
                f"transactions_topic {self.transactions_topic!r} is also the {' and '.join(same)}:"
                " the pool would read its own output back as transactions"
            )
        return self


class RedisSettings(Section):
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "fraud-ray"


class DecisionsSettings(Section):
    url: str = "sqlite:///data/decisions.db"


class ServingSettings(Section):
    """The Serve graph: where it listens, how each step scales, and how the Scorer batches.

    CPUs are fractions so the whole graph fits on a laptop; on a cluster raise the replica counts
    (and ``autoscaling``) without touching code. A memory feature state lives in one process, so
    more than one FeatureStep replica needs ``features.backend: redis``.
    """

    app_name: str = Field("default", description="the Serve application (serve run's default name)")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    model_alias: str = "champion"
    fuse_steps: bool = Field(
        False,
        description="run the feature and decision steps inside the ingress: one hop instead of three",
    )
    ingress_replicas: PositiveInt = 1
    ingress_cpus: float = Field(0.25, ge=0)
    feature_replicas: PositiveInt = 1
    feature_cpus: float = Field(0.25, ge=0)
    scorer_replicas: PositiveInt = 1
    scorer_cpus: float = Field(0.25, ge=0)
    decision_replicas: PositiveInt = 1
    decision_cpus: float = Field(0.1, ge=0)
    max_replicas_per_node: int | None = Field(
        None,
        ge=1,
        le=100,
        description="most replicas of any one step on a node (Serve's max_replicas_per_node, at "
        "most 100): 1 puts each replica of a step on a node of its own, so one node lost never "
        "takes a step's every replica; replicas beyond the nodes' room wait unplaced; null: "
        "Serve spreads them as best it can",
    )
    autoscaling: bool = Field(False, description="autoscale the Scorer between 1 and max_replicas")
    max_replicas: PositiveInt = 4
    target_ongoing_requests: PositiveFloat = 8.0
    max_ongoing_requests: PositiveInt = 64
    max_queued_requests: PositiveInt | None = Field(
        256,
        description="requests waiting for an ingress replica beyond which Serve answers 503 with "
        "Retry-After instead of queueing without bound; null: no bound",
    )
    retry_after_s: PositiveFloat = Field(
        1.0, description="the Retry-After a request refused for a full queue is given"
    )
    batch_max_size: PositiveInt = 64
    batch_wait_timeout_s: float = Field(
        0.0,
        ge=0,
        description="how long the Scorer holds a request for others to join its model call; 0: "
        "it takes the requests already waiting, which under load are a batch anyway, and a "
        "lone request is not held",
    )
    max_batch_transactions: PositiveInt = 10_000
    max_body_bytes: PositiveInt = Field(
        8 * 1024 * 1024,
        description="a larger request body is refused (413) before it is parsed; keep it above "
        "max_batch_transactions transactions",
    )
    reasons: int = Field(3, ge=0, description="top feature contributions given with each decision")
    reasons_for: Literal["alerts", "all"] = Field(
        "alerts",
        description="which decisions get reasons: reviews and declines only, or every one "
        "(contributions cost up to 100 predictions each with LightGBM)",
    )
    max_future_s: PositiveFloat | None = Field(
        DEFAULT_MAX_FUTURE_S,
        description="transactions dated further ahead of the clock are refused (HTTP 422, the "
        "stream's dead-letter topic); null: no bound",
    )
    min_average_precision: float = Field(
        0.0,
        ge=0,
        le=1,
        description="a model version whose average precision on its own reference sample is "
        "lower is refused on reload and promote (so is one whose scores there are constant)",
    )
    operator_token: str = Field(
        "change-me",
        min_length=8,
        description="bearer token for reload and feedback (what the system serves and learns)",
    )
    analyst_token: str = Field(
        "change-me",
        min_length=8,
        description="bearer token for alerts, decisions, monitoring and the dashboard",
    )
    predict_token: str | None = Field(
        None, min_length=8, description="bearer token predict requires; null: predict is open"
    )
    reload_poll_s: PositiveFloat = 0.5
    reload_timeout_s: PositiveFloat = 60.0
    log_decisions: bool = Field(
        True, description="write HTTP decisions to the decision log (the stream pool logs its own)"
    )
    access_log: bool = Field(
        True,
        description="Serve's log line per request in every replica; the decision log keeps "
        "every decision either way",
    )
    record_flush_s: PositiveFloat = Field(
        0.5,
        description="how often answered decisions are written to the log, in one batch (and the "
        "drift gauges exported again: keep it under Ray's 20 s)",
    )
    record_max_pending: PositiveInt = Field(
        200_000, description="unwritten decisions kept while the log is unreachable"
    )
    replay_lookup_s: PositiveFloat = Field(
        0.25,
        description="how long an HTTP request waits for the log to say which of its transaction "
        "ids were decided before (those are answered with the logged decision); past it they are "
        "decided again, and the log still keeps the first decision",
    )
    challenger_alias: str | None = Field(
        "challenger", description="scored in shadow when the registry has it; null: never"
    )
    challenger_poll_s: PositiveFloat = Field(
        30.0, description="how often the ingress looks for a new challenger version"
    )
    alerts_page_size: PositiveInt = Field(50, description="GET /api/v1/alerts without ?limit=")
    alerts_page_max: PositiveInt = Field(1000, description="the largest ?limit= it accepts")


class MonitoringSettings(Section):
    """What monitoring compares and when it raises the alarm."""

    drift_window_days: PositiveFloat = Field(
        1.0, description="the latest days of logged transactions compared with the reference"
    )
    drift_min_rows: PositiveInt = Field(1000, description="fewer logged rows: no drift verdict")
    drift_ignore: list[str] = Field(
        default_factory=lambda: ["is_weekend"],
        description="columns left out of drift: constant within a day, they drift by construction",
    )
    drift_share: float = Field(
        0.3, gt=0, le=1, description="share of drifted columns that counts as dataset drift"
    )
    drift_threshold: float | None = Field(
        None, gt=0, description="per-column test threshold; null: Evidently's default per test"
    )
    reports_dir: str = Field("data/monitoring", description="Evidently HTML reports")
    webhook_url: str | None = Field(None, description="POSTed a JSON summary when drift is found")
    webhook_timeout_s: PositiveFloat = Field(5.0, description="longest wait for the webhook")
    precision_k: PositiveInt = Field(100, description="cards per day in card precision@k")
    drift_cache_s: float = Field(
        60.0, ge=0, description="a drift summary is reused this long (Evidently takes seconds)"
    )
    drift_check_s: PositiveFloat | None = Field(
        3600.0,
        description="the Serve app checks drift this often by itself, so the alarm and the gauges "
        "follow the traffic with nobody watching; null: only when asked",
    )
    dashboard_days: PositiveInt = Field(
        14, description="the dashboard shows the latest days of logged transactions"
    )
    dashboard_alerts: PositiveInt = Field(50, description="recent alerts the dashboard lists")
    score_bins: PositiveInt = Field(40, description="bins of the dashboard's score histogram")
    host: str = Field("127.0.0.1", description="where `python monitor.py serve` listens")
    port: int = Field(8001, ge=1, le=65535)


class RaySettings(Section):
    """Where Ray runs, and the Ray Data knobs measured to matter on small machines."""

    address: str | None = None
    read_min_blocks: PositiveInt = 8
    shuffle: Literal["sort_shuffle_pull_based", "sort_shuffle_push_based", "hash_shuffle"] = (
        "sort_shuffle_pull_based"
    )
    parquet_reader_v2: bool = False


class Settings(BaseSettings):
    """Everything fraud-ray can be told, in one place."""

    model_config = SettingsConfigDict(
        env_prefix="FRAUD_RAY_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
    )

    data: DataSettings = Field(default_factory=DataSettings)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    split: SplitSettings = Field(default_factory=SplitSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    costs: CostSettings = Field(default_factory=CostSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    decisions: DecisionsSettings = Field(default_factory=DecisionsSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    ray: RaySettings = Field(default_factory=RaySettings)

    def updated(self, changes: Mapping[str, object]) -> Settings:
        """These settings with ``changes`` (``{"kafka": {"pool_size": 4}}``) merged in and the
        whole validated again, so that a command-line option or a derived setting meets every
        rule the YAML file meets, the rules across sections included."""
        merged = _merged(self.model_dump(), changes)
        try:
            # model_validate, not the constructor: the YAML file and FRAUD_RAY_* variables were
            # read once already, and must not override the changes.
            return Settings.model_validate(merged)
        except ValidationError as error:
            raise SettingsError.of(error) from None

    def with_absolute_paths(self) -> Settings:
        """These settings with every relative path and SQLite file made absolute here, in the
        process that read them: Ray actors and Serve replicas run in other working directories,
        where the same relative path names another file."""
        data, mlflow = self.data, self.mlflow
        artifacts = mlflow.artifact_location
        return self.updated(
            {
                "data": {
                    "raw_dir": data.raw_dir.resolve(),
                    "features_dir": data.features_dir.resolve(),
                    "mapping": None if data.mapping is None else data.mapping.resolve(),
                },
                "mlflow": {
                    "tracking_uri": _absolute_database_url(mlflow.tracking_uri),
                    "artifact_location": artifacts
                    if "://" in artifacts
                    else str(Path(artifacts).resolve()),
                },
                "decisions": {"url": _absolute_database_url(self.decisions.url)},
                "monitoring": {"reports_dir": str(Path(self.monitoring.reports_dir).resolve())},
            }
        )

    @model_validator(mode="after")
    def _shared_state_for_replicas(self) -> Settings:
        serving = self.serving
        feature_replicas = (
            serving.ingress_replicas if serving.fuse_steps else serving.feature_replicas
        )
        if self.features.backend == "memory" and feature_replicas > 1:
            step = (
                "serving.ingress_replicas (fused steps)"
                if serving.fuse_steps
                else "serving.feature_replicas"
            )
            raise ValueError(
                f"{step} > 1 needs features.backend: redis "
                "(a memory feature state is private to one replica)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = os.environ.get(CONFIG_ENV, str(DEFAULT_CONFIG))
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls, yaml_file))


class SettingsError(ValueError):
    """Settings that cannot be used; the message names every offending key."""

    @classmethod
    def of(cls, error: ValidationError) -> SettingsError:
        problems = []
        for issue in error.errors():
            message = issue["msg"].removeprefix("Value error, ")
            where = ".".join(str(part) for part in issue["loc"])
            # A rule across sections has no location: its message names the keys.
            problems.append(f"{where}: {message}" if where else message)
        return cls("invalid settings:\n  " + "\n  ".join(problems))


def load_settings(config: Path | None = None, **overrides: object) -> Settings:
    """Build the settings, turning pydantic's report into one readable message per bad key."""
    if config is not None and not config.is_file():
        raise SettingsError(f"settings file {config} does not exist")
    previous = os.environ.get(CONFIG_ENV)
    try:
        if config is not None:
            os.environ[CONFIG_ENV] = str(config)
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError.of(error) from None
    finally:
        if config is not None:
            if previous is None:
                os.environ.pop(CONFIG_ENV, None)
            else:
                os.environ[CONFIG_ENV] = previous


def _merged(base: dict[str, object], changes: Mapping[str, object]) -> dict[str, object]:
    merged = dict(base)
    for key, value in changes.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            merged[key] = _merged(current, value)
        else:
            merged[key] = value
    return merged


def _absolute_database_url(url: str) -> str:
    """A relative SQLite file made absolute; any other URL (or something that is no URL, which
    whoever opens it reports) is returned as it is."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return url
    return parsed.set(database=str(Path(database).resolve())).render_as_string(hide_password=False)
