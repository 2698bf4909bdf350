"""Required terminology bindings that ``fhir.resources`` does not enforce.

Each entry is ``(path, value set, allowed codes)``; for CodeableConcept
bindings the code system is given too. Codes are copied from the FHIR R4
(4.0.1) value set pages named in each line, https://hl7.org/fhir/R4/.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Binding:
    path: str
    value_set: str
    codes: frozenset[str]
    system: str | None = None  # set for CodeableConcept bindings


def _b(path: str, value_set: str, codes: str, system: str | None = None) -> Binding:
    return Binding(path, f"http://hl7.org/fhir/ValueSet/{value_set}", frozenset(codes.split()),
                   system)


_GENDER = "male female other unknown"
_REQUEST_STATUS = "draft active on-hold revoked completed entered-in-error unknown"
_REQUEST_PRIORITY = "routine urgent asap stat"
_IDENTIFIER_USE = "usual official temp secondary old"
_NAME_USE = "usual official temp nickname anonymous old maiden"
_TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"

_COMMON = [_b("identifier.use", "identifier-use", _IDENTIFIER_USE)]

BINDINGS: dict[str, list[Binding]] = {
    "Patient": [*_COMMON, _b("gender", "administrative-gender", _GENDER),
                _b("name.use", "name-use", _NAME_USE)],
    "Practitioner": [*_COMMON, _b("gender", "administrative-gender", _GENDER),
                     _b("name.use", "name-use", _NAME_USE)],
    "PractitionerRole": _COMMON,
    "Organization": _COMMON,
    "ServiceRequest": [
        *_COMMON,
        _b("status", "request-status", _REQUEST_STATUS),
        _b("intent", "request-intent",
           "proposal plan directive order original-order reflex-order filler-order "
           "instance-order option"),
        _b("priority", "request-priority", _REQUEST_PRIORITY),
    ],
    "Task": [
        *_COMMON,
        _b("status", "task-status",
           "draft requested received accepted rejected ready cancelled in-progress on-hold "
           "failed completed entered-in-error"),
        _b("intent", "task-intent",
           "unknown proposal plan order original-order reflex-order filler-order "
           "instance-order option"),
        _b("priority", "request-priority", _REQUEST_PRIORITY),
    ],
    "Condition": [
        *_COMMON,
        _b("clinicalStatus", "condition-clinical",
           "active recurrence relapse inactive remission resolved",
           _TERMINOLOGY + "condition-clinical"),
        _b("verificationStatus", "condition-ver-status",
           "unconfirmed provisional differential confirmed refuted entered-in-error",
           _TERMINOLOGY + "condition-ver-status"),
    ],
    "Observation": [
        *_COMMON,
        _b("status", "observation-status",
           "registered preliminary final amended corrected cancelled entered-in-error unknown"),
    ],
    "AllergyIntolerance": [
        *_COMMON,
        _b("clinicalStatus", "allergyintolerance-clinical", "active inactive resolved",
           _TERMINOLOGY + "allergyintolerance-clinical"),
        _b("verificationStatus", "allergyintolerance-verification",
           "unconfirmed confirmed refuted entered-in-error",
           _TERMINOLOGY + "allergyintolerance-verification"),
        _b("type", "allergy-intolerance-type", "allergy intolerance"),
        _b("category", "allergy-intolerance-category", "food medication environment biologic"),
        _b("criticality", "allergy-intolerance-criticality", "low high unable-to-assess"),
        _b("reaction.severity", "reaction-event-severity", "mild moderate severe"),
    ],
    "Device": [*_COMMON, _b("status", "device-status",
                            "active inactive entered-in-error unknown")],
    "ImagingStudy": [*_COMMON, _b("status", "imagingstudy-status",
                                  "registered available cancelled entered-in-error unknown")],
    "DiagnosticReport": [
        *_COMMON,
        _b("status", "diagnostic-report-status",
           "registered partial preliminary final amended corrected appended cancelled "
           "entered-in-error unknown"),
    ],
    "DocumentReference": [
        *_COMMON,
        _b("status", "document-reference-status", "current superseded entered-in-error"),
        _b("docStatus", "composition-status", "preliminary final amended entered-in-error"),
    ],
    "GuidanceResponse": [
        *_COMMON,
        _b("status", "guidance-response-status",
           "success data-requested data-required in-progress failure entered-in-error"),
    ],
    "Provenance": [_b("entity.role", "provenance-entity-role",
                      "derivation revision quotation source removal")],
    "AuditEvent": [_b("action", "audit-event-action", "C R U D E"),
                   _b("outcome", "audit-event-outcome", "0 4 8 12")],
}
