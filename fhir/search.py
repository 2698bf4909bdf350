"""FHIR search over the index tables (https://hl7.org/fhir/R4/search.html).

Supported: token (``code``, ``system|code``, ``|code``, ``system|``, ``:not``),
reference (``Type/id``, ``id``, absolute URLs, ``:Type``), date (prefixes
``eq ne lt le gt ge sa eb``), string (starts-with, ``:exact``,
``:contains``), ``:missing`` on all; ``_id``, ``_lastUpdated``; comma means
OR, a repeated parameter means AND; ``_count``/``_offset`` paging,
``_sort``, ``_include``, ``_revinclude``, ``_summary=count``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import ColumnElement, and_, bindparam, exists, func, not_, or_, select, true
from sqlalchemy.sql import Select
from sqlmodel import Session

from core import fhirjson
from core.errors import BadRequest, TooCostly
from fhir.dates import DateFormatError, date_range
from fhir.indexing import KEY_LIMIT, bounded, normalise_string
from fhir.models import (
    DateIndex,
    ReferenceIndex,
    ResourceRow,
    StringIndex,
    TokenIndex,
    table_of,
)
from fhir.ownership import OWNER_SYSTEM, visible
from fhir.registry import COMMON_PARAMS, CONTROL_PARAMS, REGISTRY, ResourceSpec, SearchParam

Params = list[tuple[str, str]]
_PREFIX = re.compile(r"^(eq|ne|lt|le|gt|ge|sa|eb)(?=[0-9])")
_INDEX_TABLE = {"token": table_of(TokenIndex), "reference": table_of(ReferenceIndex),
                "date": table_of(DateIndex), "string": table_of(StringIndex)}
RESOURCE = table_of(ResourceRow).c
TOKEN, REFERENCE, DATE, STRING = (_INDEX_TABLE[k].c for k in _INDEX_TABLE)
_SORT_COLUMN = {"token": "code", "date": "low", "string": "value", "reference": "target_id"}


# Bounds on one search (README "Limits"; CapabilityStatement rest.documentation). Each
# alternative becomes one SQL test: SQLite's expression depth (1,000) and PostgreSQL's
# bind parameters (65,535) are finite, and a planner facing thousands of ANDed
# subqueries does not come back.
MAX_PARAMS = 40  # name=value pairs, control parameters included
MAX_ALTERNATIVES = 100  # comma-separated values of one parameter
MAX_TOTAL_ALTERNATIVES = 200  # over the whole search
_LOAD_CHUNK = 500  # ids in one IN list when reading included resources
LIMITS_TEXT = (f"A search takes at most {MAX_PARAMS} parameters, {MAX_ALTERNATIVES} "
               f"comma-separated values in one parameter and {MAX_TOTAL_ALTERNATIVES} in all; "
               "more is refused with 400 (OperationOutcome code too-costly).")


@dataclass
class SearchResult:
    total: int
    matches: list[dict[str, Any]]
    included: list[dict[str, Any]] = field(default_factory=list)
    offset: int = 0
    count: int = 0
    ignored: list[str] = field(default_factory=list)  # unknown parameters, lenient only


def parse_query(query: str) -> Params:
    """Name/value pairs of a query string (``If-None-Exist`` or a URL's)."""
    return parse_qsl(query.lstrip("?"), keep_blank_values=True)


def run_search(session: Session, spec: ResourceSpec, params: Params, *, count: int,
               offset: int = 0, strict: bool = True, with_total: bool = True,
               owner: str | None = None) -> SearchResult:
    """Resources of ``spec.type`` matching the search parameters in ``params``.

    ``with_total=False`` skips the ``COUNT(*)`` for callers that only want
    the page (``total`` is then -1). ``owner`` is the requesting client (None: the
    server): an owner-only type's matches and includes are limited to its own
    (``fhir.ownership``), in the query itself so totals and pages agree.
    """
    check_bounds(params)
    criteria = [(n, v) for n, v in params if n not in CONTROL_PARAMS]
    ignored = [n for n, _ in criteria if not strict and not _known(spec, n)]
    where = [_criterion(spec, name, value, strict) for name, value in criteria
             if name not in ignored]
    if spec.owned and owner is not None:
        where.append(_criterion(spec, "_tag", f"{OWNER_SYSTEM}|{escape(owner)}", True))
    base = select(RESOURCE.content).where(RESOURCE.resource_type == spec.type, *where)
    total = session.execute(select(func.count()).select_from(base.subquery())).scalar_one() \
        if with_total else -1
    page = _sorted(base, spec, _values(params, "_sort")).offset(offset).limit(count)
    rows = session.execute(page).scalars().all() if count else []
    matches = [fhirjson.loads(content) for content in rows]
    included = [r for r in _includes(session, spec, params, matches) if visible(r, owner)]
    return SearchResult(total, matches, included, offset, count, ignored)


def matching(session: Session, spec: ResourceSpec, searches: list[Params],
             resource_id: str) -> list[bool]:
    """Whether ``spec.type/resource_id`` matches each of ``searches``, in one query.

    The same criteria as :func:`run_search` (control parameters ignored), each
    an ``EXISTS`` on the one resource, so a write can be matched against many
    standing searches (Subscription criteria) without a query apiece. The
    statement is built once per set of searches and reused (building the
    criteria costs more than running them).
    """
    if not searches:
        return []
    query = _matching_query(spec.type, tuple(tuple(params) for params in searches))
    found = session.execute(query, {"resource_id": resource_id}).one()
    return [bool(value) for value in found]


@lru_cache(maxsize=64)
def _matching_query(resource_type: str,
                    searches: tuple[tuple[tuple[str, str], ...], ...]) -> Select[Any]:
    spec = REGISTRY[resource_type]
    tests = []
    for params in searches:
        check_bounds(list(params))
        where = [_criterion(spec, name, value, True) for name, value in params
                 if name not in CONTROL_PARAMS]
        tests.append(exists().where(RESOURCE.resource_type == spec.type,
                                    RESOURCE.id == bindparam("resource_id"), *where))
    return select(*tests)  # type: ignore[return-value]  # one bool column per search


def check_bounds(params: Params) -> None:
    """400 for a search over the stated limits or holding a control character (NUL
    cannot even be compared with text on PostgreSQL): the URL, a POSTed form, an
    ``If-None-Exist`` header or a Bundle entry's url all end here."""
    for name, value in params:
        if fhirjson.CONTROL.search(name) or fhirjson.CONTROL.search(value):
            raise BadRequest("A search parameter holds a control character (below U+0020)",
                             [name[:64]])
    if len(params) > MAX_PARAMS:
        raise TooCostly(f"{len(params)} search parameters; {LIMITS_TEXT}")
    counts = [(name, len(_split(value))) for name, value in params]
    crowded = next(((n, c) for n, c in counts if c > MAX_ALTERNATIVES), None)
    if crowded is not None:
        raise TooCostly(f"{crowded[1]} values in '{crowded[0][:64]}'; {LIMITS_TEXT}",
                        [crowded[0][:64]])
    if sum(c for _, c in counts) > MAX_TOTAL_ALTERNATIVES:
        raise TooCostly(f"{sum(c for _, c in counts)} values in all; {LIMITS_TEXT}")


def _known(spec: ResourceSpec, name: str) -> bool:
    """Whether ``name`` (with any modifier or chain) names a parameter of ``spec``."""
    if name.startswith("_has:"):
        return True
    base = name.split(".", 1)[0].partition(":")[0]
    return base in COMMON_PARAMS or base in spec.params


def _values(params: Params, name: str) -> list[str]:
    return [v for n, v in params if n == name]


def _split(value: str, separator: str = ",") -> list[str]:
    """Parts between unescaped separators, escapes kept (search.html#escaping)."""
    return re.split(rf"(?<!\\){re.escape(separator)}", value)


def escape(value: str) -> str:
    """``value`` as a search parameter value that means exactly itself: ``\\``, ``,``,
    ``|`` and ``$`` escaped with a backslash (search.html#escaping)."""
    return re.sub(r"([\\,|$])", r"\\\1", value)


def _unescape(value: str) -> str:
    """``\\,`` ``\\|`` ``\\$`` and ``\\\\`` stand for the character itself."""
    return re.sub(r"\\([\\,|$])", r"\1", value)


def _criterion(spec: ResourceSpec, name: str, value: str, strict: bool) -> ColumnElement[bool]:
    if name.startswith("_has:"):
        return RESOURCE.id.in_(_reverse_chain(spec, name, value))
    head, dot, chain = name.partition(".")
    param_name, _, modifier = head.partition(":")
    if param_name in COMMON_PARAMS and not dot:
        return _common(param_name, modifier, value)
    param = spec.params.get(param_name)
    if param is None:
        if strict:
            raise BadRequest(f"Unknown search parameter '{param_name}' for {spec.type}",
                             [param_name])
        return true()
    if dot:
        return RESOURCE.id.in_(_chain(spec, param, modifier, chain, value))
    if modifier == "missing":
        return _missing(spec, param, value)
    inside = RESOURCE.id.in_(_ids_matching(spec, param, modifier, value))
    return not_(inside) if modifier == "not" else inside


def _ids_matching(spec: ResourceSpec, param: SearchParam, modifier: str,
                  value: str) -> Select[Any]:
    """Ids of ``spec.type`` whose ``param`` matches any comma-separated alternative."""
    table = _INDEX_TABLE[param.type].c
    alternatives = or_(*[_match(param, modifier, v) for v in _split(value)])
    return select(table.resource_id).where(
        table.resource_type == spec.type, table.param == param.name, alternatives)


def _target_ids(spec: ResourceSpec, name: str, value: str) -> Select[Any]:
    """Ids of ``spec.type`` matching ``name=value``, for a chain's last link."""
    param_name, _, modifier = name.partition(":")
    if param_name == "_id":
        return select(RESOURCE.id).where(RESOURCE.resource_type == spec.type,
                                         RESOURCE.id.in_([_unescape(v) for v in _split(value)]))
    param = spec.params.get(param_name)
    if param is None or modifier in ("missing", "not"):
        raise BadRequest(f"'{name}' cannot end a chain on {spec.type}", [name])
    return _ids_matching(spec, param, modifier, value)


def traversed_types(spec: ResourceSpec, params: Params) -> list[str]:
    """The other types a search of ``spec`` reads to decide its matches: the type of
    each ``_has`` and the target of each chain (search.html#has, #chaining).

    A caller must be allowed to search each of them too (``fhir.access.permit_search``):
    a match count, or any match at all, tells whether resources of that type exist.
    This parses names exactly as the search does (``_has_parts``, ``_chain_target``),
    so no traversal escapes it; a name the search would refuse is refused here.
    """
    found: dict[str, None] = {}
    for name, _ in params:
        if name in CONTROL_PARAMS:
            continue
        if name.startswith("_has:"):
            found[_has_parts(name)[0].type] = None
            continue
        head, dot, chain = name.partition(".")
        param_name, _, modifier = head.partition(":")
        param = spec.params.get(param_name)
        if dot and param is not None:  # an unknown one: 400, or ignored if lenient
            found[_chain_target(param, modifier, chain)] = None
    return list(found)


def _chain_target(param: SearchParam, target: str, chain: str) -> str:
    """The type a chain on ``param`` (with type modifier ``target``, perhaps empty)
    goes to; 400 for one that cannot be chained or whose type is not said."""
    if param.type != "reference":
        raise BadRequest(f"'{param.name}' is not a reference, so it cannot be chained",
                         [param.name])
    target = target or ("Patient" if param.name == "patient" else "")
    if target not in REGISTRY:
        raise BadRequest(f"Say which type '{param.name}' points to, as in "
                         f"'{param.name}:Patient.{chain}'", [param.name])
    if "." in chain:
        raise BadRequest("Only one link of chaining is supported", [param.name])
    return target


def _has_parts(name: str) -> tuple[ResourceSpec, SearchParam, str]:
    """``_has:Type:reference:parameter`` as the source type, its reference parameter
    and the parameter tested on the source (one level: a nested ``_has`` is a 400)."""
    parts = name.split(":")
    if len(parts) != 4 or parts[1] not in REGISTRY:
        raise BadRequest(f"'{name}' must be _has:Type:reference:parameter", [name])
    source = REGISTRY[parts[1]]
    link = source.params.get(parts[2])
    if link is None or link.type != "reference":
        raise BadRequest(f"'{parts[2]}' is not a reference parameter of {source.type}",
                         [name])
    return source, link, parts[3]


def _chain(spec: ResourceSpec, param: SearchParam, target: str, chain: str,
           value: str) -> Select[Any]:
    """search.html#chaining: ``subject:Patient.identifier=...`` (one link)."""
    target = _chain_target(param, target, chain)
    targets = _target_ids(REGISTRY[target], chain, value)
    return select(REFERENCE.resource_id).where(
        REFERENCE.resource_type == spec.type, REFERENCE.param == param.name,
        REFERENCE.target_type == target, REFERENCE.target_id.in_(targets))


def _reverse_chain(spec: ResourceSpec, name: str, value: str) -> Select[Any]:
    """search.html#has: ``_has:Observation:patient:code=...``."""
    source, link, last = _has_parts(name)
    sources = _target_ids(source, last, value)
    return select(REFERENCE.target_id).where(
        REFERENCE.resource_type == source.type, REFERENCE.param == link.name,
        REFERENCE.target_type == spec.type, REFERENCE.resource_id.in_(sources))


def _common(name: str, modifier: str, value: str) -> ColumnElement[bool]:
    if modifier:
        raise BadRequest(f"Modifier ':{modifier}' is not supported on {name}", [name])
    if name == "_id":
        return RESOURCE.id.in_([_unescape(v) for v in _split(value)])
    column = RESOURCE.last_updated
    return or_(*[_date_test(column, None, v) for v in _split(value)])


def _missing(spec: ResourceSpec, param: SearchParam, value: str) -> ColumnElement[bool]:
    if value not in ("true", "false"):
        raise BadRequest(f"':missing' takes true or false, not '{value}'", [param.name])
    table = _INDEX_TABLE[param.type].c
    present = exists().where(table.resource_type == spec.type,
                             table.resource_id == RESOURCE.id, table.param == param.name)
    return not_(present) if value == "true" else present


def _match(param: SearchParam, modifier: str, value: str) -> ColumnElement[bool]:
    if param.type == "token":
        return _token(param, modifier, value)
    if param.type == "reference":
        return _reference(param, modifier, value)
    if param.type == "date":
        _no_modifier(param, modifier)
        return _date_test(DATE.low, DATE.high, value)
    return _string(param, modifier, value)


def _no_modifier(param: SearchParam, modifier: str) -> None:
    if modifier:
        raise BadRequest(f"Modifier ':{modifier}' is not supported on '{param.name}'",
                         [param.name])


def _token(param: SearchParam, modifier: str, value: str) -> ColumnElement[bool]:
    if modifier not in ("", "not"):
        _no_modifier(param, modifier)
    parts = _split(value, "|")
    if len(parts) == 1:
        return TOKEN.code == bounded(_unescape(value))
    system, code = _unescape(parts[0]), _unescape("|".join(parts[1:]))
    system_test = TOKEN.system == bounded(system) if system else TOKEN.system.is_(None)
    return and_(system_test, TOKEN.code == bounded(code)) if code else system_test


def _reference(param: SearchParam, modifier: str, value: str) -> ColumnElement[bool]:
    parts = _unescape(value).split("/_history/")[0].rstrip("/").split("/")
    target_id = parts[-1]
    target_type = parts[-2] if len(parts) >= 2 else modifier or None
    if modifier and target_type != modifier:
        raise BadRequest(f"Reference modifier ':{modifier}' conflicts with '{value}'",
                         [param.name])
    if target_type is None and param.name == "patient":
        target_type = "Patient"
    if target_type is not None and target_type not in REGISTRY:
        raise BadRequest(f"'{target_type}' is not a resource type", [param.name])
    test = REFERENCE.target_id == bounded(target_id, KEY_LIMIT)
    return and_(test, REFERENCE.target_type == target_type) if target_type else test


def _string(param: SearchParam, modifier: str, value: str) -> ColumnElement[bool]:
    text = normalise_string(_unescape(value))
    if modifier == "exact":
        return STRING.value == text
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if modifier == "contains":
        return STRING.value.like(f"%{escaped}%", escape="\\")
    _no_modifier(param, modifier)
    return STRING.value.like(f"{escaped}%", escape="\\")


def _date_test(low: Any, high: Any, value: str) -> ColumnElement[bool]:
    """Compare an indexed range ``[low, high)`` (or a point when ``high`` is None)."""
    prefix_match = _PREFIX.match(value)
    prefix = prefix_match.group(1) if prefix_match else "eq"
    try:
        qlow, qhigh = date_range(value[len(prefix_match.group(1)):] if prefix_match else value)
    except DateFormatError as exc:
        raise BadRequest(str(exc)) from exc
    return _compare(prefix, low, low if high is None else high, high is None, qlow, qhigh)


def _compare(prefix: str, low: Any, high: Any, point: bool, qlow: datetime,
             qhigh: datetime) -> ColumnElement[bool]:
    above = low >= qhigh if point else high > qhigh
    from_low = low >= qlow if point else high > qlow
    tests = {
        "eq": and_(low >= qlow, low < qhigh if point else high <= qhigh),
        "lt": low < qlow, "le": low < qhigh, "gt": above, "ge": from_low,
        "sa": low >= qhigh, "eb": low < qlow if point else high <= qlow,
    }
    return not_(tests["eq"]) if prefix == "ne" else tests[prefix]


def _sorted(query: Select[Any], spec: ResourceSpec, sorts: list[str]) -> Select[Any]:
    keys = [key for value in sorts for key in value.split(",") if key]
    order = [_sort_key(spec, key) for key in keys]
    return query.order_by(*order, RESOURCE.last_updated, RESOURCE.id)


def _sort_key(spec: ResourceSpec, key: str) -> Any:
    name = key.lstrip("-")
    if name in ("_id", "_lastUpdated"):
        column: Any = RESOURCE.id if name == "_id" else RESOURCE.last_updated
    elif name in spec.params:
        param = spec.params[name]
        table = _INDEX_TABLE[param.type].c
        column = (select(func.min(table[_SORT_COLUMN[param.type]]))
                  .where(table.resource_type == spec.type, table.resource_id == RESOURCE.id,
                         table.param == name)
                  .scalar_subquery())
    else:
        raise BadRequest(f"Cannot sort {spec.type} by '{name}'", ["_sort"])
    return column.desc() if key.startswith("-") else column.asc()


def _includes(session: Session, spec: ResourceSpec, params: Params,
              matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    forward = [_include_parts(v, "_include") for v in _values(params, "_include")]
    reverse = [_include_parts(v, "_revinclude") for v in _values(params, "_revinclude")]
    ids = [m["id"] for m in matches]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for source, param, target in forward if ids else []:
        if source != spec.type:
            continue
        refs = select(REFERENCE.target_type, REFERENCE.target_id).where(
            REFERENCE.resource_type == source, REFERENCE.param == param,
            REFERENCE.resource_id.in_(ids))
        if target:
            refs = refs.where(REFERENCE.target_type == target)
        _load_into(session, found, [(t, i) for t, i in session.execute(refs)])
    for source, param, _ in reverse if ids else []:
        sources = select(REFERENCE.resource_id).where(
            REFERENCE.resource_type == source, REFERENCE.param == param,
            REFERENCE.target_type == spec.type, REFERENCE.target_id.in_(ids))
        _load_into(session, found, [(source, rid) for rid in session.execute(sources).scalars()])
    matched = {(spec.type, i) for i in ids}
    return [r for k, r in found.items() if k not in matched]


def _include_parts(value: str, control: str) -> tuple[str, str, str | None]:
    parts = value.split(":")
    if len(parts) not in (2, 3) or parts[0] not in REGISTRY or \
            parts[1] not in REGISTRY[parts[0]].params:
        raise BadRequest(f"{control}={value} does not name a known reference parameter",
                         [control])
    if REGISTRY[parts[0]].params[parts[1]].type != "reference":
        raise BadRequest(f"{control}={value} is not a reference parameter", [control])
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _load_into(session: Session, found: dict[tuple[str, str], dict[str, Any]],
               keys: list[tuple[str, str]]) -> None:
    """Read the resources ``keys`` name into ``found``, one ``IN`` list per type and
    at most ``_LOAD_CHUNK`` ids a query (no OR chain deeper than SQLite parses)."""
    wanted: dict[str, list[str]] = {}
    for resource_type, resource_id in dict.fromkeys(k for k in keys if k not in found):
        wanted.setdefault(resource_type, []).append(resource_id)
    for resource_type, ids in wanted.items():
        for start in range(0, len(ids), _LOAD_CHUNK):
            rows = session.execute(select(RESOURCE.id, RESOURCE.content).where(
                RESOURCE.resource_type == resource_type,
                RESOURCE.id.in_(ids[start:start + _LOAD_CHUNK])))
            for resource_id, content in rows:
                found[(resource_type, resource_id)] = fhirjson.loads(content)
