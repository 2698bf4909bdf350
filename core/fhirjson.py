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


def loads(data: str | bytes) -> Any:
    """Parse JSON text; raises ``simplejson.JSONDecodeError`` (a ``ValueError``)."""
    return simplejson.loads(data, parse_float=FhirDecimal)


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
