"""cluster.yaml is a launcher config Ray itself accepts, with the node types the docs promise."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CONFIG = Path(__file__).parents[2] / "cluster.yaml"


@pytest.fixture
def config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def test_ray_validates_the_cluster_config(config: dict) -> None:
    validate_config(prepare_config(copy.deepcopy(config)))
    assert set(config["available_node_types"]) == {"head", "cpu_worker"}
    setup = "\n".join(config["setup_commands"])
    assert "requirements.lock" in setup, "every node installs the locked environment"


def test_every_node_runs_ray_with_token_authentication(config: dict) -> None:
    for command in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        if " start " in command:
            assert "RAY_AUTH_MODE=token" in command, command
    assert "~/.ray/auth_token" in config["file_mounts"].values(), "every node gets the token"


def test_the_validation_would_catch_a_broken_config(config: dict) -> None:
    config["available_node_types"]["cpu_worker"]["min_workers"] = "two"
    with pytest.raises(Exception, match="two"):
        validate_config(prepare_config(config))
