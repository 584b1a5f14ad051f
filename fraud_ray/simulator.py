"""Synthetic card transactions with three known fraud patterns.

Real fraud data is scarce and its labels are private, so every later stage (features, training,
serving, monitoring) is developed against this simulator. It follows the design described in the
Fraud Detection Handbook (Le Borgne et al.): customers and terminals on a grid, customers paying
at nearby terminals, and three fraud scenarios whose signatures the features must be able to catch
(a large amount; a compromised terminal; a compromised card spending far more than usual).

Cards are issued and closed over the period (``new_card_share``, ``closed_card_share``), as in a
real portfolio: a model must see first purchases of new cards in training to treat the next one
as the ordinary payment it usually is.

Each day is generated with whole-array numpy operations, and everything is drawn from generators
seeded by ``settings.seed``, so the same settings always give the same bytes on disk.
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.spatial import cKDTree

from fraud_ray.schema import (
    AMOUNT,
    CARD_ID,
    FRAUD_SCENARIO,
    LABEL,
    TERMINAL_ID,
    TIMESTAMP,
    TRANSACTION_ID,
)
from fraud_ray.settings import SimulatorSettings

SECONDS_PER_DAY = 86_400
TRANSACTION_ID_DIGITS = 12
PART_FILE = "part-0.parquet"

SIMULATION_SCHEMA = pa.schema(
    [
        pa.field(TRANSACTION_ID, pa.string()),
        pa.field(TIMESTAMP, pa.timestamp("us", tz="UTC")),
        pa.field(CARD_ID, pa.string()),
        pa.field(TERMINAL_ID, pa.string()),
        pa.field(AMOUNT, pa.float64()),
        pa.field(LABEL, pa.int8()),
        pa.field(FRAUD_SCENARIO, pa.int8()),
    ]
)


class FraudScenario(IntEnum):
    """Values of the ``fraud_scenario`` column; a later scenario overrides an earlier one."""

    NONE = 0
    LARGE_AMOUNT = 1
    COMPROMISED_TERMINAL = 2
    COMPROMISED_CARD = 3


@dataclass(frozen=True)
class Profiles:
    """Who pays where and how much: fixed for a whole simulation, so kept apart from the days.

    The terminals customer ``c`` can reach are ``reachable[offsets[c]:offsets[c + 1]]``; a flat
    array with offsets lets a whole day's terminal choices be made in one vectorised draw.
    """

    customer_xy: np.ndarray
    mean_amount: np.ndarray
    std_amount: np.ndarray
    mean_per_day: np.ndarray
    terminal_xy: np.ndarray
    reachable: np.ndarray
    offsets: np.ndarray
    open_day: np.ndarray
    close_day: np.ndarray

    def active_on(self, day: int) -> np.ndarray:
        """Which cards can pay on ``day`` (0 is the first): issued by then and not yet closed."""
        return (self.open_day <= day) & (day < self.close_day)

    def terminals_of(self, customer: int) -> np.ndarray:
        """The indices of the terminals within the radius of one customer, in increasing order."""
        return self.reachable[self.offsets[customer] : self.offsets[customer + 1]]


@dataclass(frozen=True)
class SimulationSummary:
    """What a run produced, so the CLI can report it without reading the files back."""

    transactions: int
    frauds: int
    by_scenario: dict[int, int]
    days: int
    first_day: date
    last_day: date
    seconds: float

    @property
    def fraud_rate(self) -> float:
        return self.frauds / self.transactions if self.transactions else 0.0


def _generators(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Separate streams for profiles and days, so that profiles can be rebuilt on their own."""
    profile_seed, day_seed = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(profile_seed), np.random.default_rng(day_seed)


def make_profiles(settings: SimulatorSettings, rng: np.random.Generator | None = None) -> Profiles:
    """Place customers and terminals and work out who can reach what.

    Without ``rng`` this gives exactly the profiles that ``simulate_days`` uses for the same
    settings, which is how tests and analyses can relate transactions back to locations.
    """
    if rng is None:
        rng, _ = _generators(settings.seed)
    n = settings.customers
    customer_xy = rng.uniform(0.0, settings.grid_size, size=(n, 2))
    mean_amount = rng.uniform(*settings.mean_amount_range, size=n)
    mean_per_day = rng.uniform(*settings.transactions_per_day_range, size=n)
    terminal_xy = rng.uniform(0.0, settings.grid_size, size=(settings.terminals, 2))

    neighbours = cKDTree(terminal_xy).query_ball_point(
        customer_xy, r=settings.radius, return_sorted=True
    )
    counts = np.fromiter((len(found) for found in neighbours), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    reachable = np.fromiter(
        itertools.chain.from_iterable(neighbours), dtype=np.int64, count=int(offsets[-1])
    )
    # Drawn after the rest, so that the places and habits above do not depend on these shares.
    days = settings.days
    issued_later = (rng.random(n) < settings.new_card_share) & (days > 1)
    open_day = np.where(issued_later, rng.integers(1, max(days, 2), size=n), 0)
    closes = rng.random(n) < settings.closed_card_share
    close_day = np.where(closes, rng.integers(open_day + 1, days + 1), days)
    return Profiles(
        customer_xy=customer_xy,
        mean_amount=mean_amount,
        std_amount=mean_amount / 2,
        mean_per_day=mean_per_day,
        terminal_xy=terminal_xy,
        reachable=reachable,
        offsets=offsets,
        open_day=open_day,
        close_day=close_day,
    )


def _cents(amount: np.ndarray) -> np.ndarray:
    """Round to cents, never to zero: the transaction schema refuses amounts that are not positive."""
    return np.maximum(np.round(amount, 2), 0.01)


def _compromise(rng: np.random.Generator, until: np.ndarray, per_day: int, end_day: int) -> None:
    """Mark ``per_day`` random entities as compromised until ``end_day`` (exclusive).

    A per-entity end day instead of a list of events keeps each day's labelling one array lookup;
    an entity drawn again while still compromised simply stays compromised for longer.
    """
    drawn = rng.choice(until.size, size=min(per_day, until.size), replace=False)
    until[drawn] = np.maximum(until[drawn], end_day)


def _ids(prefix: str, count: int) -> pa.Array:
    width = len(str(count - 1))
    return pa.array([f"{prefix}{i:0{width}d}" for i in range(count)], type=pa.string())


def _day_tables(settings: SimulatorSettings) -> Iterator[tuple[date, pa.Table]]:
    """The simulation proper: one Arrow table per day, in time order, ids continuing across days."""
    profile_rng, rng = _generators(settings.seed)
    profiles = make_profiles(settings, profile_rng)
    reach = np.diff(profiles.offsets)
    rate = np.where(reach > 0, profiles.mean_per_day, 0.0)  # nowhere to pay, so no payments
    customers = np.arange(settings.customers)
    card_names = _ids("C", settings.customers)
    terminal_names = _ids("M", settings.terminals)
    terminal_until = np.zeros(settings.terminals, dtype=np.int64)
    card_until = np.zeros(settings.customers, dtype=np.int64)
    start_us = int(datetime.combine(settings.start, datetime.min.time(), UTC).timestamp()) * 10**6
    next_id = 0

    for day in range(settings.days):
        _compromise(
            rng,
            terminal_until,
            settings.compromised_terminals_per_day,
            day + settings.compromised_terminal_days,
        )
        _compromise(
            rng,
            card_until,
            settings.compromised_cards_per_day,
            day + settings.compromised_card_days,
        )

        customer = np.repeat(customers, rng.poisson(rate * profiles.active_on(day)))
        seconds = rng.normal(SECONDS_PER_DAY / 2, settings.time_of_day_std_s, size=customer.size)
        inside = (seconds >= 0) & (seconds < SECONDS_PER_DAY)
        seconds = np.floor(seconds[inside]).astype(np.int64)
        order = np.argsort(seconds, kind="stable")
        customer, seconds = customer[inside][order], seconds[order]
        n = customer.size

        mean = profiles.mean_amount[customer]
        amount = rng.normal(mean, profiles.std_amount[customer])
        negative = amount < 0
        amount[negative] = rng.uniform(0.0, 2 * mean[negative])
        amount = _cents(amount)
        pick = rng.integers(0, reach[customer]) if n else np.zeros(0, dtype=np.int64)
        terminal = profiles.reachable[profiles.offsets[customer] + pick]

        scenario = np.zeros(n, dtype=np.int8)
        scenario[amount > settings.large_amount_threshold] = FraudScenario.LARGE_AMOUNT
        scenario[terminal_until[terminal] > day] = FraudScenario.COMPROMISED_TERMINAL
        stolen = (card_until[customer] > day) & (rng.random(n) < settings.compromised_card_share)
        amount[stolen] = _cents(amount[stolen] * settings.compromised_card_multiplier)
        scenario[stolen] = FraudScenario.COMPROMISED_CARD

        micros = start_us + (day * SECONDS_PER_DAY + seconds) * 10**6
        ids = [f"T{i:0{TRANSACTION_ID_DIGITS}d}" for i in range(next_id, next_id + n)]
        next_id += n
        table = pa.Table.from_arrays(
            [
                pa.array(ids, type=pa.string()),
                pa.array(micros, type=pa.timestamp("us", tz="UTC")),
                card_names.take(pa.array(customer)),
                terminal_names.take(pa.array(terminal)),
                pa.array(amount, type=pa.float64()),
                pa.array((scenario > 0).astype(np.int8)),
                pa.array(scenario),
            ],
            schema=SIMULATION_SCHEMA,
        )
        yield settings.start + timedelta(days=day), table


def simulate_days(settings: SimulatorSettings) -> Iterator[tuple[date, pd.DataFrame]]:
    """Yield each simulated day as a frame sorted by time, without touching the disk.

    Days are produced lazily so callers (e.g. a stream replay) never hold the whole run in memory.
    """
    for day, table in _day_tables(settings):
        yield day, table.to_pandas()


def write_simulation(
    settings: SimulatorSettings,
    out: Path,
    on_day: Callable[[date, int], None] | None = None,
) -> SimulationSummary:
    """Write the simulation as hive-style day partitions: ``out/day=YYYY-MM-DD/part-0.parquet``.

    Existing ``day=*`` partitions are removed first: a shorter rerun must not leave days of an
    older run behind for a reader to mix in. ``on_day(day, rows)`` lets the CLI show progress.
    """
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    for old in sorted(out.glob("day=*")):
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()

    transactions = 0
    scenarios = np.zeros(len(FraudScenario), dtype=np.int64)
    for day, table in _day_tables(settings):
        folder = out / f"day={day.isoformat()}"
        folder.mkdir()
        pq.write_table(table, folder / PART_FILE)
        transactions += table.num_rows
        scenarios += np.bincount(
            table[FRAUD_SCENARIO].to_numpy().astype(np.int64), minlength=len(FraudScenario)
        )
        if on_day is not None:
            on_day(day, table.num_rows)

    by_scenario = {int(s): int(scenarios[s]) for s in FraudScenario if s != FraudScenario.NONE}
    return SimulationSummary(
        transactions=transactions,
        frauds=sum(by_scenario.values()),
        by_scenario=by_scenario,
        days=settings.days,
        first_day=settings.start,
        last_day=settings.start + timedelta(days=settings.days - 1),
        seconds=time.perf_counter() - started,
    )
