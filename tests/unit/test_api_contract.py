"""The HTTP contract's refusals, without Ray: what the serving API answers 422 to.

A small app built by ``problem_app`` takes the same request bodies as the Serve ingress, so the
status and the message a client gets are the ones checked here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient

from fraud_ray.http import problem_app
from fraud_ray.schema import Transaction
from fraud_ray.serving.api import BatchRequest, FeedbackRequest, refuse_future
from fraud_ray.settings import ServingSettings

MAX_FUTURE_S = ServingSettings().max_future_s
app = problem_app("contract", "the serving API's bodies")


@app.post("/batch")
async def batch(request: BatchRequest) -> dict[str, int]:
    refuse_future(request.transactions, MAX_FUTURE_S, batch=True)
    return {"transactions": len(request.transactions)}


@app.post("/single")
async def single(transaction: Transaction) -> dict[str, str]:
    refuse_future([transaction], MAX_FUTURE_S, batch=False)
    return {"transaction_id": transaction.transaction_id}


client = TestClient(app)


def body(tx: str = "t1", **fields: object) -> dict[str, object]:
    return {"transaction_id": tx, "timestamp": "2025-06-02T14:00:00Z", "amount": 12.5} | fields


def test_a_batch_repeating_an_id_is_refused_naming_it() -> None:
    answer = client.post("/batch", json={"transactions": [body("a"), body("b"), body("a")]})
    assert answer.status_code == 422
    assert "transaction ids must be distinct in a batch: 'a' repeated" in answer.json()["message"]
    assert client.post("/batch", json={"transactions": [body("a"), body("b")]}).status_code == 200


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"timestamp": "9999-12-31T23:00-05:00"}, "must be from 1970-01-01 to before 2200-01-01"),
        ({"timestamp": "2199-01-01T00:00:00Z"}, "ahead of the clock"),
        ({"transaction_id": "a\u0000b"}, "must not contain control characters"),
        ({"attributes": {"k\u0000": 1.0}}, "must not contain control characters"),
        ({"amount": 5e-324}, "must be at least 1e-09"),
        ({"amount": True}, "must be a number, not true or false"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_poison_over_http_is_a_422_naming_the_field(fields: dict, expected: str) -> None:
    for path, content in (
        ("/single", body(**fields)),
        ("/batch", {"transactions": [body(**fields)]}),
    ):
        answer = client.post(path, json=content)
        assert answer.status_code == 422, answer.text
        assert expected in answer.json()["message"]


def test_the_future_bound_names_where_the_timestamp_is() -> None:
    late = body("late", timestamp="2199-01-01T00:00:00Z")
    answer = client.post("/batch", json={"transactions": [body("a"), late]})
    assert answer.json()["errors"][0]["field"] == "body.transactions.1.timestamp"
    answer = client.post("/single", json=late)
    assert answer.json()["errors"][0]["field"] == "body.timestamp"


def test_the_future_bound_is_the_setting() -> None:
    soon = datetime.now(UTC) + timedelta(hours=3)
    refuse_future(
        [Transaction(transaction_id="t", timestamp=soon, amount=1)], 4 * 3600, batch=False
    )
    with pytest.raises(RequestValidationError, match="ahead of the clock"):
        refuse_future(
            [Transaction(transaction_id="t", timestamp=soon, amount=1)], 3600, batch=False
        )
    refuse_future([Transaction(transaction_id="t", timestamp=soon, amount=1)], None, batch=False)


@app.get("/page")
async def page(limit: int | None = None) -> dict[str, int | None]:
    return {"limit": limit}


def test_query_parameters_nobody_declared_are_refused_by_name() -> None:
    """A misspelt parameter (``limt=5``) would otherwise be ignored and the default served, with
    nothing to tell the client its filter did not apply."""
    assert client.get("/page", params={"limit": 5}).json() == {"limit": 5}
    answer = client.get("/page", params={"limt": 5, "limit": 5})
    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {"field": "query.limt", "message": "Extra inputs are not permitted"}
    ]
    assert client.post("/single?debug=1", json=body()).status_code == 422


@app.post("/labels")
async def labels(request: FeedbackRequest) -> dict[str, int]:
    return {"labels": len(request.labels)}


def test_labels_refuse_ids_no_database_can_store() -> None:
    """A NUL byte or a lone surrogate in a label's id reached PostgreSQL, which refused the
    query: a 500 that stateful fuzzing found. Python's JSON reader, which FastAPI uses, accepts
    the escape ``\\ud800``, so the body is sent as raw text."""
    json = {"content-type": "application/json"}
    for bad in ("a\\u0000b", "a\\ud800b"):
        label = f'{{"labels": [{{"transaction_id": "{bad}", "is_fraud": 1}}]}}'
        assert client.post("/labels", content=label, headers=json).status_code == 422
        single = f'{{"transaction_id": "{bad}", "timestamp": "2025-06-02T14:00:00Z", "amount": 1}}'
        answer = client.post("/single", content=single, headers=json)
        assert answer.status_code == 422 and "transaction_id" in answer.json()["message"]
