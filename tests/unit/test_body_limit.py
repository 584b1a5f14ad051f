"""A body over the limit is a 413 Problem before it is parsed, declared or streamed."""

from collections.abc import Iterator

from fastapi.testclient import TestClient
from pydantic import BaseModel

from fraud_ray.http import problem_app

LIMIT = 100


class Body(BaseModel):
    text: str


def client() -> TestClient:
    app = problem_app("test", "body limit")
    app.state.max_body_bytes = LIMIT

    @app.post("/echo")
    async def echo(body: Body) -> Body:
        return body

    return TestClient(app)


def test_a_body_under_the_limit_is_parsed() -> None:
    with client() as http:
        assert http.post("/echo", json={"text": "x" * 50}).json() == {"text": "x" * 50}


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    with client() as http:
        answer = http.post("/echo", json={"text": "x" * 500})
    assert answer.status_code == 413
    assert "max_body_bytes" in answer.json()["message"]


def test_a_streamed_body_without_a_length_is_counted() -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(20):
            yield b"x" * 10
        yield b'"}'

    with client() as http:
        answer = http.post("/echo", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert "max_body_bytes" in answer.json()["message"]


def test_an_app_without_a_limit_takes_any_body() -> None:
    app = problem_app("test", "no limit")

    @app.post("/echo")
    async def echo(body: Body) -> Body:
        return body

    with TestClient(app) as http:
        assert http.post("/echo", json={"text": "x" * 5000}).status_code == 200
