"""The served resource types, their interactions and search parameters.

This registry is the single source for the routes, the search index and the
CapabilityStatement, so ``/fhir/metadata`` never claims what is not served.
Search parameter names and expressions follow the FHIR R4 search parameter
registry (https://hl7.org/fhir/R4/searchparameter-registry.html).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

WRITE = frozenset({"create", "update", "patch"})
READ = frozenset({"read", "vread", "search-type", "history-instance", "history-type"})
# Clinical records of the order's journey are never deleted: they are corrected
# with status entered-in-error, so history and audit stay whole.
RECORD = READ | WRITE
ALL = RECORD | {"delete"}
# ScanPath's choice, as for AuditEvent: a Provenance records who did what and
# when, so it is written once and never changed (R4 allows update; we do not).
CREATED_ONCE = READ | {"create"}


@dataclass(frozen=True)
class SearchParam:
    """A declared search parameter: its type and the element paths it indexes."""

    name: str
    type: str  # token | reference | date | string
    paths: tuple[str, ...]
    doc: str = ""


@dataclass(frozen=True)
class ResourceSpec:
    """One served resource type."""

    type: str
    interactions: frozenset[str] = ALL
    params: dict[str, SearchParam] = field(default_factory=dict)
    # Within a transaction, POSTs of a higher rank are written later, so that
    # write hooks on orders see the clinical facts submitted with them.
    write_rank: int = 0
    # Owner-only (``fhir.ownership``): only the client that created one may read, find
    # or change it; other clients are answered as if it did not exist.
    owned: bool = False


def _p(name: str, kind: str, *paths: str) -> SearchParam:
    return SearchParam(name, kind, paths)


IDENTIFIER = _p("identifier", "token", "identifier")
STATUS = _p("status", "token", "status")


def _subject(path: str = "subject") -> list[SearchParam]:
    return [_p("patient", "reference", path), _p("subject", "reference", path)]


# Search parameters every resource has (search.html#all): indexed like the others.
META = [_p("_tag", "token", "meta.tag"), _p("_profile", "token", "meta.profile"),
        _p("_security", "token", "meta.security")]


def _spec(type_: str, params: list[SearchParam], interactions: frozenset[str] = ALL,
          write_rank: int = 0, owned: bool = False) -> ResourceSpec:
    return ResourceSpec(type_, interactions, {p.name: p for p in [*params, *META]}, write_rank,
                        owned)


_SPECS = [
    _spec("Patient", [IDENTIFIER, _p("name", "string", "name"),
                      _p("family", "string", "name.family"), _p("given", "string", "name.given"),
                      _p("birthdate", "date", "birthDate"), _p("gender", "token", "gender"),
                      _p("general-practitioner", "reference", "generalPractitioner"),
                      _p("organization", "reference", "managingOrganization"),
                      _p("link", "reference", "link.other")]),
    _spec("Practitioner", [IDENTIFIER, _p("name", "string", "name")]),
    _spec("PractitionerRole", [IDENTIFIER, _p("practitioner", "reference", "practitioner"),
                               _p("organization", "reference", "organization")]),
    _spec("Organization", [IDENTIFIER, _p("name", "string", "name")]),
    _spec("Condition", [IDENTIFIER, *_subject(), _p("code", "token", "code"),
                        _p("clinical-status", "token", "clinicalStatus"),
                        _p("onset-date", "date", "onset[x]"),
                        _p("recorded-date", "date", "recordedDate"),
                        _p("asserter", "reference", "asserter")]),
    _spec("Observation", [IDENTIFIER, *_subject(), STATUS, _p("code", "token", "code"),
                          _p("category", "token", "category"),
                          _p("date", "date", "effective[x]"),
                          _p("based-on", "reference", "basedOn"),
                          _p("has-member", "reference", "hasMember"),
                          _p("derived-from", "reference", "derivedFrom"),
                          _p("part-of", "reference", "partOf"),
                          _p("performer", "reference", "performer")]),
    _spec("AllergyIntolerance", [IDENTIFIER, _p("patient", "reference", "patient"),
                                 _p("code", "token", "code"),
                                 _p("clinical-status", "token", "clinicalStatus"),
                                 _p("date", "date", "recordedDate"),
                                 _p("asserter", "reference", "asserter"),
                                 _p("recorder", "reference", "recorder")]),
    _spec("Device", [IDENTIFIER, _p("patient", "reference", "patient"), STATUS,
                     _p("type", "token", "type"),
                     _p("organization", "reference", "owner")]),
    _spec("ServiceRequest", [IDENTIFIER, *_subject(), STATUS, _p("code", "token", "code"),
                             _p("category", "token", "category"),
                             _p("intent", "token", "intent"),
                             _p("based-on", "reference", "basedOn"),
                             _p("requester", "reference", "requester"),
                             _p("performer", "reference", "performer"),
                             _p("replaces", "reference", "replaces"),
                             _p("authored", "date", "authoredOn"),
                             _p("occurrence", "date", "occurrence[x]")], RECORD,
          write_rank=1),
    _spec("Task", [IDENTIFIER, _p("patient", "reference", "for"),
                   _p("subject", "reference", "for"), STATUS,
                   _p("code", "token", "code"), _p("focus", "reference", "focus"),
                   _p("based-on", "reference", "basedOn"), _p("owner", "reference", "owner"),
                   _p("business-status", "token", "businessStatus"),
                   _p("priority", "token", "priority"),
                   _p("requester", "reference", "requester"),
                   _p("part-of", "reference", "partOf"),
                   _p("authored-on", "date", "authoredOn")], RECORD),
    _spec("ImagingStudy", [IDENTIFIER, *_subject(), STATUS,
                           _p("basedon", "reference", "basedOn"),
                           _p("based-on", "reference", "basedOn"),
                           _p("started", "date", "started"),
                           _p("referrer", "reference", "referrer"),
                           _p("interpreter", "reference", "interpreter")], RECORD),
    _spec("DiagnosticReport", [IDENTIFIER, *_subject(), STATUS, _p("code", "token", "code"),
                               _p("category", "token", "category"),
                               _p("based-on", "reference", "basedOn"),
                               _p("date", "date", "effective[x]"),
                               _p("issued", "date", "issued"),
                               _p("result", "reference", "result"),
                               _p("imaging-study", "reference", "imagingStudy"),
                               _p("media", "reference", "media.link"),
                               _p("performer", "reference", "performer"),
                               _p("results-interpreter", "reference", "resultsInterpreter")],
          RECORD),
    _spec("DocumentReference", [IDENTIFIER, *_subject(), STATUS, _p("type", "token", "type"),
                                _p("date", "date", "date"),
                                _p("related", "reference", "context.related"),
                                _p("author", "reference", "author"),
                                _p("custodian", "reference", "custodian"),
                                _p("relatesto", "reference", "relatesTo.target")]),
    _spec("Binary", []),
    _spec("Media", [IDENTIFIER, *_subject(), STATUS, _p("based-on", "reference", "basedOn"),
                    _p("operator", "reference", "operator")]),
    _spec("CodeSystem", [_p("url", "token", "url"), _p("name", "string", "name"), STATUS],
          READ),
    _spec("GuidanceResponse", [IDENTIFIER, *_subject(), STATUS,
                               _p("request", "token", "requestIdentifier")], RECORD),
    # Notifications (README "Notifications"): R4 Subscription with a rest-hook channel;
    # ``referral.subscriptions`` checks each one as it is written. Owner-only: its
    # channel.header commonly holds the subscriber's own bearer token (R4 Subscription).
    _spec("Subscription", [STATUS, _p("url", "token", "channel.endpoint"),
                           _p("type", "token", "channel.type"),
                           _p("payload", "token", "channel.payload"),
                           _p("criteria", "string", "criteria")], owned=True),
    _spec("Provenance", [_p("target", "reference", "target"),
                         _p("patient", "reference", "target"),
                         _p("agent", "reference", "agent.who"),
                         _p("recorded", "date", "recorded")], CREATED_ONCE),
    _spec("AuditEvent", [_p("date", "date", "recorded"), _p("agent", "reference", "agent.who"),
                         _p("entity", "reference", "entity.what"),
                         _p("altid", "token", "agent.altId"),
                         _p("action", "token", "action"), _p("outcome", "token", "outcome"),
                         _p("type", "token", "type"), _p("subtype", "token", "subtype")],
          READ),
]

REGISTRY: dict[str, ResourceSpec] = {s.type: s for s in _SPECS}

# Parameters every type answers, stored as columns rather than index rows.
COMMON_PARAMS = {"_id": "token", "_lastUpdated": "date"}
# Result-shaping parameters (https://hl7.org/fhir/R4/search.html#Summary).
CONTROL_PARAMS = {"_count", "_offset", "_sort", "_include", "_revinclude", "_summary",
                  "_format", "_total", "_elements",
                  # Aidbox's name for _total, sent by fhirpy's count(); the total is
                  # always counted here, so both are accepted and need nothing more.
                  "_totalMethod"}


@dataclass
class Invocation:
    """One call of an instance operation, as its handler sees it.

    ``store`` is the request's ``fhir.store.Store``; ``client_id`` the caller.
    A handler that acts for a person appends that person's reference
    (``Practitioner/...``) to ``agents``: the interaction's AuditEvent names them.
    """

    store: Any
    resource_id: str
    body: Any
    client_id: str
    agents: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Operation:
    """An instance-level operation served at ``POST /fhir/{type}/{id}/${name}``.

    ``handler(invocation)`` returns the response resource; it is registered by
    the package that owns the operation (``rules`` for ``$replay``) so that
    ``fhir`` needs no import of it. ``interactions`` are what the token must
    also be allowed on the type besides ``operation`` (a read), e.g.
    ``("update",)`` for one that changes the resource. ``affects_state``
    False also serves it on GET (operations.html#request).
    """

    resource_type: str
    name: str
    definition: str
    handler: Callable[[Invocation], dict[str, Any]]
    interactions: tuple[str, ...] = ()
    affects_state: bool = True


OPERATIONS: dict[tuple[str, str], Operation] = {}
VALIDATE_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Resource-validate"


def register_operation(resource_type: str, name: str, definition: str,
                       handler: Callable[[Invocation], dict[str, Any]], *,
                       interactions: tuple[str, ...] = (), affects_state: bool = True) -> None:
    OPERATIONS[(resource_type, name)] = Operation(resource_type, name, definition, handler,
                                                  interactions, affects_state)
