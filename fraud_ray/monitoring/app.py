"""The dashboard and the monitoring endpoints without Ray: ``python monitor.py serve``.

The same router as the Serve ingress includes, in a plain FastAPI app under uvicorn, for teams
that keep monitoring away from the serving path: it reads the decision log and the registry the
graph uses, and nothing else.
"""

from __future__ import annotations

import uvicorn
from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse

from fraud_ray.access import analyst, check_exposure, document_access, tokens
from fraud_ray.http import problem_app
from fraud_ray.monitoring.routes import router
from fraud_ray.monitoring.service import MonitoringService
from fraud_ray.settings import Settings


def create_app(settings: Settings, monitoring: MonitoringService | None = None) -> FastAPI:
    """The standalone app; ``monitoring`` defaults to the log and monitor the settings name."""
    app = problem_app(
        "fraud-ray monitoring",
        "Drift, performance and the champion against the challenger, from the decision log.",
    )
    app.include_router(router, dependencies=[Depends(analyst)])
    app.state.tokens = tokens(settings.serving)
    app.state.monitoring = monitoring or MonitoringService(settings)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/dashboard")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    document_access(app, app.state.tokens)
    return app


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve the standalone app until interrupted; host and port default to the settings'."""
    host = host or settings.monitoring.host
    check_exposure(host, tokens(settings.serving))
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port or settings.monitoring.port,
    )
