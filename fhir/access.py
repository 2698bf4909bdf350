"""The one gate every FHIR interaction passes: the interaction registry, then scopes.

REST routes, batch and transaction entries (and the searches their conditional
creates and references make), conditional create, update and delete, PATCH and
operations all call :func:`permit` (a search: :func:`permit_search`, which also
permits each type a ``_has`` or chain traverses) before touching the store, so a read-only
type (AuditEvent, CodeSystem) is read-only on every path, and a scope is
checked the same way on each (HAPI's and Medplum's single authorisation point).
"""

from __future__ import annotations

from collections.abc import Callable

from core.errors import BadRequest, MethodNotAllowed
from fhir.registry import ResourceSpec
from fhir.search import Params, traversed_types
from fhir.store import spec_for

# ``authorize(type, interaction)`` raises 401/403 unless the request's token allows it
# (``auth.guard.require`` in requests); passed in, so ``fhir`` imports nothing above it.
Authorize = Callable[[str, str], object]
_METHODS = {"GET": {"read", "search-type"}, "POST": {"create", "operation"},
            "PUT": {"update"}, "PATCH": {"patch"}, "DELETE": {"delete"}}


def permit(resource_type: str, interaction: str, authorize: Authorize) -> ResourceSpec:
    """The type's registry entry, if it serves ``interaction`` (404 for an unknown type,
    405 with ``Allow`` for an interaction it does not serve) and the token allows it.

    ``operation`` ($validate, $replay) is served on every type whose operations are
    registered; the operation's own lookup says 404 for one that is not.
    """
    spec = spec_for(resource_type)
    if interaction != "operation" and interaction not in spec.interactions:
        error = MethodNotAllowed(f"{interaction} is not supported for {spec.type}")
        error.headers["Allow"] = ", ".join(methods(spec))  # RFC 9110 §15.5.6
        raise error
    authorize(spec.type, interaction)
    return spec


def permit_search(resource_type: str, params: Params, authorize: Authorize) -> ResourceSpec:
    """:func:`permit` for a search of ``resource_type`` with ``params``, and for every
    other type it traverses (each ``_has`` type and chained target): its matches, or
    their count, would otherwise tell a client what it may not read. Every search a
    request makes (REST, ``_search``, If-None-Exist, conditional update and delete,
    Bundle entries and conditional references) is permitted here.
    An owner-only type (``fhir.ownership``) cannot be chained into or named by
    ``_has`` (400, whatever is stored): such a match would tell of another client's.
    """
    spec = permit(resource_type, "search-type", authorize)
    for other in traversed_types(spec, params):
        if spec_for(other).owned:
            raise BadRequest(f"{other} is owner-only: it cannot be chained or used in _has")
        permit(other, "search-type", authorize)
    return spec


def methods(spec: ResourceSpec) -> list[str]:
    """The HTTP methods some URL of this type answers (operations are POSTed)."""
    return [method for method, needs in _METHODS.items()
            if needs & (spec.interactions | {"operation"})]
