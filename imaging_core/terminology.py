"""``{base}/CodeSystem/measure``: the imaging core's measurements (CONTRACT §5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir.terminology import code_system

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
    "cac-drs": Measure("CAC-DRS category (Hecht et al., J Cardiovasc Comput Tomogr 2018)"),
    **{f"cac-drs-{n}": Measure(f"CAC-DRS A{n}") for n in range(4)},
}


def measure_code_system(base: str) -> dict[str, Any]:
    concepts = [{"code": code, "display": m.display} for code, m in MEASURES.items()]
    return code_system(base, "measure", "ScanPath imaging measurements", concepts)
