"""Calls to a running Serve app from outside it, such as ``fraud-ray promote`` asking it to reload."""

from __future__ import annotations

import httpx

from fraud_ray.settings import ServingSettings


class ReloadError(RuntimeError):
    """The app did not load the model: the message says whether it was unreachable or refused."""


def serving_url(serving: ServingSettings) -> str:
    return f"http://{serving.host}:{serving.port}"


def reload_model(url: str, serving: ServingSettings) -> str:
    """Have the app at ``url`` load the model its alias now names; returns the version it serves.

    Waits as long as the app itself may take to roll the version out to every Scorer replica.
    """
    try:
        answer = httpx.post(
            f"{url}/api/v1/model/reload",
            headers={"Authorization": f"Bearer {serving.operator_token}"},
            timeout=serving.reload_timeout_s + 10,
        )
    except httpx.HTTPError as error:
        raise ReloadError(f"{url} did not answer the reload ({error})") from None
    if answer.status_code != 200:
        raise ReloadError(f"{url} refused the reload: {_message(answer)}")
    return str(answer.json()["version"])


def _message(answer: httpx.Response) -> str:
    """The app's problem message; whatever else answered (a proxy, another server) is quoted."""
    try:
        return str(answer.json()["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {answer.status_code} {answer.text[:200]}"
