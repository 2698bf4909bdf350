"""The local CodeSystems the rules publish: the procedure catalogue and safety checks."""

from __future__ import annotations

from typing import Any

from fhir.terminology import code_system
from rules.safety import CHECK_CODES
from rules.schema import Procedure

SAFETY_DISPLAYS = {
    "contrast-renal": "Kidney function before iodinated or gadolinium contrast",
    "contrast-allergy": "Previous reaction to contrast media",
    "pregnancy-radiation": "Possible pregnancy before an ionising exposure of the pelvis",
    "mri-implant": "Implanted device before MRI",
    "duplicate-imaging": "Same or equivalent imaging done or ordered recently",
    "paediatric-dose": "Higher-dose test for a child where a lower-dose one rates the same",
}


def procedure_code_system(base: str, procedures: dict[str, Procedure]) -> dict[str, Any]:
    """``{base}/CodeSystem/procedure``: the catalogue keys with their SNOMED CT codes."""
    properties = [
        {"code": "snomed", "type": "Coding", "description": "SNOMED CT procedure"},
        {"code": "snomed-verified", "type": "boolean",
         "description": "Whether the SNOMED CT code was confirmed in a public source"},
        {"code": "modality", "type": "code", "description": "DICOM modality"},
        {"code": "contrast", "type": "code", "description": "none, iodinated or gadolinium"},
        {"code": "rrl-adult", "type": "integer", "description": "ACR relative radiation level"},
        {"code": "rrl-paediatric", "type": "integer", "description": "ACR paediatric RRL"},
    ]
    concepts = [{"code": p.key, "display": p.display, "property": [
        {"code": "snomed", "valueCoding": {"system": p.snomed.system, "code": p.snomed.code,
                                           "display": p.snomed.display}},
        {"code": "snomed-verified", "valueBoolean": p.snomed.verified},
        {"code": "modality", "valueCode": p.modality},
        {"code": "contrast", "valueCode": p.contrast},
        {"code": "rrl-adult", "valueInteger": p.adult.rrl},
        {"code": "rrl-paediatric", "valueInteger": p.paediatric.rrl}]}
        for p in procedures.values()]
    return code_system(base, "procedure", "ScanPath imaging procedure catalogue", concepts,
                        properties)


def safety_code_system(base: str) -> dict[str, Any]:
    """``{base}/CodeSystem/safety-check``."""
    concepts = [{"code": code, "display": SAFETY_DISPLAYS[code]} for code in CHECK_CODES]
    return code_system(base, "safety-check", "ScanPath safety checks", concepts)
