"""The independent R4 validator rejects what the specification forbids and accepts the rest.

Expected verdicts come from the FHIR R4 (4.0.1) specification: Patient.gender
is a ``code`` (a JSON string), ServiceRequest.subject is 1..1, Patient.birthDate
is a ``date``, a resource may hold only the elements its definition names, a
choice element ``value[x]`` takes one type, and a string is never empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.fhir_validator import R4Validator

ACSN = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]
}


@pytest.fixture(scope="module")
def validator() -> Iterator[R4Validator]:
    checker = R4Validator()
    yield checker
    checker.close()


def patient(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": "1", "lastUpdated": "2025-01-02T03:04:05.678Z"},
        "name": [{"family": "Smith", "given": ["Ann"]}],
        "gender": "female",
        "birthDate": "1970-05-17",
        **extra,
    }


def service_request(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": "sr1",
        "status": "active",
        "intent": "order",
        "identifier": [{"type": ACSN, "system": "https://scanpath.example/accession",
                        "value": "SP000001"}],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "363679005",
                             "display": "Imaging"}]},
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2025-01-02T03:04:05Z",
        **extra,
    }


def searchset(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": "http://127.0.0.1:8080/fhir/ServiceRequest"}],
        "entry": [
            {"fullUrl": f"http://127.0.0.1:8080/fhir/{r['resourceType']}/{r['id']}",
             "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }


def test_accepts_a_patient(validator: R4Validator) -> None:
    assert validator.validate(patient()) == []


def test_accepts_an_operation_outcome(validator: R4Validator) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found",
                   "diagnostics": "Patient/nope is not known"}],
    }
    assert validator.validate(outcome) == []


def test_accepts_a_searchset_of_service_requests(validator: R4Validator) -> None:
    assert validator.validate_all(searchset(service_request())) == []


def test_accepts_a_transaction_with_urn_uuid_references(validator: R4Validator) -> None:
    urn = "urn:uuid:0b6f8c2a-1111-4222-8333-944445555666"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": urn, "resource": patient(),
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": service_request(subject={"reference": urn}),
             "request": {"method": "POST", "url": "ServiceRequest"}},
        ],
    }
    assert validator.validate_all(bundle) == []


def test_rejects_a_number_where_a_code_belongs(validator: R4Validator) -> None:
    problems = validator.validate(patient(gender=12))
    assert len(problems) == 1
    assert problems[0].startswith("Patient.gender:")


def test_rejects_a_service_request_without_its_required_subject(validator: R4Validator) -> None:
    order = service_request()
    del order["subject"]
    assert validator.validate(order) == ["ServiceRequest.subject: Missing required property"]


def test_rejects_an_element_r4_does_not_define(validator: R4Validator) -> None:
    problems = validator.validate(patient(favouriteColour="blue"))
    assert any(p.startswith("Patient.favouriteColour:") for p in problems)


def test_rejects_an_impossible_date(validator: R4Validator) -> None:
    assert validator.validate(patient(birthDate="1970-13-01")) != []


def test_rejects_two_types_for_one_choice_element(validator: R4Validator) -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "Agatston score"},
        "valueQuantity": {"value": 112, "unit": "1"},
        "valueString": "112",
    }
    assert validator.validate(observation) != []


def test_rejects_an_empty_string(validator: R4Validator) -> None:
    assert validator.validate(patient(name=[{"family": ""}])) == [
        "Patient.name[0].family: Empty string"
    ]


def test_rejects_an_unknown_resource_type(validator: R4Validator) -> None:
    assert validator.validate({"resourceType": "Referral", "id": "x"}) != []


def test_validate_all_names_the_bad_bundle_entry(validator: R4Validator) -> None:
    order = service_request()
    del order["subject"]
    problems = validator.validate_all(searchset(patient(), order))
    assert "entry[1]: ServiceRequest.subject: Missing required property" in problems
    assert not any(p.startswith("entry[0]") for p in problems)


def test_assert_valid_fails_with_every_issue(validator: R4Validator) -> None:
    with pytest.raises(AssertionError, match="Patient.gender"):
        validator.assert_valid(patient(gender=12))


def test_answers_stay_in_step_across_threads(validator: R4Validator) -> None:
    bodies = [patient(gender=12) if i % 2 else patient() for i in range(40)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = list(pool.map(validator.validate, bodies))
    assert [bool(v) for v in verdicts] == [bool(i % 2) for i in range(40)]


def test_restarts_after_close(validator: R4Validator) -> None:
    validator.close()
    assert validator.validate(patient()) == []
