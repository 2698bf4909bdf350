"""The imaging core's local CodeSystems (CONTRACT §5) and the standard codes beside them.

- ``{base}/CodeSystem/measure``: the measurements (Observation.code, components);
- ``{base}/CodeSystem/coronary-vessel``: LM, LAD, LCX, RCA (Observation.bodySite);
- ``{base}/CodeSystem/cac-drs``: the CAC-DRS Agatston categories A0-A3 (Hecht 2018).

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


def code_systems(base: str) -> list[dict[str, Any]]:
    """Every CodeSystem the imaging core publishes."""
    return [measure_code_system(base), coronary_vessel_code_system(base),
            cac_drs_code_system(base)]


def vessel_concept(base: str, artery: str) -> dict[str, Any]:
    """A CodeableConcept for ``artery`` (LM, LAD, LCX, RCA): the local and the SNOMED CT code."""
    vessel = CORONARY_VESSELS[artery]
    return {"coding": [{"system": f"{base}/CodeSystem/coronary-vessel", "code": artery,
                        "display": vessel.display},
                       {"system": SCT, "code": vessel.snomed, "display": vessel.snomed_display}],
            "text": vessel.display}
