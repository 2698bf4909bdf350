"""The FHIR R4 REST blueprint at ``/fhir`` (https://hl7.org/fhir/R4/http.html)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, g, request
from werkzeug.http import http_date, parse_options_header

from auth.guard import current_principal, require
from core import fhirjson
from core.errors import (
    BadRequest,
    Conflict,
    FhirError,
    MalformedJson,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    Unprocessable,
    UnsupportedMediaType,
    information,
)
from core.params import whole_number
from core.web import app_settings, app_version, db, fhir_response
from fhir import audit, transaction
from fhir.access import permit, permit_search
from fhir.capability import capability_statement
from fhir.dates import DateFormatError, date_range
from fhir.registry import OPERATIONS, REGISTRY, Invocation, ResourceSpec
from fhir.search import SearchResult, parse_query
from fhir.store import Store, Written
from fhir.validation import mandatory_elements, valid_id, validate_resource

bp = Blueprint("fhir", __name__, url_prefix="/fhir")
JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir"}
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
# A JSON body under a JSON type is a JSON Patch when it is an array, else a merge patch.
PATCH_TYPES = {JSON_PATCH, MERGE_PATCH} | JSON_TYPES
FORMAT_ALIASES = JSON_TYPES | {"json"}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _base() -> str:
    return app_settings().public_url + "/fhir"


def _store() -> Store:
    what = g.get("interaction")
    return Store(db(), app_settings(), require,
                 actor=what.client_id if what is not None else None)


@bp.before_request
def _negotiate() -> None:
    g.interaction = audit.Interaction("unknown", address=request.remote_addr)
    fmt = request.args.get("_format")
    if fmt is not None and fmt not in FORMAT_ALIASES:
        raise NotAcceptable(f"_format={fmt} is not served; use application/fhir+json")
    if _raw_binary_read():
        return  # a Binary is served in its own content type (binary.html)
    accepted = request.accept_mimetypes
    if accepted.provided and not any(accepted[t] for t in JSON_TYPES):
        raise NotAcceptable("Only application/fhir+json is served")


def _raw_binary_read() -> bool:
    """A read of a Binary whose Accept names no FHIR JSON type (its own type, or */*)."""
    parts = request.path.rstrip("/").split("/")
    if request.method != "GET" or len(parts) != 4 or parts[2] != "Binary" \
            or parts[3].startswith("_"):
        return False
    accepted = request.accept_mimetypes
    return accepted.provided and not any(t in JSON_TYPES for t, _ in accepted)


@bp.after_request
def _audit_failure(response: Response) -> Response:
    """Failed interactions are audited too, after their changes were rolled back."""
    what = g.get("interaction")
    if response.status_code < 400 or what is None or what.interaction == "capabilities":
        return response
    audit.record_failure(_store(), what, response.status_code)
    return response


def _allow(resource_type: str, interaction: str) -> ResourceSpec:
    """Authenticate, then pass the one gate (registry, then scope) for ``interaction``."""
    principal = current_principal()
    g.interaction.client_id = principal.client_id
    g.interaction.interaction = interaction
    g.interaction.resource_type = resource_type
    spec = permit(resource_type, interaction, require)
    g.interaction.resource_type = spec.type
    return spec


def _commit(*resources: dict[str, Any]) -> None:
    """Audit the interaction in the transaction of its changes, then commit."""
    g.interaction.entities += [_versioned_ref(r) for r in resources]
    store = _store()
    audit.record(store, g.interaction)
    store.session.commit()
    g.interaction = None


def _versioned_ref(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}/_history/{resource['meta']['versionId']}"


def _body() -> Any:
    mimetype, _ = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type must be application/fhir+json, not {mimetype or 'missing'}")
    return _json(request.get_data(cache=True))


def _json(data: bytes) -> Any:
    if not data:
        raise BadRequest("The request has no body")
    try:
        body = fhirjson.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedJson(f"The body is not valid JSON: {exc}") from exc
    root = body.get("resourceType") if isinstance(body, dict) else None
    where = fhirjson.control_character_at(body, root if isinstance(root, str) else "")
    if where is not None:
        raise Unprocessable("A FHIR string holds a control character (below U+0020, not "
                            "tab, CR or LF), which datatypes.html#string forbids", [where])
    return body


def _prefer(name: str) -> str | None:
    for part in request.headers.get("Prefer", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip('"')
    return None


def _resource_response(resource: dict[str, Any], status: int = 200,
                       honour_prefer: bool = False) -> Response:
    meta = resource["meta"]
    headers = {"ETag": f'W/"{meta["versionId"]}"',
               "Last-Modified": http_date(datetime.fromisoformat(meta["lastUpdated"]))}
    if status == 201:
        headers["Location"] = (f"{_base()}/{resource['resourceType']}/{resource['id']}"
                               f"/_history/{meta['versionId']}")
    wanted = _prefer("return") if honour_prefer else None
    if wanted == "minimal":
        return fhir_response(None, status, headers)
    if wanted == "OperationOutcome":
        return fhir_response(information(f"{_versioned_ref(resource)} stored"), status, headers)
    return fhir_response(resource, status, headers)


def _written_response(written: Written) -> Response:
    return _resource_response(written.resource, 201 if written.created else 200,
                              honour_prefer=True)


@bp.get("/metadata")
def metadata() -> Response:
    g.interaction = None
    return fhir_response(capability_statement(_base(), app_version()))


@bp.post("")
@bp.post("/")
def bundle() -> Response:
    principal = current_principal()
    body = _body()
    kind = body.get("type") if isinstance(body, dict) else None
    g.interaction.client_id = principal.client_id
    g.interaction.interaction = kind if kind in ("transaction", "batch") else "transaction"
    ctx = transaction.Context(_store(), require, g.interaction, _base())
    result = transaction.process(ctx, body)
    db().commit()
    g.interaction = None
    return fhir_response(result)


@bp.post("/<resource_type>")
def create(resource_type: str) -> Response:
    spec = _allow(resource_type, "create")
    if_none_exist = request.headers.get("If-None-Exist")
    if if_none_exist is not None:  # a conditional create searches (http.html#ccreate)
        permit_search(spec.type, parse_query(if_none_exist), require)
    written = _store().create(spec.type, _body(), if_none_exist=if_none_exist)
    _commit(written.resource)
    return _written_response(written)


@bp.put("/<resource_type>/<resource_id>")
def update(resource_type: str, resource_id: str) -> Response:
    spec = _allow(resource_type, "update")
    store = _store()
    if not store.exists(spec.type, resource_id):
        permit(spec.type, "create", require)  # update-as-create needs create too
    written = store.update(spec.type, resource_id, _body(),
                           if_match=request.headers.get("If-Match"))
    _commit(written.resource)
    return _written_response(written)


@bp.get("/<resource_type>/<resource_id>")
def read(resource_type: str, resource_id: str) -> Response:
    spec = _allow(resource_type, "read")
    resource = _store().read(spec.type, resource_id)
    _commit(resource)
    if spec.type == "Binary" and _raw_binary_read():
        return _raw(resource)
    return _resource_response(resource)


def _raw(binary: dict[str, Any]) -> Response:
    """The Binary's own bytes in its own content type, if the client accepts that type."""
    content_type = str(binary.get("contentType") or "application/octet-stream")
    if not request.accept_mimetypes[content_type]:
        raise NotAcceptable(f"This Binary is {content_type}; ask for that or */*, or for "
                            "application/fhir+json")
    try:
        data = base64.b64decode(binary.get("data") or "", validate=True)
    except ValueError as exc:
        raise Unprocessable(f"Binary/{binary['id']} holds no valid base64 data") from exc
    return Response(data, 200, {"Content-Type": content_type,
                                "ETag": f'W/"{binary["meta"]["versionId"]}"'})


@bp.patch("/<resource_type>/<resource_id>")
def patch(resource_type: str, resource_id: str) -> Response:
    spec = _allow(resource_type, "patch")
    permit(spec.type, "read", require)  # test, copy and move read it, as does the answer
    mimetype, _ = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype not in PATCH_TYPES:
        raise UnsupportedMediaType(f"PATCH takes {JSON_PATCH} (RFC 6902) or "
                                   f"{MERGE_PATCH} (RFC 7386), not {mimetype or 'none'}")
    document = _json(request.get_data(cache=True))
    shape = {JSON_PATCH: (list, "a JSON array of operations"),
             MERGE_PATCH: (dict, "a JSON object")}.get(mimetype)
    if shape and not isinstance(document, shape[0]):  # plain JSON: either, as fhirpy sends
        raise BadRequest(f"A {mimetype} body is {shape[1]}")
    written = _store().patch(spec.type, resource_id, document,
                             if_match=request.headers.get("If-Match"))
    _commit(written.resource)
    return _written_response(written)


@bp.delete("/<resource_type>/<resource_id>")
def delete(resource_type: str, resource_id: str) -> Response:
    spec = _allow(resource_type, "delete")
    store = _store()
    _delete(store, spec.type, resource_id)
    return Response(status=204)


def _delete(store: Store, resource_type: str, resource_id: str) -> None:
    store.delete(resource_type, resource_id)
    g.interaction.entities.append(f"{resource_type}/{resource_id}")
    _commit()


@bp.delete("/<resource_type>")
def conditional_delete(resource_type: str) -> Response:
    """Delete the one resource matching the query (http.html#cdelete); none: nothing."""
    spec = _allow(resource_type, "delete")
    permit_search(spec.type, parse_query(_query()), require)
    store = _store()
    found = store.match_one(spec.type, _query())
    if found is not None:
        _delete(store, spec.type, found["id"])
    else:
        _commit()
    return Response(status=204)


@bp.put("/<resource_type>")
def conditional_update(resource_type: str) -> Response:
    """Update the one resource matching the query, or create (http.html#cond-update)."""
    spec = _allow(resource_type, "update")
    permit_search(spec.type, parse_query(_query()), require)
    store = _store()
    body = _body()
    if not isinstance(body, dict):
        raise BadRequest(f"The body must be a {spec.type} resource", [spec.type])
    given = body.get("id")
    if given is not None and not valid_id(given):
        raise BadRequest("The body's id is not a FHIR id (datatypes.html#id)", [f"{spec.type}.id"])
    found = store.match_one(spec.type, _query())
    if found is None:
        permit(spec.type, "create", require)
        if given and store.exists(spec.type, given):  # it exists but does not match
            raise Conflict(f"{spec.type}/{given} exists but does not match the criteria")
        written = store.update(spec.type, given, body) if given else \
            store.create(spec.type, body)
    else:
        if given not in (None, found["id"]):
            raise BadRequest(f"The body's id is not that of the matching {spec.type} "
                             f"({found['id']})", [f"{spec.type}.id"])
        written = store.update(spec.type, found["id"], {**body, "id": found["id"]},
                               if_match=request.headers.get("If-Match"))
    _commit(written.resource)
    return _written_response(written)


def _query() -> str:
    return request.query_string.decode("utf-8", "replace")


@bp.get("/<resource_type>/<resource_id>/_history/<version_id>")
def vread(resource_type: str, resource_id: str, version_id: str) -> Response:
    spec = _allow(resource_type, "vread")
    resource = _store().vread(spec.type, resource_id, version_id)
    _commit(resource)
    return _resource_response(resource)


@bp.get("/<resource_type>/<resource_id>/_history")
def history(resource_type: str, resource_id: str) -> Response:
    spec = _allow(resource_type, "history-instance")
    versions = _store().history(spec.type, resource_id)
    g.interaction.entities.append(f"{spec.type}/{resource_id}")
    _commit()
    self_link = [{"relation": "self", "url": f"{_base()}/{spec.type}/{resource_id}/_history"}]
    return fhir_response(_history_bundle(versions, len(versions), self_link))


@bp.get("/<resource_type>/_history")
def type_history(resource_type: str) -> Response:
    spec = _allow(resource_type, "history-type")
    return _history_of([spec.type], f"{spec.type}/_history")


@bp.get("/_history")
def system_history() -> Response:
    """Every type the token may read (history-system, http.html#history)."""
    principal = current_principal()
    g.interaction.client_id = principal.client_id
    g.interaction.interaction = "history-system"
    readable = [t for t, spec in REGISTRY.items() if "history-type" in spec.interactions
                and principal.scopes.allows(t, "history-type")]
    if not readable:
        require("Patient", "history-type")  # the 403 names the scope that is missing
    return _history_of(readable, "_history")


def _history_of(resource_types: list[str], path: str) -> Response:
    """A page of history, newest first, with self, next and previous links (_offset)."""
    params = list(request.args.items(multi=True))
    unknown = [n for n, _ in params if n not in ("_count", "_since", "_offset", "_format")]
    if unknown:
        raise BadRequest(f"History takes _count, _since and _offset, not {unknown[0]}",
                         [unknown[0]])
    settings = app_settings()
    count = _int_param(params, "_count", settings.page_size_default, settings.page_size_max)
    offset = _int_param(params, "_offset", 0, 10**9)
    since = _since(request.args.get("_since"))
    versions = _store().type_history(resource_types, since, count + 1, offset)
    _commit()
    kept = [(n, v) for n, v in params if n not in ("_offset", "_count")]
    links = _page_links(path, kept, count, offset, more=len(versions) > count)
    return fhir_response(_history_bundle(versions[:count], None, links))


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return date_range(value)[0]
    except DateFormatError as exc:
        raise BadRequest(f"_since must be an instant: {exc}", ["_since"]) from exc


def _history_bundle(versions: list[tuple[str, dict[str, Any]]], total: int | None,
                    links: list[dict[str, str]]) -> dict[str, Any]:
    base = _base()
    entries = [_history_entry(base, method, r) for method, r in versions]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history", "link": links}
    if total is not None:
        bundle["total"] = total
    if entries:
        bundle["entry"] = entries
    return bundle


def _history_entry(base: str, method: str, resource: dict[str, Any]) -> dict[str, Any]:
    """One version; a deletion carries no resource (bdl-... history entries)."""
    url = f"{resource['resourceType']}/{resource['id']}"
    meta = resource["meta"]
    status = {"POST": "201 Created", "DELETE": "204 No Content"}.get(method, "200 OK")
    entry: dict[str, Any] = {"fullUrl": f"{base}/{url}",
                             "request": {"method": "PUT" if method == "PATCH" else method,
                                         "url": url},
                             "response": {"status": status, "etag": f'W/"{meta["versionId"]}"',
                                          "lastModified": meta["lastUpdated"]}}
    if method != "DELETE":
        entry["resource"] = resource
    return entry


@bp.get("/<resource_type>")
def search(resource_type: str) -> Response:
    return _search(resource_type, list(request.args.items(multi=True)))


@bp.post("/<resource_type>/_search")
def search_post(resource_type: str) -> Response:
    mimetype, _ = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("POST _search takes application/x-www-form-urlencoded")
    params = list(request.args.items(multi=True)) + list(request.form.items(multi=True))
    return _search(resource_type, params)


def _search(resource_type: str, params: list[tuple[str, str]]) -> Response:
    spec = _allow(resource_type, "search-type")
    permit_search(spec.type, params, require)  # and each type a _has or chain reads
    settings = app_settings()
    count = _int_param(params, "_count", settings.page_size_default, settings.page_size_max)
    offset = _int_param(params, "_offset", 0, 10**9)
    summary = next((v for n, v in params if n == "_summary"), "false")
    if summary not in ("count", "false"):
        raise BadRequest(f"_summary={summary} is not supported (count, false)", ["_summary"])
    total = next((v for n, v in params if n in ("_total", "_totalMethod")), "accurate")
    if total not in ("none", "estimate", "accurate", "count"):
        raise BadRequest(f"_total={total} is not one of none, estimate, accurate", ["_total"])
    result = _store().search(spec, params, count=0 if summary == "count" else count,
                             offset=offset, strict=_prefer("handling") != "lenient",
                             with_total=total != "none")
    # _include/_revinclude must not reach types the token cannot read.
    scopes = current_principal().scopes
    result.included = [r for r in result.included if scopes.allows(r["resourceType"], "read")]
    g.interaction.query = urlencode(params)
    _commit()
    elements = [e for v in params if v[0] == "_elements" for e in v[1].split(",") if e]
    if elements:
        result.matches = [_subsetted(r, elements) for r in result.matches]
    return fhir_response(_searchset(spec.type, params, result, count))


# search.html#elements: a resource cut down to some elements says so in meta.tag.
SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
             "code": "SUBSETTED", "display": "subsetted"}
_ALWAYS = ("resourceType", "id", "meta")


def _subsetted(resource: dict[str, Any], elements: list[str]) -> dict[str, Any]:
    """The asked-for elements, plus the mandatory ones (the server SHOULD keep them)."""
    keep = {*_ALWAYS, *elements, *mandatory_elements(resource["resourceType"])}
    kept = {k: v for k, v in resource.items() if k in keep}
    meta = dict(kept.get("meta", {}))
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    return {**kept, "meta": meta}


def _int_param(params: list[tuple[str, str]], name: str, default: int, limit: int) -> int:
    """``_count`` or ``_offset`` (search.html#count), capped at ``limit``; 400 if not a
    whole number."""
    raw = next((v for n, v in params if n == name), None)
    return default if raw is None else whole_number(raw, name, limit)


def _searchset(resource_type: str, params: list[tuple[str, str]], result: SearchResult,
               count: int) -> dict[str, Any]:
    base = _base()
    kept = [(n, v) for n, v in params if n not in ("_offset", "_count", *result.ignored)]
    more = result.offset + result.count < result.total if result.total >= 0 else \
        len(result.matches) == result.count
    links = _page_links(resource_type, kept, result.count, result.offset, more)
    entries = [_search_entry(base, r, "match") for r in result.matches]
    entries += [_search_entry(base, r, "include") for r in result.included]
    if result.ignored:  # Prefer: handling=lenient (search.html#errors)
        entries.append({"resource": information(
            "Ignored unknown search parameters: " + ", ".join(result.ignored), "warning"),
            "search": {"mode": "outcome"}})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links}
    if result.total >= 0:
        bundle["total"] = result.total
    if entries:
        bundle["entry"] = entries
    return bundle


def _page_links(path: str, kept: list[tuple[str, str]], count: int, offset: int,
                more: bool) -> list[dict[str, str]]:
    """Bundle links (http.html#paging): self, and next and previous by ``_offset``."""
    def page_url(at: int) -> str:
        query = urlencode([*kept, ("_count", str(count)), ("_offset", str(at))])
        return f"{_base()}/{path}?{query}"

    links = [{"relation": "self", "url": page_url(offset)}]
    if count and more:
        links.append({"relation": "next", "url": page_url(offset + count)})
    if offset > 0 and count:
        links.append({"relation": "previous", "url": page_url(max(0, offset - count))})
    return links


def _search_entry(base: str, resource: dict[str, Any], mode: str) -> dict[str, Any]:
    return {"fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
            "resource": resource, "search": {"mode": mode}}


@bp.post("/<resource_type>/$validate")
@bp.post("/<resource_type>/<resource_id>/$validate")
def validate(resource_type: str, resource_id: str | None = None) -> Response:
    spec = _allow(resource_type, "operation")
    resource = _parameters_resource(_body())
    try:
        validate_resource(spec.type, resource)
        outcome = information(f"The {spec.type} is valid")
    except FhirError as error:
        outcome = error.outcome()
    _commit()
    return fhir_response(outcome)


@bp.get("/<resource_type>/<resource_id>/$<operation>")
@bp.post("/<resource_type>/<resource_id>/$<operation>")
def instance_operation(resource_type: str, resource_id: str, operation: str) -> Response:
    spec = _allow(resource_type, "operation")
    found = OPERATIONS.get((spec.type, operation))
    if found is None:
        raise NotFound(f"${operation} is not an operation on {spec.type}")
    if request.method == "GET" and found.affects_state:
        error = MethodNotAllowed(f"${operation} changes data; POST it")
        error.headers["Allow"] = "POST"
        raise error
    for interaction in found.interactions:
        permit(spec.type, interaction, require)
    body = _body() if request.method == "POST" and request.get_data() else None
    g.interaction.entities = [f"{spec.type}/{resource_id}"]
    call = Invocation(_store(), resource_id, body, g.interaction.client_id)
    result = found.handler(call)
    g.interaction.agents += call.agents
    _commit()
    return fhir_response(result)


def _parameters_resource(body: Any) -> Any:
    """The resource to validate: bare, or in ``Parameters.parameter[name=resource]``."""
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for parameter in body.get("parameter", []):
            if isinstance(parameter, dict) and parameter.get("name") == "resource":
                return parameter.get("resource")
        raise BadRequest("Parameters must hold a 'resource' parameter", ["Parameters.parameter"])
    return body
