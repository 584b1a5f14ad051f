"""A first dataset mapping for a user's file, guessed from its header and a sample of its rows.

The guess is a starting point a person checks: every line of the YAML says why it was chosen, and
columns left out say why too. Names are matched first (``Time``, ``TX_AMOUNT``, ``is_fraud``), then
values (a numeric time's magnitude gives its unit, a label holds only 0 and 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from pandas.api.types import is_datetime64_any_dtype, is_numeric_dtype

from fraud_ray.data import DataValidationError
from fraud_ray.schema import DatasetMapping

SAMPLE_ROWS = 10_000

_NAMES = {
    "id": r"(transaction|trans|tx|txn)_?(id|num|number)|^id$",
    "time": r"time|date|timestamp|datetime|unix",
    "card": r"card|cc_?num|customer|account|pan\b",
    "terminal": r"terminal|merchant|pos\b|store|shop",
    "amount": r"amount|amt\b|^value$|^sum$",
    "label": r"fraud|^label$|^class$|^target$|^y$",
}
# Numeric times since 1970 by magnitude, largest first; below them a time counts from the start.
_EPOCH_UNITS = (("ns", 1e17), ("us", 1e14), ("ms", 1e11), ("s", 1e8))


@dataclass
class MappingSuggestion:
    """The guessed mapping and a comment for each of its lines and for each column left out."""

    mapping: DatasetMapping
    comments: dict[str, str] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)

    def yaml(self, source: Path) -> str:
        """The mapping as YAML with a comment on each guess, for the user to check and save."""
        lines = [f"# Dataset mapping suggested for {source}: check every line before using it."]
        values = self.mapping.model_dump(exclude_defaults=True, mode="json")
        for key in (
            "id",
            "time",
            "time_unit",
            "time_origin",
            "card",
            "terminal",
            "amount",
            "label",
        ):
            if key in values:
                lines.append(f"{key}: {values[key]}  # {self.comments.get(key, '')}".rstrip(" #"))
            elif key in self.comments:
                lines.append(f"# {key}: not found - {self.comments[key]}")
        if self.mapping.features:
            lines.append(f"features:  # {self.comments.get('features', '')}")
            lines += [f"  - {name}" for name in self.mapping.features]
        for column, why in self.left_out.items():
            lines.append(f"# left out {column}: {why}")
        return "\n".join(lines) + "\n"


def read_sample(path: Path, rows: int = SAMPLE_ROWS) -> pd.DataFrame:
    """The header and the first ``rows`` rows of a CSV or Parquet file (the first of a folder)."""
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.suffix.lower() in {".csv", ".parquet"})
        if not files:
            raise DataValidationError(f"{path} holds no .parquet or .csv files")
        path = files[0]
    if not path.is_file():
        raise FileNotFoundError(f"no transaction file or directory at {path}")
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, nrows=rows)
    if path.suffix.lower() == ".parquet":
        batch = next(pq.ParquetFile(path).iter_batches(batch_size=rows), None)
        return pd.DataFrame() if batch is None else batch.to_pandas()
    raise DataValidationError(f"{path}: expected a .parquet or .csv file, not {path.suffix!r}")


def suggest_mapping(sample: pd.DataFrame) -> MappingSuggestion:
    """Guess each role from the column names and values of ``sample``."""
    columns = [str(c) for c in sample.columns]
    comments: dict[str, str] = {}
    chosen: dict[str, str] = {}
    for role in ("label", "amount", "time", "id", "card", "terminal"):
        taken = set(chosen.values())
        candidates = [
            c for c in columns if c not in taken and re.search(_NAMES[role], c, re.IGNORECASE)
        ]
        fitting = [c for c in candidates if _fits(role, sample[c])]
        if fitting:
            chosen[role] = fitting[0]
            comments[role] = _why(role, fitting[0], sample[fitting[0]])
        elif role in {"id", "card", "terminal"}:
            comments[role] = _absent(role)
    if "time" not in chosen or "amount" not in chosen:
        missing = [role for role in ("time", "amount") if role not in chosen]
        raise DataValidationError(
            f"no column looks like the {' or the '.join(missing)} among: {', '.join(columns)}; "
            "write the mapping by hand"
        )
    time_unit = _time_unit(sample[chosen["time"]])
    if time_unit is not None:
        comments["time_unit"] = _unit_comment(sample[chosen["time"]], time_unit)
    left_out: dict[str, str] = {}
    features = []
    for column in columns:
        if column in chosen.values():
            continue
        values = sample[column]
        if re.search(_NAMES["label"], column, re.IGNORECASE):
            left_out[column] = (
                "its name speaks of fraud: a feature made from the label would leak it"
            )
        elif not is_numeric_dtype(values) or values.dtype == bool:
            left_out[column] = f"not numeric ({values.dtype}); features must be numbers"
        elif values.nunique(dropna=True) <= 1:
            left_out[column] = "the same value in every sampled row"
        else:
            features.append(column)
    comments["features"] = f"the {len(features)} other numeric columns, as the model's own inputs"
    mapping = DatasetMapping(
        id=chosen.get("id"),
        time=chosen["time"],
        time_unit=time_unit,
        card=chosen.get("card"),
        terminal=chosen.get("terminal"),
        amount=chosen["amount"],
        label=chosen.get("label"),
        features=features,
    )
    return MappingSuggestion(mapping, comments, left_out)


def _fits(role: str, values: pd.Series) -> bool:
    present = values.dropna()
    if role == "label":
        return bool(len(present)) and set(pd.unique(present)).issubset({0, 1})
    if role == "amount":
        # mostly, not all: a stray negative amount is for reading the file to point out
        return is_numeric_dtype(values) and bool((present >= 0).mean() > 0.99)
    if role == "time":
        if is_datetime64_any_dtype(values) or is_numeric_dtype(values):
            return True
        parsed = pd.to_datetime(present.astype(str), errors="coerce", utc=True, format="ISO8601")
        return bool(len(parsed)) and parsed.notna().mean() > 0.95
    if role == "id":
        return present.is_unique and len(present) == len(values)
    return len(present) == len(values)


def _time_unit(values: pd.Series) -> str | None:
    if not is_numeric_dtype(values):
        return None
    largest = float(values.abs().max())
    return next((unit for unit, above in _EPOCH_UNITS if largest >= above), "s")


def _unit_comment(values: pd.Series, unit: str) -> str:
    if float(values.abs().max()) >= dict(_EPOCH_UNITS)[unit]:
        return f"numbers of this size are {unit} since 1970-01-01 (UTC)"
    return (
        "small numbers: read as seconds since the first payment; set time_origin to when that "
        "was (default 1970-01-01), so that days and hours of the week come out right"
    )


def _why(role: str, column: str, values: pd.Series) -> str:
    if role == "label":
        rate = float(values.mean())
        return f"holds only 0 and 1; {rate:.3%} of the sample is 1 (fraud)"
    if role == "amount":
        zeros = int((values == 0).sum())
        return f"numbers from {values.min():g} to {values.max():g}, {zeros} of them 0"
    if role == "time":
        return f"named like a time ({values.dtype})"
    if role == "id":
        return "unique in the sample: the transaction id"
    return f"named like a {role}: {values.nunique():,} distinct values in the sample"


def _absent(role: str) -> str:
    if role == "id":
        return "each row's number in the file becomes its transaction id"
    return f"the {role} features (counts, averages over windows) are left out"
