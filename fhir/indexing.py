"""Turn a resource into search index rows for its declared parameters."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlmodel import SQLModel

from fhir.dates import EARLIEST, LATEST, DateFormatError, date_range
from fhir.models import DateIndex, ReferenceIndex, StringIndex, TokenIndex
from fhir.paths import walk
from fhir.registry import SearchParam

STRING_LIMIT = 255  # token system and code, string value (fhir/models.py)
KEY_LIMIT = 64  # reference target type and id: a FHIR id is at most 64 (datatypes.html#id)


IndexRows = dict[type[SQLModel], list[dict[str, Any]]]
TABLE_FOR: dict[str, type[SQLModel]] = {"token": TokenIndex, "reference": ReferenceIndex,
                                         "date": DateIndex, "string": StringIndex}


def index_rows(resource_type: str, resource_id: str, params: dict[str, SearchParam],
               resource: dict[str, Any]) -> IndexRows:
    """All index rows for ``resource``, as plain values per index table (for executemany)."""
    rows: IndexRows = {}
    for param in params.values():
        key = {"resource_type": resource_type, "resource_id": resource_id, "param": param.name}
        found = rows.setdefault(TABLE_FOR[param.type], [])
        for path in param.paths:
            for value, _ in walk(resource, path, resource_type):
                found.extend({**key, **values} for values in _values_for(param.type, value))
    return {table: found for table, found in rows.items() if found}


def _values_for(kind: str, value: Any) -> Iterator[dict[str, Any]]:
    if kind == "token":
        for system, code in tokens(value):
            yield {"system": bounded(system) if system else system, "code": bounded(code)}
    elif kind == "reference":
        target = reference_target(value)
        if target:  # another server's over-long type or id: found by its exact self
            yield {"target_type": bounded(target[0], KEY_LIMIT),
                   "target_id": bounded(target[1], KEY_LIMIT)}
    elif kind == "date":
        for low, high in _date_ranges(value):
            yield {"low": low, "high": high}
    elif kind == "string":
        for text in _strings(value):
            yield {"value": normalise_string(text)}


def tokens(value: Any) -> Iterator[tuple[str | None, str]]:
    """``(system, code)`` pairs of a code, Coding, CodeableConcept or Identifier."""
    if isinstance(value, bool):
        yield None, "true" if value else "false"
    elif isinstance(value, str | int):
        yield None, str(value)
    elif isinstance(value, dict):
        system = value.get("system") if isinstance(value.get("system"), str) else None
        if isinstance(value.get("coding"), list):
            for coding in value["coding"]:
                yield from tokens(coding) if isinstance(coding, dict) else ()
        elif isinstance(value.get("code"), str | int):
            yield system, str(value["code"])
        elif isinstance(value.get("value"), str | int):  # Identifier
            yield system, str(value["value"])


def reference_target(value: Any) -> tuple[str, str] | None:
    """``(type, id)`` of a literal relative or absolute reference, else None."""
    ref = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(ref, str) or ref.startswith(("urn:", "#")):
        return None
    parts = ref.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) < 2 or not parts[-2][:1].isupper():
        return None
    return parts[-2], parts[-1]


def _date_ranges(value: Any) -> Iterator[tuple[datetime, datetime]]:
    try:
        if isinstance(value, str):
            yield date_range(value)
        elif isinstance(value, dict) and ("start" in value or "end" in value):
            yield _period(value)
    except DateFormatError:
        return


def _period(value: dict[str, Any]) -> tuple[datetime, datetime]:
    start, end = value.get("start"), value.get("end")
    low = date_range(start)[0] if start is not None else EARLIEST  # open start
    high = date_range(end)[1] if end is not None else LATEST  # open end
    return low, high


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):  # HumanName, Address: every text part
        for part in ("text", "family", "given", "prefix", "suffix", "line", "city"):
            item = value.get(part)
            for text in item if isinstance(item, list) else [item]:
                if isinstance(text, str):
                    yield text


def normalise_string(text: str) -> str:
    """Case- and accent-insensitive, whitespace-collapsed, bounded to the column.

    search.html#string: "Zoë" matches ``zoe`` (Unicode NFKD with combining
    marks removed, then case-folded).
    """
    return bounded(folded(text))


def folded(text: str) -> str:
    """``text`` without case, accents or repeated whitespace: "Zoë  MÜLLER" -> "zoe muller"
    (Unicode NFKD with combining marks removed, then case-folded)."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.casefold().split())


def bounded(value: str, limit: int = STRING_LIMIT) -> str:
    """``value`` if it fits a column of ``limit`` characters, else a prefix, ``#`` and
    a SHA-256 (hex, cut to half the column when the column is short) of the whole.

    Applied alike when indexing and when searching, so a 300-character value
    is found by its exact self and never by another value that shares its
    first 255 characters.
    """
    if len(value) <= limit:
        return value
    whole = hashlib.sha256(value.encode("utf-8")).hexdigest()
    digest = whole if limit > 2 * len(whole) else whole[:limit // 2]
    return f"{value[:limit - len(digest) - 1]}#{digest}"
