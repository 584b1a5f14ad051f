"""Durations as people write them: ``90m``, ``36h``, ``7d``, ISO 8601 ``PT36H``, or a number of days.

Split windows, the label delay and the feature windows are all durations: public fraud datasets
span hours or days, so whole days are too coarse a unit. A plain number still means days, which is
what every setting meant before durations. Durations are whole seconds: nothing in fraud-ray is
measured finer, and whole seconds keep feature names and window edges exact.
"""

from __future__ import annotations

import re
from datetime import timedelta

UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_COMPACT = re.compile(r"(\d+)\s*([wdhms])")
_ISO = re.compile(
    r"P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)


class DurationError(ValueError):
    """A text or number that is not a duration fraud-ray understands."""


def parse_duration(value: object) -> timedelta:
    """A ``timedelta`` from ``90m``, ``36h``, ``1d12h``, ``PT36H``, ``P7D``, an int (days) or a
    ``timedelta``; negative or sub-second durations are refused."""
    if isinstance(value, timedelta):
        duration = value
    elif isinstance(value, bool):
        raise DurationError(f"{value!r} is not a duration")
    elif isinstance(value, int):
        duration = timedelta(days=value)
    elif isinstance(value, float) and value.is_integer():
        duration = timedelta(days=int(value))
    elif isinstance(value, str):
        duration = _parse_text(value.strip())
    else:
        raise DurationError(
            f"{value!r} is not a duration: write e.g. 90m, 36h, 7d, PT36H, or a number of days"
        )
    if duration < timedelta(0):
        raise DurationError(f"{value!r}: a duration cannot be negative")
    if duration.microseconds:
        raise DurationError(f"{value!r}: durations are whole seconds")
    return duration


def _parse_text(text: str) -> timedelta:
    if re.fullmatch(r"[+-]?\d+", text):
        return timedelta(days=int(text))
    if text.upper().startswith("P"):
        found = _ISO.fullmatch(text.upper())
        if found is None or text.upper() in {"P", "PT"}:
            raise DurationError(
                f"{text!r} is not an ISO 8601 duration in weeks, days, hours, minutes and "
                "seconds (months and years have no fixed length), e.g. PT36H or P7D"
            )
        parts = {unit: float(amount) for unit, amount in found.groupdict().items() if amount}
        return timedelta(
            weeks=parts.get("w", 0),
            days=parts.get("d", 0),
            hours=parts.get("h", 0),
            minutes=parts.get("m", 0),
            seconds=parts.get("s", 0),
        )
    pieces = _COMPACT.findall(text.lower())
    if not pieces or "".join(n + u for n, u in pieces) != re.sub(r"\s+", "", text.lower()):
        raise DurationError(
            f"{text!r} is not a duration: write e.g. 90m, 36h, 7d, 1d12h, PT36H, or a number "
            "of days"
        )
    return timedelta(seconds=sum(int(number) * UNITS[unit] for number, unit in pieces))


def format_duration(duration: timedelta) -> str:
    """The shortest exact form in one unit: ``7d``, ``36h``, ``90m``; it parses back to itself.

    Weeks are written as days (``14d``, not ``2w``), so feature names keep the ``_7d`` and
    ``_30d`` they always had.
    """
    seconds = whole_seconds(duration)
    for unit in ("d", "h", "m"):
        if seconds and seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"


def describe_duration(duration: timedelta, *, bare_one: bool = False) -> str:
    """Words for a reason an analyst reads: ``1 day``, ``7 days``, ``90 minutes``; with
    ``bare_one``, a single unit is its bare name (``the previous day``)."""
    seconds = whole_seconds(duration)
    for unit, name in (("d", "day"), ("h", "hour"), ("m", "minute"), ("s", "second")):
        if seconds and seconds % UNITS[unit] == 0:
            count = seconds // UNITS[unit]
            if count == 1:
                return name if bare_one else f"1 {name}"
            return f"{count} {name}s"
    return "0 seconds"


def whole_seconds(duration: timedelta) -> int:
    return duration // timedelta(seconds=1)
