"""Behavioural checks of a trained model: what a fraud analyst expects, as a table of cases.

Feature rows are built the way serving builds them, through the online feature path, from a short
story per case: a card's usual purchases, then the purchase under test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from fraud_ray.costs import CostPolicy
from fraud_ray.features.definitions import MICROS_PER_DAY, MICROS_PER_HOUR
from fraud_ray.features.online import OnlineFeatures
from fraud_ray.features.state import Event, MemoryState
from fraud_ray.model import FraudModel
from fraud_ray.settings import CostSettings

START = 1_750_000_000 * 1_000_000  # June 2025, in epoch microseconds
USUAL = 40.0


@dataclass(frozen=True)
class Purchase:
    amount: float
    terminal: str
    card: str = "card-1"


def score(
    model: FraudModel, purchase: Purchase, compromised: str | None = None, history: int = 9
) -> float:
    """The probability of ``purchase``, made at noon after ``history`` usual purchases of its card,
    one a day.

    The purchase's terminal has served six other customers over the past weeks; their payments are
    labelled (older than the label delay, as the feedback API would have recorded them) as fraud
    when the terminal is ``compromised``, as legitimate otherwise.
    """
    online = OnlineFeatures(model.spec, MemoryState(model.spec))
    delay_days = model.spec.label_delay.days
    others = [
        Event(
            f"o{i}",
            START - (delay_days + 2 + i) * MICROS_PER_DAY,
            90.0,
            f"other-{i}",
            purchase.terminal,
        )
        for i in range(6)
    ]
    online.compute(sorted(others, key=lambda e: e.key))
    online.record_labels((e.transaction_id, int(purchase.terminal == compromised)) for e in others)
    history = [
        Event(
            f"h{day}",
            START - (history - day) * MICROS_PER_DAY,
            USUAL,
            purchase.card,
            f"shop-{day % 3}",
        )
        for day in range(history)
    ]
    online.compute(history)
    event = Event(
        "now", START + 2 * MICROS_PER_HOUR, purchase.amount, purchase.card, purchase.terminal
    )
    row = online.compute([event])
    return float(model.probabilities(row)[0])


@pytest.fixture(scope="module")
def model(champion: FraudModel) -> FraudModel:
    return champion


@pytest.mark.parametrize(
    ("usual", "suspicious", "compromised"),
    [
        # the handbook's compromised card: ten times the usual amount at a compromised terminal
        (Purchase(USUAL, "shop-0"), Purchase(10 * USUAL, "bad-shop"), "bad-shop"),
        # the same purchase, only the amount differs
        (Purchase(USUAL, "shop-1"), Purchase(10 * USUAL, "shop-1"), None),
        # the same amount, only the terminal's confirmed fraud history differs
        (Purchase(USUAL, "clean-shop"), Purchase(USUAL, "bad-shop"), "bad-shop"),
    ],
    ids=["compromised-card-and-terminal", "ten-times-the-amount", "compromised-terminal"],
)
def test_directional(
    model: FraudModel, usual: Purchase, suspicious: Purchase, compromised: str | None
) -> None:
    assert score(model, suspicious, compromised) > score(model, usual, compromised)


@pytest.mark.parametrize("card", ["card-1", "another-card", "c" * 40])
def test_invariant_to_the_card_identifier(model: FraudModel, card: str) -> None:
    base = score(model, Purchase(3 * USUAL, "shop-2"))
    assert score(model, Purchase(3 * USUAL, "shop-2", card=card)) == pytest.approx(base)


def test_an_ordinary_first_purchase_of_a_new_card_is_approved(model: FraudModel) -> None:
    """A new customer's first payment, an everyday amount at a terminal with a clean record, is
    approved: were it reviewed, every new customer's first payment would reach an analyst."""
    probability = score(model, Purchase(USUAL, "clean-shop", card="new-card"), history=0)
    policy = CostPolicy.from_settings(CostSettings())
    actions, _ = policy.decide(np.array([probability]), np.array([USUAL]))
    assert actions[0] == "approve", f"probability {probability:.3f}"


@pytest.mark.parametrize("amount", [1500.0, 3000.0])
def test_minimum_functionality_very_large_amounts_are_stopped(
    model: FraudModel, amount: float
) -> None:
    """A card never seen before spends a very large amount: it is not approved, and it scores
    at least as high as the same first purchase at an ordinary amount.

    Not a fixed probability: first purchases are a small part of a training window, so where a
    large one lands varies between training runs; the cost policy stops it either way.
    """
    online = OnlineFeatures(model.spec, MemoryState(model.spec))
    big = online.compute([Event("big", START, amount, "card-9", "shop-9")])
    probability = model.probabilities(big)
    actions, _ = CostPolicy.from_settings(CostSettings()).decide(probability, np.array([amount]))
    assert actions[0] != "approve"
    fresh = OnlineFeatures(model.spec, MemoryState(model.spec))
    ordinary = fresh.compute([Event("usual", START, USUAL, "card-9", "shop-9")])
    assert probability[0] >= model.probabilities(ordinary)[0]
