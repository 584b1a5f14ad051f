"""The ``fraud-ray`` command: every job behind one entry point, with progress and readable errors.

Each module holds the commands of one part of the library; a command parses its options, builds
the settings, calls the library and prints. This module only assembles them into one app.
"""

from __future__ import annotations

import json

import typer

from fraud_ray.cli import data, demo, models, monitoring, streaming
from fraud_ray.cli.common import ConfigOption, State, console, settings

app = typer.Typer(
    help="Real-time card-fraud detection on Ray.", no_args_is_help=True, add_completion=False
)
monitor_app = typer.Typer(
    help="Performance, drift and challengers, read from the decision log; each ends with JSON.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(monitor_app, name="monitor")


@app.callback()
def main(config: ConfigOption = None) -> None:
    State.config = config


@monitor_app.callback()
def monitor_main(config: ConfigOption = None) -> None:
    # monitor.py runs this sub-app on its own, so it takes --config too; under `fraud-ray
    # --config FILE monitor ...` it must not forget the FILE given before it.
    if config is not None:
        State.config = config


for command in (
    data.simulate,
    data.features,
    models.train,
    models.champion,
    models.promote,
    models.score,
    streaming.ingest,
    demo.demo,
    monitoring.feedback,
):
    app.command()(command)
for command in (monitoring.performance, monitoring.drift, monitoring.compare):
    monitor_app.command()(command)
monitor_app.command("serve")(monitoring.monitor_serve)


@app.command()
def settings_show() -> None:
    """Print the settings in force, after the YAML file and FRAUD_RAY_* variables."""
    console.print_json(json.dumps(settings().model_dump(mode="json")))
