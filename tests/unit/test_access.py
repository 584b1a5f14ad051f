"""Who may call what: each guarded endpoint of the monitoring app and of the serving ingress
refuses no token, a wrong one and the default one, and the apps refuse to listen beyond loopback
with a default token."""

import base64

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fraud_ray.access import (
    DEFAULT_TOKEN,
    ExposedDefaultToken,
    analyst,
    check_exposure,
    document_access,
    is_loopback,
    operator,
    predictor,
    presented,
    tokens,
)
from fraud_ray.monitoring.app import create_app
from fraud_ray.settings import ServingSettings, Settings

OPERATOR = "operator-s3cret"
ANALYST = "analyst-s3cret"
SERVING = ServingSettings(operator_token=OPERATOR, analyst_token=ANALYST)
WRONG = ("", "Bearer", "Bearer nope-nope", f"Bearer {DEFAULT_TOKEN}", "Token x", "Basic !!")


def app_with_every_guard(serving: ServingSettings) -> FastAPI:
    app = FastAPI()
    app.state.tokens = tokens(serving)

    @app.post("/operator", dependencies=[Depends(operator)])
    async def as_operator() -> dict[str, str]:
        return {"ok": "operator"}

    @app.get("/analyst", dependencies=[Depends(analyst)])
    async def as_analyst() -> dict[str, str]:
        return {"ok": "analyst"}

    @app.post("/predict", dependencies=[Depends(predictor)])
    async def as_anyone() -> dict[str, str]:
        return {"ok": "predict"}

    return app


def basic(token: str) -> str:
    return "Basic " + base64.b64encode(f"anyone:{token}".encode()).decode()


@pytest.mark.parametrize("authorization", WRONG)
def test_each_role_refuses_no_token_a_wrong_one_and_the_default(authorization: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with TestClient(app_with_every_guard(SERVING), headers=headers) as client:
        for answer in (client.post("/operator"), client.get("/analyst")):
            assert answer.status_code == 401
            assert "Bearer" in answer.headers["www-authenticate"]
            assert OPERATOR not in answer.text and ANALYST not in answer.text


def test_a_role_takes_its_own_token_only() -> None:
    with TestClient(app_with_every_guard(SERVING)) as client:
        as_operator = {"Authorization": f"Bearer {OPERATOR}"}
        as_analyst = {"Authorization": f"Bearer {ANALYST}"}
        assert client.post("/operator", headers=as_operator).status_code == 200
        assert client.get("/analyst", headers=as_analyst).status_code == 200
        assert client.post("/operator", headers=as_analyst).status_code == 401
        assert client.get("/analyst", headers=as_operator).status_code == 401
        assert client.get("/analyst", headers={"Authorization": basic(ANALYST)}).status_code == 200


def test_predict_is_open_unless_a_token_is_set() -> None:
    with TestClient(app_with_every_guard(SERVING)) as client:
        assert client.post("/predict").status_code == 200
    guarded = SERVING.model_copy(update={"predict_token": "predict-s3cret"})
    with TestClient(app_with_every_guard(guarded)) as client:
        assert client.post("/predict").status_code == 401
        assert client.post("/predict", headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = client.post("/predict", headers={"Authorization": "Bearer predict-s3cret"})
        assert ok.status_code == 200


def operations(serving: ServingSettings) -> dict[str, dict]:
    app = app_with_every_guard(serving)
    document_access(app, tokens(serving))
    paths = app.openapi()["paths"]
    return {path: next(iter(paths[path].values())) for path in paths}


def test_the_openapi_document_says_which_operations_are_open_and_which_refuse() -> None:
    """A fuzzer or a client generator reads the document: an open predict must read as open,
    and a guarded operation must document its 401."""
    documented = operations(SERVING)
    assert {} in documented["/predict"]["security"]
    assert "401" not in documented["/predict"]["responses"]
    for path in ("/operator", "/analyst"):
        assert {} not in documented[path]["security"]
        assert "401" in documented[path]["responses"]
    guarded = operations(SERVING.model_copy(update={"predict_token": "predict-s3cret"}))
    assert {} not in guarded["/predict"]["security"] and "401" in guarded["/predict"]["responses"]


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard",
        "/api/v1/monitoring/drift",
        "/api/v1/monitoring/performance",
        "/api/v1/monitoring/comparison",
    ],
)
def test_the_monitoring_app_guards_every_route_but_health(path: str) -> None:
    guarded = Settings().updated({"serving": {"analyst_token": ANALYST}})
    with TestClient(create_app(guarded)) as client:
        assert client.get("/health").status_code == 200
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
        default = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
        assert client.get(path, headers=default).status_code == 401


def test_presented_reads_bearer_and_basic() -> None:
    assert presented("Bearer abc") == "abc"
    assert presented("bearer abc") == "abc"
    assert presented(basic("abc")) == "abc"
    assert presented("Basic not-base64!") is None
    assert presented(None) is None
    assert presented("Digest abc") is None


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_the_default_token_is_fine_on_loopback(host: str) -> None:
    assert is_loopback(host)
    check_exposure(host, tokens(ServingSettings()))


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5", "::", "fraud-ray.internal"])
def test_the_default_token_is_refused_beyond_loopback(host: str) -> None:
    with pytest.raises(ExposedDefaultToken, match=r"serving\.analyst_token") as refused:
        check_exposure(host, tokens(ServingSettings(operator_token=OPERATOR)))
    assert "serving.operator_token" not in str(refused.value)
    assert OPERATOR not in str(refused.value)
    check_exposure(host, tokens(SERVING))


def test_build_graph_refuses_the_default_token_on_a_public_host() -> None:
    from fraud_ray.serving.graph import build_graph

    public = Settings().updated({"serving": {"host": "0.0.0.0"}})
    with pytest.raises(ExposedDefaultToken, match=r"refusing to listen on 0\.0\.0\.0"):
        build_graph(public)


def test_monitor_serve_refuses_the_default_token_on_a_public_host() -> None:
    from typer.testing import CliRunner

    from fraud_ray.cli import app

    result = CliRunner().invoke(app, ["monitor", "serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "serving.operator_token" in result.output and "Traceback" not in result.output
