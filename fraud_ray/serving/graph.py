"""The Ray Serve application: Ingress -> FeatureStep -> Scorer -> DecisionStep.

Each step is a deployment so it scales on its own: feature state is memory- or Redis-bound, the
model is CPU-bound and batches, the decision is arithmetic. The ingress chains the steps over
handles that send by value over gRPC (``by_value``): each ``DeploymentResponse`` passed into the
next call is resolved in the ingress and its value sent on, which costs less than the object
store's round trips for payloads of a few kilobytes.

Model updates: the ``ModelRollout`` actor (``fraud_ray.serving.rollout``) holds the version every
Scorer replica should serve; ``POST /api/v1/model/reload`` sets it once the ingress has loaded and
probed that version, and each Scorer replica follows it without dropping a request.

FastAPI reads the handlers' annotations at run time inside Serve's ingress wrapper, so this module
does not use ``from __future__ import annotations``: string annotations would turn request bodies
into query parameters. ``@serve.deployment`` pickles a class when the module is imported, so
whatever a deployment's methods call must be defined above it.
"""

import asyncio
import itertools
import logging
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import Depends, HTTPException, Response
from ray import serve
from ray.serve.config import BackpressureConfig
from ray.serve.handle import DeploymentHandle

from fraud_ray.access import (
    analyst,
    check_exposure,
    document_access,
    operator,
    predictor,
    tokens,
)
from fraud_ray.decision_api import DecisionLogReader
from fraud_ray.decision_api import router as decision_log_router
from fraud_ray.decision_log import DecisionLog
from fraud_ray.features.definitions import FeatureSpec
from fraud_ray.features.online import online_features
from fraud_ray.features.state import Event
from fraud_ray.http import Problem, json_response, problem_app
from fraud_ray.monitoring.routes import router as monitoring_router
from fraud_ray.monitoring.service import MonitoringService
from fraud_ray.registry import Registry
from fraud_ray.schema import Decision, DecisionRecord, Transaction, replayed
from fraud_ray.serving.api import (
    FEEDBACK,
    BatchRequest,
    BatchResponse,
    FeedbackRequest,
    FeedbackResponse,
    ModelInfo,
    ReloadResponse,
    answer_links,
    refuse_future,
)
from fraud_ray.serving.columns import Columns
from fraud_ray.serving.gate import admit
from fraud_ray.serving.pipeline import (
    ModelRefused,
    Scored,
    ServingModel,
    render,
    transaction_ids,
)
from fraud_ray.serving.recorder import DecisionRecorder
from fraud_ray.serving.replay import ReplayLookup
from fraud_ray.serving.rollout import (
    ModelAbout,
    RolloutTimeout,
    challenger,
    load_model,
    roll_out,
    rollout_actor,
    serving_spec,
)
from fraud_ray.serving.telemetry import GraphMetrics
from fraud_ray.settings import Settings

logger = logging.getLogger("ray.serve")
Handle = TypeVar("Handle", DeploymentHandle, DeploymentHandle | None)
# The last flush at shutdown gets this long: half of Serve's default graceful shutdown timeout
# (20 s), which ends the replica whatever it is doing.
SHUTDOWN_FLUSH_S = 10.0

api = problem_app(
    "fraud-ray",
    "Real-time card-fraud decisions: approve, review or decline by least expected cost.",
)
# /api/v1/alerts and /api/v1/decisions/*
api.include_router(decision_log_router, dependencies=[Depends(analyst)])
# /dashboard and /api/v1/monitoring/*
api.include_router(monitoring_router, dependencies=[Depends(analyst)])


def by_value(handle: Handle) -> Handle:
    """The handle sending its calls over gRPC, by value, rather than through the object store.

    Every payload between the steps is a few kilobytes (a batch's events, feature rows, scored
    arrays): the object store's put, lookup and fetch cost more than sending the bytes, which
    ``bench/serve.py`` measures. A ``DeploymentResponse`` passed on to the next step is then
    resolved in the ingress and its value sent on.
    """
    return None if handle is None else handle.options(_by_reference=False)


@serve.deployment
class FeatureStep:
    """Online features: each transaction joins its card's and terminal's history as it is scored.

    The methods are coroutines with no await inside, so one replica runs them one at a time on
    its event loop: two batches never interleave their updates of the same card's history.
    """

    def __init__(self, settings: Settings, spec: FeatureSpec) -> None:
        self.online = online_features(settings, spec)

    async def compute(self, events: list[Event]) -> np.ndarray:
        return self.online.compute(events)

    async def record_labels(self, labels: list[tuple[str, int]]) -> int:
        return self.online.record_labels(labels)


@serve.deployment
class Scorer:
    """The registry's model, batching rows from concurrent requests into one booster call."""

    async def __init__(self, settings: Settings, spec: FeatureSpec) -> None:
        self.settings = settings
        self.spec = spec
        context = serve.get_replica_context()
        self.replica = context.replica_id.unique_id
        self.app_name = context.app_name
        self.rollout = rollout_actor(self.app_name)
        target = await self.rollout.heartbeat.remote(self.replica, "", None)
        reference = target or f"@{settings.serving.model_alias}"
        self.loaded = await asyncio.to_thread(load_model, settings, spec, reference)
        self.error: str | None = None
        self.score.set_max_batch_size(settings.serving.batch_max_size)
        self.score.set_batch_wait_timeout_s(settings.serving.batch_wait_timeout_s)
        self._follow = asyncio.get_running_loop().create_task(self._follow_rollout())

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)
    async def score(self, batches: list[np.ndarray], amounts: list[np.ndarray]) -> list[Scored]:
        """Each request's rows scored and decided by the settings' costs, in one booster call."""
        model = self.loaded.model
        sizes = [len(rows) for rows in batches]
        scored = model.score(np.vstack(batches), np.concatenate(amounts))
        bounds = np.cumsum([0, *sizes])
        return [scored.rows(a, b) for a, b in itertools.pairwise(bounds)]

    def info(self) -> ModelAbout:
        return self.loaded.about

    async def _follow_rollout(self) -> None:
        """Poll the target version; load, probe and swap when it changes."""
        while True:
            version = self.loaded.model.ref.version
            try:
                target = await self.rollout.heartbeat.remote(self.replica, version, self.error)
                if target is not None and target != version:
                    self.loaded = await asyncio.to_thread(
                        load_model, self.settings, self.spec, target
                    )
                    self.error = None
                    logger.info("Scorer %s now serves version %s", self.replica, target)
            except ModelRefused as refused:
                self.error = str(refused)
                logger.warning("Scorer %s keeps its model: %s", self.replica, refused)
            except Exception as error:  # the rollout actor is gone: ask for it again
                logger.warning("Scorer %s could not reach the rollout: %s", self.replica, error)
                self.rollout = rollout_actor(self.app_name)
            await asyncio.sleep(self.settings.serving.reload_poll_s)


@serve.deployment
class DecisionStep:
    """Scored rows become ``Decision`` records: reasons named and described for an analyst, the
    model, the costs the action was chosen with, when it was decided and how long it took."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec

    async def render(
        self, transaction_ids: list[str], scored: Scored, received_at: datetime
    ) -> list[DecisionRecord]:
        return render(transaction_ids, scored, self.spec, received_at)


@serve.deployment
@serve.ingress(api)
class Ingress:
    """HTTP in, decisions out; also the entry point the streaming pool calls through a handle."""

    async def __init__(
        self,
        features: DeploymentHandle | None,
        scorer: DeploymentHandle,
        decider: DeploymentHandle | None,
        settings: Settings,
        spec: FeatureSpec,
    ) -> None:
        self.features = by_value(features)
        self.scorer = by_value(scorer)
        self.decider = by_value(decider)
        self.settings = settings
        self.spec = spec
        self.online = online_features(settings, spec) if features is None else None
        self.app_name = serve.get_replica_context().app_name
        api.state.tokens = tokens(settings.serving)
        document_access(api, api.state.tokens)
        api.state.max_body_bytes = settings.serving.max_body_bytes
        self._decision_log: DecisionLog | None = None
        api.state.decisions = DecisionLogReader(self.decision_log, settings.serving)
        self.metrics = GraphMetrics(self.app_name)
        monitoring = MonitoringService(settings, on_drift=self.metrics.drift)
        api.state.monitoring = monitoring
        self.recorder = DecisionRecorder(
            self.decision_log,
            spec.names,
            settings.serving.record_max_pending,
            on_drop=self.metrics.dropped,
        )
        self.replays = ReplayLookup(
            lambda ids: self.decision_log().logged(ids), settings.serving.replay_lookup_s
        )
        self._closing = asyncio.Event()
        self.shadow: ServingModel | None = None
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._record())]
        if settings.serving.challenger_alias:
            self._tasks.append(loop.create_task(self._watch_challenger()))
        if settings.monitoring.drift_check_s is not None:
            every = settings.monitoring.drift_check_s
            self._tasks.append(loop.create_task(monitoring.check_drift_every(every)))

    async def answer(self, batch: Columns) -> tuple[list[DecisionRecord], np.ndarray]:
        """Decisions in the batch's order, and the feature rows they were made on.

        With ``serving.fuse_steps`` the feature and decision steps run in this replica and only
        the model is a hop away; otherwise the rows come back here (the log and the challenger
        need them) and the Scorer's response is handed straight to the decision step.
        """
        received_at = datetime.now(UTC)
        events = batch.events()
        amounts = np.asarray(batch.amounts, dtype=np.float64)
        ids = batch.transaction_ids
        if self.online is not None:
            rows = self.online.compute(events)
            scored: Scored = await self.scorer.score.remote(rows, amounts)
            decisions = render(ids, scored, self.spec, received_at)
        else:
            assert self.features is not None and self.decider is not None
            rows = await self.features.compute.remote(events)
            scored_response = self.scorer.score.remote(rows, amounts)
            decisions = await self.decider.render.remote(ids, scored_response, received_at)
        self.metrics.record(decisions)
        return decisions, rows

    async def decide_for_log(
        self, batch: Columns
    ) -> tuple[list[DecisionRecord], list[str], np.ndarray]:
        """The handle entry point for callers that log decisions themselves, as the streaming
        pool does before it commits: the decisions, and the feature names and rows they were
        made on for that log (an array crosses the handle in one piece, where a dict per row
        cost both ends more than the features themselves). The recorder only scores the
        challenger on them."""
        decisions, rows = await self.answer(batch)
        self.recorder.add(decisions, rows, batch.amounts, transactions=None)
        return decisions, self.spec.names, rows

    async def decide_and_log(self, transactions: Sequence[Transaction]) -> list[DecisionRecord]:
        """HTTP's path: the recorder logs the decisions (``serving.log_decisions``) after the
        answer has gone.

        A transaction id decided before (a client's retry, a replayed file) is answered with the
        decision already given, marked ``replay``, and does not enter the feature state again:
        every answer for an id is the one the log keeps.
        """
        if not self.settings.serving.log_decisions:
            return (await self.answer(Columns.of(transactions)))[0]
        ids = transaction_ids(transactions)
        seen = await self._decided_before(ids)
        fresh = [t for t in transactions if t.transaction_id not in seen]
        decisions: list[DecisionRecord] = []
        if fresh:
            batch = Columns.of(fresh)
            decisions, rows = await self.answer(batch)
            self.recorder.add(decisions, rows, batch.amounts, transactions=fresh)
        if not seen:
            return decisions
        self.metrics.replayed(len(seen))
        answers = {tx: replayed(decision) for tx, decision in seen.items()}
        answers.update((decision["transaction_id"], decision) for decision in decisions)
        return [answers[tx] for tx in ids]

    async def _decided_before(self, ids: list[str]) -> dict[str, DecisionRecord]:
        """The decisions given before for any of ``ids``: from the recorder if not yet written,
        else from the log (``ReplayLookup``: one query for the requests waiting, each waiting at
        most ``serving.replay_lookup_s``)."""
        seen = self.recorder.answered(ids)
        missing = [tx for tx in ids if tx not in seen]
        if not missing:
            return seen
        return seen | await self.replays.find(missing)

    async def _record(self) -> None:
        """Flush the recorder every ``serving.record_flush_s``, and once more when the replica
        closes; a failed flush is retried with the next one's decisions, never raised into a
        request. The same beat keeps the drift gauges exported."""
        serving = self.settings.serving
        while not self._closing.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), serving.record_flush_s)
            self.metrics.hold()
            pending = self.recorder.take()
            try:
                flushed = await asyncio.to_thread(self.recorder.flush, pending, self.shadow)
                self.recorder.written(pending)
                self.metrics.flushed(flushed)
            except Exception as error:  # the database is away: keep the batch for the next try
                logger.warning("decision log write failed, will retry: %s", error)
                self.metrics.flush_failed()
                self.recorder.restore(pending)
            self.metrics.pending(len(self.recorder.pending))

    async def __del__(self) -> None:
        """Serve awaits this when it stops the replica gracefully (a redeploy, a scale-down,
        ``serve shutdown``): answered decisions still pending are written before it goes, and
        those the log cannot take in time are counted and named in the replica's log."""
        self._closing.set()
        record, *others = self._tasks
        for task in others:
            task.cancel()
        with suppress(Exception):
            await asyncio.wait_for(record, SHUTDOWN_FLUSH_S)
        left = len(self.recorder.pending)
        if left:
            self.metrics.dropped(left)
            logger.error("shutting down with %d answered decisions not logged", left)

    async def _watch_challenger(self) -> None:
        """Load the registry's challenger when its alias moves; drop it when the alias goes."""
        alias = self.settings.serving.challenger_alias
        assert alias is not None
        registry = Registry(self.settings.mlflow)
        while True:
            try:
                self.shadow = await asyncio.to_thread(
                    challenger, registry, self.settings, self.spec, alias, self.shadow
                )
            except Exception as error:  # a registry hiccup: keep the current challenger
                logger.warning("could not check the %s alias: %s", alias, error)
            await asyncio.sleep(self.settings.serving.challenger_poll_s)

    @api.get("/health")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.post(
        "/api/v1/predict/single",
        response_model=Decision,
        responses=answer_links("$response.body#/transaction_id"),
        dependencies=[Depends(predictor)],
    )
    async def predict_single(self, transaction: Transaction) -> Response:
        refuse_future([transaction], self.settings.serving.max_future_s, batch=False)
        return json_response((await self.decide_and_log([transaction]))[0])

    @api.post(
        "/api/v1/predict/batch",
        response_model=BatchResponse,
        responses={
            413: {"model": Problem},
            **answer_links("$response.body#/decisions/0/transaction_id"),
        },
        dependencies=[Depends(predictor)],
    )
    async def predict_batch(self, request: BatchRequest) -> Response:
        limit = self.settings.serving.max_batch_transactions
        if len(request.transactions) > limit:
            raise HTTPException(
                413,
                f"transactions: a batch holds at most {limit} transactions "
                f"(serving.max_batch_transactions), got {len(request.transactions)}",
            )
        refuse_future(request.transactions, self.settings.serving.max_future_s, batch=True)
        return json_response({"decisions": await self.decide_and_log(request.transactions)})

    @api.get("/api/v1/model/info", response_model=ModelInfo)
    async def model_info(self) -> ModelInfo:
        about: ModelAbout = await self.scorer.info.remote()
        return ModelInfo(
            name=about.ref.name,
            version=about.ref.version,
            alias=about.alias,
            trained_at=about.trained_at,
            metrics=about.metrics,
            features=self.spec.names,
            costs=self.settings.costs.model_dump(),
            loaded_at=about.loaded_at,
        )

    @api.post("/api/v1/feedback", response_model=FeedbackResponse, operation_id=FEEDBACK)
    async def feedback(
        self, request: FeedbackRequest, _: Annotated[None, Depends(operator)]
    ) -> FeedbackResponse:
        """Labels feed the terminals' risk features and join their decisions in the log, where
        monitoring measures the model's performance."""
        labels = [(label.transaction_id, label.is_fraud) for label in request.labels]
        if self.online is not None:
            matched = self.online.record_labels(labels)
        else:
            assert self.features is not None
            matched = await self.features.record_labels.remote(labels)
        logged = await asyncio.to_thread(
            self.decision_log().record_labels, labels, labelled_by="operator"
        )
        return FeedbackResponse(received=len(labels), matched=matched, logged=logged)

    def decision_log(self) -> DecisionLog:
        """Opened on first use, off the event loop: opening creates the tables if needed, a round
        trip to the database."""
        if self._decision_log is None:
            self._decision_log = DecisionLog(self.settings.decisions.url)
        return self._decision_log

    @api.post(
        "/api/v1/model/reload",
        response_model=ReloadResponse,
        responses={401: {"model": Problem}, 409: {"model": Problem}, 504: {"model": Problem}},
    )
    async def reload(self, _: Annotated[None, Depends(operator)]) -> ReloadResponse:
        """Load the alias's current version into every Scorer replica, or refuse it."""
        serving = self.settings.serving
        previous: ModelAbout = await self.scorer.info.remote()
        try:
            candidate = await asyncio.to_thread(
                load_model, self.settings, self.spec, f"@{serving.model_alias}"
            )
            await asyncio.to_thread(
                admit,
                Registry(self.settings.mlflow),
                candidate.model.model,
                candidate.model.ref,
                serving.min_average_precision,
            )
        except ModelRefused as refused:
            raise HTTPException(409, f"reload refused, still serving: {refused}") from None
        version = candidate.model.ref.version
        try:
            replicas = await roll_out(self.app_name, version, previous.ref.version, serving)
        except ModelRefused as refused:
            raise HTTPException(409, str(refused)) from None
        except RolloutTimeout as late:
            raise HTTPException(504, str(late)) from None
        return ReloadResponse(
            name=candidate.model.ref.name,
            version=version,
            previous_version=previous.ref.version,
            replicas=replicas,
        )


def build_graph(settings: Settings) -> serve.Application:
    """Bind the steps with the replicas, CPUs and batching the settings give.

    Four deployments, or with ``serving.fuse_steps`` two: the ingress running the feature and
    decision steps in process, and the Scorer.

    Paths in the settings are made absolute here, in the process that builds the graph: replicas
    run in other working directories, where ``sqlite:///mlflow.db`` would name another file.
    """
    settings = settings.with_absolute_paths()
    serving = settings.serving
    check_exposure(serving.host, tokens(serving))
    spec = serving_spec(settings)
    scorer_scaling: dict[str, Any] = (
        {
            "autoscaling_config": {
                "min_replicas": 1,
                "max_replicas": serving.max_replicas,
                "target_ongoing_requests": serving.target_ongoing_requests,
            }
        }
        if serving.autoscaling
        else {"num_replicas": serving.scorer_replicas}
    )
    common: dict[str, Any] = {"max_ongoing_requests": serving.max_ongoing_requests}
    # Passed only when they differ from Serve's defaults, so that `serve build` writes the
    # deployments as before.
    if serving.max_replicas_per_node is not None:
        common["max_replicas_per_node"] = serving.max_replicas_per_node
    if not serving.access_log:
        common["logging_config"] = {"enable_access_log": False}
    scorer = Scorer.options(
        ray_actor_options={"num_cpus": serving.scorer_cpus}, **scorer_scaling, **common
    ).bind(settings, spec)
    # Only the HTTP entry is bounded: Serve's proxy answers its overflow with a 503 and
    # Retry-After, where a full queue behind it would reach the ingress as an exception.
    ingress = Ingress.options(
        num_replicas=serving.ingress_replicas,
        ray_actor_options={"num_cpus": serving.ingress_cpus},
        max_queued_requests=serving.max_queued_requests or -1,
        backpressure_config=BackpressureConfig(retry_after_s=serving.retry_after_s),
        **common,
    )
    if serving.fuse_steps:
        return ingress.bind(None, scorer, None, settings, spec)
    features = FeatureStep.options(
        num_replicas=serving.feature_replicas,
        ray_actor_options={"num_cpus": serving.feature_cpus},
        **common,
    ).bind(settings, spec)
    decider = DecisionStep.options(
        num_replicas=serving.decision_replicas,
        ray_actor_options={"num_cpus": serving.decision_cpus},
        **common,
    ).bind(spec)
    return ingress.bind(features, scorer, decider, settings, spec)
