"""Decisions as a service: gather the context, decide, record the guidance.

Called by the CDS Hooks endpoints, by the ServiceRequest write hook and by
``$replay``; it uses the store for persistence and never touches Flask.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from fhirclient.server import FHIRServer
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from sqlmodel import Session

from core.errors import BadRequest, FhirError, NotFound, PreconditionFailed
from fhir.dates import now_utc
from fhir.search import run_search
from fhir.store import Store, spec_for
from fhir.terminology import put_if_changed
from rules.context import (
    UNKNOWABLE,
    MalformedResource,
    PatientContext,
    build_context,
    bundle_resources,
    today_utc,
)
from rules.engine import Decision, Engine, engine
from rules.guidance import guidance_response, provenance
from rules.models import RulePackVersion
from rules.packs import LoadedPack, PackError, active_packs, catalogue, parse_pack
from rules.terminology import procedure_code_system, safety_code_system

PREFETCH_QUERIES = {
    "patient": "Patient/{id}",
    "conditions": "Condition?patient={id}",
    "observations": "Observation?patient={id}",
    "allergies": "AllergyIntolerance?patient={id}",
    "devices": "Device?patient={id}",
    "imaging": "ImagingStudy?patient={id}",
}
# The history read from the store, and the PatientContext list each kind fills.
HISTORY_LIST = {"Condition": "conditions", "Observation": "observations",
                "AllergyIntolerance": "allergies", "Device": "devices",
                "ImagingStudy": "imaging", "ServiceRequest": "imaging"}
HISTORY_TYPES = tuple(HISTORY_LIST)
# The most recent resources of each kind read for a decision, bounded so that a
# long record does not slow every order (docs/benchmarks.md); a record longer
# than this makes that kind of history unknown rather than silently cut. Prior
# orders and studies only feed the 90-day duplicate check.
HISTORY_LIMIT = 1000
ORDER_HISTORY_LIMIT = 100
# A CDS client's fhirServer must answer within this (seconds, connect and read).
FETCH_TIMEOUT_SECONDS = 10.0
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_DOT_SEGMENTS = frozenset({".", ".."})  # would climb out of a trusted prefix


def decide(ctx: PatientContext, eng: Engine | None = None) -> Decision:
    return (eng or engine()).decide(ctx)


@dataclass
class History:
    """The patient's resources as read for a decision, and what could not be read."""

    resources: list[dict[str, Any]] = field(default_factory=list)
    unknown: dict[str, str] = field(default_factory=dict)  # PatientContext.unknown


def prefetched_resources(prefetch: dict[str, Any], fhir_server: str | None,
                         token: str | None, patient_id: str | None,
                         trusted: Iterable[str]) -> History:
    """The patient's resources from CDS Hooks prefetch, reading a failed or absent key
    from ``fhirServer`` when that server is on the ``trusted`` list.

    A key that is absent, null, an OperationOutcome (CDS Hooks 2.0: a prefetch
    failure) or a Bundle reporting an error is unknown, never empty: it is read
    from a trusted ``fhirServer`` or, failing that, recorded in
    ``History.unknown`` so that the checks that need it say they could not be
    made. The server is not contacted again after one failed read.

    Raises :class:`PreconditionFailed` when nothing at all could be read (an
    untrusted server or a failed read with no prefetch), :class:`BadRequest`
    for a patient id that is not a FHIR id, and :class:`MalformedResource`
    (located) for JSON of the wrong type.
    """
    failed = {key: why for key in PREFETCH_QUERIES
              if (why := prefetch_failure(prefetch.get(key))) is not None}
    server = fhir_server if failed and fhir_server and patient_id else None
    history, refused = History(), None
    if server is not None:
        refused = _refusal(server, trusted, patient_id)
    for key, query in PREFETCH_QUERIES.items():
        value: Any = None
        if key not in failed:
            value = prefetch[key]
            history.resources += _located(value, f"prefetch.{key}")
        elif server is None or refused is not None:
            history.unknown[key] = str(refused) if refused else failed[key]
        else:
            path = query.format(id=patient_id)
            try:
                value = _read(server, token, path)
                history.resources += _located(value, f"fhirServer {path}")
            except PreconditionFailed as exc:
                refused = exc
                history.unknown[key] = str(exc)
        if (partial := _partial(value)) is not None:  # what came is kept, the rest unknown
            history.unknown[key] = partial
    if refused is not None and len(history.unknown) == len(PREFETCH_QUERIES):
        raise refused
    return history


def prefetch_failure(value: Any) -> str | None:
    """Why a prefetch value holds no usable answer (None when it does)."""
    if value is None:
        return "not sent in prefetch"
    if not isinstance(value, dict):
        return None  # malformed: bundle_resources names it
    if value.get("resourceType") == "OperationOutcome":
        return "the client's prefetch query failed (OperationOutcome)"
    if value.get("resourceType") == "Bundle" and any(
            _is_error(e.get("resource")) for e in value.get("entry") or []
            if isinstance(e, dict)):
        return "the client's prefetch query reported an error"
    return None


def _partial(value: Any) -> str | None:
    """Why a searchset holds only part of the answer: a ``next`` page, or a ``total``
    above its matches (FHIR R4 http.html#paging); None when it is whole."""
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        return None
    links = value.get("link")
    if isinstance(links, list) and any(
            isinstance(link, dict) and link.get("relation") == "next" for link in links):
        return "only the first page of results was sent"
    matches = [e for e in value.get("entry") or [] if isinstance(e, dict) and
               (e.get("search") or {}).get("mode", "match") == "match"]
    total = value.get("total")
    if isinstance(total, int) and total > len(matches):
        return f"{len(matches)} of {total} results were sent"
    return None


def _is_error(resource: Any) -> bool:
    """An OperationOutcome carrying an error or fatal issue (search.mode 'outcome')."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "OperationOutcome":
        return False
    issues = resource.get("issue")
    return isinstance(issues, list) and any(
        isinstance(i, dict) and i.get("severity") in ("error", "fatal") for i in issues)


def _read(server: str, token: str | None, path: str) -> Any:
    """One read from the client's server; an answer that is itself a failure is one too."""
    value = _fetch(server, token, path)
    why = prefetch_failure(value)
    if why is not None:
        raise PreconditionFailed(f"fhirServer could not answer {path}: {why}")
    return value


def _located(value: Any, where: str) -> list[dict[str, Any]]:
    try:
        return [r for r in bundle_resources(value) if r.get("resourceType") != "OperationOutcome"]
    except MalformedResource as exc:
        raise exc.at(where) from exc


def _refusal(server: str, trusted: Iterable[str],
             patient_id: str | None) -> PreconditionFailed | None:
    """Why ``server`` may not be read (None when it may); a bad patient id is a 400."""
    try:
        _check_server(server, trusted)
    except PreconditionFailed as exc:
        return exc
    _check_id(patient_id)
    return None


def trusted_server(url: str, trusted: Iterable[str]) -> bool:
    """Whether ``url`` is one of the ``trusted`` base URLs or lies beneath one.

    Scheme and host (with port) must match exactly and the path must extend
    the prefix at a ``/`` boundary, so ``https://ehr.example/fhir`` trusts
    ``https://ehr.example/fhir/r4`` but not ``https://ehr.example/fhir-x``,
    ``https://ehr.example/fhir/../admin`` or ``https://ehr.example.evil/fhir``.
    """
    target = urlsplit(url)
    if target.scheme not in ("http", "https") or not target.hostname or target.query \
            or target.fragment or _DOT_SEGMENTS.intersection(unquote(target.path).split("/")):
        return False
    return any(_beneath(target, urlsplit(prefix.strip())) for prefix in trusted)


def _beneath(target: SplitResult, prefix: SplitResult) -> bool:
    if (target.scheme, target.netloc.lower()) != (prefix.scheme, prefix.netloc.lower()):
        return False
    base, path = prefix.path.rstrip("/"), target.path.rstrip("/")
    return path == base or path.startswith(base + "/")


def _check_server(fhir_server: str, trusted: Iterable[str]) -> None:
    if not trusted_server(fhir_server, trusted):
        raise PreconditionFailed(
            f"fhirServer {fhir_server} is not trusted: ScanPath reads patient data only from "
            "the FHIR servers it is configured for (SCANPATH_CDS_FHIR_SERVERS). Send the "
            "history in prefetch instead.", ["fhirServer"])


def _check_id(patient_id: str | None) -> None:
    if patient_id is None or not FHIR_ID.fullmatch(patient_id):
        raise BadRequest("context.patientId must be a FHIR id ([A-Za-z0-9-.], 1-64 "
                         "characters) to read from fhirServer", ["context.patientId"])


class _TimeoutAdapter(HTTPAdapter):
    """Every request through it times out after ``FETCH_TIMEOUT_SECONDS``."""

    def send(self, request: PreparedRequest, stream: bool = False,
             timeout: None | float | tuple[float, float] | tuple[float, None] = None,
             verify: bool | str = True, cert: None | bytes | str | tuple[bytes | str,
                                                                         bytes | str] = None,
             proxies: Mapping[str, str] | None = None) -> Response:
        return super().send(request, stream, timeout or FETCH_TIMEOUT_SECONDS, verify, cert,
                            proxies)


def _fetch(fhir_server: str, token: str | None, path: str) -> Any:
    """One query to a trusted CDS client FHIR server, with its ``fhirAuthorization``.

    fhirclient does the request; its session gets a timeout and follows no
    redirect (the token must not travel to another address).
    """
    try:
        server = FHIRServer(None, base_uri=fhir_server)
    except Exception as exc:  # fhirclient raises a bare Exception for a short base URI
        raise PreconditionFailed(f"fhirServer is not usable: {exc}", ["fhirServer"]) from exc
    server.session.max_redirects = 0
    for scheme in ("http://", "https://"):
        server.session.mount(scheme, _TimeoutAdapter())
    if token:
        server.session.headers["Authorization"] = f"Bearer {token}"
    try:
        return server.request_json(path)
    except Exception as exc:  # fhirclient raises bare Exceptions and requests errors
        raise PreconditionFailed(f"Could not read {path} from fhirServer: {exc}") from exc
    finally:
        server.session.close()


def context_from_store(store: Store, order: dict[str, Any],
                       today: date | None = None) -> PatientContext:
    """Context from what the store holds for the order's patient.

    What cannot be read is unknown, not empty: a subject that is not a local
    Patient, a Patient that is not in the store, or a kind of history with
    more entries than HISTORY_LIMIT (older ones unread).
    """
    subject = (order.get("subject") or {}).get("reference", "")
    resources: list[dict[str, Any]] = []
    unknown: dict[str, str] = {}
    if not subject.startswith("Patient/"):
        unknown = dict.fromkeys(UNKNOWABLE, "the order's subject is not a Patient in ScanPath")
        return build_context(order, resources, today or today_utc(), unknown)
    patient_id = subject.split("/", 1)[1]
    resources += _read_patient(store, patient_id)
    if not resources:
        unknown["patient"] = f"{subject} is not in ScanPath"
    for resource_type in HISTORY_TYPES:
        limit = ORDER_HISTORY_LIMIT if HISTORY_LIST[resource_type] == "imaging" \
            else HISTORY_LIMIT
        result = run_search(store.session, spec_for(resource_type),
                            [("patient", patient_id), ("_sort", "-_lastUpdated")],
                            count=limit + 1, with_total=False)
        resources += result.matches[:limit]
        if len(result.matches) > limit:
            unknown[HISTORY_LIST[resource_type]] = (
                f"only the latest {limit} {resource_type} resources were read")
    return build_context(order, resources, today or today_utc(), unknown)


def _read_patient(store: Store, patient_id: str) -> list[dict[str, Any]]:
    try:
        return [store.read("Patient", patient_id)]
    except NotFound:
        return []


def record(store: Store, decision: Decision, ctx: PatientContext,
           card_ids: Iterable[str] = (), fhir_server: str | None = None) -> dict[str, Any]:
    """Store the GuidanceResponse and its Provenance in the current transaction.

    Its subject is the Patient here when ScanPath holds it; a CDS Hooks
    patient lives in the caller's record, so it is referenced absolutely on
    the caller's ``fhirServer``, or, with none, named in a display only (a
    local reference must resolve, references.html).
    """
    base = store.settings.canonical_base
    ensure_pack_version(store.session, engine(decision.pack_id).loaded)
    resource = guidance_response(decision, ctx, base, list(card_ids))
    subject = _subject(store, ctx.patient_ref, fhir_server)
    resource.pop("subject", None)
    if subject:
        resource["subject"] = subject
    written = store.create("GuidanceResponse", resource)
    guidance = written.resource
    store.create("Provenance", provenance(f"GuidanceResponse/{guidance['id']}", decision, base))
    return guidance


def _subject(store: Store, patient_ref: str | None,
             fhir_server: str | None) -> dict[str, str] | None:
    if not patient_ref:
        return None
    resource_type, _, resource_id = patient_ref.partition("/")
    if store.exists(resource_type, resource_id):
        return {"reference": patient_ref}
    if fhir_server:
        return {"reference": f"{fhir_server.rstrip('/')}/{patient_ref}"}
    return {"display": f"{patient_ref} in the requesting system's record"}


def ensure_pack_version(session: Session, loaded: LoadedPack) -> None:
    """Keep a pack version's source so its decisions can be replayed."""
    if session.get(RulePackVersion, loaded.version) is None:
        session.add(RulePackVersion(version=loaded.version, pack_id=loaded.pack.id,
                                    installed_at=now_utc(), source=loaded.source))
        session.flush()


def pack_version(session: Session, version: str | None) -> LoadedPack:
    """A stored pack version, or the shipped one when ``version`` is None."""
    shipped = engine().loaded
    if version in (None, shipped.version):
        return shipped
    row = session.get(RulePackVersion, version)
    if row is None:
        raise NotFound(f"Rule pack version {version} is not installed")
    try:
        return parse_pack(row.source, f"{row.pack_id}@{row.version}", catalogue())
    except PackError as exc:
        raise FhirError(f"Rule pack version {version} no longer loads: {exc}") from exc


def seed(store: Store) -> None:
    """Install the shipped pack versions and publish the local CodeSystems."""
    for loaded in active_packs():
        ensure_pack_version(store.session, loaded)
    base = store.settings.canonical_base
    for system in (procedure_code_system(base, catalogue()), safety_code_system(base)):
        put_if_changed(store, system)
