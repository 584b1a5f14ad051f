"""Kafka messages <-> the data contract: transactions in, decisions out, rejects explained.

A message that is not a valid transaction is not an error of the pipeline but of its producer: it
becomes a ``Rejected`` record that names what is wrong (pydantic's message, with the field), and goes
to the dead-letter topic with the place it came from, so the partition moves on and someone can
replay it once fixed. Whatever the parser raises, the message is rejected, never the batch.

Fields the transaction schema does not know are the exception: producers add fields to their
messages before every consumer knows them, so the stream ignores them and counts the messages
that had some (HTTP, where a client sees its 422 at once, keeps refusing them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec
from pydantic import ValidationError

from fraud_ray.schema import DEFAULT_MAX_FUTURE_S, MAX_FUTURE, Decision, DecisionRecord, Transaction

Headers = list[tuple[str, bytes]]

ERROR_HEADER = "error"
SOURCE_TOPIC_HEADER = "source.topic"
SOURCE_PARTITION_HEADER = "source.partition"
SOURCE_OFFSET_HEADER = "source.offset"
MODEL_NAME_HEADER = "model.name"
MODEL_VERSION_HEADER = "model.version"
# On a decision answered from the log for a transaction id decided before ("true").
REPLAY_HEADER = "replay"


@dataclass(frozen=True)
class Rejected:
    """A message that is not a transaction, and why in words a producer's author can act on."""

    error: str


@dataclass(frozen=True)
class Parsed:
    """A message's transaction, and the top-level fields it carried that the schema does not know."""

    transaction: Transaction
    ignored: tuple[str, ...] = ()


def parse_transaction(
    value: bytes | None, max_future: timedelta | None = timedelta(seconds=DEFAULT_MAX_FUTURE_S)
) -> Parsed | Rejected:
    """The transaction a message value holds (JSON), or why it holds none.

    ``max_future`` bounds how far ahead of the clock it may be dated (None: no bound).
    """
    if value is None:
        return Rejected("empty message: no value (a tombstone?) where a transaction was expected")
    context = {MAX_FUTURE: max_future}
    try:
        return Parsed(Transaction.model_validate_json(value, context=context))
    except ValidationError as error:
        unknown = [issue["loc"][0] for issue in error.errors() if _is_unknown_field(issue)]
        if not unknown:
            return Rejected(describe(error))
        return _without_unknown(value, [str(name) for name in unknown], context)
    except Exception as error:  # the parser's own failure is still this message's fault
        return Rejected(f"unreadable transaction: {type(error).__name__}: {error}")


def _is_unknown_field(issue: Any) -> bool:
    return issue["type"] == "extra_forbidden" and len(issue["loc"]) == 1


def _without_unknown(
    value: bytes, unknown: list[str], context: dict[str, Any]
) -> Parsed | Rejected:
    """Validate again without the unknown fields: the rejection, if any, then names only the
    problems of the fields that count."""
    try:
        fields = msgspec.json.decode(value)
        for name in unknown:
            fields.pop(name, None)
        return Parsed(Transaction.model_validate(fields, context=context), tuple(unknown))
    except ValidationError as error:
        return Rejected(describe(error))
    except Exception as error:
        return Rejected(f"unreadable transaction: {type(error).__name__}: {error}")


def describe(error: ValidationError) -> str:
    """``amount: Input should be greater than 0; card_id: ...``: every problem, field first."""
    problems = []
    for issue in error.errors(include_url=False):
        where = ".".join(str(part) for part in issue["loc"])
        problems.append(f"{where}: {issue['msg']}" if where else issue["msg"])
    return "; ".join(problems)


def message_key(transaction: Transaction) -> bytes:
    """Decisions and alerts are keyed like their transactions: by card, so a card's stay ordered.
    A transaction without a card is keyed by its own id."""
    return (transaction.card_id or transaction.transaction_id).encode()


def decode_decision(value: bytes) -> Decision:
    return Decision.model_validate_json(value)


def decision_headers(decision: DecisionRecord, replay: bool = False) -> Headers:
    model = decision["model"]
    headers = [
        (MODEL_NAME_HEADER, model["name"].encode()),
        (MODEL_VERSION_HEADER, model["version"].encode()),
    ]
    if replay:
        headers.append((REPLAY_HEADER, b"true"))
    return headers


def dead_letter_headers(rejected: Rejected, topic: str, partition: int, offset: int) -> Headers:
    return [
        (ERROR_HEADER, rejected.error.encode()),
        (SOURCE_TOPIC_HEADER, topic.encode()),
        (SOURCE_PARTITION_HEADER, str(partition).encode()),
        (SOURCE_OFFSET_HEADER, str(offset).encode()),
    ]


def header_map(headers: Headers | None) -> dict[str, str]:
    """A message's headers as text, for readers of the dead-letter and decision topics."""
    return {name: value.decode() for name, value in headers or []}
