"""What the patient's report page shows, built from one signed report version (issue 13).

:func:`report_page` reads the signed DiagnosticReport version (``vread``), its
Observations, the order in ``basedOn`` (why the scan was asked for) and the performing
organisation (whom to contact), and returns a :class:`PatientReport` for
``templates/patient/report.html``. Texts come from ``patient.plain``.

Unknown is never negative: a missing or unreadable Observation reads "Not available",
never a score of 0 or "no calcium". Only resources of the report's own patient are read
into the page (an Observation or order naming another subject is left out, as missing).
The page carries no internal identifier: no resource id, accession number, NHS number
or UID is copied into it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import FhirError, NotFound
from fhir.store import Store
from imaging_core.reports import format_agatston
from imaging_core.review import SIGNED_OFF
from imaging_core.signoff import next_step
from patient import assets, plain
from referral.orders import RADIOLOGY_ORGANIZATION
from rules.packs import verified_displays

log = logging.getLogger(__name__)

CALCIUM_PROCEDURE = "CT-CAC"  # CONTRACT §3 catalogue key
CALCIUM_SNOMED = "426005005"  # SNOMED CT |Cardiac CT for calcium scoring| (reports.CAC_PROCEDURE)
ZONE = ZoneInfo("Europe/London")  # the department's clock (referral.vetting.DEPARTMENT_ZONE)
ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"


@dataclass(frozen=True)
class CalciumResult:
    """The calcium score in the patient's words; ``category`` None when not known."""

    scored: bool
    score: str
    category: plain.Category | None
    arteries: str
    unscorable: str | None = None


@dataclass(frozen=True)
class KeyImage:
    """The n-th key image (from 1) and its alternative text."""

    number: int
    alt: str


@dataclass(frozen=True)
class Contact:
    """Whom to contact about the scan; ``None`` fields are not recorded."""

    name: str
    phone: str | None = None
    email: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class PatientReport:
    """Everything ``templates/patient/report.html`` shows for one signed report version."""

    test_name: str
    about: list[plain.Text]
    reason: str
    calcium: CalciumResult | None
    conclusion: str
    next_step: str
    next_step_from_radiologist: bool
    images: list[KeyImage]
    has_model: bool
    has_pdf: bool
    contact: Contact
    signed_by: str
    signed_on: str
    amended: bool
    sources: list[str] = field(default_factory=list)


def report_page(store: Store, report_id: str, version: str) -> PatientReport:
    """The page of ``DiagnosticReport/{report_id}/_history/{version}``.

    Raises NotFound (404) when that version does not exist or is not signed off
    (a preliminary result is never shown to a patient); nothing for a normal report.
    """
    report = store.vread("DiagnosticReport", report_id, version)
    if report.get("status") not in SIGNED_OFF:
        raise NotFound(f"DiagnosticReport/{report_id} version {version} is not signed off")
    order = _order(store, report)
    observations = _observations(store, report)
    calcium = _calcium(store.settings.canonical_base, report, observations)
    stated = next_step(store.settings.canonical_base, report)
    about = [plain.WHAT_CALCIUM_SCORING_IS, plain.WHAT_THE_SCORE_IS] if calcium \
        else [plain.WHAT_OTHER_SCANS_SHOW]
    return PatientReport(
        test_name=_test_name(store.settings.canonical_base, report, calcium is not None),
        about=about, reason=_reason(order), calcium=calcium,
        conclusion=str(report.get("conclusion") or plain.NOT_AVAILABLE),
        next_step=stated or plain.NEXT_STEP_NOT_STATED.text,
        next_step_from_radiologist=stated is not None,
        images=_images(report), has_model=_form(report, "model/gltf-binary"),
        has_pdf=assets.report_pdf(store, report_id, version) is not None,
        contact=_contact(store, order),
        signed_by=_signer(store, report), signed_on=_date(report.get("issued")),
        amended=report.get("status") != "final",
        sources=sorted({t.source for t in about} | _category_sources(calcium)))


# --- reading ---------------------------------------------------------------------------

def _reference_id(reference: Any, resource_type: str) -> str | None:
    text = str((reference or {}).get("reference", "")) if isinstance(reference, dict) else ""
    kind, _, ident = text.partition("/")
    return ident.split("/", 1)[0] if kind == resource_type and ident else None


def _read_own(store: Store, resource_type: str, ident: str | None,
              subject: Any) -> dict[str, Any] | None:
    """The resource, if it exists and belongs to ``subject`` (the report's patient)."""
    if ident is None:
        return None
    try:
        resource = store.read(resource_type, ident)
    except FhirError:
        return None
    if resource.get("subject", {}).get("reference") != (subject or {}).get("reference"):
        log.warning("patient page: a referenced resource names another subject",
                    extra={"resource_type": resource_type})
        return None
    return resource


def _order(store: Store, report: dict[str, Any]) -> dict[str, Any] | None:
    refs = [_reference_id(r, "ServiceRequest") for r in report.get("basedOn", [])]
    return _read_own(store, "ServiceRequest", next((r for r in refs if r), None),
                     report.get("subject"))


def _observations(store: Store, report: dict[str, Any]) -> list[dict[str, Any]]:
    found = [_read_own(store, "Observation", _reference_id(ref, "Observation"),
                       report.get("subject")) for ref in report.get("result", [])]
    return [o for o in found if o and o.get("status") not in ("entered-in-error", "cancelled")]


def _code_in(concept: Any, system: str) -> str | None:
    return next((str(c.get("code")) for c in (concept or {}).get("coding", [])
                 if c.get("system") == system), None)


def _measure(base: str, observation: dict[str, Any]) -> str | None:
    return _code_in(observation.get("code"), f"{base}/CodeSystem/measure")


# --- the calcium result ------------------------------------------------------------------

def _is_calcium(base: str, report: dict[str, Any], observations: list[dict[str, Any]]) -> bool:
    code = report.get("code")
    return (_code_in(code, f"{base}/CodeSystem/procedure") == CALCIUM_PROCEDURE
            or _code_in(code, "http://snomed.info/sct") == CALCIUM_SNOMED
            or any(_measure(base, o) in ("agatston-score", "cac-drs") for o in observations))


def _calcium(base: str, report: dict[str, Any],
             observations: list[dict[str, Any]]) -> CalciumResult | None:
    """The total score, CAC-DRS and N; None for a report that is not calcium scoring."""
    if not _is_calcium(base, report, observations):
        return None
    total = next((o for o in observations if _measure(base, o) == "agatston-score"
                  and "bodySite" not in o), None)
    drs = next((o for o in observations if _measure(base, o) == "cac-drs"), None)
    refused = _not_performed(total) or _not_performed(drs)
    if refused is not None:
        return CalciumResult(False, plain.NOT_AVAILABLE, None,
                             plain.arteries_text(None), plain.unscorable_text(refused))
    category = plain.CATEGORIES.get(
        _code_in((drs or {}).get("valueCodeableConcept"), f"{base}/CodeSystem/cac-drs") or "")
    return CalciumResult(True, _score(total), category, plain.arteries_text(_vessels(base, drs)))


def _not_performed(observation: dict[str, Any] | None) -> str | None:
    """The reason text of a ``not-performed`` dataAbsentReason (not scorable), else None."""
    reason = (observation or {}).get("dataAbsentReason") or {}
    if _code_in(reason, ABSENT) != "not-performed":
        return None
    return str(reason.get("text") or "").removeprefix("Not scorable:").strip() or "not stated"


def _score(observation: dict[str, Any] | None) -> str:
    """The total Agatston score as the radiologist's report and PDF print it
    (:func:`imaging_core.reports.format_agatston`: whole points, one decimal where
    rounding would cross a CAC-DRS bound, e.g. 99.6 or 0.4)."""
    value = (observation or {}).get("valueQuantity", {}).get("value")
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return plain.NOT_AVAILABLE
    return format_agatston(float(value))


def _vessels(base: str, drs: dict[str, Any] | None) -> int | None:
    for component in (drs or {}).get("component", []):
        if _code_in(component.get("code"), f"{base}/CodeSystem/measure") == "cac-vessels":
            value = component.get("valueInteger")
            return value if isinstance(value, int) else None
    return None


def _category_sources(calcium: CalciumResult | None) -> set[str]:
    return {calcium.category.source} if calcium and calcium.category else set()


# --- the rest of the page ----------------------------------------------------------------

def _test_name(base: str, report: dict[str, Any], calcium: bool) -> str:
    if calcium:
        return "Heart scan to measure calcium (CT calcium score)"
    code = report.get("code") or {}
    named = code.get("text") or next((c.get("display") for c in code.get("coding", [])
                                      if c.get("display")), None)
    return str(named or "Your scan")


def _reason(order: dict[str, Any] | None) -> str:
    """Why the scan was asked for: the order's reasons in the requester's words."""
    reasons = [r.get("text") or next((_coding_words(c) for c in r.get("coding", [])
                                      if _coding_words(c)), None)
               for r in (order or {}).get("reasonCode", [])]
    words = [str(r) for r in reasons if r]
    return "; ".join(words) if words else plain.NOT_AVAILABLE


def _coding_words(coding: dict[str, Any]) -> str | None:
    """A coding's display, else the display the rule packs confirm for its code."""
    known = verified_displays().get((str(coding.get("system")), str(coding.get("code"))))
    return coding.get("display") or known


def _images(report: dict[str, Any]) -> list[KeyImage]:
    return [KeyImage(n, _alt(str(m.get("comment", ""))))
            for n, m in enumerate(report.get("media", []), start=1)]


def _alt(title: str) -> str:
    """Alternative text for a key image (its Media title names the kind of picture)."""
    colours = ("Calcium counted in your score is coloured yellow, orange, red or purple: "
               "the denser the calcium, the further along that list.")
    if "projection" in title:
        return ("All the CT pictures of your chest combined into one view from your feet. "
                "Bone and calcium show brightest. " + colours)
    return "A CT picture across your chest at the level of your heart. " + colours


def _form(report: dict[str, Any], content_type: str) -> bool:
    return any(f.get("contentType") == content_type for f in report.get("presentedForm", []))


def _contact(store: Store, order: dict[str, Any] | None) -> Contact:
    """The performing organisation (the order's performer, else the radiology department)."""
    refs = [_reference_id(p, "Organization") for p in (order or {}).get("performer", [])]
    ident = next((r for r in refs if r), RADIOLOGY_ORGANIZATION)
    try:
        organisation = store.read("Organization", ident)
    except FhirError:
        return Contact("Not available: contact your GP surgery")
    telecom = organisation.get("telecom", [])
    address = next((a.get("text") or ", ".join([*a.get("line", []), a.get("city", ""),
                                                a.get("postalCode", "")]).strip(", ")
                    for a in organisation.get("address", [])), None)
    return Contact(str(organisation.get("name") or "Radiology department"),
                   _telecom(telecom, "phone"), _telecom(telecom, "email"), address or None)


def _telecom(points: list[dict[str, Any]], system: str) -> str | None:
    return next((str(p["value"]) for p in points
                 if p.get("system") == system and p.get("value")), None)


def _signer(store: Store, report: dict[str, Any]) -> str:
    refs = [_reference_id(r, "Practitioner") for r in report.get("resultsInterpreter", [])]
    ident = next((r for r in refs if r), None)
    try:
        names = store.read("Practitioner", ident).get("name", []) if ident else []
    except FhirError:
        names = []
    for name in names:
        text = name.get("text") or " ".join([*name.get("given", []), name.get("family", "")])
        if text.strip():
            return f"{text.strip()}, radiologist"
    return "A radiologist"


def _date(instant: Any) -> str:
    """An instant as a date in words in UK time ("3 December 2026"); Not available."""
    try:
        when = datetime.fromisoformat(str(instant).replace("Z", "+00:00")).astimezone(ZONE)
    except ValueError:
        return plain.NOT_AVAILABLE
    return f"{when.day} {when:%B %Y}"
