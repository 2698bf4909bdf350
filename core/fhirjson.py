"""FHIR JSON in and out, with decimals kept as they were sent.

FHIR decimals keep their precision (https://hl7.org/fhir/R4/datatypes.html#decimal):
``45.10`` is not ``45.1``, and ``0.000010`` is not ``1e-05``. JSON numbers with
a fraction or an exponent are read as :class:`FhirDecimal`, a ``Decimal`` that
remembers its text, and written back as that text (``simplejson`` with
``use_decimal``). Integers stay ``int``; numbers the server computes are
ordinary floats.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import simplejson


class FhirDecimal(Decimal):
    """A decimal read from JSON that writes back exactly as it was read."""

    _text: str

    def __new__(cls, text: str) -> FhirDecimal:
        value = super().__new__(cls, text)
        value._text = text
        return value

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"FhirDecimal('{self._text}')"


# Bounds on JSON numbers, stated in the README ("Limits"): FHIR integers are 32-bit and
# decimals need 18 significant digits (datatypes.html#decimal), so 64 characters is
# ample; an exponent beyond an IEEE double's range is refused before any arithmetic
# (or Python's 4300-digit int() limit) meets it.
MAX_NUMBER_CHARS = 64
MAX_DECIMAL_EXPONENT = 308


class NumberTooLarge(ValueError):
    """A JSON number longer or larger than this server reads."""


def loads(data: str | bytes) -> Any:
    """Parse JSON text; raises ``simplejson.JSONDecodeError`` or :class:`NumberTooLarge`
    (both ``ValueError``)."""
    return simplejson.loads(data, parse_float=parse_decimal, parse_int=parse_integer)


def parse_integer(text: str) -> int:
    """A JSON integer's value; :class:`NumberTooLarge` past the bounds above."""
    _check_length(text)
    return int(text)


def parse_decimal(text: str) -> FhirDecimal:
    """A JSON number with a fraction or exponent, kept as sent; :class:`NumberTooLarge`
    past the bounds above."""
    _check_length(text)
    value = FhirDecimal(text)
    if value and abs(value.adjusted()) > MAX_DECIMAL_EXPONENT:
        raise NumberTooLarge(f"The number {text} is beyond 1e{MAX_DECIMAL_EXPONENT} in size "
                             "or precision")
    return value


def _check_length(text: str) -> None:
    if len(text) > MAX_NUMBER_CHARS:
        raise NumberTooLarge(f"A number of {len(text)} characters is longer than the "
                             f"{MAX_NUMBER_CHARS} read here")


def dumps(value: Any, sort_keys: bool = False) -> str:
    """Compact JSON, decimals as they were read, non-ASCII as is."""
    return simplejson.dumps(value, use_decimal=True, separators=(",", ":"),
                            ensure_ascii=False, sort_keys=sort_keys)


# FHIR R4 datatypes.html#string: no code points below 32 but tab, CR and LF. NUL
# also cannot be stored in PostgreSQL text, so it must never get that far.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def control_character_at(value: Any, path: str = "") -> str | None:
    """The path (``name[0].family``) of the first string, or key, in parsed JSON that
    holds a control character FHIR strings forbid; None when there is none."""
    if isinstance(value, str):
        return path if CONTROL.search(value) else None
    items = value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        here = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else key
        if isinstance(key, str) and CONTROL.search(key):
            return here
        found = control_character_at(item, here)
        if found is not None:
            return found
    return None
