"""Settings: one object, from YAML and FRAUD_RAY_* variables, failing with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraud_ray.settings import SettingsError, load_settings


def test_defaults_come_from_the_shipped_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).parents[2])
    settings = load_settings()
    assert settings.features.windows_days == [1, 7, 30]
    assert settings.features.label_delay_days == 7
    assert str(settings.simulator.start) == "2025-04-01"
    assert settings.split.validation == "after"


def test_environment_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "fraud.yaml"
    config.write_text("features:\n  label_delay_days: 3\nkafka:\n  bootstrap: yaml:9092\n")
    monkeypatch.setenv("FRAUD_RAY_KAFKA_BOOTSTRAP", "env:9092")
    monkeypatch.setenv("FRAUD_RAY_FEATURES_WINDOWS_DAYS", "[30, 2]")
    settings = load_settings(config)
    assert settings.features.label_delay_days == 3
    assert settings.kafka.bootstrap == "env:9092"
    assert settings.features.windows_days == [2, 30]


def test_config_file_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "other.yaml"
    config.write_text("costs:\n  review_cost: 7.5\n")
    monkeypatch.setenv("FRAUD_RAY_CONFIG", str(config))
    assert load_settings().costs.review_cost == 7.5


@pytest.mark.parametrize(
    ("yaml_text", "env", "named"),
    [
        ("features:\n  label_delay_days: -1\n", {}, "features.label_delay_days"),
        ("costs:\n  reviewcost: 1\n", {}, "costs.reviewcost"),
        ("", {"FRAUD_RAY_FEATURES_BACKEND": "postgres"}, "features.backend"),
        ("", {"FRAUD_RAY_SPLIT_VALIDATION": "between"}, "split.validation"),
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
