"""What a CTCA report's Observations say, read back for the pages that show them (issue 14).

:func:`ctca_findings` turns the Observations ``imaging_core.ctca_results`` writes
(CONTRACT §5: ``coronary-lesion``, ``ffr-ct`` per vessel, ``cad-rads``) into a
:class:`CtcaFindings` for the staff report page (``imaging_core.staffviews``) and the
patient's page (``patient.page``). No Flask, no database: the caller reads the
Observations (each page with its own rules of who may see what).

Unknown is never negative. A value carried as ``dataAbsentReason`` is a
:class:`Measured` without a number and with the reason; a vessel whose per-vessel
FFR-CT is absent as ``not-performed`` (not traced, or a study not analysable), or
that has no Observation at all, is in ``not_assessed``, never "normal"; an absent
CAD-RADS keeps its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from imaging_core.ctca_reports import FFR_SIGNIFICANT, STENT_FROM_PCT
from imaging_core.terminology import CAD_RADS_CATEGORIES, CORONARY_VESSELS, CURY_2022, code_in

ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
NO_RESULT = "The report holds no result for it"
# What the pages show of a lesion: measure code (CONTRACT §5), heading, unit, decimals.
Column = tuple[str, str, str, int]
LESION_COLUMNS: tuple[Column, ...] = (
    ("stenosis-pct", "Diameter stenosis", "%", 0),
    ("from-ostium-mm", "Centre from the ostium", "mm", 1),
    ("lesion-length-mm", "Length", "mm", 1),
    ("reference-diameter-mm", "Reference diameter", "mm", 2),
    ("minimal-lumen-diameter-mm", "Minimal lumen diameter", "mm", 2),
    ("ffr-ct", "FFR-CT just distal", "", 2),
)
STENT_COLUMNS: tuple[Column, ...] = (
    ("stent-diameter-mm", "Diameter", "mm", 2),
    ("stent-length-mm", "Length", "mm", 0),
    ("stent-start-mm", "Proximal end from the ostium", "mm", 1),
)
# Where what the pages say comes from (the analysis modules give the details).
SOURCES: tuple[str, ...] = (
    f"CAD-RADS 2.0 categories (maximal diameter stenosis; 4B left main 50 % or more, or "
    f"three-vessel 70 % or more): {CURY_2022}, Table 2.",
    "FFR-CT is a one-dimensional model estimate, not a pressure-wire measurement; "
    f"{FFR_SIGNIFICANT:.2f} or less is read as significant after FAME (Tonino PAL et al. "
    "N Engl J Med 2009;360:213-224). Its assumptions are in the report's Provenance.",
    f"Stent suggestions for lesions of {STENT_FROM_PCT:.0f} % or more: diameter from the "
    "distal reference lumen (ILUMIEN III, Ali ZA et al. Lancet 2016;388:2618-2628, via a "
    "secondary summary: unverified), length healthy to healthy lumen with a 2 mm landing "
    "margin (Campbell PT et al. Catheter Cardiovasc Interv 2015;86:1177-1183); catalogue "
    "sizes of issue 14, not one vendor's (unverified).",
)


@dataclass(frozen=True)
class Measured:
    """A number, or None with why it is unknown."""

    value: float | None
    unknown: str | None = None


@dataclass(frozen=True)
class LesionFinding:
    """One ``coronary-lesion``: its vessel, measures by code, and the stent advice (if any)."""

    vessel: str
    values: dict[str, Measured]
    stent: dict[str, Measured] | None
    stent_note: str | None


@dataclass(frozen=True)
class CtcaFindings:
    """The CTCA result as its Observations state it (module docstring)."""

    cad_rads: str | None
    cad_rads_meaning: str | None
    cad_rads_unknown: str | None
    lesions: list[LesionFinding]
    vessel_ffr: dict[str, Measured]
    not_assessed: dict[str, str]  # vessel -> why
    caveats: list[str] = field(default_factory=list)
    lesion_columns: ClassVar[tuple[Column, ...]] = LESION_COLUMNS
    stent_columns: ClassVar[tuple[Column, ...]] = STENT_COLUMNS

    @property
    def stents(self) -> list[LesionFinding]:
        """The lesions with a stent suggestion (50 % or more)."""
        return [lesion for lesion in self.lesions if lesion.stent is not None]


def ctca_findings(base: str, observations: list[dict[str, Any]]) -> CtcaFindings:
    """The findings of a CTCA report's current Observations (``entered-in-error`` skipped).

    ``base`` is the canonical base of ``{base}/CodeSystem/measure``.
    """
    current = [o for o in observations if o.get("status") != "entered-in-error"]
    by_code: dict[str, list[dict[str, Any]]] = {}
    for observation in current:
        by_code.setdefault(_measure(base, observation) or "", []).append(observation)
    cad_rads, meaning, unknown = _cad_rads(base, by_code.get("cad-rads", []))
    lesions = [_lesion(base, o) for o in by_code.get("coronary-lesion", [])]
    vessel_ffr = _vessel_ffr(base, by_code.get("ffr-ct", []))
    not_assessed = {vessel: value.unknown or NO_RESULT for vessel, value in vessel_ffr.items()
                    if value.value is None and _not_performed(base, vessel, by_code)}
    caveats = [text for text in dict.fromkeys(
        [*([unknown] if unknown else []),
         *(v.unknown for v in vessel_ffr.values() if v.unknown),
         *(m.unknown for lesion in lesions for m in lesion.values.values() if m.unknown)])
        if text]
    return CtcaFindings(cad_rads, meaning, unknown, lesions, vessel_ffr, not_assessed, caveats)


def _measure(base: str, observation: dict[str, Any]) -> str | None:
    return code_in(observation.get("code"), f"{base}/CodeSystem/measure")


def _vessel(base: str, concept: Any) -> str | None:
    return code_in(concept, f"{base}/CodeSystem/coronary-vessel")


def _measured(item: dict[str, Any]) -> Measured:
    """``valueQuantity.value`` of an Observation or component (the store may give a
    Decimal), else its absence reason."""
    value = (item.get("valueQuantity") or {}).get("value")
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return Measured(float(value))
    reason = item.get("dataAbsentReason") or {}
    return Measured(None, str(reason.get("text") or code_in(reason, ABSENT) or NO_RESULT))


def _cad_rads(base: str, found: list[dict[str, Any]]) -> tuple[str | None, str | None,
                                                                str | None]:
    """(category, its meaning, why unknown): from the one ``cad-rads`` Observation."""
    if not found:
        return None, None, f"CAD-RADS: {NO_RESULT.lower()}"
    concept = found[0].get("valueCodeableConcept")
    category = code_in(concept, f"{base}/CodeSystem/cad-rads")
    if category in CAD_RADS_CATEGORIES:
        return category, CAD_RADS_CATEGORIES[category].display, None
    reason = _measured(found[0]).unknown
    return None, None, f"CAD-RADS not given: {reason}"


def _lesion(base: str, observation: dict[str, Any]) -> LesionFinding:
    parts = {_measure(base, c) or "": c for c in observation.get("component", [])}
    vessel = _vessel(base, observation.get("bodySite")) or _vessel(
        base, (parts.get("vessel") or {}).get("valueCodeableConcept")) or "unknown vessel"
    values = {code: _measured(parts.get(code, {})) for code, *_ in LESION_COLUMNS}
    has_stent = any(code in parts for code, *_ in STENT_COLUMNS)
    stent = {code: _measured(parts.get(code, {})) for code, *_ in STENT_COLUMNS} \
        if has_stent else None
    notes = [str(n.get("text")) for n in observation.get("note", []) if n.get("text")]
    return LesionFinding(vessel, values, stent, " ".join(notes) or None)


def _vessel_ffr(base: str, found: list[dict[str, Any]]) -> dict[str, Measured]:
    """Each main vessel's distal FFR-CT; a vessel without an Observation is unknown."""
    by_vessel = {_vessel(base, o.get("bodySite")): o for o in found}
    return {vessel: _measured(by_vessel[vessel]) if vessel in by_vessel
            else Measured(None, NO_RESULT) for vessel in CORONARY_VESSELS}


def _not_performed(base: str, vessel: str, by_code: dict[str, list[dict[str, Any]]]) -> bool:
    """Whether the vessel was not assessed: its FFR-CT is absent as ``not-performed``
    (not traced, or the study not analysable), or it has no FFR-CT Observation."""
    found = [o for o in by_code.get("ffr-ct", []) if _vessel(base, o.get("bodySite")) == vessel]
    if not found:
        return True
    return code_in(found[0].get("dataAbsentReason"), ABSENT) == "not-performed"
