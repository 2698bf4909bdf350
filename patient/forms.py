"""The date-of-birth answer, read from the form (no Flask: a mapping of fields).

CONTRACT §7: one field ``birthDate``, ``YYYY-MM-DD``. The page's own form uses the
NHS.UK date input (``birthDate-day``, ``birthDate-month``, ``birthDate-year``;
https://service-manual.nhs.uk/design-system/components/date-input), which people
fill in more reliably than one text box; either is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

ENTER_DATE = "Enter your date of birth as numbers, for example 31 3 1980"
FIELD = "birthDate"


@dataclass(frozen=True)
class BirthDateAnswer:
    """What was entered (kept to show the form again) and the date, if it is one."""

    day: str
    month: str
    year: str
    value: date | None
    error: str | None = None

    @classmethod
    def blank(cls) -> BirthDateAnswer:
        """An empty form."""
        return cls("", "", "", None)


def read_birth_date(form: Mapping[str, str]) -> BirthDateAnswer:
    """The answer in ``form``: ``birthDate`` if given, else the three parts."""
    single = str(form.get(FIELD, "")).strip()
    if single:
        return _single(single)
    day, month, year = (str(form.get(f"{FIELD}-{part}", "")).strip()[:4]
                        for part in ("day", "month", "year"))
    return BirthDateAnswer(day, month, year, _parts(day, month, year),
                           None if _parts(day, month, year) else ENTER_DATE)


def _single(text: str) -> BirthDateAnswer:
    """``YYYY-MM-DD`` exactly (ISO 8601 extended calendar date, as FHIR ``date``)."""
    year, _, rest = text[:10].partition("-")
    month, _, day = rest.partition("-")
    value = _iso(text)
    return BirthDateAnswer(day, month, year, value, None if value else ENTER_DATE)


def _iso(text: str) -> date | None:
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _parts(day: str, month: str, year: str) -> date | None:
    if not (day.isascii() and day.isdigit() and month.isascii() and month.isdigit()
            and year.isascii() and year.isdigit() and len(year) == 4):
        return None
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None
