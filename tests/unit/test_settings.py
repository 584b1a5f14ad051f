"""Settings: one object, from YAML and FRAUD_RAY_* variables, failing with the key named."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from fraud_ray.settings import Settings, SettingsError, load_settings


def test_defaults_come_from_the_shipped_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).parents[2])
    settings = load_settings()
    assert settings.features.windows == [timedelta(days=d) for d in (1, 7, 30)]
    assert settings.features.label_delay == timedelta(days=7)
    assert str(settings.simulator.start) == "2025-04-01"
    assert (settings.split.layout, settings.split.validation_folds) == ("before", 4)
    assert settings.split.validation_window == timedelta(days=7)


def test_environment_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "fraud.yaml"
    config.write_text("features:\n  label_delay_days: 3\nkafka:\n  bootstrap: yaml:9092\n")
    monkeypatch.setenv("FRAUD_RAY_KAFKA_BOOTSTRAP", "env:9092")
    monkeypatch.setenv("FRAUD_RAY_FEATURES_WINDOWS_DAYS", "[30, 2]")
    settings = load_settings(config)
    assert settings.features.label_delay == timedelta(days=3)
    assert settings.kafka.bootstrap == "env:9092"
    assert settings.features.windows == [timedelta(days=2), timedelta(days=30)]


def test_config_file_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "other.yaml"
    config.write_text("costs:\n  review_cost: 7.5\n")
    monkeypatch.setenv("FRAUD_RAY_CONFIG", str(config))
    assert load_settings().costs.review_cost == 7.5


@pytest.mark.parametrize(
    ("yaml_text", "env", "named"),
    [
        ("features:\n  label_delay_days: -1\n", {}, "features.label_delay"),
        ("features:\n  label_delay: 3 fortnights\n", {}, "features.label_delay"),
        ("split:\n  validation_window: 0h\n", {}, "split.validation_window"),
        ("costs:\n  reviewcost: 1\n", {}, "costs.reviewcost"),
        ("", {"FRAUD_RAY_FEATURES_BACKEND": "postgres"}, "features.backend"),
        ("", {"FRAUD_RAY_SPLIT_VALIDATION": "between"}, "split.layout"),
        ("", {"FRAUD_RAY_SPLIT_LAYOUT": "between"}, "split.layout"),
        ("features:\n  windows_days: [7, 7]\n", {}, "features"),
        ("nonsense: 1\n", {}, "nonsense"),
    ],
)
def test_invalid_settings_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yaml_text: str, env: dict, named: str
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        load_settings(config)


def test_a_missing_settings_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "absent.yaml")


def test_several_feature_replicas_need_a_shared_state() -> None:
    with pytest.raises(SettingsError, match=r"features\.backend: redis"):
        load_settings(serving={"feature_replicas": 2})
    assert load_settings(serving={"feature_replicas": 2}, features={"backend": "redis"})


def test_replicas_per_node_are_serves_range_or_no_bound() -> None:
    assert Settings().serving.max_replicas_per_node is None
    assert Settings().updated({"serving": {"max_replicas_per_node": 1}})
    for refused in (0, 101):
        with pytest.raises(SettingsError, match=r"serving\.max_replicas_per_node"):
            Settings().updated({"serving": {"max_replicas_per_node": refused}})


def test_consumers_spread_over_the_nodes_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(Path(__file__).parents[2])
    assert load_settings().kafka.spread_consumers
    monkeypatch.setenv("FRAUD_RAY_KAFKA_SPREAD_CONSUMERS", "false")
    assert not load_settings().kafka.spread_consumers


def test_an_override_is_merged_into_its_section() -> None:
    settings = Settings()
    changed = settings.updated({"kafka": {"pool_size": 4}, "serving": {"port": 9000}})
    assert (changed.kafka.pool_size, changed.serving.port) == (4, 9000)
    assert changed.kafka.bootstrap == settings.kafka.bootstrap
    assert settings.kafka.pool_size != 4  # the original is left as it was


def test_an_override_that_breaks_a_rule_across_sections_is_refused() -> None:
    with pytest.raises(
        SettingsError, match=r"serving\.feature_replicas > 1 needs features\.backend"
    ):
        Settings().updated({"serving": {"feature_replicas": 2}})
    shared = Settings().updated(
        {"serving": {"feature_replicas": 2}, "features": {"backend": "redis"}}
    )
    assert shared.serving.feature_replicas == 2


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"kafka": {"pool_size": 0}}, "kafka.pool_size"),
        ({"kafka": {"bootstrapp": "x:9092"}}, "kafka.bootstrapp"),
        ({"kafak": {"pool_size": 2}}, "kafak"),
        ({"kafka": {"transactions_topic": "transactions.dlq"}}, "kafka: transactions_topic"),
    ],
)
def test_a_bad_override_names_the_key(changes: dict, named: str) -> None:
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        Settings().updated(changes)


def test_the_pool_may_not_read_its_own_output_back() -> None:
    with pytest.raises(SettingsError, match="decisions_topic and alerts_topic"):
        load_settings(
            kafka={"transactions_topic": "out", "decisions_topic": "out", "alerts_topic": "out"}
        )


def test_paths_are_made_absolute_where_the_settings_were_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        data={"raw_dir": "raw", "mapping": "mapping.yaml"},
        mlflow={"tracking_uri": "sqlite:///mlflow.db", "artifact_location": "artifacts"},
        decisions={"url": "sqlite:///logs/decisions.db?timeout=30"},
        monitoring={"reports_dir": "reports"},
    ).with_absolute_paths()
    assert settings.data.raw_dir == tmp_path / "raw"
    assert settings.data.mapping == tmp_path / "mapping.yaml"
    assert settings.mlflow.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert settings.mlflow.artifact_location == str(tmp_path / "artifacts")
    assert settings.decisions.url == f"sqlite:///{tmp_path / 'logs/decisions.db'}?timeout=30"
    assert settings.monitoring.reports_dir == str(tmp_path / "reports")


@pytest.mark.parametrize(
    ("tracking_uri", "artifacts", "decisions"),
    [
        ("http://mlflow:5000", "s3://bucket/artifacts", "postgresql+psycopg://u@db:5432/fraud"),
        ("sqlite:////srv/mlflow.db", "/srv/artifacts", "sqlite:///:memory:"),
        ("mlruns", "/srv/artifacts", "not a url"),
    ],
)
def test_urls_that_name_no_relative_file_are_kept(
    tracking_uri: str, artifacts: str, decisions: str
) -> None:
    settings = Settings(
        mlflow={"tracking_uri": tracking_uri, "artifact_location": artifacts},
        decisions={"url": decisions},
    ).with_absolute_paths()
    assert settings.mlflow.tracking_uri == tracking_uri
    assert settings.mlflow.artifact_location == artifacts
    assert settings.decisions.url == decisions


def test_settings_written_in_days_still_read(tmp_path: Path) -> None:
    """Files from before durations: whole days under the old keys, the layout as ``validation``."""
    config = tmp_path / "old.yaml"
    config.write_text(
        "features:\n  windows_days: [1, 7]\n  label_delay_days: 3\n"
        "split:\n  train_days: 14\n  validation_days: 5\n  test_days: 2\n  validation: after\n"
    )
    settings = load_settings(config)
    assert settings.features.windows == [timedelta(days=1), timedelta(days=7)]
    assert settings.features.label_delay == timedelta(days=3)
    assert settings.split.train_window == timedelta(days=14)
    assert settings.split.validation_window == timedelta(days=5)
    assert settings.split.test_window == timedelta(days=2)
    assert settings.split.layout == "after"


def test_an_override_in_durations_wins_over_a_file_in_days(tmp_path: Path) -> None:
    config = tmp_path / "old.yaml"
    config.write_text("features:\n  label_delay_days: 3\nsplit:\n  validation_days: 5\n")
    settings = load_settings(
        config, features={"label_delay": "0h"}, split={"validation_window": "PT8H"}
    )
    assert settings.features.label_delay == timedelta(0)
    assert settings.split.validation_window == timedelta(hours=8)


def test_windows_from_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_RAY_FEATURES_WINDOWS", '["1h", "1d", 7]')
    assert load_settings().features.windows == [
        timedelta(hours=1),
        timedelta(days=1),
        timedelta(days=7),
    ]


def test_durations_shorter_than_a_day_and_their_json_form() -> None:
    settings = load_settings(features={"windows": ["7d", "1h", "P1D"], "label_delay": "36h"})
    assert settings.features.windows == [timedelta(hours=1), timedelta(days=1), timedelta(days=7)]
    dumped = settings.model_dump(mode="json")["features"]
    assert dumped["windows"] == ["1h", "1d", "7d"]
    assert dumped["label_delay"] == "36h"
    assert load_settings(features=dumped).features == settings.features
