"""Check an incoming resource: structure (fhir.resources R4B), bindings, NHS numbers.

``fhir.resources`` R4B models are wire-compatible with R4 for the served
types; its default (R5) models reject R4 payloads. It does not enforce
required code bindings, so :mod:`fhir.bindings` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from core.errors import BadRequest, Issue, Unprocessable
from core.params import ascii_digits
from fhir.bindings import BINDINGS, Binding
from fhir.paths import walk
from fhir.resources.R4B import get_fhir_model_class

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ID_PATTERN = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # R4 id datatype (fullmatch)


def validate_resource(resource_type: str, data: Any) -> dict[str, Any]:
    """Return ``data`` if it is a valid ``resource_type``; raise 400/422 otherwise."""
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object holding a FHIR resource")
    if data.get("resourceType") != resource_type:
        raise BadRequest(f"Expected a {resource_type}, got {data.get('resourceType')!r}",
                         [f"{resource_type}.resourceType"])
    # Types first: the binding and NHS number checks read values as the structure
    # says they are, so they run only on a resource whose structure is valid.
    issues = _structure_issues(resource_type, data) or \
        [*_binding_issues(resource_type, data), *_nhs_number_issues(data, resource_type)]
    if issues:
        raise Unprocessable(issues[0].diagnostics, issues=issues)
    return data


@lru_cache(maxsize=64)
def mandatory_elements(resource_type: str) -> frozenset[str]:
    """The top-level elements a ``resource_type`` must have (cardinality 1..)."""
    model = get_fhir_model_class(resource_type)
    return frozenset(field.alias or name for name, field in model.model_fields.items()
                     if field.is_required() or
                     (field.json_schema_extra or {}).get("element_required"))  # type: ignore[union-attr]


def check_id(resource_id: str) -> str:
    """``resource_id`` if it is a valid FHIR id, else a 400."""
    if not valid_id(resource_id):
        raise BadRequest(f"'{resource_id}' is not a valid FHIR id", ["id"])
    return resource_id


def valid_id(value: object) -> bool:
    """Whether ``value`` is a FHIR id: 1 to 64 of ``A-Z a-z 0-9 - .`` (datatypes.html#id)."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def _structure_issues(resource_type: str, data: dict[str, Any]) -> list[Issue]:
    try:
        get_fhir_model_class(resource_type).model_validate(data)
    except ValidationError as exc:
        return [Issue(f"{err['msg']}", "structure" if err["type"] == "extra_forbidden"
                      else "invalid", "error", [_fhirpath(resource_type, err["loc"])])
                for err in exc.errors()]
    return []


def _fhirpath(resource_type: str, loc: tuple[Any, ...]) -> str:
    path = resource_type
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _binding_issues(resource_type: str, data: dict[str, Any]) -> Iterator[Issue]:
    for binding in BINDINGS.get(resource_type, []):
        for value, where in walk(data, binding.path, resource_type):
            if not _binding_met(binding, value):
                yield Issue(f"{value!r} is not in the required value set {binding.value_set}",
                            "code-invalid", "error", [where])


def _binding_met(binding: Binding, value: Any) -> bool:
    """Whether a code (or a CodeableConcept's codings in the bound system) is allowed;
    a value of the wrong JSON type never is."""
    if binding.system is None:
        return isinstance(value, str) and value in binding.codes
    codings = value.get("coding") if isinstance(value, dict) else None
    ours = [c for c in codings if isinstance(c, dict) and c.get("system") == binding.system] \
        if isinstance(codings, list) else []
    return bool(ours) and all(isinstance(c.get("code"), str) and c["code"] in binding.codes
                              for c in ours)


def _nhs_number_issues(node: Any, where: str) -> Iterator[Issue]:
    """Every identifier anywhere with the NHS number system must pass modulus 11."""
    if isinstance(node, dict):
        value = node.get("value")
        if node.get("system") == NHS_NUMBER_SYSTEM and not nhs_number_valid(str(value)):
            yield Issue(f"'{value}' is not a valid NHS number (check digit)",
                        "value", "error", [f"{where}.value"])
        for key, child in node.items():
            yield from _nhs_number_issues(child, f"{where}.{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _nhs_number_issues(child, f"{where}[{index}]")


def nhs_number_valid(value: str) -> bool:
    """The NHS number modulus 11 check.

    Weights 10 to 2 over the first nine digits; the check digit is
    ``11 - (sum mod 11)``, 11 becoming 0 and 10 meaning the number is invalid
    (NHS Data Dictionary, "NHS Number",
    https://www.datadictionary.nhs.uk/attributes/nhs_number.html).
    """
    if len(value) != 10 or not ascii_digits(value):
        return False
    total = sum(int(d) * w for d, w in zip(value[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(value[9])
