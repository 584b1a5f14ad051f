"""The decision log: every decision fraud-ray made, once per transaction, with what it was made on.

Streaming commits Kafka offsets only after the decisions are written, so a consumer that dies between
the two writes the same transactions again when it restarts. The primary key on ``transaction_id``
and an insert that skips rows already there make such a replay harmless: the first decision stays,
and nothing fails. Monitoring reads the same table later: the features each decision saw (drift) and
the labels that arrive weeks afterwards (performance).

SQLite (the embedded default) and PostgreSQL are supported: the two dialects whose ``INSERT ... ON
CONFLICT DO NOTHING`` SQLAlchemy exposes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from fraud_ray.schema import (
    AMOUNT,
    CARD_ID,
    LABEL,
    TERMINAL_ID,
    TIMESTAMP,
    TRANSACTION_ID,
    Action,
    Decision,
    DecisionRecord,
    Fees,
    ModelRef,
    Reason,
    Transaction,
    instant_text,
    to_json,
)

REVIEW_COST = "review_cost"
DECLINE_COST = "decline_cost"
SUPPORTED_DIALECTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
# The key of the PostgreSQL advisory lock held while the tables are created: the bytes of
# "fraud_lo", a number no other application on the same database is likely to lock.
SCHEMA_LOCK_ID = 0x66726175645F6C6F
# Ids per query of ``DecisionLog.logged``: far below the bound parameters SQLite accepts.
LOOKUP_CHUNK = 2000


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Instants in UTC on the way in and out: SQLite keeps no time zone at all, and PostgreSQL
    answers in the session's zone, but every datetime in fraud-ray is aware and in UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value} given to the decision log: say it is UTC")
        return value.astimezone(UTC).replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSONB on PostgreSQL, so that monitoring can query inside features and reasons.
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

metadata = sa.MetaData()
decisions_table = sa.Table(
    "decisions",
    metadata,
    sa.Column(TRANSACTION_ID, sa.String(128), primary_key=True),
    sa.Column(CARD_ID, sa.String(128)),
    sa.Column(TERMINAL_ID, sa.String(128)),
    sa.Column(AMOUNT, sa.Float, nullable=False),
    sa.Column(TIMESTAMP, UtcDateTime, nullable=False),
    sa.Column("fraud_probability", sa.Float, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("expected_cost", sa.Float, nullable=False),
    sa.Column("reasons", Json, nullable=False),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    # The fees the action was chosen with: monitoring prices each decision by its own.
    sa.Column(REVIEW_COST, sa.Float, nullable=False),
    sa.Column(DECLINE_COST, sa.Float, nullable=False),
    sa.Column("scored_at", UtcDateTime, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("features", Json),
    sa.Column(LABEL, sa.SmallInteger),
    sa.Column("labelled_at", UtcDateTime),
    # Alerts are read newest first, and monitoring reads windows of recent decisions.
    sa.Index("ix_decisions_scored_at", "scored_at", TRANSACTION_ID),
    sa.Index("ix_decisions_timestamp", TIMESTAMP),
)
# What a challenger decided for the same transactions, in shadow: never returned, compared later
# on the labels of the served decisions (joined by transaction_id), so it keeps no copy of them.
shadow_table = sa.Table(
    "shadow_decisions",
    metadata,
    sa.Column(TRANSACTION_ID, sa.String(128), primary_key=True),
    sa.Column("model_version", sa.String(64), primary_key=True),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("fraud_probability", sa.Float, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("expected_cost", sa.Float, nullable=False),
    sa.Column(REVIEW_COST, sa.Float, nullable=False),
    sa.Column(DECLINE_COST, sa.Float, nullable=False),
    sa.Column("scored_at", UtcDateTime, nullable=False),
)
# Every label as it was sent and by whom: the decisions table keeps the latest, which decides what
# monitoring measures; this keeps what it replaced, so a flipped label can be traced to its sender.
label_history_table = sa.Table(
    "label_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(TRANSACTION_ID, sa.String(128), nullable=False, index=True),
    sa.Column(LABEL, sa.SmallInteger, nullable=False),
    sa.Column("labelled_at", UtcDateTime, nullable=False),
    sa.Column("labelled_by", sa.String(64), nullable=False),
)


class LabelEntry(BaseModel):
    """One label as it was received: which transaction, the label, when and from which role."""

    transaction_id: str
    is_fraud: int
    labelled_at: datetime
    labelled_by: str


class DriverInsert:
    """``INSERT ... ON CONFLICT DO NOTHING`` compiled once by SQLAlchemy and run straight on the
    driver, with values made ready here: SQLAlchemy's per-row type processing cost three times
    the insert itself on a streamed batch of 4,000 decisions (30 of 40 us a row on SQLite).

    Instants go to PostgreSQL as aware datetimes and to SQLite as the text ``UtcDateTime`` stores
    (naive UTC, microseconds always), so that reads and windows through SQLAlchemy see the same
    values; JSON columns get ``to_json`` text.
    """

    def __init__(self, dialect: Dialect, table: sa.Table, key: list[str]) -> None:
        insert = SUPPORTED_DIALECTS[dialect.name]
        # The order a row's values come in (``execute``): the table's, without the label's columns.
        self.columns = [c.name for c in table.c if c.name not in (LABEL, "labelled_at")]
        compiled = (
            insert(table)
            .on_conflict_do_nothing(index_elements=key)
            .compile(dialect=dialect, column_keys=self.columns)
        )
        self.sql = str(compiled)
        # Where each positional parameter (SQLite's ?) is in a row, None for named ones
        # (psycopg's); None too when the statement takes them in the row's own order.
        positions = compiled.positiontup
        self._named = positions is None
        order = None if positions is None else [self.columns.index(name) for name in positions]
        self._order = None if order == list(range(len(self.columns))) else order
        self.text_instants = dialect.name == "sqlite"

    def instant(self, value: datetime | str) -> datetime | str:
        """A datetime (or its ISO text, as in a ``DecisionRecord``) as this driver takes it."""
        moment = _instant(value)
        if moment.tzinfo is None:
            raise ValueError(f"naive datetime {moment} given to the decision log: say it is UTC")
        if not self.text_instants:
            return moment
        if moment.tzinfo is not UTC:  # validated transactions are in UTC already
            moment = moment.astimezone(UTC)
        return moment.replace(tzinfo=None).isoformat(" ", "microseconds")

    def execute(self, connection: sa.Connection, rows: list[tuple[Any, ...]]) -> int:
        """Insert the rows (values in ``columns`` order) in one executemany; returns how many
        were new."""
        params: list[Any]
        if self._named:
            params = [dict(zip(self.columns, row, strict=True)) for row in rows]
        elif self._order is not None:
            params = [tuple(row[i] for i in self._order) for row in rows]
        else:
            params = rows
        result = connection.exec_driver_sql(
            self.sql, params, execution_options={"preserve_rowcount": True}
        )
        return result.rowcount


class DecisionLogError(ValueError):
    """A decision log that cannot be opened or written; the message names the URL and the cause."""


@dataclass(frozen=True)
class AlertCursor:
    """Where a page of alerts ended. Paging by position would skip or repeat alerts whenever new
    decisions arrive between two pages; a cursor on (scored_at, transaction_id) does neither."""

    scored_at: datetime
    transaction_id: str


class LoggedDecision(BaseModel):
    """A decision as the log keeps it: the decision, the transaction fields that monitoring needs,
    the features it was made on (missing values are NaN, as everywhere in fraud-ray), and the label
    once it arrives."""

    decision: Decision
    card_id: str | None
    terminal_id: str | None
    amount: float
    timestamp: datetime
    features: dict[str, float] | None = None
    is_fraud: Literal[0, 1] | None = None
    labelled_at: datetime | None = None

    @property
    def transaction_id(self) -> str:
        return self.decision.transaction_id

    @property
    def cursor(self) -> AlertCursor:
        return AlertCursor(self.decision.scored_at, self.decision.transaction_id)


class DecisionLog:
    """The ``decisions`` table behind a SQLAlchemy URL (``Settings.decisions.url``).

    The table is created on first use. A SQLite file's folder is created too, so that the default
    ``sqlite:///data/decisions.db`` works from a fresh checkout.
    """

    def __init__(self, url: str) -> None:
        self.engine = _engine(url)
        self._insert_decisions = DriverInsert(
            self.engine.dialect, decisions_table, [TRANSACTION_ID]
        )
        self._insert_shadow = DriverInsert(
            self.engine.dialect, shadow_table, [TRANSACTION_ID, "model_version"]
        )
        try:
            with self.engine.begin() as connection:
                if self.engine.dialect.name == "postgresql":
                    # A pool's consumers open a fresh database at the same moment, and PostgreSQL's
                    # CREATE TABLE races itself (a duplicate key in pg_type): one at a time.
                    connection.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK_ID)))
                metadata.create_all(connection)
        except SQLAlchemyError as error:
            self.engine.dispose()
            # The driver's own message, without SQLAlchemy's statement and documentation link.
            cause = getattr(error, "orig", None) or error
            raise DecisionLogError(
                f"cannot open the decision log at {_shown(self.engine.url)}: {cause}"
            ) from error

    def write(
        self,
        decisions: Sequence[DecisionRecord],
        transactions: Sequence[Transaction],
        features: Sequence[Mapping[str, float]] | None = None,
    ) -> int:
        """Log one batch in one statement; returns how many rows are new.

        ``transactions[i]`` (and ``features[i]``, if given) belong to ``decisions[i]``. A
        transaction already in the log keeps its first decision: a replayed batch changes nothing.
        Decisions come as the graph answers them (``DecisionRecord``), never re-validated here:
        that would cost more than the write.
        """
        _check_aligned(decisions, transactions, features)
        if not decisions:
            return 0
        insert = self._insert_decisions
        # Every decision of a batch has the same scored_at: converted once, not once a row.
        scored_at = functools.cache(insert.instant)
        rows = [
            _row(
                decision,
                transaction,
                None if features is None else features[i],
                insert.instant,
                scored_at,
            )
            for i, (decision, transaction) in enumerate(zip(decisions, transactions, strict=True))
        ]
        with self.engine.begin() as connection:
            return insert.execute(connection, rows)

    def write_shadow(self, decisions: Sequence[DecisionRecord]) -> int:
        """Log a challenger's decisions; a replayed batch changes nothing, as in ``write``."""
        if not decisions:
            return 0
        scored_at = functools.cache(self._insert_shadow.instant)
        rows = [
            (  # shadow_table's columns, in order
                decision[TRANSACTION_ID],
                decision["model"]["version"],
                decision["model"]["name"],
                decision["fraud_probability"],
                decision["decision"],
                decision["expected_cost"],
                decision["costs"][REVIEW_COST],
                decision["costs"][DECLINE_COST],
                scored_at(decision["scored_at"]),
            )
            for decision in decisions
        ]
        with self.engine.begin() as connection:
            return self._insert_shadow.execute(connection, rows)

    def frame(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Logged decisions whose transaction time is in [start, end), oldest first, one row each.

        Monitoring works on columns, so this is the one place that turns log rows into a frame:
        the label is a nullable integer (``<NA>`` until it arrives) and timestamps are UTC.
        """
        columns = [c for c in decisions_table.c if c.name not in ("features", "reasons")]
        query = _window(sa.select(*columns), decisions_table, start, end)
        frame = self._read(query.order_by(decisions_table.c[TIMESTAMP]))
        frame[LABEL] = frame[LABEL].astype("Int8")
        return frame

    def feature_frame(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> pd.DataFrame:
        """What the decisions in the window were made on: one float column per feature (NaN
        where it had no value) and ``fraud_probability``, the columns of a model's reference
        sample, so drift compares like with like."""
        table = decisions_table.c
        query = _window(
            sa.select(table.features, table.fraud_probability), decisions_table, start, end
        )
        with self.engine.connect() as connection:
            found = connection.execute(query.order_by(table[TIMESTAMP])).all()
        # A missing features value is stored as JSON null, which SQL cannot tell from an object.
        rows = [row for row in found if row.features is not None]
        frame = pd.DataFrame.from_records([row.features for row in rows]).astype("float64")
        frame["fraud_probability"] = [row.fraud_probability for row in rows]
        return frame

    def shadow_frame(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> pd.DataFrame:
        """Shadow decisions in the window with the served transaction's card, time, amount and
        label beside them: one row per (transaction, challenger version)."""
        served = decisions_table.c
        query = sa.select(
            *shadow_table.c, served[CARD_ID], served[TIMESTAMP], served[AMOUNT], served[LABEL]
        ).join(decisions_table, served[TRANSACTION_ID] == shadow_table.c[TRANSACTION_ID])
        frame = self._read(_window(query, decisions_table, start, end).order_by(served[TIMESTAMP]))
        frame[LABEL] = frame[LABEL].astype("Int8")
        return frame

    def _read(self, query: sa.Select[Any]) -> pd.DataFrame:
        with self.engine.connect() as connection:
            result = connection.execute(query)
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        # Microseconds, as the log keeps them: nanoseconds would fail on any instant outside
        # 1677-2262, which the transaction schema allows.
        for column in (TIMESTAMP, "scored_at", "labelled_at"):
            if column in frame:
                frame[column] = pd.array(frame[column].tolist(), dtype="datetime64[us, UTC]")
        return frame

    def get(self, transaction_id: str) -> LoggedDecision | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(decisions_table).where(
                    decisions_table.c[TRANSACTION_ID] == transaction_id
                )
            ).one_or_none()
        return None if row is None else _logged(row._mapping)

    def logged(self, transaction_ids: Sequence[str]) -> dict[str, DecisionRecord]:
        """The decisions already logged for any of these transaction ids, as the graph answered
        them: what a transaction sent again is answered with, so that every answer for an id is
        the one the log keeps. Ids never logged are absent."""
        table = decisions_table.c
        columns = [
            table[TRANSACTION_ID],
            table.fraud_probability,
            table.decision,
            table.expected_cost,
            table.reasons,
            table.model_name,
            table.model_version,
            table[REVIEW_COST],
            table[DECLINE_COST],
            table.scored_at,
            table.latency_ms,
        ]
        unique = list(dict.fromkeys(transaction_ids))
        found: dict[str, DecisionRecord] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(unique), LOOKUP_CHUNK):
                chunk = unique[start : start + LOOKUP_CHUNK]
                query = sa.select(*columns).where(table[TRANSACTION_ID].in_(chunk))
                for row in connection.execute(query):
                    found[row.transaction_id] = {
                        TRANSACTION_ID: row.transaction_id,
                        "fraud_probability": row.fraud_probability,
                        "decision": row.decision,
                        "expected_cost": row.expected_cost,
                        "reasons": row.reasons,
                        "model": {"name": row.model_name, "version": row.model_version},
                        "costs": {
                            REVIEW_COST: row.review_cost,
                            DECLINE_COST: row.decline_cost,
                        },
                        "scored_at": instant_text(row.scored_at),
                        "latency_ms": row.latency_ms,
                        "replay": False,
                    }
        return found

    def alerts(self, limit: int, before: AlertCursor | None = None) -> list[LoggedDecision]:
        """Decisions other than approve, newest first: ``limit`` of them, after ``before`` (the
        ``cursor`` of the last alert of the previous page) when given."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        query = sa.select(decisions_table).where(decisions_table.c.decision != Action.APPROVE.value)
        if before is not None:
            query = query.where(
                sa.tuple_(decisions_table.c.scored_at, decisions_table.c[TRANSACTION_ID])
                < sa.tuple_(
                    sa.literal(before.scored_at, UtcDateTime),
                    sa.literal(before.transaction_id),
                )
            )
        query = query.order_by(
            decisions_table.c.scored_at.desc(), decisions_table.c[TRANSACTION_ID].desc()
        ).limit(limit)
        with self.engine.connect() as connection:
            return [_logged(row._mapping) for row in connection.execute(query)]

    def last_transaction_time(self, not_after: datetime | None = None) -> datetime | None:
        """The latest transaction time logged (at or before ``not_after``, when given), None
        while there is none. Monitoring windows end there by default rather than at the clock:
        a stream replayed or held up for a day is still judged on its own latest day. The bound
        keeps one transaction dated years ahead from moving every window past all the others."""
        column = decisions_table.c[TIMESTAMP]
        query = sa.select(sa.func.max(column))
        if not_after is not None:
            query = query.where(column <= sa.literal(not_after, UtcDateTime))
        with self.engine.connect() as connection:
            return connection.execute(query).scalar_one()

    def count(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(sa.func.count()).select_from(decisions_table)
            ).scalar_one()

    def record_labels(
        self,
        labels: Iterable[tuple[str, int]],
        labelled_at: datetime | None = None,
        labelled_by: str = "cli",
    ) -> int:
        """Store (transaction_id, is_fraud) labels sent by ``labelled_by`` (a role, never a
        token); returns how many named a logged transaction.

        A later label for the same transaction replaces the earlier one on its decision (an
        analyst may overturn a chargeback); every label stays in the history, in one transaction
        with the update.
        """
        at = labelled_at or datetime.now(UTC)
        rows = [
            {"key": transaction_id, "label": int(bool(is_fraud)), "at": at}
            for transaction_id, is_fraud in labels
        ]
        if not rows:
            return 0
        statement = (
            decisions_table.update()
            .where(decisions_table.c[TRANSACTION_ID] == sa.bindparam("key"))
            .values({LABEL: sa.bindparam("label"), "labelled_at": sa.bindparam("at")})
        )
        history = [
            {
                TRANSACTION_ID: row["key"],
                LABEL: row["label"],
                "labelled_at": at,
                "labelled_by": labelled_by,
            }
            for row in rows
        ]
        with self.engine.begin() as connection:
            connection.execute(label_history_table.insert(), history)
            return connection.execute(statement, rows).rowcount

    def label_history(self, transaction_id: str) -> list[LabelEntry]:
        """Every label received for the transaction, oldest first."""
        table = label_history_table
        query = (
            sa.select(
                table.c[TRANSACTION_ID], table.c[LABEL], table.c.labelled_at, table.c.labelled_by
            )
            .where(table.c[TRANSACTION_ID] == transaction_id)
            .order_by(table.c.id)
        )
        with self.engine.connect() as connection:
            return [
                LabelEntry(
                    transaction_id=row[0], is_fraud=row[1], labelled_at=row[2], labelled_by=row[3]
                )
                for row in connection.execute(query)
            ]

    def close(self) -> None:
        self.engine.dispose()


def _engine(url: str) -> Engine:
    try:
        parsed = sa.make_url(url)
    except ArgumentError as error:
        raise DecisionLogError(
            f"decision log URL {url!r} is not a database URL ({error}): write it like "
            "sqlite:///data/decisions.db or postgresql+psycopg://user@host:5432/fraud_ray"
        ) from None
    if parsed.get_backend_name() not in SUPPORTED_DIALECTS:
        raise DecisionLogError(
            f"decision log URL {_shown(parsed)}: the log supports "
            f"{' and '.join(SUPPORTED_DIALECTS)}, not {parsed.get_backend_name()}"
        )
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DecisionLogError(
                f"decision log URL {_shown(parsed)}: cannot create {folder}: {error}"
            ) from None
    try:
        # Reads decode JSON with msgspec, as writes encode it (``DriverInsert``): monitoring
        # reads a window's features at once.
        return sa.create_engine(parsed, pool_pre_ping=True, json_deserializer=msgspec.json.decode)
    except (ArgumentError, NoSuchModuleError, ImportError) as error:
        raise DecisionLogError(f"decision log URL {_shown(parsed)}: {error}") from None


def _window(
    query: sa.Select[Any], table: sa.Table, start: datetime | None, end: datetime | None
) -> sa.Select[Any]:
    if start is not None:
        query = query.where(table.c[TIMESTAMP] >= sa.literal(start, UtcDateTime))
    if end is not None:
        query = query.where(table.c[TIMESTAMP] < sa.literal(end, UtcDateTime))
    return query


def _shown(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


def _check_aligned(
    decisions: Sequence[DecisionRecord],
    transactions: Sequence[Transaction],
    features: Sequence[Mapping[str, float]] | None,
) -> None:
    if len(transactions) != len(decisions):
        raise ValueError(f"{len(decisions)} decisions but {len(transactions)} transactions")
    if features is not None and len(features) != len(decisions):
        raise ValueError(f"{len(decisions)} decisions but {len(features)} feature rows")
    for decision, transaction in zip(decisions, transactions, strict=True):
        if decision[TRANSACTION_ID] != transaction.transaction_id:
            raise ValueError(
                f"decision for {decision[TRANSACTION_ID]!r} paired with transaction "
                f"{transaction.transaction_id!r}"
            )


def feature_maps(names: Sequence[str], rows: np.ndarray) -> list[dict[str, float]]:
    """Feature rows as the decision log stores them: one ``{feature: value}`` per decision."""
    return [dict(zip(names, row, strict=True)) for row in rows.tolist()]


def _json_text(content: object) -> str:
    return to_json(content).decode()


def _instant(value: datetime | str) -> datetime:
    """A transaction's time, or a record's ``scored_at`` in its ISO 8601 text (``instant_text``)."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _row(
    decision: DecisionRecord,
    transaction: Transaction,
    features: Mapping[str, float] | None,
    instant: Callable[[datetime | str], datetime | str],
    scored_at: Callable[[datetime | str], datetime | str],
) -> tuple[Any, ...]:
    """A decision's values in the order of ``decisions_table``'s columns (``DriverInsert``)."""
    costs = decision["costs"]
    model = decision["model"]
    return (
        decision[TRANSACTION_ID],
        transaction.card_id,
        transaction.terminal_id,
        transaction.amount,
        instant(transaction.timestamp),
        decision["fraud_probability"],
        decision["decision"],
        decision["expected_cost"],
        _json_text(decision["reasons"]),
        model["name"],
        model["version"],
        costs[REVIEW_COST],
        costs[DECLINE_COST],
        scored_at(decision["scored_at"]),
        decision["latency_ms"],
        # JSON has no NaN: ``to_json`` stores a missing feature as null, read back as NaN.
        None if features is None else _json_text(features),
    )


def _logged(row: Mapping[str, Any]) -> LoggedDecision:
    return LoggedDecision(
        decision=Decision(
            transaction_id=row[TRANSACTION_ID],
            fraud_probability=row["fraud_probability"],
            decision=Action(row["decision"]),
            expected_cost=row["expected_cost"],
            reasons=[Reason.model_validate(reason) for reason in row["reasons"]],
            model=ModelRef(name=row["model_name"], version=row["model_version"]),
            costs=Fees(review_cost=row[REVIEW_COST], decline_cost=row[DECLINE_COST]),
            scored_at=row["scored_at"],
            latency_ms=row["latency_ms"],
        ),
        card_id=row[CARD_ID],
        terminal_id=row[TERMINAL_ID],
        amount=row[AMOUNT],
        timestamp=row[TIMESTAMP],
        features=None
        if row["features"] is None
        else {
            name: math.nan if value is None else value for name, value in row["features"].items()
        },
        is_fraud=row[LABEL],
        labelled_at=row["labelled_at"],
    )
