"""Who may do what over HTTP: one bearer token per role, checked by a FastAPI dependency.

``operator`` changes what the system serves and learns (reload, feedback); ``analyst`` reads what
it decided (alerts, decisions, monitoring, the dashboard); ``predict`` is open unless a token is
set. A dependency, so an endpoint states its guard in its signature and ``/docs`` shows it. The
ground floor, because both the serving ingress and the standalone monitoring app guard routes.

Tokens are compared in constant time: a comparison that stops at the first difference tells an
attacker, through its timing, how much of a guess was right. Messages name the setting, never the
token.
"""

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any, Literal, get_args

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fraud_ray.settings import ServingSettings

Role = Literal["operator", "analyst", "predict"]
DEFAULT_TOKEN = "change-me"

# Parsed by hand below (it also accepts Basic); declared, one scheme per role, so that /docs and
# the OpenAPI document say which token each endpoint takes.
BEARERS = {
    role: HTTPBearer(
        auto_error=False, scheme_name=f"{role}_token", description=f"serving.{role}_token"
    )
    for role in get_args(Role)
}


def tokens(serving: ServingSettings) -> dict[Role, str | None]:
    """Each role's token; ``None`` leaves the role's endpoints open."""
    return {
        "operator": serving.operator_token,
        "analyst": serving.analyst_token,
        "predict": serving.predict_token,
    }


def presented(authorization: str | None) -> str | None:
    """The token a request presents: a bearer token, or the password of HTTP Basic credentials
    (the user name is ignored) so a browser can open the dashboard, which cannot send a header."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def require(role: Role) -> Callable[..., Coroutine[Any, Any, None]]:
    """The dependency letting a request through only with ``role``'s token, read from
    ``app.state.tokens`` so one router serves apps with different settings."""

    async def guard(
        request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARERS[role])]
    ) -> None:
        token = request.app.state.tokens.get(role)
        if token is None:
            return
        challenge = {"WWW-Authenticate": f'Basic realm="fraud-ray {role}", Bearer'}
        given = presented(request.headers.get("authorization"))
        if given is None:
            raise HTTPException(
                401,
                f"missing token: send Authorization: Bearer <serving.{role}_token>",
                headers=challenge,
            )
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, f"wrong token for the {role} role", headers=challenge)

    guard.__name__ = role
    return guard


operator = require("operator")
analyst = require("analyst")
predictor = require("predict")


def document_access(app: FastAPI, role_tokens: Mapping[Role, str | None]) -> None:
    """Say in the app's OpenAPI document what each guarded operation does with a request: a
    role without a token lets everyone through (an empty security requirement beside the
    role's), a role with one refuses a request without it (a documented 401). The guard is
    declared on the route whatever the settings; the document a client or a fuzzer reads must
    match what this app does."""
    open_schemes = {f"{role}_token" for role, token in role_tokens.items() if token is None}
    schema = app.openapi()
    refusal: dict[str, Any] = {"description": "no token, or not the role's"}
    if "Problem" in schema.get("components", {}).get("schemas", {}):
        problem = {"$ref": "#/components/schemas/Problem"}
        refusal["content"] = {"application/json": {"schema": problem}}
    path_item: dict[str, Any]
    for path_item in schema["paths"].values():
        for operation in path_item.values():
            requirements = operation.get("security")
            if not requirements:
                continue
            if any(set(requirement) & open_schemes for requirement in requirements):
                if {} not in requirements:
                    requirements.append({})
            else:
                operation["responses"].setdefault("401", refusal)


class ExposedDefaultToken(ValueError):
    """An app about to listen beyond this machine with a token anyone can guess."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, role_tokens: Mapping[Role, str | None]) -> None:
    """Refuse to serve on a non-loopback ``host`` while a required token is empty or the default:
    on loopback only this machine's users can reach the app, so the default is a convenience;
    anywhere else it is an open door."""
    if is_loopback(host):
        return
    weak = sorted(
        f"serving.{role}_token"
        for role, token in role_tokens.items()
        if token is not None and (not token.strip() or token == DEFAULT_TOKEN)
    )
    if weak:
        raise ExposedDefaultToken(
            f"refusing to listen on {host}: {', '.join(weak)} empty or left at the default "
            f"{DEFAULT_TOKEN!r}; set them (FRAUD_RAY_SERVING_<ROLE>_TOKEN) or listen on 127.0.0.1"
        )
