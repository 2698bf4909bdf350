"""Owner-only resource types (``ResourceSpec.owned``, e.g. Subscription).

The client that creates one is recorded in a ``meta.tag`` of :data:`OWNER_SYSTEM`
(indexed like any tag, so searches filter on it in SQL). A request made by
another client is answered as if the resource did not exist: 404 on read,
vread, history, update, patch and delete; absent from searches, includes and
histories (existence is not revealed; FHIR R4 security.html "a server may
choose to return 404 rather than 403"). ``owner=None`` is the server itself
(the notification worker), which sees every resource. There is no admin
override: the stored channel headers are the subscriber's own secrets.

:mod:`fhir.store` and :mod:`fhir.search` apply these checks on every path, so
no route or operation has to remember them (:mod:`fhir.access` is the gate on
types and interactions; this is the gate on instances).
"""

from __future__ import annotations

from typing import Any

from fhir.registry import REGISTRY

OWNER_SYSTEM = "https://scanpath.example/fhir/CodeSystem/owner"  # ScanPath's own system


def is_owned(resource_type: str) -> bool:
    """Whether ``resource_type`` is owner-only."""
    spec = REGISTRY.get(resource_type)
    return spec is not None and spec.owned


def owner_of(resource: dict[str, Any]) -> str | None:
    """The owning client id recorded in ``resource``'s meta.tag, or None."""
    for tag in resource.get("meta", {}).get("tag", []) or []:
        if isinstance(tag, dict) and tag.get("system") == OWNER_SYSTEM:
            code = tag.get("code")
            return code if isinstance(code, str) else None
    return None


def visible(resource: dict[str, Any], owner: str | None) -> bool:
    """Whether a request by client ``owner`` (None: the server) may know of ``resource``."""
    if owner is None or not is_owned(str(resource.get("resourceType", ""))):
        return True
    return owner_of(resource) == owner


def stamp(resource: dict[str, Any], owner: str | None) -> dict[str, Any]:
    """``resource`` with exactly one owner tag naming ``owner`` (any tag of
    :data:`OWNER_SYSTEM` a client sent is replaced, so none can claim another's)."""
    meta = dict(resource.get("meta") or {})
    tags = [t for t in meta.get("tag", []) or []
            if not (isinstance(t, dict) and t.get("system") == OWNER_SYSTEM)]
    if owner is not None:
        tags.append({"system": OWNER_SYSTEM, "code": owner})
    if tags:
        meta["tag"] = tags
    else:
        meta.pop("tag", None)
    return {**resource, "meta": meta}

