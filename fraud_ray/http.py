"""HTTP plumbing every fraud-ray app shares: how a refusal reads, and how a body is sent.

The serving API and the standalone monitoring app are built on ``problem_app``, so every 4xx a
client gets from either is a ``Problem``; the bodies of both are ``Envelope`` models, which refuse
fields they do not define.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fraud_ray.schema import to_json


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(Envelope):
    """Every 4xx body: one sentence for a person, and the fields at fault for a program."""

    message: str
    errors: list[dict[str, Any]] = Field(default_factory=list)


def field_name(location: tuple[int | str, ...] | list[int | str]) -> str:
    """``body.transactions.3.amount`` reads better than pydantic's location tuple."""
    return ".".join(str(part) for part in location) or "body"


async def validation_problem(_: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 with a readable message that names each field at fault first."""
    errors = [
        {"field": field_name(issue.get("loc", ())), "message": issue.get("msg", "invalid")}
        for issue in error.errors()
    ]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return JSONResponse(
        status_code=422,
        content=Problem(message=f"invalid request: {summary}{more}", errors=errors).model_dump(),
    )


async def http_problem(_: Request, error: HTTPException) -> JSONResponse:
    """Refusals raised by the handlers (401, 409, 413, ...) in the same shape as a 422."""
    return JSONResponse(
        status_code=error.status_code,
        content=Problem(message=str(error.detail)).model_dump(),
        headers=error.headers,
    )


def declared_query(dependant: Dependant) -> set[str]:
    """The query parameters a route reads, its dependencies' included."""
    names = {parameter.alias for parameter in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= declared_query(dependency)
    return names


async def undeclared_query_refused(request: Request) -> None:
    """Refuse (422) query parameters the route does not read, as bodies refuse unknown fields:
    a misspelt filter (``limt=5``) would otherwise be ignored and the default served.

    A coroutine, as every dependency here: FastAPI runs a plain function dependency in a worker
    thread, a hand-off that cost each request more than the check."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = declared_query(route.dependant)
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in known]
    if unknown:
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": "Extra inputs are not permitted",
                    "input": request.query_params[name],
                }
                for name in unknown
            ]
        )


def problem_app(title: str, summary: str) -> FastAPI:
    """A FastAPI app whose every refusal (422 and the handlers' 4xx) is a ``Problem`` body: the
    serving API and the standalone monitoring app read the same to a client."""
    app = FastAPI(
        title=title,
        summary=summary,
        version="1",
        dependencies=[Depends(undeclared_query_refused)],
        responses={
            400: {"model": Problem, "description": "a body that cannot be read (not UTF-8 JSON)"},
            422: {"model": Problem},
        },
    )
    app.add_exception_handler(RequestValidationError, validation_problem)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_problem)  # type: ignore[arg-type]
    app.add_middleware(BodyLimit)
    return app


def json_response(content: object) -> Response:
    """Decisions are built valid, so they skip FastAPI's re-validation of the response model
    (milliseconds per thousand decisions); the model still documents the response in /docs."""
    return Response(to_json(content), media_type="application/json")


class BodyLimit:
    """Refuse a request body over ``app.state.max_body_bytes`` with a 413 before it is parsed.

    ASGI middleware, so the check runs before FastAPI reads the body whole: a declared
    Content-Length over the limit is refused unread, and a body streamed without one (chunked) is
    counted as it arrives and refused once it passes the limit. The limit is read from the app's
    state because the Serve ingress learns its settings after the app is built.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = getattr(scope["app"].state, "max_body_bytes", None) if "app" in scope else None
        if scope["type"] != "http" or limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await too_large(limit)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, too_large_message(limit))
            return message

        await self.app(scope, counted, send)


def too_large_message(limit: int) -> str:
    return f"body: at most {limit} bytes (serving.max_body_bytes)"


def too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        status_code=413, content=Problem(message=too_large_message(limit)).model_dump()
    )
