"""`fraud-ray promote`'s call to a running app: the version it serves, or why it did not reload."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fraud_ray.serving.client import ReloadError, reload_model
from fraud_ray.settings import ServingSettings

from ..conftest import free_port

SERVING = ServingSettings(operator_token="s3cret-token", reload_timeout_s=2)


class App(BaseHTTPRequestHandler):
    """Answers /ok with a version, /refuses like the app refusing a model, /proxy with HTML."""

    tokens: list[str | None] = []  # noqa: RUF012 - the handler class is the test's record

    def do_POST(self) -> None:
        App.tokens.append(self.headers.get("Authorization"))
        status, body, kind = {
            "/ok/api/v1/model/reload": (200, json.dumps({"version": "5"}), "application/json"),
            "/refuses/api/v1/model/reload": (
                409,
                json.dumps({"message": "version 5 failed its probe"}),
                "application/json",
            ),
        }.get(self.path, (502, "<html>Bad Gateway</html>", "text/html"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def app() -> Iterator[str]:
    App.tokens = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), App)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_reload_returns_the_version_served(app: str) -> None:
    assert reload_model(f"{app}/ok", SERVING) == "5"
    assert App.tokens == ["Bearer s3cret-token"]


def test_a_refused_reload_says_why(app: str) -> None:
    with pytest.raises(ReloadError, match="refused the reload: version 5 failed its probe"):
        reload_model(f"{app}/refuses", SERVING)


def test_an_answer_from_something_else_is_quoted(app: str) -> None:
    with pytest.raises(ReloadError, match="refused the reload: HTTP 502 <html>Bad Gateway"):
        reload_model(f"{app}/proxy", SERVING)


def test_an_app_that_is_not_there_is_named() -> None:
    absent = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ReloadError, match=f"{absent} did not answer the reload"):
        reload_model(absent, SERVING)
