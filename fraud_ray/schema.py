"""The data contracts: what a transaction is, what a decision is, and how a user's file maps onto them.

Every other module imports these names instead of spelling column lists of its own.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, TypedDict

import msgspec
import numpy as np
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)

TRANSACTION_ID = "transaction_id"
TIMESTAMP = "timestamp"
CARD_ID = "card_id"
TERMINAL_ID = "terminal_id"
AMOUNT = "amount"
LABEL = "is_fraud"
FRAUD_SCENARIO = "fraud_scenario"
OPTIONAL_TEXT_FIELDS = ("merchant_category", "channel", "country")
# More extra fields than any dataset mapping declares: a bound on what one transaction may carry.
MAX_ATTRIBUTES = 64

# Above a billion an amount is a data error, not a payment, and so is a positive one below a
# billionth (a denormal such as 5e-324 passes "at least 0", then a card's next amount divided by its
# mean is infinite). Refusing both keeps every feature (amount ratios, log amounts) inside the
# float32 range the boosters compute in. Zero is a payment: card verifications and
# pre-authorisations are ordinary traffic.
MAX_AMOUNT = 1e9
MIN_AMOUNT = 1e-9


def _amount(value: object, read: ValidatorFunctionWrapHandler) -> float:
    """JSON's true and false are not amounts, though Python would read them as 1 and 0; a
    positive amount below ``MIN_AMOUNT`` is not one either. One wrapping function rather than a
    check before and one after: each Python call costs validation a microsecond per payment."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    amount: float = read(value)
    if 0 < amount < MIN_AMOUNT:
        raise ValueError(f"must be at least {MIN_AMOUNT:g}, or 0")
    return amount


Amount = Annotated[
    float,
    Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False),
    WrapValidator(_amount),
]
# Card payments happen in this century or the next: a time outside is a data error, and keeping it
# out keeps every time inside what epoch microseconds and pandas' timestamps can hold.
EARLIEST_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIMESTAMP = datetime(2200, 1, 1, tzinfo=UTC)
# How far ahead of this machine's clock a transaction may be dated (terminals' clocks drift a
# little); further is a data error that would move every "latest" the system keeps. Validation
# takes the bound from its context (``MAX_FUTURE`` key, a timedelta, or None for no bound): the
# stream passes ``serving.max_future_s``. FastAPI validates a body without a context, so without
# one there is no bound and the HTTP handlers apply the setting themselves (``refuse_future``).
MAX_FUTURE = "max_future"
_IN_RANGE = (
    f"must be from {EARLIEST_TIMESTAMP:%Y-%m-%d} to before {LATEST_TIMESTAMP:%Y-%m-%d} (UTC)"
)
DEFAULT_MAX_FUTURE_S = 3600.0


def latest_accepted(max_future_s: float | None) -> datetime:
    """The latest transaction time validation accepts now (``serving.max_future_s`` ahead of the
    clock): what a monitoring window may end at, whatever the log holds from before the bound."""
    if max_future_s is None:
        return LATEST_TIMESTAMP
    return datetime.now(UTC) + timedelta(seconds=max_future_s)


def too_far_ahead(moment: datetime, ahead: timedelta | None) -> str | None:
    """Why ``moment`` is refused as more than ``ahead`` past this machine's clock (None: it is
    not, or there is no bound)."""
    if ahead is None:
        return None
    now = datetime.now(UTC)
    if moment <= now + ahead:
        return None
    return (
        f"{instant_text(moment)} is more than {ahead} ahead of the clock "
        f"({instant_text(now)}): the clock of its sender is wrong"
    )


# Control characters, as a regular expression's class; Python and JSON Schema read it alike.
_CONTROLS = r"\x00-\x1f\x7f"
_CONTROL = re.compile(f"[{_CONTROLS}]")
# A lone UTF-16 surrogate: Python's JSON reader (FastAPI's) accepts ``"\\ud800"``, but no
# database, file or Kafka message can encode it.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Either, in one search: the check every identifier of every payment goes through.
_UNPRINTABLE = re.compile(f"[{_CONTROLS}\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be an identifier or a text field, or None: a NUL byte cannot even be
    stored by PostgreSQL, other control characters break every log line and CSV export they
    reach, and a lone surrogate cannot be written as UTF-8 anywhere."""
    if _UNPRINTABLE.search(value) is None:
        return None
    if _CONTROL.search(value):
        return "must not contain control characters (NUL, newline, ...)"
    if _SURROGATE.search(value):
        return "must be valid Unicode (a lone surrogate such as \\ud800 is not)"
    return None


def _printable(value: str | None) -> str | None:
    problem = None if value is None else text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# What ``_printable`` checks of control characters, stated in the JSON Schema too, for generated clients
# and fuzzers (validation keeps its own check, whose message says what is wrong).
PRINTABLE = {"pattern": f"^[^{_CONTROLS}]*$"}
Identifier = Annotated[
    str,
    Field(min_length=1, max_length=128, json_schema_extra=PRINTABLE),
    AfterValidator(_printable),
]
OptionalIdentifier = Annotated[
    str | None,
    Field(min_length=1, max_length=128, json_schema_extra=PRINTABLE),
    AfterValidator(_printable),
]
OptionalText = Annotated[
    str | None,
    Field(max_length=128, json_schema_extra=PRINTABLE),
    AfterValidator(_printable),
]


class Transaction(BaseModel):
    """One card payment as it reaches fraud-ray over HTTP, Kafka or a file."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    transaction_id: Identifier
    timestamp: Annotated[
        datetime,
        # As read: an ISO 8601 string or a number of epoch seconds (what many producers send).
        WithJsonSchema(
            {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]},
            mode="validation",
        ),
    ] = Field(
        description="ISO 8601 or epoch seconds; naive times are UTC; at most "
        "serving.max_future_s ahead of the clock"
    )
    card_id: OptionalIdentifier = None
    terminal_id: OptionalIdentifier = None
    amount: Amount
    merchant_category: OptionalText = None
    channel: OptionalText = None
    country: OptionalText = None
    attributes: dict[
        Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_printable)],
        Annotated[float, Field(allow_inf_nan=False)],
    ] = Field(
        default_factory=dict,
        max_length=MAX_ATTRIBUTES,
        description="extra numeric fields that the dataset mapping declares as features",
    )

    @field_validator("timestamp")
    @classmethod
    def _as_utc(cls, value: datetime, info: ValidationInfo) -> datetime:
        try:
            moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:00-05:00 is past the last datetime Python has
            raise ValueError(_IN_RANGE) from None
        if not EARLIEST_TIMESTAMP <= moment < LATEST_TIMESTAMP:
            raise ValueError(_IN_RANGE)
        context = info.context if isinstance(info.context, dict) else {}
        problem = too_far_ahead(moment, context.get(MAX_FUTURE))
        if problem is not None:
            raise ValueError(problem)
        return moment


class LabelledTransaction(Transaction):
    is_fraud: Literal[0, 1]


class Action(StrEnum):
    APPROVE = "approve"
    REVIEW = "review"
    DECLINE = "decline"


class Reason(BaseModel):
    feature: str
    description: str
    contribution: float


class ModelRef(BaseModel):
    name: str
    version: str


class Fees(BaseModel):
    """The fixed fees a decision was weighed with (``costs``); recorded with every decision, so
    that a decision made before a change of costs is still judged by the costs it was made with."""

    review_cost: float = Field(ge=0)
    decline_cost: float = Field(ge=0)


class Decision(BaseModel):
    """What fraud-ray answers for one transaction, everywhere it answers."""

    transaction_id: str
    fraud_probability: float = Field(ge=0, le=1, description="calibrated probability of fraud")
    decision: Action
    expected_cost: float = Field(ge=0, description="expected cost of the chosen action")
    reasons: list[Reason] = Field(default_factory=list)
    model: ModelRef
    costs: Fees = Field(description="the fees the action was chosen with (settings' costs)")
    scored_at: datetime
    latency_ms: float = Field(ge=0)
    replay: bool = Field(
        False,
        description="true when the transaction id was decided before: the answer is the decision "
        "the log keeps for it, not a new one",
    )


class ReasonRecord(TypedDict):
    feature: str
    description: str
    contribution: float


class ModelRecord(TypedDict):
    name: str
    version: str


class FeesRecord(TypedDict):
    review_cost: float
    decline_cost: float


class DecisionRecord(TypedDict):
    """A ``Decision`` in its JSON form, as the serving pipeline builds it.

    Valid by construction, so the hot paths (the stream, the log) pass it on as is: a dict costs a
    microsecond to build where a pydantic object costs ten. Typed, so that a misspelt key is a
    type checker's error rather than a production one. ``Decision.model_validate`` types one where
    a caller wants the object; ``Decision.model_dump(mode="json")`` makes one.
    """

    transaction_id: str
    fraud_probability: float
    decision: str
    expected_cost: float
    reasons: list[ReasonRecord]
    model: ModelRecord
    costs: FeesRecord
    scored_at: str
    latency_ms: float
    replay: bool


def replayed(decision: DecisionRecord) -> DecisionRecord:
    """``decision`` answered again for a transaction id sent before, marked so."""
    return {**decision, "replay": True}


def instant_text(moment: datetime) -> str:
    """An aware instant as a ``DecisionRecord`` spells it: ISO 8601 in UTC, with ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise NotImplementedError(f"no JSON form for {type(value).__name__}")


# msgspec rather than the json module: the stream encodes every decision and the decision log the
# features of each, and json.dumps took five times as long (35 us against 7 for 21 features).
_encoder = msgspec.json.Encoder(enc_hook=_plain)


def to_json(content: object) -> bytes:
    """Compact JSON, the one encoding of decisions everywhere they leave a process (HTTP, Kafka,
    the decision log). NaN and infinities become null, as JSON has no such numbers: a missing
    feature is stored as null and read back as NaN."""
    return _encoder.encode(content)


TimeUnit = Literal["s", "ms", "us", "ns", "D"]


class DatasetMapping(BaseModel):
    """How the columns of a user's CSV or Parquet file map onto the transaction schema.

    ``id``, ``card`` and ``terminal`` may be absent: without ``id`` the 0-based row number becomes the
    transaction id; without ``card`` or ``terminal`` the features that need them are left out.
    """

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    time: str
    time_unit: TimeUnit | None = Field(
        None, description="unit of a numeric time column; null when the column holds datetimes"
    )
    time_origin: datetime = Field(
        datetime(1970, 1, 1, tzinfo=UTC), description="the instant a numeric time of 0 stands for"
    )
    card: str | None = None
    terminal: str | None = None
    amount: str
    label: str | None = None
    features: list[str] = Field(default_factory=list)

    @field_validator("time_origin", mode="before")
    @classmethod
    def _origin_from_date(cls, value: object) -> object:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day)
        return value

    @field_validator("time_origin")
    @classmethod
    def _origin_utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _distinct_columns(self) -> DatasetMapping:
        used = [
            c for c in (self.id, self.time, self.card, self.terminal, self.amount, self.label) if c
        ]
        used += self.features
        repeated = sorted({c for c in used if used.count(c) > 1})
        if repeated:
            raise ValueError(f"columns mapped twice: {', '.join(repeated)}")
        return self

    @property
    def has_card(self) -> bool:
        return self.card is not None

    @property
    def has_terminal(self) -> bool:
        return self.terminal is not None

    @classmethod
    def simulator(cls) -> DatasetMapping:
        """The identity mapping for files already in the transaction schema (the simulator's)."""
        return cls(
            id=TRANSACTION_ID,
            time=TIMESTAMP,
            card=CARD_ID,
            terminal=TERMINAL_ID,
            amount=AMOUNT,
            label=LABEL,
        )

    @classmethod
    def from_yaml(cls, path: Path) -> DatasetMapping:
        """Read a mapping file; a bad file raises ``MappingError`` naming the key at fault."""
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise MappingError(f"cannot read dataset mapping {path}: {error}") from None
        try:
            return cls.model_validate(raw or {})
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in issue['loc']) or '(root)'}: {issue['msg']}"
                for issue in error.errors()
            )
            raise MappingError(f"invalid dataset mapping {path}: {problems}") from None


class MappingError(ValueError):
    """A dataset mapping that cannot be used."""
