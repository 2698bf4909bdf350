"""The imaging core's local CodeSystems (CONTRACT §5) and the standard codes beside them.

- ``{base}/CodeSystem/measure``: the measurements (Observation.code, components);
- ``{base}/CodeSystem/coronary-vessel``: LM, LAD, LCX, RCA (Observation.bodySite);
- ``{base}/CodeSystem/cac-drs``: the CAC-DRS Agatston categories A0-A3 (Hecht 2018);
- ``{base}/CodeSystem/cad-rads``: the CAD-RADS 2.0 categories 0-5 and N (Cury 2022).

Standard codes are given only where a public source confirms them; each entry
names its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir.terminology import code_system
from imaging_core.calcium import HECHT_2018

DCM = "http://dicom.nema.org/resources/ontology/DCM"
SCT = "http://snomed.info/sct"


@dataclass(frozen=True)
class Measure:
    display: str
    standard: tuple[dict[str, str], ...] = ()  # standard codes where one exists


CURY_2022 = ("Cury RC et al. CAD-RADS 2.0 - 2022 Coronary Artery Disease-Reporting and Data "
             "System, J Cardiovasc Comput Tomogr 2022;16:536-557")

# CTCA (CONTRACT §5). Standard codes only where pydicom 3.0 ``codes`` (generated from
# DICOM PS3.16) has the concept. Deliberately without one: FFR-CT (SNOMED CT 371842003
# "Fractional flow reserve" is the invasive pressure-wire measurement, which this
# estimate is not) and the stent sizes (SNOMED CT 408706001/408703009 describe a stent
# in place; ours is a suggestion). Reference and minimal lumen diameter, the distance
# from the ostium and the lesion panel itself: no concept found (searched codedict).
CTCA_MEASURES: dict[str, Measure] = {
    "coronary-lesion": Measure("Coronary lesion of 25 % diameter stenosis or more (CTCA)"),
    "vessel": Measure("Coronary artery holding the lesion"),
    "stenosis-pct": Measure(
        "Diameter stenosis, per cent (1 - minimal lumen / reference diameter)",
        ({"system": SCT, "code": "408715008", "display": "Lumen Diameter Stenosis"},)),
    "from-ostium-mm": Measure("Distance of the lesion's centre from the ostium along the "
                              "vessel (LAD and LCX from the left main ostium), mm"),
    "lesion-length-mm": Measure(
        "Lesion length along the centreline, mm",
        ({"system": SCT, "code": "408716009", "display": "Stenotic Lesion Length"},)),
    "reference-diameter-mm": Measure("Reference lumen diameter at the lesion, mm"),
    "minimal-lumen-diameter-mm": Measure("Minimal lumen diameter, mm"),
    "ffr-ct": Measure("FFR-CT: fractional flow reserve estimated from CT (a model, not a "
                      "pressure-wire measurement)"),
    "stent-diameter-mm": Measure("Suggested stent diameter, mm (advice for a cardiologist)"),
    "stent-length-mm": Measure("Suggested stent length, mm (advice for a cardiologist)"),
    "stent-start-mm": Measure("Suggested stent's proximal end from the ostium, mm (advice "
                              "for a cardiologist)"),
    "cad-rads": Measure(
        f"CAD-RADS 2.0 category ({CURY_2022})",
        ({"system": DCM, "code": "130720", "display": "Coronary Artery Disease Assessment"},)),
}

# The measurements and their standard codes (CONTRACT §5; shared/CODES.md, confirmed).
MEASURES: dict[str, Measure] = {
    "agatston-score": Measure(
        "Coronary artery calcium score, Agatston method (Agatston 1990)",
        ({"system": DCM, "code": "112058", "display": "Calcium score"},
         {"system": SCT, "code": "450360000", "display": "Coronary artery calcium score"})),
    "cac-volume-mm3": Measure("Calcified plaque volume in cubic millimetres",
                              ({"system": DCM, "code": "122660", "display": "Calcium Volume"},)),
    "cac-mass-mg": Measure("Calcium mass in milligrams (needs a scanner calibration factor)",
                           ({"system": DCM, "code": "122661", "display": "Calcium Mass"},)),
    "cac-lesion-count": Measure("Number of calcified lesions (3D connected)"),
    "cac-drs": Measure(f"CAC-DRS category ({HECHT_2018})"),
    # No standard code found for CAC-DRS N (searched pydicom codedict and CODES.md).
    "cac-vessels": Measure("CAC-DRS N: number of coronary arteries with calcium "
                           f"(LM, LAD, LCX, RCA; {HECHT_2018})"),
    **CTCA_MEASURES,
}


@dataclass(frozen=True)
class Vessel:
    display: str
    snomed: str  # SNOMED CT body structure, DICOM CID 3016 "Major Coronary Artery"
    snomed_display: str


# The arteries CAC-DRS N counts (Hecht 2018), with their SNOMED CT codes as DICOM PS3.16
# CID 3016 lists them (pydicom 3.0 ``codes.cid3016``; confirmed there, CODES.md has none).
CORONARY_VESSELS: dict[str, Vessel] = {
    "LM": Vessel("Left main coronary artery", "3227004", "Left Main Coronary Artery"),
    "LAD": Vessel("Left anterior descending coronary artery", "59438005",
                  "Left Anterior Descending Coronary Artery"),
    "LCX": Vessel("Left circumflex coronary artery", "57396003", "Circumflex Coronary Artery"),
    "RCA": Vessel("Right coronary artery", "13647002", "Right Coronary Artery"),
}

# CAC-DRS Agatston categories (Hecht 2018): 0, 1-99, 100-299, >= 300. No standard code
# found (searched pydicom codedict and CODES.md); local codes only.
CAC_DRS_CATEGORIES: dict[str, str] = {
    "A0": "CAC-DRS A0: Agatston 0",
    "A1": "CAC-DRS A1: Agatston 1-99",
    "A2": "CAC-DRS A2: Agatston 100-299",
    "A3": "CAC-DRS A3: Agatston 300 or more",
}


@dataclass(frozen=True)
class CadRads:
    display: str
    dcm: str  # DICOM PS3.16 CID 3020 "Assessment from CAD-RADS" (4A, 4B: CID 3021)
    dcm_display: str


# CAD-RADS 2.0 stenosis categories (Cury 2022, Table 2): the maximal diameter stenosis of
# the study; 4B is left main > 50 % or three-vessel obstructive (>= 70 %) disease. DICOM
# codes as pydicom 3.0 ``codes`` lists them (CID 3020, 3021).
CAD_RADS_CATEGORIES: dict[str, CadRads] = {
    "0": CadRads("CAD-RADS 0: 0 %, no plaque or stenosis", "130723",
                 "0 - Documented absence of CAD"),
    "1": CadRads("CAD-RADS 1: 1-24 %, minimal stenosis or plaque with no stenosis", "130724",
                 "1 - Minimal non-obstructive CAD"),
    "2": CadRads("CAD-RADS 2: 25-49 %, mild stenosis", "130725",
                 "2 - Mild non-obstructive CAD"),
    "3": CadRads("CAD-RADS 3: 50-69 %, moderate stenosis", "130726", "3 - Moderate stenosis"),
    "4A": CadRads("CAD-RADS 4A: 70-99 %, severe stenosis", "130728", "4A - Severe stenosis"),
    "4B": CadRads("CAD-RADS 4B: left main > 50 % or three-vessel obstructive (>= 70 %) "
                  "disease", "130729", "4B - Severe stenosis"),
    "5": CadRads("CAD-RADS 5: 100 %, total coronary occlusion", "130730",
                 "5 - Total coronary occlusion"),
    "N": CadRads("CAD-RADS N: non-diagnostic study", "130731", "N - Non-diagnostic study"),
}


def measure_code_system(base: str) -> dict[str, Any]:
    concepts = [{"code": code, "display": m.display} for code, m in MEASURES.items()]
    return code_system(base, "measure", "ScanPath imaging measurements", concepts)


def coronary_vessel_code_system(base: str) -> dict[str, Any]:
    concepts = [{"code": code, "display": v.display} for code, v in CORONARY_VESSELS.items()]
    return code_system(base, "coronary-vessel", "Coronary arteries (CAC-DRS N, CAD-RADS)",
                       concepts)


def cac_drs_code_system(base: str) -> dict[str, Any]:
    concepts = [{"code": code, "display": text} for code, text in CAC_DRS_CATEGORIES.items()]
    return code_system(base, "cac-drs", f"CAC-DRS Agatston categories ({HECHT_2018})",
                       concepts)


def cad_rads_code_system(base: str) -> dict[str, Any]:
    concepts = [{"code": code, "display": c.display} for code, c in CAD_RADS_CATEGORIES.items()]
    return code_system(base, "cad-rads", f"CAD-RADS 2.0 categories ({CURY_2022})", concepts)


def code_systems(base: str) -> list[dict[str, Any]]:
    """Every CodeSystem the imaging core publishes."""
    return [measure_code_system(base), coronary_vessel_code_system(base),
            cac_drs_code_system(base), cad_rads_code_system(base)]


def cad_rads_concept(base: str, category: str) -> dict[str, Any]:
    """A CodeableConcept for a CAD-RADS 2.0 category: the local and the DICOM code."""
    entry = CAD_RADS_CATEGORIES[category]
    return _concept(base, "cad-rads", category, entry.display,
                    {"system": DCM, "code": entry.dcm, "display": entry.dcm_display})


def vessel_concept(base: str, artery: str) -> dict[str, Any]:
    """A CodeableConcept for ``artery`` (LM, LAD, LCX, RCA): the local and the SNOMED CT code."""
    vessel = CORONARY_VESSELS[artery]
    return _concept(base, "coronary-vessel", artery, vessel.display,
                    {"system": SCT, "code": vessel.snomed, "display": vessel.snomed_display})


def _concept(base: str, system: str, code: str, display: str,
             standard: dict[str, str]) -> dict[str, Any]:
    return {"coding": [{"system": f"{base}/CodeSystem/{system}", "code": code,
                        "display": display}, standard], "text": display}


# --- which analysis a report holds ---------------------------------------------------

CALCIUM_SCORING, CORONARY_CTA = "CT-CAC", "CTCA"  # catalogue keys with an analyser (§3, §5)
REPORT_KINDS = (CALCIUM_SCORING, CORONARY_CTA)


def code_in(concept: Any, system: str) -> str | None:
    """The code of ``concept``'s first coding in ``system``, or None."""
    codings = concept.get("coding", []) if isinstance(concept, dict) else []
    return next((str(c.get("code")) for c in codings
                 if isinstance(c, dict) and c.get("system") == system), None)


def report_kind(base: str, report: dict[str, Any]) -> str | None:
    """Which analysis ``report`` holds: ``CT-CAC``, ``CTCA``, or None when not known.

    The one place this is decided: the catalogue key (``{base}/CodeSystem/procedure``,
    CONTRACT §3) on the report's ``code``, which an analyser copies from the order (the
    same key that chose the analyser, ``imaging_core.jobs``). A report without one (for
    example one a RIS wrote) is of no known kind, and the pages say so rather than guess.
    """
    key = code_in(report.get("code"), f"{base}/CodeSystem/procedure")
    return key if key in REPORT_KINDS else None
