"""Who may change what the graph serves: the bearer token that guards reload.

A FastAPI dependency, so an endpoint states its guard in its signature and ``/docs`` shows it. The
token is compared in constant time: a byte-by-byte comparison that stops at the first difference
tells an attacker, through its timing, how much of a guess was right.
"""

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(auto_error=False, description="serving.reload_token")


def operator(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """Let the request through only with ``serving.reload_token`` as its bearer token."""
    token = request.app.state.reload_token
    if credentials is None:
        raise HTTPException(401, "missing bearer token: send Authorization: Bearer <token>")
    if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
        raise HTTPException(401, "wrong bearer token")
