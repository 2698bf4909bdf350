"""Numbers read from query strings and paths, the same way on every route.

Flask-free, so analysis code (``imaging_core.rendering``) may use it too.
"""

from __future__ import annotations

import re

from core.errors import BadRequest

# ASCII only: str.isdigit() and int() also accept other scripts' digits ("\u0663" is 3).
_DIGITS = re.compile(r"[0-9]+")


def ascii_digits(value: object) -> bool:
    """Whether ``value`` is a string of ASCII digits only: the lexical form of a FHIR
    unsignedInt or positiveInt (datatypes.html#unsignedInt) and of DICOM DA, TM and IS
    digits (PS3.5 §6.2)."""
    return isinstance(value, str) and _DIGITS.fullmatch(value) is not None


def whole_number(raw: str, name: str, limit: int, minimum: int = 0) -> int:
    """``raw`` read as a whole number of ASCII digits, capped at ``limit``.

    FHIR integers (datatypes.html#integer) and DICOM IS and query numbers (PS3.5
    §6.2, PS3.18 §8.3.4.4) are ASCII ``[0-9]``; Python's ``int()`` would also take
    other scripts' digits and fail past 4,300 of them. A longer number than the cap
    needs is not converted at all. Raises ``BadRequest`` (400) naming ``name`` for
    anything else, or for a number below ``minimum``.
    """
    if not ascii_digits(raw):
        raise BadRequest(f"{name} must be a whole number in ASCII digits, not "
                         f"'{raw[:40]}'", [name])
    digits = raw.lstrip("0") or "0"
    number = limit if len(digits) > len(str(limit)) else min(int(digits), limit)
    if number < minimum:
        raise BadRequest(f"{name} must be at least {minimum}, not '{raw[:40]}'", [name])
    return number
