"""Kafka messages <-> the data contract: transactions in, decisions out, rejects explained.

A message that is not a valid transaction is not an error of the pipeline but of its producer: it
becomes a ``Rejected`` record that names what is wrong (pydantic's message, with the field), and goes
to the dead-letter topic with the place it came from, so the partition moves on and someone can
replay it once fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from fraud_ray.schema import Decision, DecisionRecord, Transaction

Headers = list[tuple[str, bytes]]

ERROR_HEADER = "error"
SOURCE_TOPIC_HEADER = "source.topic"
SOURCE_PARTITION_HEADER = "source.partition"
SOURCE_OFFSET_HEADER = "source.offset"
MODEL_NAME_HEADER = "model.name"
MODEL_VERSION_HEADER = "model.version"


@dataclass(frozen=True)
class Rejected:
    """A message that is not a transaction, and why in words a producer's author can act on."""

    error: str


def parse_transaction(value: bytes | None) -> Transaction | Rejected:
    """The transaction a message value holds (JSON), or why it holds none."""
    if value is None:
        return Rejected("empty message: no value (a tombstone?) where a transaction was expected")
    try:
        return Transaction.model_validate_json(value)
    except ValidationError as error:
        return Rejected(describe(error))


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


def decision_headers(decision: DecisionRecord) -> Headers:
    model = decision["model"]
    return [
        (MODEL_NAME_HEADER, model["name"].encode()),
        (MODEL_VERSION_HEADER, model["version"].encode()),
    ]


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
