"""What the patient's report page shows, built from one signed report version (issue 13).

:func:`report_page` reads the signed DiagnosticReport version (``vread``), its
Observations, the order in ``basedOn`` (why the scan was asked for) and the performing
organisation (whom to contact), and returns a :class:`PatientReport` for
``templates/patient/report.html``. Texts come from ``patient.plain``.

The page follows the report's kind (``imaging_core.terminology.report_kind``): a
calcium score, a CTCA summary (the CAD-RADS group in plain words and the arteries not
checked, ``imaging_core.ctcafindings``), or, for a kind it does not know, the
radiologist's words and that the result is available from the GP, never a guess.

Unknown is never negative: a missing or unreadable Observation reads "Not available",
never a score of 0 or "no calcium"; an artery not checked is said, never "clear". Only
resources of the report's own patient are read into the page (an Observation or order
naming another subject is left out, as missing).
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
from imaging_core.ctcafindings import ctca_findings
from imaging_core.reports import format_agatston
from imaging_core.review import SIGNED_OFF
from imaging_core.signoff import next_step
from imaging_core.terminology import CALCIUM_SCORING, CORONARY_CTA, code_in, report_kind
from patient import assets, plain
from referral.orders import RADIOLOGY_ORGANIZATION
from rules.packs import verified_displays

log = logging.getLogger(__name__)

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
class CtcaSummary:
    """A CTCA result in the patient's words: the CAD-RADS group (None: not given) with its
    meaning, or why it is unknown; the arteries that could not be checked."""

    category: str | None
    meaning: str
    not_assessed: str | None


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
    ctca: CtcaSummary | None
    result_from_gp: str | None  # for a report of a kind the page does not know
    conclusion: str
    next_step: str
    next_step_from_radiologist: bool
    images: list[KeyImage]
    has_model: bool
    model: plain.ModelText
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
    base = store.settings.canonical_base
    order = _order(store, report)
    observations = _observations(store, report)
    kind = report_kind(base, report)
    calcium = _calcium(base, observations) if kind == CALCIUM_SCORING else None
    ctca = _ctca(base, observations) if kind == CORONARY_CTA else None
    stated = next_step(base, report)
    about = ABOUT.get(kind, [plain.WHAT_OTHER_SCANS_SHOW])
    return PatientReport(
        test_name=_test_name(report, kind),
        about=about, reason=_reason(order), calcium=calcium, ctca=ctca,
        result_from_gp=None if kind else plain.RESULT_FROM_GP.text,
        conclusion=str(report.get("conclusion") or plain.NOT_AVAILABLE),
        next_step=stated or plain.NEXT_STEP_NOT_STATED.text,
        next_step_from_radiologist=stated is not None,
        images=_images(report, kind), has_model=_form(report, "model/gltf-binary"),
        model=plain.CTCA_MODEL if kind == CORONARY_CTA else plain.CALCIUM_MODEL,
        has_pdf=assets.report_pdf(store, report_id, version) is not None,
        contact=_contact(store, order),
        signed_by=_signer(store, report), signed_on=_date(report.get("issued")),
        amended=report.get("status") != "final",
        sources=sorted({t.source for t in about} | _category_sources(calcium, ctca)
                       | ({plain.RESULT_FROM_GP.source} if kind is None else set())))


ABOUT: dict[str | None, list[plain.Text]] = {
    CALCIUM_SCORING: [plain.WHAT_CALCIUM_SCORING_IS, plain.WHAT_THE_SCORE_IS],
    CORONARY_CTA: [plain.WHAT_CTCA_IS, plain.WHAT_CAD_RADS_IS],
}
TEST_NAMES = {CALCIUM_SCORING: "Heart scan to measure calcium (CT calcium score)",
              CORONARY_CTA: "Heart scan of the arteries with dye (CT coronary angiography)"}


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


def _measure(base: str, observation: dict[str, Any]) -> str | None:
    return code_in(observation.get("code"), f"{base}/CodeSystem/measure")


# --- the calcium result ------------------------------------------------------------------

def _calcium(base: str, observations: list[dict[str, Any]]) -> CalciumResult:
    """The total score, CAC-DRS and N of a calcium-scoring report."""
    total = next((o for o in observations if _measure(base, o) == "agatston-score"
                  and "bodySite" not in o), None)
    drs = next((o for o in observations if _measure(base, o) == "cac-drs"), None)
    refused = _not_performed(total) or _not_performed(drs)
    if refused is not None:
        return CalciumResult(False, plain.NOT_AVAILABLE, None,
                             plain.arteries_text(None), plain.unscorable_text(refused))
    category = plain.CATEGORIES.get(
        code_in((drs or {}).get("valueCodeableConcept"), f"{base}/CodeSystem/cac-drs") or "")
    return CalciumResult(True, _score(total), category, plain.arteries_text(_vessels(base, drs)))


def _not_performed(observation: dict[str, Any] | None) -> str | None:
    """The reason text of a ``not-performed`` dataAbsentReason (not scorable), else None."""
    reason = (observation or {}).get("dataAbsentReason") or {}
    if code_in(reason, ABSENT) != "not-performed":
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
        if code_in(component.get("code"), f"{base}/CodeSystem/measure") == "cac-vessels":
            value = component.get("valueInteger")
            return value if isinstance(value, int) else None
    return None


def _category_sources(calcium: CalciumResult | None, ctca: CtcaSummary | None) -> set[str]:
    sources = {calcium.category.source} if calcium and calcium.category else set()
    return sources | ({plain.CAD_RADS_SOURCE} if ctca else set())


# --- the CTCA result ----------------------------------------------------------------------

def _ctca(base: str, observations: list[dict[str, Any]]) -> CtcaSummary:
    """The CAD-RADS group in plain words and the arteries not checked (never "clear")."""
    findings = ctca_findings(base, observations)
    if findings.cad_rads is None:
        return CtcaSummary(None, plain.CTCA_NOT_ASSESSED, None)
    return CtcaSummary(findings.cad_rads, plain.CAD_RADS[findings.cad_rads],
                       plain.not_assessed_text(list(findings.not_assessed)))


# --- the rest of the page ----------------------------------------------------------------

def _test_name(report: dict[str, Any], kind: str | None) -> str:
    if kind in TEST_NAMES:
        return TEST_NAMES[kind]
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


def _images(report: dict[str, Any], kind: str | None) -> list[KeyImage]:
    alt = _straightened_alt if kind == CORONARY_CTA else _alt
    return [KeyImage(n, alt(str(m.get("comment", ""))))
            for n, m in enumerate(report.get("media", []), start=1)]


def _straightened_alt(title: str) -> str:
    """Alternative text for a CTCA straightened view (``imaging_core.ctca_media``)."""
    vessel = next((words for code, words in plain.VESSEL_WORDS.items()
                   if title.startswith(code + " ")), "one artery of your heart")
    return (f"A CT picture of {vessel}, shown straightened out from where it starts at "
            "the aorta. Places where it is narrowed are marked with a box.")


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
