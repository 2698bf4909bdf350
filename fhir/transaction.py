"""Transaction and batch Bundles (https://hl7.org/fhir/R4/http.html#transaction).

A transaction is all or nothing: entries are processed POST, then PUT, then
GET, in one database transaction, ``urn:uuid`` full URLs and conditional
references are rewritten to the ids the server assigns, and any failing entry
rolls everything back. A batch runs each entry in its own savepoint.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from core.errors import BadRequest, FhirError, MethodNotAllowed
from fhir import audit
from fhir.access import Authorize, permit, permit_search
from fhir.search import parse_query
from fhir.store import Store, Written, criteria, spec_for
from fhir.validation import valid_id

_ORDER = {"POST": 0, "PUT": 1, "GET": 2}
_INTERACTION = {"POST": "create", "PUT": "update", "GET": "read"}


@dataclass
class Entry:
    """One parsed ``Bundle.entry``."""

    index: int
    method: str
    resource_type: str
    resource_id: str | None
    query: str
    resource: dict[str, Any] | None
    full_url: str | None
    if_none_exist: str | None
    if_match: str | None

    @property
    def interaction(self) -> str:
        if self.method == "GET":
            return "search-type" if self.resource_id is None else "read"
        return _INTERACTION[self.method]


@dataclass
class Context:
    """Who is asking and how results are shaped."""

    store: Store
    authorize: Authorize
    who: audit.Interaction
    base: str


def process(ctx: Context, bundle: Any) -> dict[str, Any]:
    """Run a transaction or batch Bundle and return its response Bundle."""
    kind = _bundle_type(bundle)
    raw = list(enumerate(bundle.get("entry", [])))
    if kind == "batch":
        return _batch(ctx, raw)
    entries = [_parse_entry(i, e) for i, e in raw]
    _check_full_urls(entries)
    for entry in entries:
        _permit(ctx, entry)
    return _transaction(ctx, entries)


def _permit(ctx: Context, entry: Entry) -> None:
    """The same gate as the REST routes, its refusal placed in the entry: a PUT that
    would create needs the create scope too, and a conditional create the search scope,
    as ``PUT /fhir/Type/id`` and ``If-None-Exist`` do."""
    needs = [entry.interaction]
    if entry.interaction == "update" and entry.resource_id is not None and \
            not ctx.store.exists(entry.resource_type, entry.resource_id):
        needs.append("create")
    searches = [entry.query] if entry.interaction == "search-type" else []
    if entry.method == "POST" and entry.if_none_exist:
        searches.append(entry.if_none_exist)
    try:
        for interaction in needs:
            permit(entry.resource_type, interaction, ctx.authorize)
        for query in searches:  # and each type its _has or chains read
            permit_search(entry.resource_type, parse_query(query), ctx.authorize)
    except FhirError as error:
        raise _located(error, entry) from error


def _check_full_urls(entries: list[Entry]) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.full_url in seen:
            raise BadRequest(f"fullUrl {entry.full_url} appears twice",
                             [f"Bundle.entry[{entry.index}].fullUrl"])
        if entry.full_url:
            seen.add(entry.full_url)


def _bundle_type(bundle: Any) -> str:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest("POST /fhir takes a Bundle", ["Bundle"])
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise BadRequest(f"Bundle.type must be transaction or batch, not {kind!r}",
                         ["Bundle.type"])
    if not isinstance(bundle.get("entry", []), list):
        raise BadRequest("Bundle.entry must be a list", ["Bundle.entry"])
    return str(kind)


def _parse_entry(index: int, raw: Any) -> Entry:
    where = f"Bundle.entry[{index}]"
    request = raw.get("request") if isinstance(raw, dict) else None
    if not isinstance(request, dict) or not isinstance(request.get("url"), str):
        raise BadRequest("Each entry needs request.method and request.url", [f"{where}.request"])
    method = str(request.get("method", "")).upper()
    if method not in _ORDER:
        raise MethodNotAllowed(f"{method or 'A missing method'} is not supported in a Bundle",
                               [f"{where}.request.method"])
    for name, value in (("fullUrl", raw.get("fullUrl")), ("request.ifNoneExist",
                        request.get("ifNoneExist")), ("request.ifMatch", request.get("ifMatch"))):
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{name} must be a string", [f"{where}.{name}"])
    path, _, query = request["url"].partition("?")
    parts = [p for p in path.split("/") if p]
    spec = spec_for(parts[0] if parts else "")
    if len(parts) > 2 or (len(parts) == 2 and parts[1].startswith(("_", "$"))):
        raise BadRequest(f"A Bundle entry's url is Type or Type/id, not {path!r} (history, "
                         "vread and operations are not served inside Bundles)",
                         [f"{where}.request.url"])
    if len(parts) == 2 and not valid_id(parts[1]):
        raise BadRequest(f"'{parts[1][:80]}' is not a FHIR id (datatypes.html#id)",
                         [f"{where}.request.url"])
    return Entry(index, method, spec.type, parts[1] if len(parts) > 1 else None, query,
                 raw.get("resource"), raw.get("fullUrl"), request.get("ifNoneExist"),
                 request.get("ifMatch"))


def _transaction(ctx: Context, entries: list[Entry]) -> dict[str, Any]:
    ids, targets = _assign_ids(ctx, entries)
    ctx.store.pending = frozenset(ids.values()) | {
        f"{e.resource_type}/{targets[e.index]}" for e in entries if e.index in targets}
    responses: dict[int, dict[str, Any]] = {}
    try:
        for entry in sorted(entries, key=_processing_order):
            try:
                responses[entry.index] = _run(ctx, _resolved(ctx, entry, ids), targets)
            except FhirError as error:
                raise _located(error, entry) from error
    finally:
        ctx.store.pending = frozenset()
    return _response_bundle("transaction-response",
                            _unique_full_urls([responses[e.index] for e in entries]))


def _unique_full_urls(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries that answer for a resource an earlier entry already carries (duplicate
    conditional creates) keep their response and location, not a second fullUrl or
    copy (bdl-7: fullUrl is unique within a Bundle)."""
    seen: set[str] = set()
    unique = []
    for entry in entries:
        url = entry.get("fullUrl")
        if url in seen:
            entry = {"response": entry["response"]}
        seen.add(url or "")
        unique.append(entry)
    return unique


def _processing_order(entry: Entry) -> tuple[int, int]:
    return _ORDER[entry.method], spec_for(entry.resource_type).write_rank


def _batch(ctx: Context, raw: list[tuple[int, Any]]) -> dict[str, Any]:
    """Each entry on its own: parsed, authorised and run in a savepoint."""
    responses = []
    for index, item in raw:
        savepoint = ctx.store.session.begin_nested()
        try:
            entry = _parse_entry(index, item)
            _permit(ctx, entry)
            responses.append(_run(ctx, entry, {}))
            savepoint.commit()
        except FhirError as error:
            savepoint.rollback()
            responses.append(_error_entry(_in_entry(error, index)))
    return _response_bundle("batch-response", responses)


def _assign_ids(ctx: Context, entries: list[Entry]) -> tuple[dict[str, str], dict[int, str]]:
    """Where each entry will be written, before anything is.

    Returns ``fullUrl -> Type/id`` (also holding each conditional reference's
    target) and ``entry index -> id`` for every POST. The entries are staged,
    one by one, in a savepoint that is rolled back, so a conditional create
    or a conditional reference sees the earlier entries of the same Bundle
    (two entries with the same ``ifNoneExist`` are one resource).
    """
    ids: dict[str, str] = {}
    targets: dict[int, str] = {}
    staging = ctx.store.session.begin_nested()
    try:
        for entry in entries:
            if entry.method == "PUT" and entry.full_url:
                ids[entry.full_url] = f"{entry.resource_type}/{entry.resource_id}"
            if entry.method == "PUT" and entry.resource_id:
                ctx.store.stage(entry.resource_type, entry.resource_id, entry.resource)
            if entry.method != "POST":
                continue
            found = _match(ctx, entry) if entry.if_none_exist else None
            targets[entry.index] = found["id"] if found else str(uuid.uuid4())
            if entry.full_url:
                ids[entry.full_url] = f"{entry.resource_type}/{targets[entry.index]}"
            if found is None:
                ctx.store.stage(entry.resource_type, targets[entry.index], entry.resource)
        for entry in entries:
            for ref in _conditional_refs(entry.resource):
                ids.setdefault(ref, _conditional_reference(ctx, ref, entry))
    finally:
        staging.rollback()
    return ids, targets


def _conditional_refs(node: Any) -> Iterator[str]:
    """The conditional references (``Type?query``) anywhere in ``node``."""
    if isinstance(node, list):
        for item in node:
            yield from _conditional_refs(item)
    elif isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and "?" in ref and not ref.startswith("urn:"):
            yield ref
        for value in node.values():
            if isinstance(value, dict | list):
                yield from _conditional_refs(value)


def _match(ctx: Context, entry: Entry) -> dict[str, Any] | None:
    try:
        return ctx.store.match_one(entry.resource_type, entry.if_none_exist or "")
    except FhirError as error:
        raise _located(error, entry) from error


def _resolved(ctx: Context, entry: Entry, ids: dict[str, str]) -> Entry:
    if entry.resource is None:
        return entry
    return replace(entry, resource=_rewrite(ctx, entry.resource, ids))


def _rewrite(ctx: Context, node: Any, ids: dict[str, str]) -> Any:
    """Copy of ``node`` with bundle-local and conditional references resolved."""
    if isinstance(node, list):
        return [_rewrite(ctx, item, ids) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: _rewrite(ctx, value, ids) for key, value in node.items()}
    ref = copy.get("reference")
    if isinstance(ref, str):
        if ref.startswith("urn:uuid:") and ref not in ids:
            raise BadRequest(f"Reference {ref} names no entry of this Bundle")
        copy["reference"] = ids.get(ref, ref)
    return copy


def _conditional_reference(ctx: Context, ref: str, entry: Entry) -> str:
    """The ``Type/id`` a conditional reference names: exactly one match, or a 400."""
    resource_type, query = ref.split("?", 1)
    try:
        params = criteria(query)
        spec = permit_search(resource_type, params, ctx.authorize)
        result = ctx.store.search(spec, params, count=2)
    except FhirError as error:
        raise _located(error, entry) from error
    if result.total != 1:
        raise _located(BadRequest(
            f"Conditional reference {ref} matches {result.total} resources"), entry)
    return f"{resource_type}/{result.matches[0]['id']}"


def _run(ctx: Context, entry: Entry, targets: dict[int, str]) -> dict[str, Any]:
    if entry.method == "GET":
        return _get(ctx, entry)
    if entry.method == "PUT":
        if entry.resource_id is None:
            raise BadRequest("PUT needs Type/id; conditional update is not supported")
        written = ctx.store.update(entry.resource_type, entry.resource_id, entry.resource,
                                   if_match=entry.if_match)
    else:
        written = _post(ctx, entry, targets.get(entry.index))
    _audit(ctx, entry, written.resource)
    return _write_entry(ctx.base, written)


def _post(ctx: Context, entry: Entry, new_id: str | None) -> Written:
    """Create at the id chosen for the entry; a conditional create whose target exists
    (found before, or written by an earlier entry of the Bundle) returns it."""
    if entry.if_none_exist and new_id:
        existing = _existing(ctx, entry.resource_type, new_id)
        if existing is not None:
            return Written(existing, created=False, existed=True)
    return ctx.store.create(entry.resource_type, entry.resource, resource_id=new_id,
                            if_none_exist=None if new_id else entry.if_none_exist)


def _existing(ctx: Context, resource_type: str, resource_id: str) -> dict[str, Any] | None:
    try:
        return ctx.store.read(resource_type, resource_id)
    except FhirError:
        return None


def _get(ctx: Context, entry: Entry) -> dict[str, Any]:
    if entry.resource_id is not None:
        resource = ctx.store.read(entry.resource_type, entry.resource_id)
        _audit(ctx, entry, resource)
        return {"resource": resource, "response": {"status": "200 OK"}}
    result = ctx.store.search(spec_for(entry.resource_type), parse_query(entry.query),
                              count=ctx.store.settings.page_size_default)
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": result.total,
              "entry": [{"fullUrl": f"{ctx.base}/{r['resourceType']}/{r['id']}", "resource": r,
                         "search": {"mode": "match"}} for r in result.matches]}
    return {"resource": bundle, "response": {"status": "200 OK"}}


def _audit(ctx: Context, entry: Entry, resource: dict[str, Any]) -> None:
    ref = f"{resource['resourceType']}/{resource['id']}/_history/{resource['meta']['versionId']}"
    what = replace(ctx.who, interaction=entry.interaction,
                   resource_type=entry.resource_type, entities=[ref])
    audit.record(ctx.store, what)


def _write_entry(base: str, written: Written) -> dict[str, Any]:
    resource = written.resource
    version = resource["meta"]["versionId"]
    status = "201 Created" if written.created else "200 OK"
    return {
        "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "response": {"status": status,
                     "location": f"{resource['resourceType']}/{resource['id']}/_history/{version}",
                     "etag": f'W/"{version}"', "lastModified": resource["meta"]["lastUpdated"]},
    }


def _error_entry(error: FhirError) -> dict[str, Any]:
    return {"response": {"status": str(error.status), "outcome": error.outcome()}}


def _located(error: FhirError, entry: Entry) -> FhirError:
    return _in_entry(error, entry.index)


def _in_entry(error: FhirError, index: int) -> FhirError:
    """``error`` with its expressions placed inside the Bundle entry."""
    prefix = f"Bundle.entry[{index}].resource"
    for issue in error.issues:
        issue.expression = [_inside(prefix, e) for e in issue.expression] or \
            [f"Bundle.entry[{index}]"]
    return error


def _inside(prefix: str, expression: str) -> str:
    return expression if expression.startswith("Bundle.") else \
        f"{prefix}.{expression.split('.', 1)[1]}" if "." in expression else prefix


def _response_bundle(kind: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": kind, "entry": entries}

