"""The canonical frame, file reading without Ray, and the time splits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraud_ray.data import (
    DataValidationError,
    Fold,
    TimeWindow,
    apply_mapping,
    assign_split,
    filter_window,
    read_transactions_pandas,
    time_splits,
    tuning_lead,
    without_known_compromised_cards,
)
from fraud_ray.schema import (
    AMOUNT,
    CARD_ID,
    LABEL,
    TERMINAL_ID,
    TIMESTAMP,
    TRANSACTION_ID,
    DatasetMapping,
    MappingError,
)
from fraud_ray.settings import SplitSettings

NUMERIC_TIMES_YAML = """\
time: seconds
time_unit: s
time_origin: 2024-01-01
amount: amt
label: fraud
features: [age, balance]
"""


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


# --- mapping ------------------------------------------------------------------------------------


def test_numeric_times_without_ids_cards_or_terminals(tmp_path: Path) -> None:
    (tmp_path / "mapping.yaml").write_text(NUMERIC_TIMES_YAML)
    mapping = DatasetMapping.from_yaml(tmp_path / "mapping.yaml")
    csv = tmp_path / "bank.csv"
    csv.write_text(
        "seconds,amt,fraud,age,balance,branch\n"
        "0,12.5,0,31,100.0,north\n"
        "90.5,3,1,47,,south\n"
        "86400,250,0,22,-7.25,north\n"
    )

    frame = read_transactions_pandas(csv, mapping)

    assert list(frame.columns) == [TRANSACTION_ID, TIMESTAMP, AMOUNT, LABEL, "age", "balance"]
    assert frame[TRANSACTION_ID].tolist() == ["0", "1", "2"]
    assert frame[TIMESTAMP].tolist() == [
        _utc("2024-01-01 00:00:00"),
        _utc("2024-01-01 00:01:30.5"),
        _utc("2024-01-02 00:00:00"),
    ]
    assert frame[TIMESTAMP].dtype == pd.DatetimeTZDtype("us", "UTC")
    assert frame[AMOUNT].tolist() == [12.5, 3.0, 250.0]
    assert frame[AMOUNT].dtype == np.float64
    assert frame[LABEL].dtype == np.int8
    assert frame[LABEL].tolist() == [0, 1, 0]
    assert frame["age"].dtype == np.float64
    assert frame["balance"].tolist()[::2] == [100.0, -7.25]
    assert np.isnan(frame["balance"].iloc[1])


def test_row_numbers_continue_from_first_row() -> None:
    mapping = DatasetMapping(time="t", time_unit="D", amount="a")
    frame = pd.DataFrame({"t": [0, 1.5], "a": [1.0, 2.0]}, index=[40, 7])

    out = apply_mapping(frame, mapping, first_row=100)

    assert out[TRANSACTION_ID].tolist() == ["100", "101"]
    assert out[TIMESTAMP].tolist() == [_utc("1970-01-01"), _utc("1970-01-02 12:00")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T10:00:00", "2024-03-01 10:00"),
        ("2024-03-01 10:00:00", "2024-03-01 10:00"),
        ("2024-03-01T10:00:00Z", "2024-03-01 10:00"),
        ("2024-03-01T10:00:00+02:00", "2024-03-01 08:00"),
        ("2024-03-01T10:00:00-05:30", "2024-03-01 15:30"),
    ],
)
def test_datetime_strings_naive_are_utc_aware_are_converted(text: str, expected: str) -> None:
    mapping = DatasetMapping(id="id", time="when", amount="a")
    frame = pd.DataFrame({"id": ["x", "y"], "when": [text, "2024-01-01"], "a": [1.0, 1.0]})

    out = apply_mapping(frame, mapping)

    assert out[TIMESTAMP].tolist() == [_utc(expected), _utc("2024-01-01")]


def test_naive_strings_stay_utc_next_to_strings_with_an_offset() -> None:
    mapping = DatasetMapping(id="id", time="when", amount="a")
    frame = pd.DataFrame(
        {
            "id": ["x", "y", "z"],
            "when": ["2024-01-03T00:00:00+01:00", "2024-01-04 08:30:00", "2024-01-05"],
            "a": [1.0, 1.0, 1.0],
        }
    )

    out = apply_mapping(frame, mapping)

    assert out[TIMESTAMP].tolist() == [
        _utc("2024-01-02 23:00"),
        _utc("2024-01-04 08:30"),
        _utc("2024-01-05"),
    ]


def test_datetime_columns_naive_and_other_zones() -> None:
    mapping = DatasetMapping(id="id", time="when", amount="a")
    naive = pd.DataFrame(
        {
            "id": [1, 2],
            "when": pd.to_datetime(["2024-05-01 12:00", "2024-05-02 00:00"]),
            "a": [1, 2],
        }
    )
    paris = naive.assign(when=naive["when"].dt.tz_localize("Europe/Paris"))

    assert apply_mapping(naive, mapping)[TIMESTAMP].iloc[0] == _utc("2024-05-01 12:00")
    assert apply_mapping(paris, mapping)[TIMESTAMP].iloc[0] == _utc("2024-05-01 10:00")
    assert apply_mapping(naive, mapping)[TRANSACTION_ID].tolist() == ["1", "2"]


def test_keys_and_unmapped_columns() -> None:
    mapping = DatasetMapping(
        id="tx", time="ts", card="pan", terminal="pos", amount="amt", label="y", features=["f"]
    )
    frame = pd.DataFrame(
        {
            "tx": ["t1", "t2"],
            "ts": ["2024-01-01", "2024-01-02"],
            "pan": [4111, 4222],
            "pos": ["T9", "T8"],
            "amt": [5, 6],
            "y": [True, False],
            "f": ["1.5", "2"],
            "day": ["2024-01-01", "2024-01-02"],
        }
    )

    out = apply_mapping(frame, mapping)

    assert list(out.columns) == [
        TRANSACTION_ID,
        TIMESTAMP,
        CARD_ID,
        TERMINAL_ID,
        AMOUNT,
        LABEL,
        "f",
    ]
    assert out[CARD_ID].tolist() == ["4111", "4222"]
    assert out[LABEL].tolist() == [1, 0]
    assert out["f"].tolist() == [1.5, 2.0]


def test_arrow_backed_batches_map_like_numpy_backed() -> None:
    """Ray Data hands map_batches Arrow-backed frames; they must map to the same values as NumPy
    ones (ids stay Arrow strings, which Ray keeps without a conversion)."""
    mapping = DatasetMapping.simulator()
    frame = pd.DataFrame(
        {
            TRANSACTION_ID: ["a", "b"],
            TIMESTAMP: pd.to_datetime(["2024-01-01 10:00", "2024-01-02 00:00"], utc=True),
            CARD_ID: ["c1", "c2"],
            TERMINAL_ID: ["t1", "t2"],
            AMOUNT: [10.0, 20.5],
            LABEL: pd.array([0, 1], dtype="int8"),
        }
    )

    arrow = apply_mapping(frame.convert_dtypes(dtype_backend="pyarrow"), mapping)

    pd.testing.assert_frame_equal(arrow, apply_mapping(frame, mapping), check_dtype=False)
    assert arrow[TIMESTAMP].dtype == "datetime64[us, UTC]"
    assert arrow[AMOUNT].dtype == "float64"


# --- errors -------------------------------------------------------------------------------------

MAPPING = DatasetMapping(id="tx", time="ts", amount="amt", label="fraud", features=["score"])


def _good() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tx": ["a", "b", "c"],
            "ts": ["2024-01-01", "2024-01-02", "2024-01-03"],
            "amt": [1.0, 2.0, 3.0],
            "fraud": [0, 1, 0],
            "score": [0.1, 0.2, 0.3],
        }
    )


def test_good_frame_passes() -> None:
    assert len(apply_mapping(_good(), MAPPING)) == 3


def test_zero_amounts_are_payments() -> None:
    frame = _good().assign(amt=[0.0, 12.5, 0.0])
    assert apply_mapping(frame, MAPPING)["amount"].tolist() == [0.0, 12.5, 0.0]


@pytest.mark.parametrize(
    ("column", "values", "fragment"),
    [
        ("ts", ["2024-01-01", "yesterday", "2024-01-03"], "not an ISO 8601 date and time"),
        ("ts", ["2024-01-01", None, "2024-01-03"], "missing"),
        ("amt", [1.0, "ten", 3.0], "not a number"),
        ("amt", [1.0, None, 3.0], "missing"),
        ("amt", [1.0, np.nan, 3.0], "missing"),
        ("amt", [1.0, -4.0, 3.0], "negative"),
        ("amt", [1.0, -0.01, 3.0], "negative"),
        ("amt", [1.0, 5e-324, 3.0], "above 0 but below 1e-09"),
        ("amt", [1.0, np.inf, 3.0], "infinite"),
        ("fraud", [0, 2, 0], "not 0 or 1"),
        ("fraud", [0, "yes", 0], "not 0 or 1"),
        ("fraud", [0, None, 0], "missing"),
        ("score", [0.1, "high", 0.3], "not a number"),
        ("score", [0.1, -np.inf, 0.3], "infinite"),
    ],
)
def test_bad_values_name_column_count_and_first_row(
    column: str, values: list[object], fragment: str
) -> None:
    frame = _good().assign(**{column: values})

    with pytest.raises(DataValidationError) as caught:
        apply_mapping(frame, MAPPING)

    message = str(caught.value)
    assert f"column {column!r}" in message
    assert fragment in message
    assert "1 of 3 rows" in message
    assert "transaction_id 'b'" in message


def test_bad_value_without_ids_names_row_number() -> None:
    mapping = DatasetMapping(time="ts", amount="amt")
    frame = _good().assign(amt=[1.0, 2.0, -3.0])

    with pytest.raises(DataValidationError, match=r"'amt'.*first at row 12 \(value -3.0\)"):
        apply_mapping(frame, mapping, first_row=10)


def test_duplicate_ids() -> None:
    frame = _good().assign(tx=["a", "b", "a"])

    with pytest.raises(DataValidationError, match=r"id column 'tx': duplicated in 1 of 3.*'a'"):
        apply_mapping(frame, MAPPING)


def test_missing_ids_name_row() -> None:
    frame = _good().assign(tx=["a", None, "c"])

    with pytest.raises(DataValidationError, match=r"id column 'tx': missing .* first at row 1"):
        apply_mapping(frame, MAPPING)


def test_missing_columns_are_all_listed_with_the_existing_ones() -> None:
    frame = _good().drop(columns=["amt", "score"])

    with pytest.raises(DataValidationError) as caught:
        apply_mapping(frame, MAPPING)

    message = str(caught.value)
    assert "'amt' (amount)" in message
    assert "'score' (features)" in message
    assert "tx, ts, fraud" in message


def test_numeric_times_need_a_unit() -> None:
    frame = _good().assign(ts=[1, 2, 3])

    with pytest.raises(DataValidationError, match=r"time column 'ts'.*time_unit"):
        apply_mapping(frame, MAPPING)


def test_feature_named_like_a_canonical_column_is_refused() -> None:
    mapping = DatasetMapping(time="ts", amount="amt", features=[CARD_ID])
    frame = _good().assign(**{CARD_ID: [1, 2, 3]})

    with pytest.raises(DataValidationError, match=CARD_ID):
        apply_mapping(frame, mapping)


# --- files without Ray --------------------------------------------------------------------------


def _write_day(root: Path, day: str, ids: list[str]) -> None:
    folder = root / f"day={day}"
    folder.mkdir(parents=True)
    table = pa.table(
        {
            "tx": ids,
            "ts": pa.array([pd.Timestamp(day, tz="UTC")] * len(ids), pa.timestamp("us", tz="UTC")),
            "amt": [1.0] * len(ids),
        }
    )
    pq.write_table(table, folder / "part-0.parquet")


def test_hive_directory_rows_are_numbered_in_sorted_file_order(tmp_path: Path) -> None:
    _write_day(tmp_path, "2024-01-02", ["late1", "late2"])
    _write_day(tmp_path, "2024-01-01", ["early"])
    without_ids = DatasetMapping(time="ts", amount="amt")

    frame = read_transactions_pandas(tmp_path, without_ids)

    assert frame[TRANSACTION_ID].tolist() == ["0", "1", "2"]
    assert frame[TIMESTAMP].dt.day.tolist() == [1, 2, 2]
    assert "day" not in frame.columns


def test_hive_partition_column_can_be_mapped(tmp_path: Path) -> None:
    _write_day(tmp_path, "2024-01-01", ["a"])
    mapping = DatasetMapping(id="tx", time="day", amount="amt")

    frame = read_transactions_pandas(tmp_path, mapping)

    assert frame[TIMESTAMP].tolist() == [_utc("2024-01-01")]


def test_missing_column_in_a_file_names_the_file(tmp_path: Path) -> None:
    _write_day(tmp_path, "2024-01-01", ["a"])
    mapping = DatasetMapping(id="tx", time="ts", amount="amount")

    with pytest.raises(DataValidationError, match=r"part-0\.parquet lacks .*'amount' \(amount\)"):
        read_transactions_pandas(tmp_path, mapping)


def test_directory_without_data_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")

    with pytest.raises(DataValidationError, match=r"no \.parquet or \.csv"):
        read_transactions_pandas(tmp_path)


# --- mapping files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("time: t\namount: a\ncolour: red\n", "colour"),
        ("time: t\n", "amount"),
        ("time: t\namount: a\ntime_unit: hours\n", "time_unit"),
        ("time: t\namount: a\ntime_origin: someday\n", "time_origin"),
        ("time: t\namount: a\nfeatures: a_string\n", "features"),
        ("time: t\namount: t\n", "t"),
    ],
)
def test_bad_mapping_yaml_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(text)

    with pytest.raises(MappingError, match=key):
        DatasetMapping.from_yaml(path)


def test_unparseable_mapping_yaml(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("time: [unclosed\n")

    with pytest.raises(MappingError, match="cannot read dataset mapping"):
        DatasetMapping.from_yaml(path)


# --- time splits --------------------------------------------------------------------------------

START = datetime(2025, 4, 1, tzinfo=UTC)
SPLIT = SplitSettings(
    train_days=10, validation_days=5, test_days=3, validation="after", validation_folds=1
)


@pytest.mark.parametrize("delay", [0, 1, 7])
def test_splits_are_ordered_disjoint_and_separated_by_the_label_delay(delay: int) -> None:
    splits = time_splits(START, SPLIT, timedelta(days=delay))
    train, validation, test = splits.train, splits.validation, splits.test

    assert train.start == START
    assert train.end - train.start == timedelta(days=10)
    assert validation.end - validation.start == timedelta(days=5)
    assert test.end - test.start == timedelta(days=3)
    assert validation.start - train.end == timedelta(days=delay)
    assert test.start - validation.end == timedelta(days=delay)
    assert train.end <= validation.start < validation.end <= test.start


@pytest.mark.parametrize("delay", [0, 1, 7])
def test_validation_after_training_tunes_on_the_training_window(delay: int) -> None:
    splits = time_splits(START, SPLIT, timedelta(days=delay))

    assert splits.tuning == splits.train
    assert not splits.refit


BEFORE = SplitSettings(
    train_days=10, validation_days=5, test_days=3, validation="before", validation_folds=1
)


@pytest.mark.parametrize("delay", [0, 1, 7])
def test_validation_before_training_is_the_test_layout_shifted_back(delay: int) -> None:
    """The handbook's layout: train | delay | test for the registered model, and the trials on
    tuning | delay | validation, with validation ending where training ends."""
    splits = time_splits(START, BEFORE, timedelta(days=delay))
    train, validation, test, tuning = splits.train, splits.validation, splits.test, splits.tuning

    assert train == TimeWindow(START, START + timedelta(days=10))
    assert test == TimeWindow(
        train.end + timedelta(days=delay), train.end + timedelta(days=delay + 3)
    )
    assert validation == TimeWindow(train.end - timedelta(days=5), train.end)
    assert tuning.end - tuning.start == train.end - train.start
    assert validation.start - tuning.end == timedelta(days=delay)
    assert tuning.start == START - timedelta(days=delay + 5)
    assert splits.refit


def test_validation_before_training_keeps_the_training_length_of_train_end() -> None:
    splits = time_splits(START, BEFORE, timedelta(days=7), train_end=START + timedelta(days=21))

    assert splits.tuning == TimeWindow(START - timedelta(days=12), START + timedelta(days=9))
    assert splits.validation == TimeWindow(START + timedelta(days=16), START + timedelta(days=21))
    assert splits.test.start == START + timedelta(days=28)


@pytest.mark.parametrize(
    ("split", "lead_days"),
    [
        (SPLIT, 0),
        (BEFORE, 7 + 5),
        (SPLIT.model_copy(update={"validation_folds": 3}), 2 * 5),
        (BEFORE.model_copy(update={"validation_folds": 3}), 7 + 5 + 2 * 5),
    ],
)
def test_the_tuning_lead_is_how_far_back_the_first_window_starts(
    split: SplitSettings, lead_days: int
) -> None:
    lead = tuning_lead(split, timedelta(days=7))

    assert lead == timedelta(days=lead_days)
    splits = time_splits(START + lead, split, timedelta(days=7))
    assert splits.folds[-1].train.start == splits.all_tuning.start == START


@pytest.mark.parametrize("layout", ["after", "before"])
@pytest.mark.parametrize("folds", [1, 2, 4])
def test_folds_are_the_first_fold_shifted_back_one_validation_window_at_a_time(
    layout: str, folds: int
) -> None:
    split = SplitSettings(
        train_days=10, validation_days=5, test_days=3, layout=layout, validation_folds=folds
    )
    splits = time_splits(START, split, timedelta(days=2))

    assert len(splits.folds) == folds
    assert splits.folds[0] == Fold(splits.tuning, splits.validation)
    for k, fold in enumerate(splits.folds):
        back = timedelta(days=5 * k)
        assert fold.train == TimeWindow(splits.tuning.start - back, splits.tuning.end - back)
        assert fold.validation.start - fold.train.end == timedelta(days=2)  # the label delay
        assert fold.validation.end - fold.validation.start == timedelta(days=5)
    # No fold validates on a label the test week's model could not have had.
    assert splits.all_validation.end <= splits.test.start - timedelta(days=2)
    if layout == "before":
        assert splits.all_validation.end == splits.train.end


def test_windows_are_half_open_and_gaps_belong_to_no_split() -> None:
    splits = time_splits(START, SPLIT, timedelta(days=7))
    moments = pd.Series(
        [
            START - timedelta(microseconds=1),
            START,
            splits.train.end - timedelta(microseconds=1),
            splits.train.end,
            splits.validation.start - timedelta(microseconds=1),
            splits.validation.start,
            splits.validation.end,
            splits.test.start,
            splits.test.end - timedelta(microseconds=1),
            splits.test.end,
        ]
    )

    assert assign_split(pd.to_datetime(moments, utc=True), splits).tolist() == [
        None,
        "train",
        "train",
        None,
        None,
        "validation",
        None,
        "test",
        "test",
        None,
    ]


def test_without_delay_the_boundary_goes_to_the_later_split() -> None:
    splits = time_splits(START, SPLIT, timedelta(days=0))
    boundary = pd.Series([splits.train.end, splits.validation.end])

    assert assign_split(boundary, splits).tolist() == ["validation", "test"]


def test_naive_times_are_utc() -> None:
    splits = time_splits(datetime(2025, 4, 1), SPLIT, timedelta(days=7))

    assert splits.train.start == START
    assert assign_split(pd.Series(pd.to_datetime(["2025-04-01"])), splits).tolist() == ["train"]


def test_window_refuses_to_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        TimeWindow(START, START)


def test_negative_label_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="label_delay"):
        time_splits(START, SPLIT, timedelta(days=-1))


def test_filter_window_keeps_only_rows_inside() -> None:
    window = TimeWindow(START, START + timedelta(days=1))
    frame = pd.DataFrame(
        {
            TRANSACTION_ID: ["before", "first", "last", "end"],
            TIMESTAMP: pd.to_datetime(
                [
                    START - timedelta(seconds=1),
                    START,
                    window.end - timedelta(microseconds=1),
                    window.end,
                ],
                utc=True,
            ),
        },
        index=[10, 11, 12, 13],
    )

    kept = filter_window(frame, window)

    assert kept[TRANSACTION_ID].tolist() == ["first", "last"]
    assert kept.index.tolist() == [11, 12]


# --- known compromised cards --------------------------------------------------------------------


def _day(day: int, hour: int = 12) -> datetime:
    return START + timedelta(days=day, hours=hour)


def test_known_compromised_cards_leave_the_test_day_by_day() -> None:
    """Train days 0-6, validation 14-20, test 28-34: a fraud on day F is known from F + 8."""
    splits = time_splits(START, SplitSettings(layout="after"), timedelta(days=7))
    frauds = {
        "before-training": -5,  # older than the training window: not counted, as in the handbook
        "in-training": 3,  # known from day 11: blocked through the whole test week
        "late-gap": 22,  # known from day 30: still tested on days 28 and 29
        "in-test": 28,  # known from day 36, after the test week
    }
    history = pd.DataFrame(
        {
            CARD_ID: [*frauds, "honest"],
            TIMESTAMP: pd.to_datetime([_day(day) for day in [*frauds.values(), 0]], utc=True),
            LABEL: [1, 1, 1, 1, 0],
        }
    )
    test = pd.DataFrame(
        [(card, _day(day, hour=1)) for card in history[CARD_ID] for day in range(28, 35)],
        columns=[CARD_ID, TIMESTAMP],
    )

    kept = without_known_compromised_cards(test, history, splits, label_delay=timedelta(days=7))

    tested = kept.assign(day=(kept[TIMESTAMP] - START).dt.days).groupby(CARD_ID)["day"].agg(list)
    every_day = list(range(28, 35))
    assert tested.to_dict() == {
        "before-training": every_day,
        "late-gap": [28, 29],
        "in-test": every_day,
        "honest": every_day,
    }


def test_a_fraud_is_known_from_the_day_after_the_delay_whatever_its_hour() -> None:
    splits = time_splits(START, SplitSettings(layout="after"), timedelta(days=0))
    late = START + timedelta(days=10, hours=23, minutes=59)
    history = pd.DataFrame({CARD_ID: ["c"], TIMESTAMP: [late], LABEL: [1]})
    test = pd.DataFrame(
        {
            CARD_ID: ["c", "c"],
            TIMESTAMP: [
                START + timedelta(days=10, hours=23, minutes=59, seconds=1),
                START + timedelta(days=11),
            ],
        }
    )

    kept = without_known_compromised_cards(test, history, splits, label_delay=timedelta(days=0))

    assert kept[TIMESTAMP].tolist() == [test[TIMESTAMP][0]]


def test_without_frauds_or_cards_every_test_row_stays() -> None:
    splits = time_splits(START, SplitSettings(layout="after"), timedelta(days=7))
    test = pd.DataFrame({CARD_ID: ["a"], TIMESTAMP: [_day(28)]})

    assert len(without_known_compromised_cards(test, pd.DataFrame(), splits, 7)) == 1
    assert len(without_known_compromised_cards(test.drop(columns=CARD_ID), test, splits, 7)) == 1
