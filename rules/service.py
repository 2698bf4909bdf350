"""Decisions as a service: gather the context, decide, record the guidance.

Called by the CDS Hooks endpoints, by the ServiceRequest write hook and by
``$replay``; it uses the store for persistence and never touches Flask.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhirclient.server import FHIRServer
from sqlmodel import Session

from core.errors import FhirError, NotFound, PreconditionFailed
from fhir.dates import now_utc
from fhir.search import run_search
from fhir.store import Store, spec_for
from fhir.terminology import put_if_changed
from rules.context import PatientContext, build_context, bundle_resources, today_utc
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


@dataclass
class Recorded:
    decision: Decision
    context: PatientContext
    guidance: dict[str, Any]


def decide(ctx: PatientContext, eng: Engine | None = None) -> Decision:
    return (eng or engine()).decide(ctx)


def context_from_prefetch(order: dict[str, Any], prefetch: dict[str, Any],
                          fhir_server: str | None, token: str | None,
                          patient_id: str | None) -> PatientContext:
    """Context from CDS Hooks prefetch, fetching any missing key from ``fhirServer``."""
    resources: list[dict[str, Any]] = []
    for key, query in PREFETCH_QUERIES.items():
        value = prefetch.get(key)
        if value is None and fhir_server and patient_id:
            value = _fetch(fhir_server, token, query.format(id=patient_id))
        resources += bundle_resources(value)
    return build_context(order, resources, today_utc())


def _fetch(fhir_server: str, token: str | None, path: str) -> Any:
    """One query to the CDS client's FHIR server, with its ``fhirAuthorization``."""
    server = FHIRServer(None, base_uri=fhir_server)
    if token:
        server.session.headers["Authorization"] = f"Bearer {token}"
    try:
        return server.request_json(path)
    except Exception as exc:  # fhirclient raises bare Exceptions and requests errors
        raise PreconditionFailed(f"Could not read {path} from fhirServer: {exc}") from exc


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
