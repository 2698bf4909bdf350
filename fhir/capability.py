"""The CapabilityStatement, generated from the registry that builds the routes."""

from __future__ import annotations

from typing import Any

from core.fhirjson import MAX_DECIMAL_EXPONENT, MAX_NUMBER_CHARS
from fhir.dates import instant, now_utc
from fhir.registry import (
    COMMON_PARAMS,
    OPERATIONS,
    REGISTRY,
    VALIDATE_DEFINITION,
    ResourceSpec,
)
from fhir.search import LIMITS_TEXT

SEARCH_PARAM_DOCS = "https://hl7.org/fhir/R4/searchparameter-registry.html"
SEARCH_HANDLING = ("Search: an unknown or unsupported parameter is refused with 400 unless the "
                   "request says Prefer: handling=lenient (search.html#errors). Local "
                   "references must resolve on every write (referencePolicy enforced). "
                   + LIMITS_TEXT +
                   f" JSON numbers in a body are at most {MAX_NUMBER_CHARS} characters and "
                   f"within 1e{MAX_DECIMAL_EXPONENT} in size and precision; larger ones are "
                   "refused with 400. References to this server name ids of at most 64 "
                   "characters (datatypes.html#id); token systems and codes longer than 255 "
                   "characters, and other servers' reference types or ids longer than 64, "
                   "are indexed by a prefix and a SHA-256 of the whole: stored whole, found "
                   "by their exact value.")


OWNED_DOCS = ("Owner-only: a client sees and changes only those it created (fhir.ownership); "
              "another's answers 404 as if unknown and is left out of searches and "
              "histories. Created by POST only; no chain or _has through this type.")


def capability_statement(base: str, version: str) -> dict[str, Any]:
    """What this server serves, for ``GET /fhir/metadata``."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(now_utc()),
        "publisher": "ScanPath",
        "kind": "instance",
        "software": {"name": "ScanPath", "version": version},
        "implementation": {"description": "ScanPath imaging referral service", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json", "application/merge-patch+json"],
        "rest": [{
            "mode": "server",
            "documentation": SEARCH_HANDLING,
            "security": _security(base),
            "resource": [_resource(spec) for spec in REGISTRY.values()],
            "interaction": [{"code": "transaction"}, {"code": "batch"},
                            {"code": "history-system"}],
        }],
    }


def _security(base: str) -> dict[str, Any]:
    root = base.rsplit("/fhir", 1)[0]
    return {
        "cors": False,
        "service": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR"}]}],
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{"url": "token", "valueUri": f"{root}/auth/token"}],
        }],
    }


def _resource(spec: ResourceSpec) -> dict[str, Any]:
    writable = "create" in spec.interactions
    updatable = "update" in spec.interactions
    params = [{"name": name, "type": kind} for name, kind in COMMON_PARAMS.items()]
    params += [{"name": p.name, "type": p.type, "documentation": SEARCH_PARAM_DOCS}
               for p in spec.params.values()]
    references = [p.name for p in spec.params.values() if p.type == "reference"]
    owned = {"documentation": OWNED_DOCS} if spec.owned else {}
    return {
        "type": spec.type,
        **owned,
        "interaction": [{"code": code} for code in sorted(spec.interactions)],
        "versioning": "versioned-update" if updatable else "versioned",
        "readHistory": True,
        "updateCreate": writable and updatable and not spec.owned,
        "conditionalCreate": writable,
        "conditionalUpdate": updatable,
        "conditionalDelete": "single" if "delete" in spec.interactions else "not-supported",
        "referencePolicy": ["literal", "local", "enforced"],
        "searchInclude": [f"{spec.type}:{name}" for name in references],
        "searchRevInclude": [f"{other.type}:{p.name}" for other in REGISTRY.values()
                             for p in other.params.values() if p.type == "reference"],
        "searchParam": params,
        "operation": [{"name": "validate", "definition": VALIDATE_DEFINITION}] +
        [{"name": op.name, "definition": op.definition} for op in OPERATIONS.values()
         if op.resource_type == spec.type],
    }
