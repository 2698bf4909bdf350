"""Each class of bad input gets its status and an OperationOutcome, never a 500."""

from __future__ import annotations

import json

import pytest

from tests.factories import INVALID_NHS_NUMBER, patient, service_request


def _outcome(response, status):
    assert response.status_code == status, response.data
    body = response.get_json(force=True)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"] and body["issue"][0]["severity"] in ("error", "fatal")
    return body


def test_malformed_json_is_400(client, auth_headers):
    response = client.post("/fhir/Patient", data=b'{"resourceType": "Patient",',
                           headers=auth_headers())
    _outcome(response, 400)


def test_unknown_type_is_404(client, auth_headers):
    _outcome(client.get("/fhir/Spaceship/1", headers=auth_headers()), 404)
    _outcome(client.get("/fhir/Spaceship", headers=auth_headers()), 404)


def test_unknown_id_is_404(client, auth_headers):
    _outcome(client.get("/fhir/Patient/does-not-exist", headers=auth_headers()), 404)
    _outcome(client.get("/fhir/Patient/does-not-exist/_history/1", headers=auth_headers()), 404)
    made = client.post("/fhir/Patient", json=patient(), headers=auth_headers()).get_json()
    for version in ("99999999999999999999", "9223372036854775808", "0"):  # > any column
        _outcome(client.get(f"/fhir/Patient/{made['id']}/_history/{version}",
                            headers=auth_headers()), 404)


def test_wrong_method_is_405(client, auth_headers):
    """Orders, tasks, studies and reports are corrected (entered-in-error), never deleted."""
    admin = auth_headers("demo-admin")
    for record in ("ServiceRequest", "Task", "ImagingStudy", "DiagnosticReport"):
        _outcome(client.delete(f"/fhir/{record}/1", headers=admin), 405)
    _outcome(client.patch("/fhir/Patient", headers=admin), 405)


def test_clients_cannot_write_audit_events(client, auth_headers):
    event = {"resourceType": "AuditEvent"}
    _outcome(client.post("/fhir/AuditEvent", json=event, headers=auth_headers("demo-admin")), 405)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/fhir+xml"])
def test_wrong_content_type_is_415(client, auth_headers, content_type):
    headers = {**auth_headers(), "Content-Type": content_type}
    _outcome(client.post("/fhir/Patient", data=json.dumps(patient()), headers=headers), 415)


def test_xml_only_accept_is_406(client, auth_headers):
    headers = {**auth_headers(), "Accept": "application/fhir+xml"}
    _outcome(client.get("/fhir/Patient", headers=headers), 406)


def test_body_over_the_limit_is_413(client, auth_headers, settings):
    big = patient()
    big["name"][0]["family"] = "x" * (settings.max_body_bytes + 10)
    _outcome(client.post("/fhir/Patient", data=json.dumps(big), headers=auth_headers()), 413)


def test_bogus_required_code_is_422_with_its_expression(client, auth_headers):
    order = service_request("Patient/p1", status="bogus")
    body = _outcome(client.post("/fhir/ServiceRequest", json=order, headers=auth_headers()), 422)
    assert body["issue"][0]["expression"] == ["ServiceRequest.status"]
    assert body["issue"][0]["code"] == "code-invalid"


def test_structural_error_is_422_with_its_expression(client, auth_headers):
    order = service_request("Patient/p1")
    order["authoredOn"] = "yesterday"
    del order["subject"]
    body = _outcome(client.post("/fhir/ServiceRequest", json=order, headers=auth_headers()), 422)
    expressions = {e for issue in body["issue"] for e in issue.get("expression", [])}
    assert {"ServiceRequest.authoredOn", "ServiceRequest.subject"} <= expressions


def test_unknown_element_is_422(client, auth_headers):
    resource = {**patient(), "favouriteColour": "blue"}
    body = _outcome(client.post("/fhir/Patient", json=resource, headers=auth_headers()), 422)
    assert body["issue"][0]["expression"] == ["Patient.favouriteColour"]


def test_nhs_number_with_a_wrong_check_digit_is_422(client, auth_headers):
    body = _outcome(client.post("/fhir/Patient", json=patient(INVALID_NHS_NUMBER),
                                headers=auth_headers()), 422)
    assert body["issue"][0]["expression"] == ["Patient.identifier[0].value"]


def test_wrong_resource_type_in_body_is_400(client, auth_headers):
    _outcome(client.post("/fhir/Observation", json=patient(), headers=auth_headers()), 400)


def test_body_that_is_not_an_object_is_400(client, auth_headers):
    _outcome(client.post("/fhir/Patient", json=[1, 2], headers=auth_headers()), 400)


def test_update_with_mismatched_id_is_400(client, auth_headers):
    resource = {**patient(), "id": "a"}
    _outcome(client.put("/fhir/Patient/b", json=resource, headers=auth_headers()), 400)


def test_invalid_id_in_url_is_400(client, auth_headers):
    resource = {**patient(), "id": "bad id!"}
    _outcome(client.put("/fhir/Patient/bad id!", json=resource, headers=auth_headers()), 400)


def test_unknown_search_parameter_is_400_unless_lenient(client, auth_headers):
    _outcome(client.get("/fhir/Patient?shoe-size=9", headers=auth_headers()), 400)
    lenient = client.get("/fhir/Patient?shoe-size=9",
                         headers=auth_headers(Prefer="handling=lenient"))
    assert lenient.status_code == 200


def test_bad_search_values_are_400(client, auth_headers):
    for query in ("authored=notadate", "_count=-1", "_sort=shoe-size", "_include=Patient:bogus",
                  "_summary=text", "status:missing=maybe", "name:fuzzy=x"):
        resource = "Patient" if "name" in query else "ServiceRequest"
        _outcome(client.get(f"/fhir/{resource}?{query}", headers=auth_headers()), 400)


def test_validate_operation_reports_without_storing(client, auth_headers):
    bad = client.post("/fhir/ServiceRequest/$validate",
                      json=service_request("Patient/p", status="bogus"), headers=auth_headers())
    assert bad.status_code == 200
    assert bad.get_json()["issue"][0]["expression"] == ["ServiceRequest.status"]
    wrapped = {"resourceType": "Parameters",
               "parameter": [{"name": "resource", "resource": patient()}]}
    good = client.post("/fhir/Patient/$validate", json=wrapped, headers=auth_headers())
    assert good.get_json()["issue"][0]["severity"] == "information"
    assert client.get("/fhir/Patient", headers=auth_headers()).get_json()["total"] == 0


@pytest.mark.parametrize("query", ["birthdate=9999", "birthdate=9999-12",
                                   "_lastUpdated=gt9999-12-31T23:59:59Z",
                                   "birthdate=0001-01-01T00:00:00%2B14:00"])
def test_extreme_dates_are_answered_not_crashed(client, auth_headers, query):
    assert client.get(f"/fhir/Patient?{query}", headers=auth_headers()).status_code == 200


def test_far_future_dates_can_be_stored_and_found(client, auth_headers):
    made = client.post("/fhir/Patient", json=patient(birth_date="9999-12-31"),
                       headers=auth_headers())
    assert made.status_code == 201
    found = client.get("/fhir/Patient?birthdate=ge9999-01-01", headers=auth_headers())
    assert found.get_json()["total"] == 1


def test_deeply_nested_json_is_400(client, auth_headers):
    body = b"[" * 50000 + b"]" * 50000
    response = client.post("/fhir/Patient", data=body, headers=auth_headers())
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_unauthenticated_requests_are_audited_once_a_minute_per_address(client, auth_headers,
                                                                        monkeypatch):
    """A flood of requests without a token writes one AuditEvent per address a minute, the
    next saying how many were counted in between, so nobody can fill the audit table."""
    from fhir import audit

    monkeypatch.setattr(audit, "_anonymous", audit._AnonymousLimiter())
    for _ in range(25):
        assert client.get("/fhir/Patient", environ_base={"REMOTE_ADDR": "203.0.113.9"}) \
            .status_code == 401
    events = client.get("/fhir/AuditEvent?outcome=4&_count=100",
                        headers=auth_headers("demo-admin")).get_json().get("entry", [])
    anonymous = [e for e in events if e["resource"]["source"]["observer"] and
                 any(a.get("network", {}).get("address") == "203.0.113.9"
                     for a in e["resource"]["agent"])]
    assert len(anonymous) == 1
    monkeypatch.setattr(audit, "ANONYMOUS_WINDOW_SECONDS", 0.0)
    client.get("/fhir/Patient", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    events = client.get("/fhir/AuditEvent?outcome=4&_count=100",
                        headers=auth_headers("demo-admin")).get_json().get("entry", [])
    notes = [e["resource"].get("outcomeDesc", "") for e in events]
    assert any("24 more unauthenticated requests from 203.0.113.9" in n for n in notes)


def test_control_characters_are_refused_before_they_reach_the_database(client, auth_headers):
    """datatypes.html#string forbids code points below 32 but tab, CR and LF; PostgreSQL
    cannot store NUL at all. Bodies get 422 naming the element, URLs 400, never a 500."""
    body = patient()
    body["name"][0]["family"] = "Sm\u0000ith"
    response = client.post("/fhir/Patient", json=body, headers=auth_headers())
    assert _outcome(response, 422)["issue"][0]["expression"] == ["Patient.name[0].family"]
    body["name"][0]["family"] = "Smith\u0007"
    assert client.post("/fhir/Patient", json=body, headers=auth_headers()).status_code == 422
    body["name"][0]["family"] = "Smith\tJones\r\n"  # allowed in a FHIR string
    assert client.post("/fhir/Patient", json=body, headers=auth_headers()).status_code == 201
    for url in ("/fhir/Patient?name=a%00b", "/fhir/Patient?na%00me=x",
                "/dicomweb/studies?PatientName=a%00b", "/fhir/Patient/a%00b"):
        _outcome(client.get(url, headers=auth_headers("demo-admin")), 400)
