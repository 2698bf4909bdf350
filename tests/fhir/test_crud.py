"""Create, read, vread, update, history; ETags, Location, If-Match, conditional create."""

from __future__ import annotations

from tests.factories import patient, service_request


def _create(client, headers, resource, **extra):
    return client.post(f"/fhir/{resource['resourceType']}", json=resource,
                       headers=headers(**extra))


def test_create_then_read_returns_the_resource_with_version_headers(client, auth_headers):
    created = _create(client, auth_headers, patient())
    assert created.status_code == 201
    body = created.get_json()
    assert body["meta"]["versionId"] == "1"
    assert created.headers["ETag"] == 'W/"1"'
    assert created.headers["Location"].endswith(f"/fhir/Patient/{body['id']}/_history/1")
    assert created.headers["Last-Modified"].endswith("GMT")

    read = client.get(f"/fhir/Patient/{body['id']}", headers=auth_headers())
    assert read.status_code == 200
    assert read.get_json()["name"] == [{"family": "Smith", "given": ["Alex"]}]
    assert read.headers["ETag"] == 'W/"1"'


def test_update_makes_a_new_version_and_keeps_the_old_one(client, auth_headers):
    body = _create(client, auth_headers, patient()).get_json()
    body["name"][0]["family"] = "Jones"
    updated = client.put(f"/fhir/Patient/{body['id']}", json=body,
                         headers=auth_headers(If_Match='W/"1"'))
    assert updated.status_code == 200
    assert updated.get_json()["meta"]["versionId"] == "2"

    old = client.get(f"/fhir/Patient/{body['id']}/_history/1", headers=auth_headers())
    assert old.get_json()["name"][0]["family"] == "Smith"
    history = client.get(f"/fhir/Patient/{body['id']}/_history", headers=auth_headers())
    versions = [e["resource"]["meta"]["versionId"] for e in history.get_json()["entry"]]
    assert versions == ["2", "1"]


def test_stale_if_match_is_refused_with_412(client, auth_headers):
    body = _create(client, auth_headers, patient()).get_json()
    client.put(f"/fhir/Patient/{body['id']}", json=body, headers=auth_headers())
    stale = client.put(f"/fhir/Patient/{body['id']}", json=body,
                       headers=auth_headers(If_Match='W/"1"'))
    assert stale.status_code == 412
    assert stale.get_json()["resourceType"] == "OperationOutcome"


def test_update_with_a_new_client_id_creates(client, auth_headers):
    resource = {**patient(), "id": "nhs-9434765919"}
    created = client.put("/fhir/Patient/nhs-9434765919", json=resource, headers=auth_headers())
    assert created.status_code == 201


def test_conditional_create_is_idempotent(client, auth_headers):
    query = "identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"
    first = _create(client, auth_headers, patient(), If_None_Exist=query)
    second = _create(client, auth_headers, patient(), If_None_Exist=query)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.get_json()["id"] == second.get_json()["id"]
    found = client.get(f"/fhir/Patient?{query}", headers=auth_headers()).get_json()
    assert found["total"] == 1


def test_prefer_return_minimal_and_operation_outcome(client, auth_headers):
    minimal = _create(client, auth_headers, patient(), Prefer="return=minimal")
    assert minimal.status_code == 201 and minimal.data == b""
    assert minimal.headers["Location"]
    outcome = _create(client, auth_headers, patient(), Prefer="return=OperationOutcome")
    assert outcome.get_json()["resourceType"] == "OperationOutcome"


def test_every_service_request_gets_a_unique_dicom_safe_accession_number(client, auth_headers):
    pid = _create(client, auth_headers, patient()).get_json()["id"]
    numbers = []
    for _ in range(3):
        order = _create(client, auth_headers, service_request(f"Patient/{pid}")).get_json()
        acsn = [i for i in order["identifier"]
                if i["type"]["coding"][0] == {"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                              "code": "ACSN", "display": "Accession ID"}]
        assert len(acsn) == 1
        assert len(acsn[0]["value"]) <= 16  # DICOM AccessionNumber is VR SH
        numbers.append(acsn[0]["value"])
    assert len(set(numbers)) == 3


def test_accession_number_survives_an_update_that_omits_it(client, auth_headers):
    pid = _create(client, auth_headers, patient()).get_json()["id"]
    order = _create(client, auth_headers, service_request(f"Patient/{pid}")).get_json()
    number = order["identifier"][0]["value"]
    order.pop("identifier")
    order["priority"] = "urgent"  # the status follows the order's state (referral.states)
    updated = client.put(f"/fhir/ServiceRequest/{order['id']}", json=order,
                         headers=auth_headers()).get_json()
    assert [i["value"] for i in updated["identifier"]] == [number]
    found = client.get(f"/fhir/ServiceRequest?identifier={number}",
                       headers=auth_headers()).get_json()
    assert [e["resource"]["id"] for e in found["entry"]] == [order["id"]]


def test_accession_number_cannot_be_chosen_or_changed_by_a_client(client, auth_headers,
                                                                   settings):
    pid = _create(client, auth_headers, patient()).get_json()["id"]
    forged = service_request(f"Patient/{pid}")
    forged["identifier"] = [{"system": settings.accession_system, "value": "SP99999999"}]
    assert _create(client, auth_headers, forged).status_code == 422
    order = _create(client, auth_headers, service_request(f"Patient/{pid}")).get_json()
    order["identifier"][0]["value"] = "SP12345678"
    changed = client.put(f"/fhir/ServiceRequest/{order['id']}", json=order,
                         headers=auth_headers())
    assert changed.status_code == 422


def test_accession_number_cannot_be_duplicated_or_retyped_by_update(client, auth_headers,
                                                                     settings):
    pid = _create(client, auth_headers, patient()).get_json()["id"]
    order = _create(client, auth_headers, service_request(f"Patient/{pid}")).get_json()
    issued = order["identifier"][0]
    extra = {"system": settings.accession_system, "value": "SP99999999"}
    for identifiers in ([issued, extra], [{**issued, "type": {"text": "changed"}}],
                        [issued, {**issued, "system": "https://other.example/acsn"}]):
        changed = client.put(f"/fhir/ServiceRequest/{order['id']}",
                             json={**order, "identifier": identifiers}, headers=auth_headers())
        assert changed.status_code == 422, identifiers
    stored = client.get(f"/fhir/ServiceRequest/{order['id']}", headers=auth_headers()).get_json()
    assert stored["identifier"] == [issued]


def test_links_come_from_the_public_base_not_the_host_header(client, auth_headers):
    """SCANPATH_PUBLIC_BASE_URL builds Location and every link; a forged Host does not."""
    from tests.factories import patient

    created = client.post("/fhir/Patient", json=patient(), headers=auth_headers(),
                          base_url="https://attacker.example")
    assert created.headers["Location"].startswith("http://localhost/fhir/Patient/")
    bundle = client.get("/fhir/Patient", headers=auth_headers(),
                        base_url="https://attacker.example").get_json()
    assert all(link["url"].startswith("http://localhost/fhir/") for link in bundle["link"])
    assert all(e["fullUrl"].startswith("http://localhost/fhir/") for e in bundle["entry"])
