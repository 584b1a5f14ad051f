"""Label files: the chargebacks and analyst verdicts a bank exports, read for the decision log.

A file is CSV, Parquet or JSON Lines with a ``transaction_id`` and an ``is_fraud`` (0 or 1) column;
other columns are ignored. A label file is usually written by another system, so what is wrong
with it is named by row and column rather than left to a parser's stack trace.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fraud_ray.schema import LABEL, TRANSACTION_ID

READERS = {
    ".csv": "CSV",
    ".parquet": "Parquet",
    ".jsonl": "JSON Lines",
    ".ndjson": "JSON Lines",
}


class LabelFileError(ValueError):
    """A label file that cannot be used; the message names the file, and the row and column."""


def read_labels(path: Path) -> list[tuple[str, int]]:
    """(transaction_id, is_fraud) pairs in file order; rows are numbered from 1, header excluded."""
    frame = _read(path)
    missing = [column for column in (TRANSACTION_ID, LABEL) if column not in frame.columns]
    if missing:
        raise LabelFileError(
            f"{path}: no column {', '.join(missing)} (found: {', '.join(map(str, frame.columns))})"
        )
    ids = frame[TRANSACTION_ID].astype("string").str.strip()
    blank = ids.isna() | (ids == "")
    if blank.any():
        raise LabelFileError(f"{path}: row {_row(blank)}: {TRANSACTION_ID} is empty")
    labels = pd.to_numeric(frame[LABEL], errors="coerce")
    bad = ~labels.isin([0, 1])
    if bad.any():
        row = _row(bad)
        raise LabelFileError(
            f"{path}: row {row} ({TRANSACTION_ID} {ids.iloc[row - 1]}): {LABEL} is "
            f"{_shown(frame[LABEL].iloc[row - 1])}, not 0 or 1"
        )
    return list(zip(ids.tolist(), labels.astype(int).tolist(), strict=True))


def _read(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in READERS:
        kinds = ", ".join(f"{name} ({ext})" for ext, name in READERS.items())
        raise LabelFileError(f"{path}: not a label file by its name; use one of {kinds}")
    try:
        if suffix == ".csv":
            # Text, so that ids such as 00042 keep their zeros; labels are parsed below.
            return pd.read_csv(path, dtype=str)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        # No dtype guessing: ids stay as written, and date-like text is not turned into dates.
        return pd.read_json(path, lines=True, dtype=False, convert_dates=False)
    except (OSError, ValueError) as error:  # pandas and Arrow parse errors are ValueErrors
        raise LabelFileError(f"cannot read {READERS[suffix]} file {path}: {error}") from None


def _row(flags: pd.Series) -> int:
    """The first flagged row, counted from 1 as a person reading the file counts."""
    return int(flags.to_numpy().argmax()) + 1


def _shown(value: object) -> str:
    """A cell as the file has it: text quoted, numbers plain (not NumPy's repr), blanks named."""
    if isinstance(value, str):
        return repr(value)
    return "empty" if pd.isna(value) else str(value)
