"""Builders for FHIR R4 test resources."""

from __future__ import annotations

from typing import Any

# NHS number 9434765919: weights 10..2 over 943476591 give 299; 299 mod 11 = 2;
# 11 - 2 = 9, the last digit (NHS Data Dictionary modulus 11 algorithm).
VALID_NHS_NUMBER = "9434765919"
# Same first nine digits, wrong check digit.
INVALID_NHS_NUMBER = "9434765918"
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
SNOMED = "http://snomed.info/sct"
# SNOMED CT 363679005 |Imaging (procedure)|, the generic imaging code (shared/CONTRACT.md §4).
IMAGING = {"system": SNOMED, "code": "363679005", "display": "Imaging"}
# SNOMED CT 29857009 |Chest pain (finding)| (shared/CODES.md, confirmed).
CHEST_PAIN = {"system": SNOMED, "code": "29857009", "display": "Chest pain"}


def patient(nhs_number: str = VALID_NHS_NUMBER, family: str = "Smith",
            birth_date: str = "1968-04-02", gender: str = "female") -> dict[str, Any]:
    return {"resourceType": "Patient",
            "identifier": [{"system": NHS_SYSTEM, "value": nhs_number}],
            "name": [{"family": family, "given": ["Alex"]}],
            "gender": gender, "birthDate": birth_date}


def service_request(patient_ref: str, status: str = "active",
                    authored: str = "2026-11-20T09:30:00Z",
                    identifier: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest", "status": status, "intent": "order",
        "category": [{"coding": [IMAGING]}], "code": {"coding": [IMAGING]},
        "subject": {"reference": patient_ref}, "authoredOn": authored,
        "reasonCode": [{"coding": [CHEST_PAIN]}],
    }
    if identifier:
        resource["identifier"] = [{"system": "https://gp.example/orders", "value": identifier}]
    return resource


def condition(patient_ref: str, code: dict[str, str] = CHEST_PAIN) -> dict[str, Any]:
    return {"resourceType": "Condition", "subject": {"reference": patient_ref},
            "code": {"coding": [code]},
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active"}]}}


def transaction(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post_entry(resource: dict[str, Any], full_url: str | None = None,
               if_none_exist: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"resource": resource,
                             "request": {"method": "POST", "url": resource["resourceType"]}}
    if full_url:
        entry["fullUrl"] = full_url
    if if_none_exist:
        entry["request"]["ifNoneExist"] = if_none_exist
    return entry
