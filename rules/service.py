"""Decisions as a service: gather the context, decide, record the guidance.

Called by the CDS Hooks endpoints, by the ServiceRequest write hook and by
``$replay``; it uses the store for persistence and never touches Flask.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
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
HISTORY_TYPES = ("Condition", "Observation", "AllergyIntolerance", "Device", "ImagingStudy",
                 "ServiceRequest")
# The most recent resources of each kind read for a decision; enough for the
# rules' recency windows and the duplicate check, bounded so that a long
# record does not slow every order (docs/benchmarks.md).
HISTORY_LIMIT = 100
# A CDS client's fhirServer must answer within this (seconds, connect and read).
FETCH_TIMEOUT_SECONDS = 10.0
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_DOT_SEGMENTS = frozenset({".", ".."})  # would climb out of a trusted prefix


def decide(ctx: PatientContext, eng: Engine | None = None) -> Decision:
    return (eng or engine()).decide(ctx)


def prefetched_resources(prefetch: dict[str, Any], fhir_server: str | None,
                         token: str | None, patient_id: str | None,
                         trusted: Iterable[str]) -> list[dict[str, Any]]:
    """The patient's resources from CDS Hooks prefetch, reading any missing key from
    ``fhirServer`` when that server is on the ``trusted`` list.

    Raises :class:`PreconditionFailed` for an untrusted server or a failed read,
    :class:`BadRequest` for a patient id that is not a FHIR id, and
    :class:`MalformedResource` (located) for JSON of the wrong type.
    """
    missing = [key for key in PREFETCH_QUERIES if prefetch.get(key) is None]
    server = fhir_server if missing and fhir_server and patient_id else None
    if server is not None:
        _check_server(server, trusted)
        _check_id(patient_id)
    resources: list[dict[str, Any]] = []
    for key, query in PREFETCH_QUERIES.items():
        value, where = prefetch.get(key), f"prefetch.{key}"
        if value is None and server is not None:
            path = query.format(id=patient_id)
            value, where = _fetch(server, token, path), f"fhirServer {path}"
        try:
            resources += bundle_resources(value)
        except MalformedResource as exc:
            raise exc.at(where) from exc
    return resources


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
    """Context from what the store holds for the order's patient."""
    subject = (order.get("subject") or {}).get("reference", "")
    resources: list[dict[str, Any]] = []
    if subject.startswith("Patient/"):
        patient_id = subject.split("/", 1)[1]
        resources += _read_patient(store, patient_id)
        for resource_type in HISTORY_TYPES:
            result = run_search(store.session, spec_for(resource_type),
                                [("patient", patient_id), ("_sort", "-_lastUpdated")],
                                count=HISTORY_LIMIT, with_total=False)
            resources += result.matches
    return build_context(order, resources, today or today_utc())


def _read_patient(store: Store, patient_id: str) -> list[dict[str, Any]]:
    try:
        return [store.read("Patient", patient_id)]
    except NotFound:
        return []


def record(store: Store, decision: Decision, ctx: PatientContext,
           card_ids: Iterable[str] = ()) -> dict[str, Any]:
    """Store the GuidanceResponse and its Provenance in the current transaction."""
    base = store.settings.canonical_base
    ensure_pack_version(store.session, engine(decision.pack_id).loaded)
    written = store.create("GuidanceResponse",
                           guidance_response(decision, ctx, base, list(card_ids)))
    guidance = written.resource
    store.create("Provenance", provenance(f"GuidanceResponse/{guidance['id']}", decision, base))
    return guidance


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
