"""Turning a user's transaction files into the canonical frame, and cutting it into time splits.

Fraud labels arrive weeks late and fraud patterns drift, so the splits here are always by time with
a label-delay gap between them: a random split would leak the future into training and score the
model on a problem easier than the one it will face.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import ray.data
from pandas.api.types import is_datetime64_any_dtype, is_numeric_dtype, is_timedelta64_dtype
from ray.data.datasource import Partitioning

from fraud_ray.schema import (
    AMOUNT,
    CARD_ID,
    LABEL,
    MIN_AMOUNT,
    TERMINAL_ID,
    TIMESTAMP,
    TRANSACTION_ID,
    DatasetMapping,
)
from fraud_ray.settings import SplitSettings

# Carries the input row number through Ray's blocks, whose batches do not know their offset.
_ROW_NUMBER = "__fraud_ray_row_number__"

_UTC_OFFSET = r"[T\s]\d{2}.*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"  # after a time, not a date

FileFormat = Literal["parquet", "csv"]
Split = Literal["train", "validation", "test"]
Data = TypeVar("Data", pd.DataFrame, ray.data.Dataset)


class DataValidationError(ValueError):
    """Data that does not fit its mapping: the message names the column, the problem and a row."""


# --- the canonical frame ------------------------------------------------------------------------


def apply_mapping(frame: pd.DataFrame, mapping: DatasetMapping, first_row: int = 0) -> pd.DataFrame:
    """Rename, convert and validate ``frame`` into the canonical transaction columns.

    Every later stage trusts these columns blindly, so bad values stop here with a message a user
    can act on. Without ``mapping.id`` a row is identified by its number in the input
    (``first_row`` plus its position), which is also its transaction id. When the ids come from
    the file, duplicates are found within ``frame`` only: the Ray path checks batch by batch.
    """
    _check_columns(frame.columns, mapping, source="the data")
    frame = frame.reset_index(drop=True)
    rows = _Rows.of(frame, mapping, first_row)
    out: dict[str, pd.Series] = {
        TRANSACTION_ID: rows.ids,
        TIMESTAMP: _timestamps(frame[mapping.time], mapping, rows),
    }
    if mapping.card is not None:
        out[CARD_ID] = _keys(frame[mapping.card], "card", mapping.card, rows)
    if mapping.terminal is not None:
        out[TERMINAL_ID] = _keys(frame[mapping.terminal], "terminal", mapping.terminal, rows)
    out[AMOUNT] = _amounts(frame[mapping.amount], mapping.amount, rows)
    if mapping.label is not None:
        out[LABEL] = _labels(frame[mapping.label], mapping.label, rows)
    for feature in mapping.features:
        out[feature] = _feature(frame[feature], feature, rows)
    return pd.DataFrame(out)


def _roles(mapping: DatasetMapping) -> dict[str, str]:
    """Source column -> the mapping key that names it, for messages that point at the YAML."""
    keyed = {
        "id": mapping.id,
        "time": mapping.time,
        "card": mapping.card,
        "terminal": mapping.terminal,
        "amount": mapping.amount,
        "label": mapping.label,
    }
    roles = {column: key for key, column in keyed.items() if column is not None}
    roles.update({feature: "features" for feature in mapping.features})
    return roles


def _check_columns(columns: Iterable[object], mapping: DatasetMapping, source: str) -> None:
    present = [str(column) for column in columns]
    roles = _roles(mapping)
    missing = [f"{column!r} ({key})" for column, key in roles.items() if column not in present]
    if missing:
        raise DataValidationError(
            f"{source} lacks the mapped column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; its columns are: {', '.join(present) or '(none)'}"
        )
    canonical = {TRANSACTION_ID, TIMESTAMP, CARD_ID, TERMINAL_ID, AMOUNT, LABEL}
    clashing = sorted(canonical.intersection(mapping.features))
    if clashing:
        raise DataValidationError(
            f"feature column{'s' if len(clashing) > 1 else ''} {', '.join(map(repr, clashing))} "
            "would overwrite the canonical column of the same name; rename it in the data"
        )


@dataclass(frozen=True)
class _Rows:
    """The transaction ids of a frame and how to point a user at one of its rows."""

    ids: pd.Series
    numbered: bool  # the ids are row numbers, so a message says "row 17"

    @classmethod
    def of(cls, frame: pd.DataFrame, mapping: DatasetMapping, first_row: int) -> _Rows:
        numbered = cls(pd.Series(np.arange(first_row, first_row + len(frame))).astype(str), True)
        if mapping.id is None:
            if _ROW_NUMBER in frame.columns:
                return cls(frame[_ROW_NUMBER].astype(str), numbered=True)
            return numbered
        raw = frame[mapping.id]
        ids = _text(raw)
        numbered.refuse(_blank(raw, ids), "id", mapping.id, "missing", raw)
        rows = cls(ids, numbered=False)
        rows.refuse(ids.duplicated(), "id", mapping.id, "duplicated", raw)
        return rows

    def refuse(self, bad: pd.Series, key: str, column: str, problem: str, raw: pd.Series) -> None:
        """Raise for the rows flagged in ``bad``, if any, naming the first of them."""
        if not bad.any():
            return
        first = int(np.flatnonzero(bad.to_numpy())[0])
        row_id = self.ids.iloc[first]
        where = f"row {row_id}" if self.numbered else f"{TRANSACTION_ID} {row_id!r}"
        value = raw.iloc[first]
        if isinstance(value, np.generic):
            value = value.item()  # numpy 2 would print np.float64(-2.0)
        raise DataValidationError(
            f"{key} column {column!r}: {problem} in {int(bad.sum())} of {len(bad)} rows, "
            f"first at {where} (value {value!r})"
        )


def _blank(raw: pd.Series, text: pd.Series) -> pd.Series:
    return raw.isna() | (text.str.strip() == "")


def _text(raw: pd.Series) -> pd.Series:
    """Strings; Arrow-backed ones (what Ray Data hands over) stay so, and are checked by Arrow."""
    if isinstance(raw.dtype, pd.ArrowDtype) and pa.types.is_string(raw.dtype.pyarrow_dtype):
        return raw
    return raw.astype(str)


def _keys(raw: pd.Series, key: str, column: str, rows: _Rows) -> pd.Series:
    text = _text(raw)
    rows.refuse(_blank(raw, text), key, column, "missing", raw)
    return text


def _numbers(raw: pd.Series, key: str, column: str, rows: _Rows) -> pd.Series:
    """Float64 values; a value that is present but not a number is an error, a missing one is NaN."""
    if is_datetime64_any_dtype(raw) or is_timedelta64_dtype(raw):
        raise DataValidationError(f"{key} column {column!r}: holds {raw.dtype} values, not numbers")
    values = pd.to_numeric(raw, errors="coerce")
    rows.refuse(values.isna() & raw.notna(), key, column, "not a number", raw)
    return values.astype("float64")


def _amounts(raw: pd.Series, column: str, rows: _Rows) -> pd.Series:
    amounts = _numbers(raw, "amount", column, rows)
    rows.refuse(amounts.isna(), "amount", column, "missing", raw)
    rows.refuse(np.isinf(amounts), "amount", column, "infinite", raw)
    rows.refuse(amounts < 0, "amount", column, "negative", raw)
    tiny = (amounts > 0) & (amounts < MIN_AMOUNT)
    rows.refuse(tiny, "amount", column, f"above 0 but below {MIN_AMOUNT:g}", raw)
    return amounts


def _labels(raw: pd.Series, column: str, rows: _Rows) -> pd.Series:
    values = pd.to_numeric(raw, errors="coerce")
    rows.refuse(raw.isna(), "label", column, "missing", raw)
    rows.refuse(~values.isin([0, 1]), "label", column, "not 0 or 1", raw)
    return values.astype("int8")


def _feature(raw: pd.Series, column: str, rows: _Rows) -> pd.Series:
    """Missing feature values stay NaN, which the models handle; infinities would not survive scaling."""
    values = _numbers(raw, "features", column, rows)
    rows.refuse(np.isinf(values), "features", column, "infinite", raw)
    return values


def _timestamps(raw: pd.Series, mapping: DatasetMapping, rows: _Rows) -> pd.Series:
    column = mapping.time
    if isinstance(raw.dtype, pd.ArrowDtype) and pa.types.is_timestamp(raw.dtype.pyarrow_dtype):
        # pandas' own astype of an Arrow timestamp column takes seconds per million rows
        raw = pa.array(raw.array).to_pandas().set_axis(raw.index)
    rows.refuse(raw.isna(), "time", column, "missing", raw)
    if mapping.time_unit is not None:
        if is_datetime64_any_dtype(raw):
            raise DataValidationError(
                f"time column {column!r}: holds datetimes, but the mapping sets time_unit "
                f"{mapping.time_unit!r}, which is for numeric times; remove time_unit"
            )
        offsets = _numbers(raw, "time", column, rows)
        rows.refuse(np.isinf(offsets), "time", column, "infinite", raw)
        try:
            parsed = pd.Timestamp(mapping.time_origin) + pd.to_timedelta(
                offsets, unit=mapping.time_unit
            )
        except (OverflowError, pd.errors.OutOfBoundsDatetime, pd.errors.OutOfBoundsTimedelta):
            raise DataValidationError(
                f"time column {column!r}: values up to {offsets.max()!r} {mapping.time_unit} "
                f"after {mapping.time_origin.isoformat()} are out of range"
            ) from None
    elif is_datetime64_any_dtype(raw):
        parsed = raw.dt.tz_localize("UTC") if raw.dt.tz is None else raw.dt.tz_convert("UTC")
    elif is_numeric_dtype(raw):
        raise DataValidationError(
            f"time column {column!r}: holds numbers ({raw.dtype}); set time_unit (and "
            "time_origin, the instant a time of 0 stands for) in the mapping"
        )
    else:
        parsed = _parse_iso8601(raw)
        rows.refuse(parsed.isna(), "time", column, "not an ISO 8601 date and time", raw)
    return parsed.dt.as_unit("us")


def _parse_iso8601(raw: pd.Series) -> pd.Series:
    """Parse texts with and without a UTC offset apart: pandas 2.3, given both in one call, reads a
    naive time that follows one with an offset in that offset instead of in UTC."""
    text = raw.astype(str).str.strip()
    with_offset = text.str.contains(_UTC_OFFSET, regex=True)
    parsed = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    for part in (with_offset, ~with_offset):
        if part.any():
            parsed[part] = pd.to_datetime(text[part], utc=True, format="ISO8601", errors="coerce")
    return parsed


# --- reading files ------------------------------------------------------------------------------


def read_transactions(path: Path, mapping: DatasetMapping | None = None) -> ray.data.Dataset:
    """Read ``path`` lazily into a Ray Dataset of canonical transactions.

    The column names are checked before anything runs, so a wrong mapping fails here and not
    minutes into a job. Bad values are found while the dataset executes and surface where it is
    consumed, still as ``DataValidationError``: Ray Data would otherwise wrap them into a
    ``UserCodeException`` that hides the type, so this dataset's own DataContext (a copy made at
    read time, shared with the datasets derived from it) asks Ray to raise the original exception.

    Without ``mapping.id`` a transaction id is the row number in the input, which only a single
    ordered pass can give: the files are then read with pyarrow on the driver, numbered, and handed
    to Ray with ``from_pandas``. That suits the small user datasets that come without ids; large
    datasets (the simulator's) have ids and are read in parallel by Ray, which does not keep their
    order, so duplicate ids are only found within one batch there.
    """
    mapping = mapping or DatasetMapping.simulator()
    file_format, files = _discover(path)
    root = _root(path)
    _check_file_columns(file_format, files, root, mapping)
    if mapping.id is None:
        frame = _read_frame(file_format, files, root)
        frame[_ROW_NUMBER] = np.arange(len(frame))
        dataset = ray.data.from_pandas(frame)
    else:
        read = ray.data.read_parquet if file_format == "parquet" else ray.data.read_csv
        dataset = read(
            [str(file) for file in files], partitioning=Partitioning("hive", base_dir=str(root))
        )
    dataset.context.raise_original_map_exception = True
    return dataset.map_batches(apply_mapping, batch_format="pandas", fn_kwargs={"mapping": mapping})


def read_transactions_pandas(path: Path, mapping: DatasetMapping | None = None) -> pd.DataFrame:
    """The whole of ``read_transactions`` in one pandas frame, for tests and small tools."""
    mapping = mapping or DatasetMapping.simulator()
    file_format, files = _discover(path)
    root = _root(path)
    _check_file_columns(file_format, files, root, mapping)
    return apply_mapping(_read_frame(file_format, files, root), mapping)


def _discover(path: Path) -> tuple[FileFormat, list[Path]]:
    """The files behind ``path`` in sorted order, which is the order rows are numbered in."""
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            return "parquet", [path]
        if suffix == ".csv":
            return "csv", [path]
        raise DataValidationError(f"{path}: expected a .parquet or .csv file, not {path.suffix!r}")
    if not path.is_dir():
        raise FileNotFoundError(f"no transaction file or directory at {path}")
    parquet = sorted(file for file in path.rglob("*.parquet") if file.is_file())
    csv = sorted(file for file in path.rglob("*.csv") if file.is_file())
    if parquet and csv:
        raise DataValidationError(f"{path} mixes .parquet and .csv files; keep one format")
    if parquet:
        return "parquet", parquet
    if csv:
        return "csv", csv
    raise DataValidationError(f"{path} holds no .parquet or .csv files")


def _root(path: Path) -> Path:
    """Where hive partition directories (``day=2025-04-01``) are counted from."""
    return path if path.is_dir() else path.parent


def _partition_values(file: Path, root: Path) -> dict[str, str]:
    """Hive partition columns as strings, as Ray Data's reader adds them."""
    parts = file.relative_to(root).parent.parts
    return dict(part.split("=", 1) for part in parts if "=" in part)


def _check_file_columns(
    file_format: FileFormat, files: list[Path], root: Path, mapping: DatasetMapping
) -> None:
    """Check every file's header or footer: Ray's own schema is unknown for CSV until it runs."""
    for file in files:
        if file_format == "parquet":
            names = pq.read_schema(file).names
        else:
            with pa_csv.open_csv(file) as reader:
                names = reader.schema.names
        _check_columns([*names, *_partition_values(file, root)], mapping, source=str(file))


def _read_frame(file_format: FileFormat, files: list[Path], root: Path) -> pd.DataFrame:
    """All files in order, parsed by pyarrow as Ray's readers do, so both paths see the same types."""
    frames = []
    for file in files:
        table = pq.read_table(file) if file_format == "parquet" else pa_csv.read_csv(file)
        frames.append(table.to_pandas().assign(**_partition_values(file, root)))
    return pd.concat(frames, ignore_index=True)


# --- time splits --------------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class TimeWindow:
    """The half-open interval [start, end) in UTC, so that adjacent windows never share a row."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _utc(self.start))
        object.__setattr__(self, "end", _utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"time window ends ({self.end}) before it starts ({self.start})")

    def contains(self, timestamps: pd.Series) -> pd.Series:
        """Which of ``timestamps`` (naive ones read as UTC) fall inside the window."""
        moments = pd.to_datetime(timestamps)
        if moments.dt.tz is None:
            moments = moments.dt.tz_localize("UTC")
        return (moments >= self.start) & (moments < self.end)


@dataclass(frozen=True)
class Fold:
    """One prequential validation fold: a trial trains on ``train`` and is judged on ``validation``."""

    train: TimeWindow
    validation: TimeWindow


@dataclass(frozen=True)
class TimeSplits:
    """The windows of one training run.

    ``tuning`` is where the tuning trials train, ``validation`` where they are judged and
    calibrated, ``train`` where the registered model trains and ``test`` where it is scored once.
    With validation after training, ``tuning`` is ``train``; with validation before it, ``tuning``
    lies earlier and ``validation`` may overlap ``train``, and the chosen model is refit on
    ``train``. ``folds`` are the (tuning, validation) pairs a trial is judged on, newest first:
    the first is (``tuning``, ``validation``), each next one a validation window earlier.
    """

    train: TimeWindow
    validation: TimeWindow
    test: TimeWindow
    tuning: TimeWindow
    folds: tuple[Fold, ...]

    @property
    def refit(self) -> bool:
        """Whether the registered model trains again, on other rows than the tuning trials."""
        return self.tuning != self.train

    @property
    def all_tuning(self) -> TimeWindow:
        """The span every fold's training rows lie in."""
        return TimeWindow(self.folds[-1].train.start, self.folds[0].train.end)

    @property
    def all_validation(self) -> TimeWindow:
        """The span every fold's validation rows lie in."""
        return TimeWindow(self.folds[-1].validation.start, self.folds[0].validation.end)


def tuning_lead(split: SplitSettings, label_delay: timedelta) -> timedelta:
    """How much earlier than the training window the oldest fold's training starts: the room a
    default training start must leave after the feature windows have filled."""
    folds = (split.validation_folds - 1) * split.validation_window
    if split.layout == "after":
        return folds
    return label_delay + split.validation_window + folds


def time_splits(
    train_start: datetime,
    split: SplitSettings,
    label_delay: timedelta,
    train_end: datetime | None = None,
) -> TimeSplits:
    """Train, validation and test windows separated by the label delay, laid out as
    ``split.layout`` says.

    Labels of the last hours or days before a cut-off are not known yet at that cut-off; the gap
    keeps those transactions, whose labels a deployed model could not have had, out of every split.
    The training window ends at ``train_end`` when given, else after ``split.train_window``.

    ``after``: train | delay | validation | delay | test, and the trials train on ``train``.
    ``before`` (the Fraud Detection Handbook's): train | delay | test, and the trials see the same
    layout shifted back by the delay and the validation length, tuning | delay | validation, with
    validation ending where training ends; so model selection sees the same distance between
    training and scoring as the test does, and only labels known when training ends.

    With ``split.validation_folds`` K above 1 the trials are judged prequentially, as the handbook
    selects models: the (tuning, validation) pair and K - 1 copies of it, each shifted back by one
    more validation window.
    """
    if label_delay < timedelta(0):
        raise ValueError(f"label_delay must not be negative, got {label_delay}")
    end = _utc(train_end) if train_end else _utc(train_start) + split.train_window
    train = TimeWindow(_utc(train_start), end)
    if split.layout == "after":
        tuning = train
        validation = TimeWindow(
            train.end + label_delay, train.end + label_delay + split.validation_window
        )
        test_start = validation.end + label_delay
    else:
        lead = label_delay + split.validation_window
        tuning = TimeWindow(train.start - lead, train.end - lead)
        validation = TimeWindow(train.end - split.validation_window, train.end)
        test_start = train.end + label_delay
    test = TimeWindow(test_start, test_start + split.test_window)
    folds = tuple(
        Fold(
            _shifted(tuning, k * split.validation_window),
            _shifted(validation, k * split.validation_window),
        )
        for k in range(split.validation_folds)
    )
    return TimeSplits(train=train, validation=validation, test=test, tuning=tuning, folds=folds)


def _shifted(window: TimeWindow, back: timedelta) -> TimeWindow:
    return TimeWindow(window.start - back, window.end - back)


def assign_split(timestamps: pd.Series, splits: TimeSplits) -> pd.Series:
    """The split name of each timestamp, or None in a gap or outside all three windows."""
    names = pd.Series([None] * len(timestamps), index=timestamps.index, dtype=object)
    windows: tuple[tuple[Split, TimeWindow], ...] = (
        ("train", splits.train),
        ("validation", splits.validation),
        ("test", splits.test),
    )
    for name, window in windows:
        names[window.contains(timestamps).to_numpy()] = name
    return names


def filter_window(data: Data, window: TimeWindow) -> Data:
    """The canonical rows whose timestamp lies in ``window``, from a pandas frame or a Ray Dataset."""
    if isinstance(data, pd.DataFrame):
        return data[window.contains(data[TIMESTAMP]).to_numpy()]
    return data.map_batches(filter_window, batch_format="pandas", fn_kwargs={"window": window})


def without_known_compromised_cards(
    test: pd.DataFrame, history: pd.DataFrame, splits: TimeSplits, label_delay: timedelta
) -> pd.DataFrame:
    """The test rows of cards not yet known compromised: the Fraud Detection Handbook's protocol.

    A card known compromised is blocked, so its later payments test nothing. A fraud's label
    arrives ``label_delay`` after it, and the list of known cards is updated once a day (UTC), as
    in the handbook: a card is blocked from the first midnight after its first fraud's label. Frauds
    before the training window do not count, also as in the handbook: the simulator never
    retires a card, and over months its compromised terminals touch most cards, so counting the
    whole history would leave under a third of the default simulation's test week.
    """
    if test.empty or history.empty or CARD_ID not in test.columns:
        return test
    moments = pd.to_datetime(history[TIMESTAMP], utc=True)
    frauds = (history[LABEL] == 1).to_numpy() & (moments >= splits.train.start).to_numpy()
    first_fraud = moments[frauds].groupby(history.loc[frauds, CARD_ID].to_numpy()).min()
    known_from = (first_fraud + label_delay).dt.normalize() + timedelta(days=1)
    day = pd.to_datetime(test[TIMESTAMP], utc=True).dt.normalize()
    blocked = (day >= test[CARD_ID].map(known_from)).to_numpy()  # NaT (never known): False
    return test[~blocked].reset_index(drop=True)
