"""The simulator's contract: file layout and types, determinism, and each fraud scenario's signature."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

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
from fraud_ray.simulator import (
    PART_FILE,
    SimulationSummary,
    make_profiles,
    simulate_days,
    write_simulation,
)

SMALL = SimulatorSettings(
    customers=200,
    terminals=400,
    days=60,
    start=date(2025, 1, 30),
    seed=7,
    compromised_terminals_per_day=2,
    compromised_cards_per_day=2,
)


@dataclass
class Run:
    out: Path
    summary: SimulationSummary
    calls: list[tuple[date, int]]
    frame: pd.DataFrame


def read_days(out: Path) -> pd.DataFrame:
    """All partitions in folder order, with the partition's day kept for checks."""
    frames = []
    for folder in sorted(out.glob("day=*")):
        frame = pq.read_table(folder / PART_FILE).to_pandas()
        frame["day"] = date.fromisoformat(folder.name.removeprefix("day="))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def day_index(frame: pd.DataFrame, settings: SimulatorSettings) -> pd.Series:
    start = pd.Timestamp(settings.start, tz="UTC")
    return (frame[TIMESTAMP] - start).dt.days


def customer_index(frame: pd.DataFrame) -> np.ndarray:
    return frame[CARD_ID].str[1:].astype(int).to_numpy()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("sim")
    calls: list[tuple[date, int]] = []
    summary = write_simulation(SMALL, out, on_day=lambda day, rows: calls.append((day, rows)))
    return Run(out=out, summary=summary, calls=calls, frame=read_days(out))


def test_partitions_are_one_file_per_day(run: Run) -> None:
    expected = [f"day={SMALL.start + timedelta(days=d)}" for d in range(SMALL.days)]
    assert sorted(p.name for p in run.out.iterdir()) == expected
    for folder in run.out.iterdir():
        assert [p.name for p in folder.iterdir()] == [PART_FILE]


def test_written_schema(run: Run) -> None:
    expected = pa.schema(
        [
            (TRANSACTION_ID, pa.string()),
            (TIMESTAMP, pa.timestamp("us", tz="UTC")),
            (CARD_ID, pa.string()),
            (TERMINAL_ID, pa.string()),
            (AMOUNT, pa.float64()),
            (LABEL, pa.int8()),
            (FRAUD_SCENARIO, pa.int8()),
        ]
    )
    for part in run.out.glob(f"day=*/{PART_FILE}"):
        assert pq.read_schema(part).remove_metadata().equals(expected), part


def test_rows_are_valid(run: Run) -> None:
    frame = run.frame
    assert len(frame) > 10_000
    assert (frame[AMOUNT] > 0).all()
    assert np.allclose(frame[AMOUNT], frame[AMOUNT].round(2), rtol=0, atol=1e-9)
    assert set(frame[FRAUD_SCENARIO].unique()) == {0, 1, 2, 3}
    assert (frame[LABEL] == (frame[FRAUD_SCENARIO] > 0).astype(int)).all()
    # every timestamp falls inside the day of its partition
    assert (frame[TIMESTAMP].dt.date == frame["day"]).all()
    assert frame[CARD_ID].str.fullmatch(r"C\d{3}").all()  # 200 customers: C000..C199
    assert frame[TERMINAL_ID].str.fullmatch(r"M\d{3}").all()  # 400 terminals: M000..M399


def test_ids_unique_sequential_and_in_time_order(run: Run) -> None:
    ids = run.frame[TRANSACTION_ID]
    assert ids.is_unique
    assert ids.str.fullmatch(r"T\d{12}").all()
    assert (ids.str[1:].astype(int).to_numpy() == np.arange(len(ids))).all()
    assert ids.is_monotonic_increasing  # lexicographic order is the row order ...
    assert run.frame[TIMESTAMP].is_monotonic_increasing  # ... which is time order


def test_summary_and_progress_match_the_files(run: Run) -> None:
    frame, summary = run.frame, run.summary
    assert summary.transactions == len(frame)
    assert summary.frauds == int(frame[LABEL].sum())
    counts = frame[FRAUD_SCENARIO].value_counts()
    assert summary.by_scenario == {s: int(counts.get(s, 0)) for s in (1, 2, 3)}
    assert summary.fraud_rate == pytest.approx(frame[LABEL].mean())
    assert (summary.days, summary.first_day) == (SMALL.days, SMALL.start)
    assert summary.last_day == date(2025, 3, 30)
    assert summary.seconds > 0
    per_day = frame.groupby("day").size()
    assert run.calls == [(day, int(per_day[day])) for day in per_day.index]


def test_simulate_days_yields_what_is_written(run: Run) -> None:
    days = list(simulate_days(SMALL))
    assert [day for day, _ in days] == sorted(run.frame["day"].unique())
    frames = pd.concat([frame for _, frame in days], ignore_index=True)
    pd.testing.assert_frame_equal(frames, run.frame.drop(columns="day"))


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    settings = SMALL.model_copy(update={"days": 10})
    write_simulation(settings, tmp_path / "a")
    write_simulation(settings, tmp_path / "b")
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.parquet"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.parquet"))
    assert files_a == files_b
    assert len(files_a) == 10
    for name in files_a:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    settings = SMALL.model_copy(update={"days": 5})
    write_simulation(settings, tmp_path / "a")
    write_simulation(settings.model_copy(update={"seed": settings.seed + 1}), tmp_path / "b")
    a, b = read_days(tmp_path / "a"), read_days(tmp_path / "b")
    assert not a[AMOUNT].equals(b[AMOUNT])
    assert not a[TIMESTAMP].equals(b[TIMESTAMP])


def test_rerun_replaces_old_partitions(tmp_path: Path) -> None:
    unrelated = tmp_path / "README.txt"
    unrelated.write_text("kept")
    write_simulation(SMALL.model_copy(update={"days": 4}), tmp_path)
    later = SMALL.model_copy(update={"days": 2, "start": date(2025, 6, 1)})
    write_simulation(later, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("day=*")) == ["day=2025-06-01", "day=2025-06-02"]
    assert unrelated.read_text() == "kept"


def test_large_amounts_are_scenario_one(run: Run) -> None:
    frame = run.frame
    threshold = SMALL.large_amount_threshold
    large = frame[AMOUNT] > threshold
    scenario_1 = frame[FRAUD_SCENARIO] == 1
    assert scenario_1.sum() > 0
    assert (frame.loc[scenario_1, AMOUNT] > threshold).all()
    assert (frame.loc[large, LABEL] == 1).all()
    assert (frame.loc[frame[FRAUD_SCENARIO] == 0, AMOUNT] <= threshold).all()


def test_compromised_terminals_are_fraudulent_for_whole_windows(run: Run) -> None:
    frame = run.frame.assign(day_no=day_index(run.frame, SMALL))
    window = SMALL.compromised_terminal_days
    compromised = frame.loc[frame[FRAUD_SCENARIO] == 2, TERMINAL_ID].unique()
    assert 0 < len(compromised) <= SMALL.compromised_terminals_per_day * SMALL.days

    days_with_frauds = []
    for terminal, rows in frame[frame[TERMINAL_ID].isin(compromised)].groupby(TERMINAL_ID):
        fraud_days = np.unique(rows.loc[rows[FRAUD_SCENARIO] == 2, "day_no"])
        # a clean day is one with a transaction that the terminal did not make fraudulent
        clean_days = np.unique(rows.loc[rows[FRAUD_SCENARIO] <= 1, "day_no"])
        days_with_frauds.append(len(fraud_days))
        # compromise is per day: on a compromised day every payment at the terminal is fraud
        assert not np.isin(fraud_days, clean_days).any(), terminal
        for day in fraud_days:
            before = clean_days[clean_days < day]
            after = clean_days[clean_days > day]
            if len(after):  # a window may still be open when the simulation ends
                last_clean = before[-1] if len(before) else -1
                # the fraud day lies in a run of at least `window` compromised days
                assert after[0] - last_clean - 1 >= window, (terminal, day)
    # fraud keeps coming back to a compromised terminal over several days
    assert np.median(days_with_frauds) >= 5


def test_compromised_cards_spend_far_more_than_usual(run: Run) -> None:
    frame = run.frame.assign(day_no=day_index(run.frame, SMALL))
    usual = frame[frame[LABEL] == 0].groupby(CARD_ID)[AMOUNT].median()
    stolen = frame[frame[FRAUD_SCENARIO] == 3]
    assert len(stolen) > 100
    ratio = stolen[AMOUNT].to_numpy() / usual.reindex(stolen[CARD_ID]).to_numpy()
    assert np.median(ratio) > 4
    assert (ratio > 2).mean() > 0.8

    # only part of a compromised card's payments are fraud, not all of them
    span = stolen.groupby(CARD_ID)["day_no"].agg(["min", "max"])
    rows = frame.join(span, on=CARD_ID, how="inner")
    inside = rows[(rows["day_no"] >= rows["min"]) & (rows["day_no"] <= rows["max"])]
    share = (inside[FRAUD_SCENARIO] == 3).mean()
    assert 0.2 < share < 0.55


def test_profiles_follow_the_description() -> None:
    profiles = make_profiles(SMALL)
    assert profiles.customer_xy.shape == (SMALL.customers, 2)
    assert profiles.terminal_xy.shape == (SMALL.terminals, 2)
    assert ((profiles.customer_xy >= 0) & (profiles.customer_xy <= 100)).all()
    assert ((profiles.mean_amount >= 5) & (profiles.mean_amount <= 100)).all()
    assert np.allclose(profiles.std_amount, profiles.mean_amount / 2)
    assert ((profiles.mean_per_day >= 0) & (profiles.mean_per_day <= 4)).all()


def test_transactions_use_terminals_within_the_radius(tmp_path: Path) -> None:
    # a small radius leaves many customers without any terminal in reach
    settings = SMALL.model_copy(update={"radius": 2.0, "days": 10})
    profiles = make_profiles(settings)
    distance = np.linalg.norm(
        profiles.customer_xy[:, None, :] - profiles.terminal_xy[None, :, :], axis=2
    )
    for customer in range(settings.customers):
        expected = np.flatnonzero(distance[customer] <= settings.radius)
        assert np.array_equal(profiles.terminals_of(customer), expected), customer
    unreachable = np.diff(profiles.offsets) == 0
    assert 0 < unreachable.sum() < settings.customers

    write_simulation(settings, tmp_path)
    frame = read_days(tmp_path)
    customer = customer_index(frame)
    terminal = frame[TERMINAL_ID].str[1:].astype(int).to_numpy()
    assert (distance[customer, terminal] <= settings.radius).all()
    assert not unreachable[customer].any()
    # customers with terminals in reach and a fair daily rate do show up
    active = ~unreachable & (profiles.mean_per_day > 1)
    assert set(np.flatnonzero(active)) <= set(customer)


def test_cards_are_issued_and_closed_over_the_period(run: Run) -> None:
    """Every window holds first purchases of new cards, and cards that stop paying."""
    profiles = make_profiles(SMALL)
    day = day_index(run.frame, SMALL).to_numpy()
    customer = customer_index(run.frame)
    assert (day >= profiles.open_day[customer]).all(), "no payment before the card is issued"
    assert (day < profiles.close_day[customer]).all(), "none after it is closed"
    first = pd.Series(day).groupby(customer).min()
    last = pd.Series(day).groupby(customer).max()
    issued = (first >= 7).mean()
    assert 0.5 * SMALL.new_card_share < issued < 1.5 * SMALL.new_card_share
    assert (last < SMALL.days - 7).mean() > 0.5 * SMALL.closed_card_share
    settled = SMALL.model_copy(update={"new_card_share": 0.0, "closed_card_share": 0.0})
    assert make_profiles(settled).active_on(0).all()
    assert np.array_equal(make_profiles(settled).customer_xy, profiles.customer_xy)
