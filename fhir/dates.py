"""FHIR date, dateTime and instant values as half-open UTC ranges.

A value stands for the whole interval its precision implies
(https://hl7.org/fhir/R4/search.html#date): ``2026`` is the year,
``2026-11-23`` the day, a time to the second that second. Ranges are aware
UTC datetimes ``[low, high)``; values without a time zone are taken as UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

# ASCII digits only (re.ASCII): FHIR dates are ``[0-9]``, and ``\d`` alone would also
# read Arabic-Indic or Devanagari digits as a year.
_DATE = re.compile(
    r"^(?P<y>\d{4})(-(?P<m>\d{2})(-(?P<d>\d{2})"
    r"(T(?P<H>\d{2}):(?P<M>\d{2})(:(?P<S>\d{2})(?P<f>\.\d+)?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$",
    re.ASCII,
)


class DateFormatError(ValueError):
    """A string that is not a FHIR date, dateTime or instant."""


# The ends of the range Python can represent: an interval reaching past them
# (the year 9999, or year 1 at +14:00) is clamped instead of overflowing.
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


def date_range(text: str) -> tuple[datetime, datetime]:
    """The UTC interval ``[low, high)`` that ``text`` denotes."""
    match = _DATE.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise DateFormatError(f"'{text}' is not a FHIR date or dateTime")
    parts = match.groupdict()
    try:
        low, step = _low_and_step(parts)
    except ValueError as exc:
        raise DateFormatError(f"'{text}' is not a valid date: {exc}") from exc
    return low, _add(low, step)


def _low_and_step(parts: dict[str, str | None]) -> tuple[datetime, str | timedelta]:
    year = int(parts["y"] or 0)
    if parts["m"] is None:
        return datetime(year, 1, 1, tzinfo=UTC), "year"
    month = int(parts["m"])
    if parts["d"] is None:
        return datetime(year, month, 1, tzinfo=UTC), "month"
    day = int(parts["d"])
    if parts["H"] is None:
        return datetime(year, month, day, tzinfo=UTC), timedelta(days=1)
    local = datetime(year, month, day, int(parts["H"]), int(parts["M"] or 0),
                     int(parts["S"] or 0), _micros(parts["f"]), tzinfo=UTC)
    step = _time_step(parts)
    return _to_utc(local, parts["tz"]), step


def _time_step(parts: dict[str, str | None]) -> timedelta:
    if parts["S"] is None:
        return timedelta(minutes=1)
    if parts["f"] is None:
        return timedelta(seconds=1)
    return timedelta(microseconds=max(1, 10 ** (6 - min(len(parts["f"]) - 1, 6))))


def _micros(fraction: str | None) -> int:
    return int((fraction[1:] + "000000")[:6]) if fraction else 0


def _to_utc(local: datetime, tz: str | None) -> datetime:
    if tz in (None, "Z"):
        return local
    sign = 1 if tz[0] == "+" else -1
    offset = timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    try:
        return local - sign * offset
    except OverflowError:
        return EARLIEST if sign > 0 else LATEST


def _add(low: datetime, step: str | timedelta) -> datetime:
    try:
        if step == "year":
            return low.replace(year=low.year + 1)
        if step == "month":
            return low.replace(year=low.year + low.month // 12, month=low.month % 12 + 1)
        assert isinstance(step, timedelta)
        return low + step
    except (OverflowError, ValueError):
        return LATEST


def now_utc() -> datetime:
    """The current UTC time, truncated to milliseconds (FHIR instant precision here)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def instant(moment: datetime) -> str:
    """A FHIR instant for a UTC datetime."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
