"""Monitoring without Ray: the dashboard and /api/v1/monitoring/* in a plain uvicorn app.

    python monitor.py serve --host 0.0.0.0 --port 8001

It reads the decision log and the registry the settings name (configs/default.yaml, or
$FRAUD_RAY_CONFIG or --config, and FRAUD_RAY_* variables); the Serve application serves the same
pages at /dashboard for teams that keep everything in one place.
"""

from pathlib import Path
from typing import Annotated

import typer

from fraud_ray.monitoring.app import serve as serve_monitoring
from fraud_ray.settings import SettingsError, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def main() -> None:
    """Monitoring of a fraud-ray deployment without Ray, read from its decision log."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address (default: monitoring.host).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default: monitoring.port).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="Settings YAML (default: $FRAUD_RAY_CONFIG or configs/default.yaml)."),
    ] = None,
) -> None:
    """Serve the dashboard (/dashboard) and the monitoring API until interrupted."""
    try:
        settings = load_settings(config)
    except SettingsError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    serve_monitoring(settings, host, port)


if __name__ == "__main__":
    app(prog_name="monitor.py")
