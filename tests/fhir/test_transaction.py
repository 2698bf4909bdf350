"""Transaction and batch Bundles."""

from __future__ import annotations

from tests.factories import condition, patient, post_entry, service_request, transaction

PATIENT_URL = "urn:uuid:5e0a4d6c-0000-4000-8000-000000000001"


def _gp_bundle(**patient_kwargs):
    return transaction(
        post_entry(patient(**patient_kwargs), PATIENT_URL),
        post_entry(condition(PATIENT_URL)),
        post_entry(service_request(PATIENT_URL)),
    )


def _count(client, headers, resource_type):
    body = client.get(f"/fhir/{resource_type}?_summary=count", headers=headers).get_json()
    return body["total"]


def test_transaction_rewrites_urn_uuid_references(client, auth_headers):
    response = client.post("/fhir", json=_gp_bundle(), headers=auth_headers())
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created"] * 3
    patient_id = body["entry"][0]["resource"]["id"]
    order = body["entry"][2]["resource"]
    assert order["subject"]["reference"] == f"Patient/{patient_id}"
    stored = client.get(f"/fhir/ServiceRequest/{order['id']}", headers=auth_headers()).get_json()
    assert stored["subject"]["reference"] == f"Patient/{patient_id}"
    assert any(i["type"]["coding"][0]["code"] == "ACSN" for i in stored["identifier"])


def test_transaction_with_one_bad_entry_changes_nothing(client, auth_headers):
    bundle = _gp_bundle()
    bundle["entry"][2]["resource"]["status"] = "bogus"
    response = client.post("/fhir", json=bundle, headers=auth_headers())
    assert response.status_code == 422
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["Bundle.entry[2].resource.status"]
    headers = auth_headers()
    assert [_count(client, headers, t) for t in ("Patient", "Condition", "ServiceRequest")] == \
        [0, 0, 0]


def test_transaction_if_none_exist_reuses_the_existing_patient(client, auth_headers):
    query = "identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"
    first = transaction(post_entry(patient(), PATIENT_URL, if_none_exist=query),
                        post_entry(service_request(PATIENT_URL)))
    one = client.post("/fhir", json=first, headers=auth_headers()).get_json()
    two = client.post("/fhir", json=first, headers=auth_headers()).get_json()
    assert two["entry"][0]["response"]["status"] == "200 OK"
    assert one["entry"][0]["resource"]["id"] == two["entry"][0]["resource"]["id"]
    assert two["entry"][1]["resource"]["subject"] == one["entry"][1]["resource"]["subject"]
    assert _count(client, auth_headers(), "Patient") == 1
    assert _count(client, auth_headers(), "ServiceRequest") == 2


def test_transaction_entry_without_scope_is_refused_whole(client, auth_headers):
    report = {"resourceType": "DiagnosticReport", "status": "final",
              "code": {"text": "CT"}}
    bundle = transaction(post_entry(patient(), PATIENT_URL), post_entry(report))
    response = client.post("/fhir", json=bundle, headers=auth_headers("demo-gp"))
    assert response.status_code == 403
    assert _count(client, auth_headers(), "Patient") == 0


def test_batch_keeps_good_entries_and_reports_bad_ones(client, auth_headers):
    bad = service_request("Patient/x", status="bogus")
    bundle = transaction(post_entry(patient()), post_entry(bad), kind="batch")
    response = client.post("/fhir", json=bundle, headers=auth_headers())
    assert response.status_code == 200
    statuses = [e["response"]["status"] for e in response.get_json()["entry"]]
    assert statuses[0] == "201 Created" and statuses[1].startswith("422")
    assert _count(client, auth_headers(), "Patient") == 1


def test_bundle_of_the_wrong_type_is_400(client, auth_headers):
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": []}
    response = client.post("/fhir", json=bundle, headers=auth_headers())
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_dangling_urn_uuid_reference_is_refused(client, auth_headers):
    bundle = transaction(post_entry(service_request("urn:uuid:nowhere")))
    response = client.post("/fhir", json=bundle, headers=auth_headers())
    assert response.status_code == 400
    assert _count(client, auth_headers(), "ServiceRequest") == 0


def test_malformed_entries_are_400_not_500(client, auth_headers):
    for broken in ({"ifNoneExist": 5}, {"ifMatch": 5}):
        entry = post_entry(patient())
        entry["request"].update(broken)
        response = client.post("/fhir", json=transaction(entry), headers=auth_headers())
        assert response.status_code == 400, broken
    twice = transaction(post_entry(patient(), PATIENT_URL), post_entry(patient(), PATIENT_URL))
    assert client.post("/fhir", json=twice, headers=auth_headers()).status_code == 400
    vague = transaction(post_entry(patient(), if_none_exist="_count=1"))
    assert client.post("/fhir", json=vague, headers=auth_headers()).status_code == 400


def test_batch_reports_an_unknown_type_in_its_entry(client, auth_headers):
    bundle = transaction(post_entry(patient()),
                         {"resource": {"resourceType": "Spaceship"},
                          "request": {"method": "POST", "url": "Spaceship"}}, kind="batch")
    response = client.post("/fhir", json=bundle, headers=auth_headers())
    assert response.status_code == 200
    statuses = [e["response"]["status"] for e in response.get_json()["entry"]]
    assert statuses[0] == "201 Created" and statuses[1].startswith("404")


NHS_QUERY = "identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"
SECOND_URL = "urn:uuid:5e0a4d6c-0000-4000-8000-000000000002"


def test_two_entries_with_the_same_if_none_exist_are_one_patient(client, auth_headers):
    """FHIR R4 http.html (transaction): conditional creates see earlier entries; the
    Condition and the ServiceRequest end on the same Patient."""
    bundle = transaction(post_entry(patient(), PATIENT_URL, if_none_exist=NHS_QUERY),
                         post_entry(patient(), SECOND_URL, if_none_exist=NHS_QUERY),
                         post_entry(condition(PATIENT_URL)),
                         post_entry(service_request(SECOND_URL)))
    body = client.post("/fhir", json=bundle, headers=auth_headers()).get_json()
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["201 Created", "200 OK", "201 Created", "201 Created"]
    first = body["entry"][0]["resource"]["id"]
    assert body["entry"][1]["response"]["location"].startswith(f"Patient/{first}/")
    assert body["entry"][2]["resource"]["subject"]["reference"] == f"Patient/{first}"
    assert body["entry"][3]["resource"]["subject"]["reference"] == f"Patient/{first}"
    assert _count(client, auth_headers(), "Patient") == 1


def test_a_conditional_create_without_full_url_matches_an_earlier_entry(client, auth_headers):
    bundle = transaction(post_entry(patient(), if_none_exist=NHS_QUERY),
                         post_entry(patient(), PATIENT_URL, if_none_exist=NHS_QUERY),
                         post_entry(service_request(PATIENT_URL)))
    body = client.post("/fhir", json=bundle, headers=auth_headers()).get_json()
    ids = {body["entry"][i]["response"]["location"].split("/")[1] for i in (0, 1)}
    assert len(ids) == 1
    assert _count(client, auth_headers(), "Patient") == 1


def test_a_conditional_reference_sees_an_earlier_entry(client, auth_headers):
    order = service_request(f"Patient?{NHS_QUERY}")
    bundle = transaction(post_entry(order), post_entry(patient(), PATIENT_URL))
    body = client.post("/fhir", json=bundle, headers=auth_headers()).get_json()
    patient_id = body["entry"][1]["resource"]["id"]
    assert body["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{patient_id}"


def test_a_reference_to_nothing_is_refused(client, auth_headers):
    """references.html: a local reference must resolve; the OperationOutcome names it."""
    response = client.post("/fhir/ServiceRequest", json=service_request("Patient/does-not-exist"),
                           headers=auth_headers())
    assert response.status_code == 422
    issue = response.get_json()["issue"][0]
    assert issue["expression"] == ["ServiceRequest.subject"]
    assert "Patient/does-not-exist" in issue["diagnostics"]
    assert _count(client, auth_headers(), "ServiceRequest") == 0


def test_a_reference_to_nothing_inside_a_transaction_names_the_entry(client, auth_headers):
    bundle = transaction(post_entry(patient(), PATIENT_URL),
                         post_entry(condition("Patient/missing")))
    response = client.post("/fhir", json=bundle, headers=auth_headers())
    assert response.status_code == 422
    assert response.get_json()["issue"][0]["expression"] == \
        ["Bundle.entry[1].resource.subject"]
    assert _count(client, auth_headers(), "Patient") == 0


def test_an_update_to_a_reference_to_nothing_is_refused(client, auth_headers):
    headers = auth_headers()
    made = client.post("/fhir/Patient", json=patient(), headers=headers).get_json()
    order = client.post("/fhir/ServiceRequest", json=service_request(f"Patient/{made['id']}"),
                        headers=headers).get_json()
    order["subject"] = {"reference": "Patient/gone"}
    response = client.put(f"/fhir/ServiceRequest/{order['id']}", json=order, headers=headers)
    assert response.status_code == 422


def test_contained_and_absolute_references_are_not_local(client, auth_headers):
    order = service_request("https://gp.example/fhir/Patient/123")
    response = client.post("/fhir/ServiceRequest", json=order, headers=auth_headers())
    assert response.status_code == 201


def test_bundles_follow_the_same_interaction_registry_as_the_rest_routes(client, auth_headers):
    """A Bundle is no way round a 405: records written once (Provenance, AuditEvent) and
    the server's catalogue (CodeSystem) cannot be updated through an entry either."""
    headers = auth_headers("demo-admin")
    made = client.post("/fhir/Patient", json=patient(), headers=headers).get_json()
    record = {"resourceType": "Provenance", "recorded": "2026-11-30T10:00:00Z",
              "target": [{"reference": f"Patient/{made['id']}"}],
              "agent": [{"who": {"display": "RIS"}}]}
    provenance = client.post("/fhir/Provenance", json=record, headers=headers).get_json()
    audit = client.get("/fhir/AuditEvent?_count=1", headers=headers).get_json()["entry"][0]
    forged = {**audit["resource"], "outcome": "0"}
    rewrites = [
        {"resource": {**provenance, "agent": [{"who": {"display": "Hacked"}}]},
         "request": {"method": "PUT", "url": f"Provenance/{provenance['id']}"}},
        {"resource": forged,
         "request": {"method": "PUT", "url": f"AuditEvent/{forged['id']}"}},
        {"resource": {k: v for k, v in forged.items() if k not in ("id", "meta")},
         "request": {"method": "POST", "url": "AuditEvent"}},
        {"resource": {"resourceType": "CodeSystem", "id": "procedure", "status": "draft",
                      "content": "not-present"},
         "request": {"method": "PUT", "url": "CodeSystem/procedure"}},
    ]
    for entry in rewrites:
        whole = client.post("/fhir", json=transaction(entry), headers=headers)
        assert whole.status_code == 405, entry["request"]
        one = client.post("/fhir", json=transaction(entry, kind="batch"), headers=headers)
        assert one.get_json()["entry"][0]["response"]["status"].startswith("405")
    again = client.get(f"/fhir/Provenance/{provenance['id']}", headers=headers).get_json()
    assert again["meta"]["versionId"] == "1"


def test_bundle_entry_urls_beyond_type_and_id_are_refused(client, auth_headers):
    """Batch GET of Patient/x/_history/1 must not answer with the current version."""
    headers = auth_headers("demo-admin")
    made = client.post("/fhir/Patient", json=patient(), headers=headers).get_json()
    for url in (f"Patient/{made['id']}/_history/1", f"Patient/{made['id']}/_history",
                f"Patient/{made['id']}/$validate", "Patient/_history"):
        bundle = transaction({"request": {"method": "GET", "url": url}}, kind="batch")
        status = client.post("/fhir", json=bundle, headers=headers).get_json()[
            "entry"][0]["response"]["status"]
        assert status.startswith("400"), (url, status)
