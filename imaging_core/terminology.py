"""``{base}/CodeSystem/measure``: the imaging core's measurements (CONTRACT §5)."""

from __future__ import annotations

from typing import Any

from fhir.terminology import code_system

MEASURE_CONCEPTS = [
    ("agatston-score", "Coronary artery calcium score, Agatston method (Agatston 1990)"),
    ("cac-volume-mm3", "Calcified plaque volume in cubic millimetres"),
    ("cac-mass-mg", "Calcium mass in milligrams (needs a scanner calibration factor)"),
    ("cac-lesion-count", "Number of calcified lesions (3D connected)"),
    ("cac-drs", "CAC-DRS category (Hecht et al., J Cardiovasc Comput Tomogr 2018)"),
] + [(f"cac-drs-{n}", f"CAC-DRS A{n}") for n in range(4)]


def measure_code_system(base: str) -> dict[str, Any]:
    concepts = [{"code": code, "display": display} for code, display in MEASURE_CONCEPTS]
    return code_system(base, "measure", "ScanPath imaging measurements", concepts)
