"""The Serve graph over real HTTP: decisions, model info, feedback, reloads and bad input.

One application serves the whole module (starting Serve and four deployments costs seconds); each
test uses transaction, card and terminal ids of its own so the shared feature state does not mix
them up.
"""

from __future__ import annotations

import collections
import itertools
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
import schemathesis
import sqlalchemy as sa
import xgboost as xgb
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from mlflow.exceptions import MlflowException
from ray import serve
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from typer.testing import CliRunner

from fraud_ray.cli import app as cli
from fraud_ray.costs import CostPolicy
from fraud_ray.decision_log import DecisionLog
from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.model import FraudModel
from fraud_ray.registry import REFERENCE_SAMPLE, Registry
from fraud_ray.serving.graph import build_graph
from fraud_ray.settings import Settings

from ..conftest import ensure_ray, free_port

TOKEN = "test-operator-token"
ANALYST = "test-analyst-token"
AS_OPERATOR = {"Authorization": f"Bearer {TOKEN}"}
AS_ANALYST = {"Authorization": f"Bearer {ANALYST}"}
# Registration's costs are only the MLflow pyfunc's default; the graph decides with the settings'.
PYFUNC_COSTS = CostPolicy(review_cost=3.0, decline_cost=10.0)
MAX_BATCH = 200
# Above the default (an hour), so that a test can tell the setting from the default.
MAX_FUTURE = timedelta(days=2)


@pytest.fixture(scope="module")
def served(
    training_run: tuple, champion: FraudModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Settings]]:
    """The graph on a copy of the session's registry: the reload tests register versions and
    move the champion alias, which the training tests must not see."""
    settings, _ = training_run
    folder = tmp_path_factory.mktemp("serving")
    registry = folder / "mlflow.db"
    shutil.copy(settings.mlflow.tracking_uri.removeprefix("sqlite:///"), registry)
    settings = settings.model_copy(
        update={
            "mlflow": settings.mlflow.model_copy(update={"tracking_uri": f"sqlite:///{registry}"}),
            "decisions": settings.decisions.model_copy(
                update={"url": f"sqlite:///{folder / 'decisions.db'}"}
            ),
            "serving": settings.serving.model_copy(
                update={
                    "operator_token": TOKEN,
                    "analyst_token": ANALYST,
                    "max_batch_transactions": MAX_BATCH,
                    "record_flush_s": 0.2,
                    "challenger_poll_s": 0.5,
                    "max_future_s": MAX_FUTURE.total_seconds(),
                }
            ),
        }
    )
    ensure_ray()
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_graph(settings), name=settings.serving.app_name, route_prefix="/")
    yield f"http://127.0.0.1:{port}", settings
    serve.shutdown()


@pytest.fixture
def client(served: tuple[str, Settings]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[0], timeout=60) as http:
        yield http


def transaction(tx: str, when: datetime, amount: float = 25.0, **fields: object) -> dict:
    body = {
        "transaction_id": tx,
        "timestamp": when.isoformat(),
        "card_id": f"card-{tx}",
        "terminal_id": f"terminal-{tx}",
        "amount": amount,
    }
    return body | fields


NOW = datetime(2025, 6, 2, 14, tzinfo=UTC)


def test_health(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}


def test_one_transaction_gets_one_decision(client: httpx.Client) -> None:
    answer = client.post("/api/v1/predict/single", json=transaction("single-1", NOW))
    assert answer.status_code == 200, answer.text
    decision = answer.json()
    assert decision["transaction_id"] == "single-1"
    assert 0 <= decision["fraud_probability"] <= 1
    assert decision["decision"] in {"approve", "review", "decline"}
    assert decision["expected_cost"] >= 0
    assert decision["model"]["name"] == "fraud-test"
    assert decision["latency_ms"] >= 0


def test_a_batch_answers_in_its_own_order(client: httpx.Client) -> None:
    batch = [
        transaction(f"batch-{i}", NOW + timedelta(seconds=i), amount=5.0 + 40 * i)
        for i in range(50)
    ]
    answer = client.post("/api/v1/predict/batch", json={"transactions": batch})
    assert answer.status_code == 200, answer.text
    decisions = answer.json()["decisions"]
    assert [d["transaction_id"] for d in decisions] == [t["transaction_id"] for t in batch]
    assert all(d["model"] == decisions[0]["model"] for d in decisions)


def test_a_transaction_sent_again_gets_its_first_decision_marked_as_a_replay(
    client: httpx.Client,
) -> None:
    """Sent again with another amount: still the first answer, whether the decision is still
    in the recorder (at once) or in the log (after a flush); in a batch, beside a new one."""
    first = client.post("/api/v1/predict/single", json=transaction("again-1", NOW)).json()
    assert first["replay"] is False
    changed = transaction("again-1", NOW, amount=9_000.0)
    at_once = client.post("/api/v1/predict/single", json=changed).json()
    assert at_once == first | {"replay": True}
    logged_decisions(client, ["again-1"])
    batch = [changed, transaction("again-2", NOW)]
    later = client.post("/api/v1/predict/batch", json={"transactions": batch}).json()["decisions"]
    assert later[0] == first | {"replay": True}
    assert later[1]["transaction_id"] == "again-2" and later[1]["replay"] is False
    assert logged_decisions(client, ["again-1"])[0]["decision"] == first


def test_the_future_bound_is_the_setting_not_the_default(client: httpx.Client) -> None:
    now = datetime.now(UTC)
    inside = transaction("ahead-1", now + MAX_FUTURE - timedelta(hours=1))
    assert client.post("/api/v1/predict/single", json=inside).status_code == 200
    beyond = transaction("ahead-2", now + MAX_FUTURE + timedelta(hours=1))
    for path, body in (
        ("/api/v1/predict/single", beyond),
        ("/api/v1/predict/batch", {"transactions": [beyond]}),
    ):
        answer = client.post(path, json=body)
        assert answer.status_code == 422 and "ahead of the clock" in answer.json()["message"]


def test_reasons_name_features_in_words(client: httpx.Client) -> None:
    body = transaction("reasons-1", NOW, amount=2500.0)
    decision = client.post("/api/v1/predict/single", json=body).json()
    names = set(FeatureSpec().names)
    assert decision["reasons"], "a 2,500 purchase on a new card must have a reason"
    for reason in decision["reasons"]:
        assert reason["feature"] in names
        assert reason["contribution"] > 0
        assert reason["description"] and reason["description"] != reason["feature"]


def test_model_info_describes_the_champion(
    client: httpx.Client, served: tuple[str, Settings]
) -> None:
    info = client.get("/api/v1/model/info").json()
    assert info["name"] == "fraud-test"
    assert info["alias"] == "champion"
    assert info["features"] == FeatureSpec().names
    assert info["costs"] == served[1].costs.model_dump()
    assert info["metrics"] and all(isinstance(v, float) for v in info["metrics"].values())
    assert info["trained_at"]


def test_feedback_raises_the_risk_of_a_terminal_after_the_label_delay(
    client: httpx.Client,
) -> None:
    """Two terminals with the same traffic; only one's payments are reported as fraud."""
    start = datetime(2024, 1, 8, 10, tzinfo=UTC)
    history = []
    for terminal in ("fb-risky", "fb-clean"):
        history += [
            transaction(
                f"{terminal}-{i}",
                start + timedelta(minutes=10 * i),
                amount=30.0,
                card_id=f"{terminal}-card-{i}",
                terminal_id=terminal,
            )
            for i in range(12)
        ]
    assert client.post("/api/v1/predict/batch", json={"transactions": history}).status_code == 200
    logged_decisions(client, [t["transaction_id"] for t in history])
    labels = [
        {"transaction_id": t["transaction_id"], "is_fraud": int(t["terminal_id"] == "fb-risky")}
        for t in history
    ]
    answer = client.post("/api/v1/feedback", json={"labels": labels}, headers=AS_OPERATOR).json()
    assert answer == {"received": 24, "matched": 24, "logged": 24}

    later = start + timedelta(days=9)
    probe = [
        transaction(f"fb-after-{terminal}", later, amount=30.0, card_id=f"fb-new-{terminal}")
        | {"terminal_id": terminal}
        for terminal in ("fb-risky", "fb-clean")
    ]
    risky, clean = client.post("/api/v1/predict/batch", json={"transactions": probe}).json()[
        "decisions"
    ]
    assert risky["fraud_probability"] > clean["fraud_probability"]


def logged_decisions(client: httpx.Client, ids: list[str], timeout_s: float = 30) -> list[dict]:
    """The log entries of answered transactions, once the recorder has written them all."""
    deadline = time.monotonic() + timeout_s
    found: dict[str, dict] = {}
    while len(found) < len(ids):
        for tx in ids:
            if tx not in found:
                answer = client.get(f"/api/v1/decisions/{tx}", headers=AS_ANALYST)
                if answer.status_code == 200:
                    found[tx] = answer.json()
        if len(found) < len(ids):
            assert time.monotonic() < deadline, f"{len(ids) - len(found)} decisions never logged"
            time.sleep(0.2)
    return [found[tx] for tx in ids]


def test_answered_decisions_reach_the_decision_log_with_their_features(
    client: httpx.Client, served: tuple[str, Settings]
) -> None:
    batch = [transaction(f"logged-{i}", NOW + timedelta(minutes=i), 10.0 + i) for i in range(20)]
    answered = client.post("/api/v1/predict/batch", json={"transactions": batch}).json()
    logged = logged_decisions(client, [t["transaction_id"] for t in batch])
    assert [entry["decision"] for entry in logged] == answered["decisions"]
    entry = DecisionLog(served[1].decisions.url).get("logged-7")
    assert entry is not None and entry.features is not None
    assert list(entry.features) == FeatureSpec().names
    assert entry.features["amount"] == 17.0


def challenger_model(champion: FraudModel) -> FraudModel:
    """The champion's features and calibration on a booster that reads only the amount: its
    decisions differ from the champion's, so shadow rows can be told from served ones."""
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(400, len(champion.features)))
    amount = champion.features.index("amount")
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2, "verbosity": 0},
        xgb.DMatrix(rows, label=(rows[:, amount] > 0.5), feature_names=champion.features),
        num_boost_round=5,
    )
    return FraudModel(booster, "xgboost", champion.calibrator, champion.spec, {})


def cold_batch(prefix: str) -> list[dict]:
    """Transactions of never-seen cards and terminals: the same features whatever the prefix."""
    return [transaction(f"{prefix}-{i}", NOW, amount=20.0 + 150 * i) for i in range(10)]


def test_a_challenger_is_scored_in_shadow_and_never_changes_an_answer(
    client: httpx.Client, served: tuple[str, Settings], champion: FraudModel
) -> None:
    settings = served[1]
    registry = Registry(settings.mlflow)
    alone = client.post("/api/v1/predict/batch", json={"transactions": cold_batch("solo")})
    version = register_copy(settings, challenger_model(champion), alias="challenger")
    log = DecisionLog(settings.decisions.url)
    try:
        deadline = time.monotonic() + 60
        for attempt in itertools.count():
            batch = cold_batch(f"shadowed-{attempt}")
            beside = client.post("/api/v1/predict/batch", json={"transactions": batch})
            logged_decisions(client, [t["transaction_id"] for t in batch])
            shadow = log.shadow_frame()
            shadow = shadow[shadow["transaction_id"].str.startswith(f"shadowed-{attempt}-")]
            if len(shadow) == len(batch) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        registry.client.delete_registered_model_alias(settings.mlflow.model_name, "challenger")
    assert len(shadow) == len(batch), "the challenger was never scored in shadow"
    assert set(shadow["model_version"]) == {version}
    answers = [(d["fraud_probability"], d["decision"]) for d in beside.json()["decisions"]]
    assert answers == [(d["fraud_probability"], d["decision"]) for d in alone.json()["decisions"]]
    assert {d["model"]["version"] for d in beside.json()["decisions"]} != {version}
    served_probabilities = [p for p, _ in answers]
    assert shadow["fraud_probability"].tolist() != served_probabilities


def test_unknown_cards_and_terminals_score_cold(client: httpx.Client) -> None:
    body = transaction("cold-1", NOW, card_id="never-seen", terminal_id="never-seen-either")
    assert client.post("/api/v1/predict/single", json=body).status_code == 200
    body = transaction("cold-2", NOW)
    del body["card_id"], body["terminal_id"]
    assert client.post("/api/v1/predict/single", json=body).status_code == 200


GOOD = transaction("bad-input", NOW)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in GOOD.items() if k != "amount"}, "amount"),
        (GOOD | {"amount": "twelve"}, "amount"),
        (GOOD | {"amount": -5}, "amount"),
        (GOOD | {"amount": -0.01}, "amount"),
        (GOOD | {"timestamp": "yesterday at noon"}, "timestamp"),
        (GOOD | {"timestamp": 10**20}, "timestamp"),
        (GOOD | {"shoe_size": 44}, "shoe_size"),
        (GOOD | {"transaction_id": ""}, "transaction_id"),
        (GOOD | {"card_id": "x" * 500}, "card_id"),
        (GOOD | {"attributes": {"risk": "high"}}, "attributes"),
    ],
)
def test_bad_transactions_get_a_422_naming_the_field(
    client: httpx.Client, body: dict, field: str
) -> None:
    answer = client.post("/api/v1/predict/single", json=body)
    assert answer.status_code == 422
    assert field in answer.json()["message"]


def test_a_zero_amount_card_verification_is_approved(client: httpx.Client) -> None:
    answer = client.post(
        "/api/v1/predict/single", json=transaction("verification-1", NOW, amount=0.0)
    )
    assert answer.status_code == 200
    assert answer.json()["decision"] == "approve"
    assert answer.json()["expected_cost"] == 0


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_amounts_are_refused(client: httpx.Client, number: str) -> None:
    raw = (
        '{"transaction_id": "nan-1", "timestamp": "2025-06-02T14:00:00Z", '
        f'"card_id": "c", "terminal_id": "t", "amount": {number}}}'
    )
    answer = client.post(
        "/api/v1/predict/single", content=raw, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422
    assert "amount" in answer.json()["message"]


def test_a_body_that_is_not_json_is_refused(client: httpx.Client) -> None:
    answer = client.post(
        "/api/v1/predict/single", content=b"amount=12", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422
    assert "JSON" in answer.json()["message"]


def test_empty_and_oversized_batches_are_refused(client: httpx.Client) -> None:
    empty = client.post("/api/v1/predict/batch", json={"transactions": []})
    assert empty.status_code == 422
    assert "transactions" in empty.json()["message"]
    many = [transaction(f"big-{i}", NOW) for i in range(MAX_BATCH + 1)]
    oversized = client.post("/api/v1/predict/batch", json={"transactions": many})
    assert oversized.status_code == 413
    assert "max_batch_transactions" in oversized.json()["message"]


GUARDED = [
    ("POST", "/api/v1/model/reload", AS_OPERATOR),
    ("POST", "/api/v1/feedback", AS_OPERATOR),
    ("GET", "/api/v1/alerts", AS_ANALYST),
    ("GET", "/api/v1/decisions/never-sent", AS_ANALYST),
    ("GET", "/api/v1/monitoring/performance", AS_ANALYST),
    ("GET", "/dashboard", AS_ANALYST),
]


@pytest.mark.parametrize(("method", "path", "role"), GUARDED)
def test_guarded_endpoints_refuse_no_token_a_wrong_one_and_the_default(
    client: httpx.Client, method: str, path: str, role: dict[str, str]
) -> None:
    other = AS_ANALYST if role is AS_OPERATOR else AS_OPERATOR
    for headers in (
        {},
        {"Authorization": "Bearer nope-nope"},
        {"Authorization": "Bearer change-me"},
        other,
    ):
        answer = client.request(method, path, headers=headers, json={"labels": []})
        assert answer.status_code == 401, (path, headers, answer.text)
        assert TOKEN not in answer.text and ANALYST not in answer.text


def register_copy(settings: Settings, model: FraudModel, alias: str = "champion") -> str:
    """Register ``model`` with the serving champion's reference sample, as the model gate needs
    (every version here reads the champion's features, and every one registered has a sample)."""
    registry = Registry(settings.mlflow)
    with tempfile.TemporaryDirectory() as scratch:
        sample = Path(scratch) / REFERENCE_SAMPLE
        registry.reference_sample("@champion").to_parquet(sample, index=False)
        registered = registry.register(
            model,
            policy=PYFUNC_COSTS,
            params={},
            metrics={"note": 1.0},
            tags={"purpose": "reload test"},
            artifacts=[sample],
            alias=alias,
        )
    return registered.version


def test_reload_under_load_drops_nothing(
    client: httpx.Client, served: tuple[str, Settings], champion: FraudModel
) -> None:
    settings = served[1]
    before = client.get("/api/v1/model/info").json()["version"]
    new_version = register_copy(settings, champion)
    statuses: list[int] = []
    versions: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=served[0], timeout=60) as http:
            i = 0
            while not stop.is_set() and i < 2000:
                answer = http.post(
                    "/api/v1/predict/single", json=transaction(f"load-{i}", NOW, amount=20.0 + i)
                )
                statuses.append(answer.status_code)
                if answer.status_code == 200:
                    versions.append(answer.json()["model"]["version"])
                i += 1

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        time.sleep(1.0)
        reload = client.post("/api/v1/model/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        time.sleep(1.0)
    finally:
        stop.set()
        sender.join(timeout=120)
    assert reload.status_code == 200, reload.text
    assert reload.json()["version"] == new_version
    assert reload.json()["previous_version"] == before
    assert statuses and set(statuses) == {200}
    assert versions[0] == before and versions[-1] == new_version
    assert client.get("/api/v1/model/info").json()["version"] == new_version


def test_a_broken_version_is_refused_and_the_old_one_keeps_serving(
    client: httpx.Client, served: tuple[str, Settings], champion: FraudModel
) -> None:
    settings = served[1]
    serving_version = client.get("/api/v1/model/info").json()["version"]
    rng = np.random.default_rng(0)
    wrong_width = xgb.train(
        {"objective": "binary:logistic", "verbosity": 0},
        xgb.DMatrix(rng.normal(size=(40, 3)), label=rng.integers(0, 2, 40)),
        num_boost_round=2,
    )
    broken = FraudModel(wrong_width, "xgboost", champion.calibrator, champion.spec, {})
    register_copy(settings, broken)
    try:
        answer = client.post("/api/v1/model/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 409
        assert "probe" in answer.json()["message"]
        assert client.get("/api/v1/model/info").json()["version"] == serving_version
        decision = client.post("/api/v1/predict/single", json=transaction("after-refusal", NOW))
        assert decision.json()["model"]["version"] == serving_version
    finally:
        Registry(settings.mlflow).set_alias("champion", serving_version)


def cli_on(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the ``fraud-ray`` CLI at the served graph's registry, with its operator token."""
    monkeypatch.setenv("FRAUD_RAY_MLFLOW_TRACKING_URI", settings.mlflow.tracking_uri)
    monkeypatch.setenv("FRAUD_RAY_MLFLOW_MODEL_NAME", settings.mlflow.model_name)
    monkeypatch.setenv("FRAUD_RAY_SERVING_OPERATOR_TOKEN", TOKEN)


def constant_model(champion: FraudModel) -> FraudModel:
    """A booster that learnt nothing (no feature varies in its training rows): it scores every
    transaction alike, which the reload probe alone cannot tell from a model."""
    rows = np.zeros((40, len(champion.features)))
    labels = np.random.default_rng(2).integers(0, 2, 40)
    booster = xgb.train(
        {"objective": "binary:logistic", "verbosity": 0},
        xgb.DMatrix(rows, label=labels, feature_names=champion.features),
        num_boost_round=3,
    )
    return FraudModel(booster, "xgboost", champion.calibrator, champion.spec, {})


def test_a_version_with_constant_scores_is_refused_on_reload_and_on_promote(
    client: httpx.Client,
    served: tuple[str, Settings],
    champion: FraudModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = served[1]
    registry = Registry(settings.mlflow)
    serving_version = client.get("/api/v1/model/info").json()["version"]
    register_copy(settings, constant_model(champion))
    try:
        answer = client.post("/api/v1/model/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 409, answer.text
        assert "one score" in answer.json()["message"]
        assert client.get("/api/v1/model/info").json()["version"] == serving_version
    finally:
        registry.set_alias("champion", serving_version)

    constant = register_copy(settings, constant_model(champion), alias="challenger")
    cli_on(settings, monkeypatch)
    try:
        refused = CliRunner().invoke(cli, ["promote", "--url", served[0]])
        assert refused.exit_code == 2, refused.output
        assert "not promoted" in refused.output and f"version {constant}" in refused.output
        assert "Traceback" not in refused.output
        assert str(registry.resolve("@champion").version) == serving_version
        assert str(registry.resolve("@challenger").version) == constant
    finally:
        registry.client.delete_registered_model_alias(settings.mlflow.model_name, "challenger")


def test_promotion_moves_the_aliases_and_the_graph_serves_the_challenger(
    client: httpx.Client,
    served: tuple[str, Settings],
    champion: FraudModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = served[1]
    registry = Registry(settings.mlflow)
    old = client.get("/api/v1/model/info").json()["version"]
    new = register_copy(settings, challenger_model(champion), alias="challenger")
    cli_on(settings, monkeypatch)
    try:
        result = CliRunner().invoke(cli, ["promote", "--url", served[0]])
        assert result.exit_code == 0, result.output
        assert f"version {old} -> {new}" in result.output
        assert client.get("/api/v1/model/info").json()["version"] == new
        decision = client.post("/api/v1/predict/single", json=transaction("promoted", NOW)).json()
        assert decision["model"]["version"] == new
        assert str(registry.resolve("@champion").version) == new
        with pytest.raises(MlflowException):
            registry.resolve("@challenger")
        again = CliRunner().invoke(cli, ["promote", "--url", served[0]])
        assert again.exit_code == 2
        assert "challenger" in again.output and "Traceback" not in again.output
    finally:
        registry.set_alias("champion", old)
        client.post("/api/v1/model/reload", headers={"Authorization": f"Bearer {TOKEN}"})


def test_a_saturated_ingress_answers_503_with_retry_after(served: tuple[str, Settings]) -> None:
    """Past ``max_queued_requests`` a request is refused at once, with when to come back,
    instead of waiting in a queue without bound; the requests let in are answered."""
    url, settings = served
    busy = settings.model_copy(
        update={
            "serving": settings.serving.model_copy(
                update={
                    "app_name": "busy",
                    "fuse_steps": True,
                    "max_ongoing_requests": 1,
                    "max_queued_requests": 1,
                    "retry_after_s": 3.0,
                    "log_decisions": False,
                    "challenger_alias": None,
                }
            )
        }
    )
    serve.run(build_graph(busy), name="busy", route_prefix="/busy")
    try:
        batch = {"transactions": [transaction(f"busy-{i}", NOW) for i in range(MAX_BATCH)]}

        def post(_: int) -> httpx.Response:
            return httpx.post(f"{url}/busy/api/v1/predict/batch", json=batch, timeout=60)

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(post, range(48)))
    finally:
        serve.delete("busy")
    codes = collections.Counter(answer.status_code for answer in answers)
    assert set(codes) == {200, 503}, codes
    refused = next(answer for answer in answers if answer.status_code == 503)
    assert refused.headers["retry-after"] == "3"


def test_openapi_documents_every_endpoint(client: httpx.Client) -> None:
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {
        "/health",
        "/api/v1/predict/single",
        "/api/v1/predict/batch",
        "/api/v1/model/info",
        "/api/v1/feedback",
        "/api/v1/model/reload",
    } <= paths
    assert client.get("/docs").status_code == 200


@pytest.fixture(scope="module")
def own_database(postgres_url: str) -> str:
    """A database of this module's own on the session's PostgreSQL: the stateful sequences log
    decisions dated now, which the stream tests' monitoring windows must not see."""
    url = sa.make_url(postgres_url)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("DROP DATABASE IF EXISTS serving_api"))
            connection.execute(sa.text("CREATE DATABASE serving_api"))
    finally:
        engine.dispose()
    return url.set(database="serving_api").render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def served_on_postgres(served: tuple[str, Settings], own_database: str) -> Iterator[str]:
    """The same graph beside the first, its decision log on PostgreSQL (steps fused, to spare the
    CPUs): the API must read the same whichever database keeps the log."""
    url, settings = served
    name = "on-postgres"
    on_postgres = settings.model_copy(
        update={
            "decisions": settings.decisions.model_copy(update={"url": own_database}),
            "serving": settings.serving.model_copy(
                update={"app_name": name, "fuse_steps": True, "challenger_alias": None}
            ),
        }
    )
    serve.run(build_graph(on_postgres), name=name, route_prefix=f"/{name}")
    yield f"{url}/{name}"
    serve.delete(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def api_url(request: pytest.FixtureRequest, served: tuple[str, Settings]) -> str:
    if request.param == "sqlite":
        return served[0]
    return request.getfixturevalue("served_on_postgres")


# Bounds JSON Schema cannot state (a window's start before its end, a timestamp from 1970 to 2200
# and not ahead of the clock, a page token this API handed out, a transaction id that exists)
# make some schema-valid requests 4xx, rightly.
EXCLUDED_CHECKS = [positive_data_acceptance]
ROLES = {"/api/v1/feedback": AS_OPERATOR, "/api/v1/model/reload": AS_OPERATOR}
FUZZING = examples(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzzing_the_openapi_schema_passes_every_check(api_url: str, mode: GenerationMode) -> None:
    """Schemathesis writes requests from /openapi.json, valid ones and ones that break it, and
    runs its checks on each answer: no 5xx, status codes, content types, headers and bodies as
    documented, authentication enforced where declared."""
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")

    @given(case=schema.as_strategy(generation_mode=mode))
    @FUZZING
    def conforms(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=api_url,
            timeout=60,
            headers=ROLES.get(case.path, AS_ANALYST),
            excluded_checks=EXCLUDED_CHECKS,
        )

    conforms()


def test_stateful_fuzzing_follows_the_links_between_operations(api_url: str) -> None:
    """Sequences of calls chained by the schema's links, with the ids real answers gave: a
    prediction, then its logged decision and its label; alerts, their next page and the first
    one's decision. Two runs, as Schemathesis starts sequences only at alerts when it may (the
    card ids a prediction takes look to it like references to a resource nothing creates).
    Predictions are sent at the current time: JSON Schema cannot say "not ahead of the clock",
    and a random date-time is almost never a time the API takes, so no link would start.

    Valid requests only: the calls carry the role's token whatever Schemathesis drew, so a
    sequence step it meant to send without one would be accepted, rightly; the test above sends
    the schema-breaking requests."""
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    schema.config.generation.update(modes=[GenerationMode.POSITIVE])
    reached: collections.Counter[tuple[str, int]] = collections.Counter()
    for flows in (schema.exclude(operation_id="alerts"), schema):

        class Sequences(flows.as_state_machine()):  # type: ignore[misc]
            def before_call(self, case: schemathesis.Case) -> None:
                body = case.body if isinstance(case.body, dict) else {}
                batch = body.get("transactions")
                for transaction in batch if isinstance(batch, list) else [body]:
                    if isinstance(transaction, dict) and "timestamp" in transaction:
                        transaction["timestamp"] = datetime.now(UTC).isoformat()

            def after_call(self, response: httpx.Response, case: schemathesis.Case) -> None:
                reached[case.operation.label, response.status_code] += 1

            def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
                return {
                    "base_url": api_url,
                    "timeout": 60,
                    "headers": ROLES.get(case.path, AS_ANALYST),
                }

            def validate_response(
                self, response: object, case: schemathesis.Case, **kwargs: object
            ) -> None:
                case.validate_response(response, excluded_checks=EXCLUDED_CHECKS)

        Sequences.run(
            settings=examples(
                max_examples=30,
                stateful_step_count=5,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
        )
    # Feedback has no links of its own, so only a prediction's link leads there.
    assert reached["POST /api/v1/feedback", 200], f"no link followed: {dict(reached)}"
    assert reached["GET /api/v1/alerts", 200]
