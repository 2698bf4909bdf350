"""The versioned resource store: every write keeps history and search indexes.

A :class:`Store` wraps one SQLModel session (one per request or job); it
never commits, so the caller decides the transaction (a whole FHIR
transaction Bundle, or one interaction plus its AuditEvent).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import json_merge_patch
import jsonpatch
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from core import fhirjson
from core.errors import BadRequest, Conflict, Gone, NotFound, PreconditionFailed, Unprocessable
from core.params import ascii_digits
from core.settings import Settings
from fhir.dates import instant, now_utc
from fhir.indexing import index_rows
from fhir.models import (
    INDEX_TABLES,
    ReferenceIndex,
    ResourceRow,
    ResourceVersion,
    TokenIndex,
    table_of,
)
from fhir.ownership import OWNER_SYSTEM, owner_of, stamp, visible
from fhir.references import check_references
from fhir.registry import CONTROL_PARAMS, REGISTRY, ResourceSpec
from fhir.search import Params, SearchResult, parse_query, run_search
from fhir.validation import check_id, validate_resource

# Resources that record what happened to others (audit, provenance): they do not
# keep a resource from being deleted, and keep their history of it.
RECORDS_ABOUT = ("AuditEvent", "Provenance")
WriteHook = Callable[["Store", dict[str, Any], dict[str, Any] | None], None]
_WRITE_HOOKS: dict[str, list[WriteHook]] = {}
_AFTER_WRITE_HOOKS: dict[str, list[WriteHook]] = {}
ReadTransform = Callable[["Store", dict[str, Any]], dict[str, Any]]
_READ_TRANSFORMS: dict[str, list[ReadTransform]] = {}


def register_write_hook(resource_type: str, hook: WriteHook) -> None:
    """Run ``hook(store, resource, previous)`` before each write of ``resource_type``.

    Hooks run inside the writing transaction, after validation, on a copy
    that already carries its id, and may change it (``referral`` assigns
    accession numbers this way).
    """
    hooks = _WRITE_HOOKS.setdefault(resource_type, [])
    if hook not in hooks:
        hooks.append(hook)


def register_after_write_hook(resource_type: str, hook: WriteHook) -> None:
    """Run ``hook(store, stored, previous)`` after each write of ``resource_type``.

    ``stored`` is the new version as kept (with ``meta``), already searchable in
    the same transaction, so whatever the hook writes (``referral``'s
    notification outbox) commits or rolls back with the change itself.
    """
    hooks = _AFTER_WRITE_HOOKS.setdefault(resource_type, [])
    if hook not in hooks:
        hooks.append(hook)


def register_read_transform(resource_type: str, transform: ReadTransform) -> None:
    """Show a client ``transform(store, resource)`` instead of each stored ``resource_type``.

    Applied on read, vread, history and search (matches and includes) when a client
    asks (``Store.actor`` set), never to what the server itself reads or writes: a
    value that must not be stored (``patient``: a link's URL, whose token the database
    keeps only as a hash) is added here for the reader.
    """
    transforms = _READ_TRANSFORMS.setdefault(resource_type, [])
    if transform not in transforms:
        transforms.append(transform)


@dataclass
class Written:
    """The outcome of a create or update."""

    resource: dict[str, Any]
    created: bool
    existed: bool = False  # conditional create matched an existing resource


def spec_for(resource_type: str) -> ResourceSpec:
    """The registry entry for ``resource_type``, or a 404."""
    spec = REGISTRY.get(resource_type)
    if spec is None:
        raise NotFound(f"Resource type '{resource_type}' is not served here")
    return spec


def dumps(resource: dict[str, Any]) -> str:
    """Compact JSON, as stored."""
    return fhirjson.dumps(resource)


class Store:
    """Resource persistence over one session."""

    def __init__(self, session: Session, settings: Settings,
                 authorize: Callable[[str, str], object] | None = None,
                 actor: str | None = None) -> None:
        self.session = session
        self.settings = settings
        # The request's ``fhir.access.Authorize`` (None for the server's own writes): hooks
        # whose resource names a search (a Subscription's criteria) pass it through the gate.
        self.authorize = authorize
        # The requesting client (None: the server itself). Hooks that audit name it, and
        # owner-only types (``fhir.ownership``) show it only its own: every read, search,
        # history and write below goes through ``_current``/``_visible``/``search``.
        self.actor = actor
        # "Type/id" of resources the current transaction writes: local
        # references to them resolve before they exist.
        self.pending: frozenset[str] = frozenset()

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """The current version; 410 Gone when deleted, 404 when never written."""
        content = self._current(spec_for(resource_type).type, resource_id)
        if content is None:
            if self._deleted(resource_type, resource_id):
                raise Gone(f"{resource_type}/{resource_id} was deleted")
            raise NotFound(f"{resource_type}/{resource_id} is not known")
        return self.shown(fhirjson.loads(content))

    def shown(self, resource: dict[str, Any]) -> dict[str, Any]:
        """``resource`` as this requester is shown it (``register_read_transform``)."""
        if self.actor is None or "id" not in resource:
            return resource
        for transform in _READ_TRANSFORMS.get(str(resource.get("resourceType")), []):
            resource = transform(self, resource)
        return resource

    def _last_version(self, resource_type: str, resource_id: str) -> tuple[int, str | None]:
        """The highest version number written, and its method (0, None if none)."""
        versions = table_of(ResourceVersion).c
        row = self.session.execute(
            select(versions.version_id, versions.method)
            .where(versions.resource_type == resource_type, versions.id == resource_id)
            .order_by(versions.version_id.desc()).limit(1)).first()
        return (int(row[0]), str(row[1])) if row else (0, None)

    def _deleted(self, resource_type: str, resource_id: str) -> bool:
        """Whether the last version is a deletion this requester may know of."""
        versions = table_of(ResourceVersion).c
        row = self.session.execute(
            select(versions.method, versions.content)
            .where(versions.resource_type == resource_type, versions.id == resource_id)
            .order_by(versions.version_id.desc()).limit(1)).first()
        return row is not None and row[0] == "DELETE" and self._visible(row[1])

    def _visible(self, content: str) -> bool:
        """Whether stored ``content`` may be shown to this requester (``fhir.ownership``)."""
        return self.actor is None or visible(fhirjson.loads(content), self.actor)

    def search(self, spec: ResourceSpec, params: Params, *, count: int, offset: int = 0,
               strict: bool = True, with_total: bool = True) -> SearchResult:
        """:func:`fhir.search.run_search` as this requester sees it: an owner-only
        type's matches and includes limited to its own. Every search a request makes
        goes through here."""
        result = run_search(self.session, spec, params, count=count, offset=offset,
                            strict=strict, with_total=with_total, owner=self.actor)
        result.matches = [self.shown(r) for r in result.matches]
        result.included = [self.shown(r) for r in result.included]
        return result

    def exists(self, resource_type: str, resource_id: str) -> bool:
        """Whether the resource exists here (a type not served never does)."""
        return resource_type in REGISTRY and \
            self._current(resource_type, resource_id) is not None

    def _check_references(self, resource_type: str, resource_id: str,
                          resource: dict[str, Any]) -> None:
        own = f"{resource_type}/{resource_id}"
        check_references(resource, self.exists, self.pending | {own})

    def _current(self, resource_type: str, resource_id: str) -> str | None:
        """The stored JSON of the current version (Core, so never a stale ORM copy);
        None, as for one never written, when it is another client's owner-only one."""
        content = self._stored(resource_type, resource_id)
        return content if content is None or self._visible(content) else None

    def _stored(self, resource_type: str, resource_id: str) -> str | None:
        table = table_of(ResourceRow).c
        return self.session.execute(select(table.content).where(
            table.resource_type == resource_type, table.id == resource_id)).scalar()

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> dict[str, Any]:
        table = table_of(ResourceVersion).c
        content = self.session.execute(select(table.content).where(
            table.resource_type == spec_for(resource_type).type, table.id == resource_id,
            table.version_id == _version_number(version_id))).scalar()
        if content is None or not self._visible(content):
            raise NotFound(f"{resource_type}/{resource_id} has no version {version_id}")
        return self.shown(fhirjson.loads(content))

    def history(self, resource_type: str, resource_id: str) -> list[tuple[str, dict[str, Any]]]:
        """``(method, resource)`` for every version, newest first (deletions included)."""
        spec_for(resource_type)
        versions = table_of(ResourceVersion).c
        rows = self.session.execute(
            select(versions.method, versions.content)
            .where(versions.resource_type == resource_type, versions.id == resource_id)
            .order_by(versions.version_id.desc())
        ).all()
        if not rows:
            raise NotFound(f"{resource_type}/{resource_id} is not known")
        shown = [(method, self.shown(fhirjson.loads(content))) for method, content in rows
                 if self._visible(content)]
        if not shown:
            raise NotFound(f"{resource_type}/{resource_id} is not known")
        return shown

    def type_history(self, resource_types: list[str], since: datetime | None, count: int,
                     offset: int = 0) -> list[tuple[str, dict[str, Any]]]:
        """``(method, resource)`` of every version of these types, newest first."""
        versions = table_of(ResourceVersion).c
        query = select(versions.method, versions.content).where(
            versions.resource_type.in_(resource_types))
        if since is not None:
            query = query.where(versions.last_updated >= since)
        for owned in [t for t in resource_types if self.actor and spec_for(t).owned]:
            query = query.where((versions.resource_type != owned) |
                                versions.id.in_(self._owned_ids(owned)))
        rows = self.session.execute(query.order_by(versions.last_updated.desc(),
                                                   versions.version_id.desc())
                                    .offset(offset).limit(count)).all()
        return [(method, self.shown(fhirjson.loads(content))) for method, content in rows]

    def _owned_ids(self, resource_type: str) -> Any:
        """Ids of ``resource_type`` this requester owns (a subquery on the owner tag's
        index; a deleted one has none, so its history is no longer listed by type)."""
        tokens = table_of(TokenIndex).c
        return select(tokens.resource_id).where(
            tokens.resource_type == resource_type, tokens.param == "_tag",
            tokens.system == OWNER_SYSTEM, tokens.code == self.actor)

    def create(self, resource_type: str, data: Any, *, resource_id: str | None = None,
               if_none_exist: str | None = None, trusted: bool = False) -> Written:
        """Create a resource (server-assigned id unless ``resource_id``).

        ``trusted`` skips validation for resources the server itself builds
        (AuditEvents); their shape is covered by the test suite's R4 validator.
        """
        spec = spec_for(resource_type)
        resource = data if trusted else validate_resource(spec.type, data)
        if if_none_exist:
            found = self.match_one(spec.type, if_none_exist)
            if found is not None:
                return Written(found, created=False, existed=True)
        resource_id = resource_id or str(uuid.uuid4())
        if not trusted:
            self._check_references(spec.type, resource_id, resource)
        return Written(self._write(spec, resource_id, resource, None), created=True)

    def update(self, resource_type: str, resource_id: str, data: Any, *,
               if_match: str | None = None, method: str = "PUT") -> Written:
        """Update (or create with a client id) ``resource_type/resource_id``."""
        spec = spec_for(resource_type)
        check_id(resource_id)
        resource = validate_resource(spec.type, data)
        if resource.get("id") != resource_id:
            raise BadRequest(f"The resource id must be '{resource_id}', as in the URL",
                             [f"{resource_type}.id"])
        self._check_references(spec.type, resource_id, resource)
        current = self._current(spec.type, resource_id)
        if current is None and spec.owned and self.actor is not None:
            # Created by POST only: a PUT cannot tell whether another client's exists.
            raise NotFound(f"{resource_type}/{resource_id} is not known")
        if current is None:
            if if_match:
                raise PreconditionFailed(f"{resource_type}/{resource_id} does not exist")
            after, _ = self._last_version(spec.type, resource_id)  # a deleted one comes back
            return Written(self._write(spec, resource_id, resource, None, after=after),
                           created=True)
        previous = fhirjson.loads(current)
        _check_if_match(if_match, int(previous["meta"]["versionId"]))
        return Written(self._write(spec, resource_id, resource, previous, method=method),
                       created=False)

    def patch(self, resource_type: str, resource_id: str, document: Any, *,
              if_match: str | None = None) -> Written:
        """Apply a patch to the current version: a JSON Patch (RFC 6902, an array of
        operations, the ``jsonpatch`` library) or a JSON Merge Patch (RFC 7386, an
        object, as fhirpy sends; ``json-merge-patch``).

        400 for a malformed patch document, 422 when it does not apply (a
        failed ``test``, a missing path); the result is validated like any
        update and must keep its ``id``.
        """
        current = self.read(resource_type, resource_id)
        _check_if_match(if_match, int(current["meta"]["versionId"]))
        patched = apply_json_patch(current, document) if isinstance(document, list) \
            else apply_merge_patch(current, document)
        return self.update(resource_type, resource_id, patched, if_match=if_match,
                           method="PATCH")

    def delete(self, resource_type: str, resource_id: str) -> bool:
        """Delete the current version, keeping its history (reads then answer 410).

        Returns False when it was already deleted; 404 if it never existed;
        409 while another resource here still refers to it.
        """
        spec = spec_for(resource_type)
        current = self._current(spec.type, resource_id)
        if current is None:
            if self._deleted(spec.type, resource_id):
                return False
            raise NotFound(f"{resource_type}/{resource_id} is not known")
        self._refuse_if_referenced(spec.type, resource_id)
        version = int(fhirjson.loads(current)["meta"]["versionId"]) + 1
        now = now_utc()
        tombstone = {"resourceType": spec.type, "id": resource_id,
                     "meta": {"versionId": str(version), "lastUpdated": instant(now)}}
        if spec.owned:  # its history stays its owner's
            tombstone = stamp(tombstone, owner_of(fhirjson.loads(current)))
        for model in (ResourceRow, *INDEX_TABLES):
            table = table_of(model)
            key = table.c.id if model is ResourceRow else table.c.resource_id
            self.session.execute(delete(table).where(table.c.resource_type == spec.type,
                                                     key == resource_id))
        self.session.execute(insert(table_of(ResourceVersion)), [{
            "resource_type": spec.type, "id": resource_id, "version_id": version,
            "last_updated": now, "content": dumps(tombstone), "method": "DELETE"}])
        return True

    def _refuse_if_referenced(self, resource_type: str, resource_id: str) -> None:
        refs = table_of(ReferenceIndex).c
        rows = self.session.execute(
            select(refs.resource_type, refs.resource_id).distinct()
            .where(refs.target_type == resource_type, refs.target_id == resource_id,
                   refs.resource_type.not_in(RECORDS_ABOUT),
                   ~((refs.resource_type == resource_type) & (refs.resource_id == resource_id)))
            .limit(3)).all()
        if rows:
            names = ", ".join(f"{t}/{i}" for t, i in rows)
            raise Conflict(f"{resource_type}/{resource_id} is referred to by {names}; "
                           "remove those references first")

    def stage(self, resource_type: str, resource_id: str, resource: Any) -> None:
        """Make a resource searchable (current row and index rows, no history, no hooks)
        inside a savepoint the caller rolls back: a transaction's conditional creates
        and conditional references then see its earlier entries."""
        spec = spec_for(resource_type)
        if not isinstance(resource, dict) or self._stored(spec.type, resource_id):
            return
        stored = {**resource, "id": resource_id}
        try:
            rows = index_rows(spec.type, resource_id, spec.params, stored)
        except (TypeError, ValueError, KeyError, AttributeError):
            return  # not indexable: the entry's own write will say why it is invalid
        self.session.execute(insert(table_of(ResourceRow)), [{
            "resource_type": spec.type, "id": resource_id, "version_id": 0,
            "last_updated": now_utc(), "content": dumps(stored)}])
        for model, found in rows.items():
            self.session.execute(insert(table_of(model)), found)

    def match_one(self, resource_type: str, query: str) -> dict[str, Any] | None:
        """The single resource matching a conditional ``query``; 412 if several."""
        params = criteria(query)
        result = self.search(spec_for(resource_type), params, count=2)
        if result.total > 1:
            raise PreconditionFailed(f"{result.total} {resource_type} resources match '{query}'")
        return result.matches[0] if result.matches else None

    def _write(self, spec: ResourceSpec, resource_id: str, resource: dict[str, Any],
               previous: dict[str, Any] | None, *, after: int = 0,
               method: str = "PUT") -> dict[str, Any]:
        """Write a new version: after ``previous``, or as version ``after`` + 1 (a new
        resource, or one coming back after deletion)."""
        resource = {**resource, "id": resource_id}
        if spec.owned:  # its creator, kept through every later write (the server's too)
            resource = stamp(resource, owner_of(previous) if previous else self.actor)
        outer = self.pending
        self.pending = outer | {f"{spec.type}/{resource_id}"}  # hooks may refer to it
        try:
            for hook in _WRITE_HOOKS.get(spec.type, []):
                hook(self, resource, previous)
        finally:
            self.pending = outer
        version = int(previous["meta"]["versionId"]) + 1 if previous else after + 1
        now = now_utc()
        meta = {**resource.get("meta", {}), "versionId": str(version),
                "lastUpdated": instant(now)}
        stored = {**resource, "id": resource_id, "meta": meta}
        row = {"resource_type": spec.type, "id": resource_id, "version_id": version,
               "last_updated": now, "content": dumps(stored)}
        # Core inserts, not ORM objects: a write is a handful of executemany
        # statements with no unit-of-work bookkeeping (docs/benchmarks.md).
        try:
            if previous is None:
                self.session.execute(insert(table_of(ResourceRow)), [row])
            else:
                self._replace_current(row)
            self.session.execute(insert(table_of(ResourceVersion)),
                                 [{**row, "method": method if previous else
                                   ("PUT" if after else "POST")}])
            self._reindex(spec, resource_id, stored, fresh=previous is None)
        except IntegrityError as exc:
            raise Conflict("The resource was written by another request at the same time") \
                from exc
        for hook in _AFTER_WRITE_HOOKS.get(spec.type, []):
            hook(self, stored, previous)
        return stored

    def _replace_current(self, row: dict[str, Any]) -> None:
        table = table_of(ResourceRow)
        result = self.session.execute(
            update(table)
            .where(table.c.resource_type == row["resource_type"], table.c.id == row["id"],
                   table.c.version_id == row["version_id"] - 1)
            .values(version_id=row["version_id"], last_updated=row["last_updated"],
                    content=row["content"])
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(f"{row['resource_type']}/{row['id']} was changed by another request")

    def _reindex(self, spec: ResourceSpec, resource_id: str, resource: dict[str, Any],
                 fresh: bool) -> None:
        for model in () if fresh else INDEX_TABLES:
            table = table_of(model)
            self.session.execute(delete(table).where(table.c.resource_type == spec.type,
                                                     table.c.resource_id == resource_id))
        for model, rows in index_rows(spec.type, resource_id, spec.params, resource).items():
            self.session.execute(insert(table_of(model)), rows)


def criteria(query: Any) -> list[tuple[str, str]]:
    """The search criteria of a conditional request; 400 unless there is at least one."""
    if not isinstance(query, str):
        raise BadRequest("A conditional request's query must be a string")
    params = parse_query(query)
    if not [name for name, _ in params if name not in CONTROL_PARAMS]:
        raise BadRequest(f"Conditional request '{query}' has no search criteria")
    return params


# resource_version.version_id is a 32-bit INTEGER; PostgreSQL refuses to compare it
# with a literal past that range, so a larger number is answered before any query.
_MAX_VERSION = 2**31 - 1


def _version_number(version_id: str) -> int:
    """A version id as the number stored: ASCII digits within the column's 32 bits
    (``int()`` only on at most 18 digits); any other text names no version, a 404."""
    if not ascii_digits(version_id) or len(version_id) > 18 or \
            int(version_id) > _MAX_VERSION:
        raise NotFound(f"'{version_id[:40]}' is not a version of this resource")
    return int(version_id)


def _check_if_match(if_match: str | None, current_version: int) -> None:
    """412 unless ``If-Match`` (``W/"n"``) names the current version."""
    if if_match is None:
        return
    wanted = if_match.strip().removeprefix("W/").strip('"')
    if wanted != str(current_version):
        raise PreconditionFailed(
            f"If-Match {if_match} does not match the current version {current_version}")


def apply_json_patch(resource: dict[str, Any], operations: Any) -> dict[str, Any]:
    """``resource`` with the JSON Patch ``operations`` applied (a copy)."""
    if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
        raise BadRequest("A JSON Patch body is a JSON array of operation objects")
    patched = resource
    for number, operation in enumerate(operations, start=1):
        try:
            patched = jsonpatch.JsonPatch([operation]).apply(patched)
        except jsonpatch.InvalidJsonPatch as exc:
            raise BadRequest(f"Invalid JSON Patch operation {number}: {exc}") from exc
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            # The library's messages quote the document, so name the operation instead:
            # an error must not echo the patient's record back.
            why = ("its test value does not match" if isinstance(
                exc, jsonpatch.JsonPatchTestFailed) else "its path is not in the resource")
            raise Unprocessable(f"JSON Patch operation {number} ({operation.get('op')} "
                                f"{operation.get('path')}) does not apply: {why}") from exc
    return patched


def apply_merge_patch(resource: dict[str, Any], patch: Any) -> dict[str, Any]:
    """``resource`` with a JSON Merge Patch (RFC 7386) applied: null removes an element."""
    if not isinstance(patch, dict):
        raise BadRequest("A JSON Merge Patch body is a JSON object")
    if patch.get("resourceType") == "Parameters":
        raise BadRequest("FHIRPath Patch (Parameters) is not supported; send a JSON Patch "
                         "(application/json-patch+json) or a JSON Merge Patch")
    merged = json_merge_patch.merge(copy.deepcopy(resource), patch)
    return merged  # type: ignore[no-any-return]
