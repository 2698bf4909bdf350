"""Search parameters, paging, _include/_revinclude, _summary=count and _sort."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.factories import condition, patient, service_request


@pytest.fixture
def orders(client, auth_headers):
    """Two patients; three orders for the first, one for the second."""
    def post(resource):
        response = client.post(f"/fhir/{resource['resourceType']}", json=resource,
                               headers=auth_headers())
        assert response.status_code == 201, response.data
        return response.get_json()

    first = post(patient())
    second = post(patient(nhs_number="9000000009", family="Brown"))
    made = [post(service_request(f"Patient/{first['id']}", authored=f"2026-11-{day}T10:00:00Z",
                                 identifier=f"GP-{day}"))
            for day in ("01", "10", "20")]
    made.append(post(service_request(f"Patient/{second['id']}", status="draft",
                                     authored="2026-10-05")))
    return {"first": first, "second": second, "orders": made}


def _ids(client, headers, query):
    response = client.get(f"/fhir/ServiceRequest?{query}", headers=headers)
    assert response.status_code == 200, response.data
    return [e["resource"]["id"] for e in response.get_json().get("entry", [])
            if e["search"]["mode"] == "match"]


def test_search_by_patient_subject_and_status(client, auth_headers, orders):
    headers = auth_headers()
    first = orders["first"]["id"]
    expected = {o["id"] for o in orders["orders"][:3]}
    assert set(_ids(client, headers, f"patient={first}")) == expected
    assert set(_ids(client, headers, f"subject=Patient/{first}")) == expected
    assert _ids(client, headers, "status=draft") == [orders["orders"][3]["id"]]
    assert len(_ids(client, headers, "status=active,draft")) == 4


def test_search_by_identifier_and_code(client, auth_headers, orders):
    headers = auth_headers()
    assert _ids(client, headers, "identifier=https://gp.example/orders|GP-10") == \
        [orders["orders"][1]["id"]]
    assert len(_ids(client, headers, "code=http://snomed.info/sct|363679005")) == 4
    assert _ids(client, headers, "code=http://loinc.org|363679005") == []


def test_search_by_authored_date_with_prefixes(client, auth_headers, orders):
    headers = auth_headers()
    ids = [o["id"] for o in orders["orders"]]
    assert _ids(client, headers, "authored=2026-11-10") == [ids[1]]
    assert set(_ids(client, headers, "authored=ge2026-11-10")) == {ids[1], ids[2]}
    assert set(_ids(client, headers, "authored=lt2026-11")) == {ids[3]}
    assert set(_ids(client, headers, "authored=gt2026-11-01&authored=le2026-11-15")) == {ids[1]}
    assert set(_ids(client, headers, "authored=2026-11")) == set(ids[:3])


def test_search_by_patient_name_is_case_insensitive_prefix(client, auth_headers, orders):
    found = client.get("/fhir/Patient?name=brO", headers=auth_headers()).get_json()
    assert [e["resource"]["id"] for e in found["entry"]] == [orders["second"]["id"]]
    exact = client.get("/fhir/Patient?family:exact=Bro", headers=auth_headers()).get_json()
    assert exact["total"] == 0


def test_based_on_and_missing(client, auth_headers, orders):
    parent = orders["orders"][0]
    child = service_request(f"Patient/{orders['first']['id']}")
    child["basedOn"] = [{"reference": f"ServiceRequest/{parent['id']}"}]
    made = client.post("/fhir/ServiceRequest", json=child, headers=auth_headers()).get_json()
    headers = auth_headers()
    assert _ids(client, headers, f"based-on=ServiceRequest/{parent['id']}") == [made["id"]]
    assert _ids(client, headers, "based-on:missing=false") == [made["id"]]
    assert len(_ids(client, headers, "based-on:missing=true")) == 4


def test_paging_follows_next_links_through_every_match(client, auth_headers, orders):
    headers = auth_headers()
    page = client.get("/fhir/ServiceRequest?_count=3&_sort=authored", headers=headers).get_json()
    assert page["total"] == 4 and len(page["entry"]) == 3
    seen = [e["resource"]["id"] for e in page["entry"]]
    next_url = next(link["url"] for link in page["link"] if link["relation"] == "next")
    parts = urlsplit(next_url)
    last = client.get(f"{parts.path}?{parts.query}", headers=headers).get_json()
    seen += [e["resource"]["id"] for e in last["entry"]]
    assert not [link for link in last["link"] if link["relation"] == "next"]
    by_date = sorted(orders["orders"], key=lambda o: o["authoredOn"])
    assert seen == [o["id"] for o in by_date]


def test_sort_descending(client, auth_headers, orders):
    ids = _ids(client, auth_headers(), "_sort=-authored")
    assert ids == [o["id"] for o in sorted(orders["orders"], key=lambda o: o["authoredOn"],
                                           reverse=True)]


def test_summary_count_returns_only_the_total(client, auth_headers, orders):
    body = client.get("/fhir/ServiceRequest?_summary=count", headers=auth_headers()).get_json()
    assert body["total"] == 4
    assert not body.get("entry")


def test_include_adds_the_patient_once(client, auth_headers, orders):
    first = orders["first"]["id"]
    body = client.get(f"/fhir/ServiceRequest?patient={first}&_include=ServiceRequest:patient",
                      headers=auth_headers()).get_json()
    included = [e for e in body["entry"] if e["search"]["mode"] == "include"]
    assert [e["resource"]["id"] for e in included] == [first]
    assert body["total"] == 3


def test_revinclude_adds_conditions_pointing_at_the_patient(client, auth_headers, orders):
    first = orders["first"]["id"]
    client.post("/fhir/Condition", json=condition(f"Patient/{first}"), headers=auth_headers())
    body = client.get(f"/fhir/Patient?_id={first}&_revinclude=Condition:subject",
                      headers=auth_headers()).get_json()
    modes = sorted((e["search"]["mode"], e["resource"]["resourceType"]) for e in body["entry"])
    assert modes == [("include", "Condition"), ("match", "Patient")]


def test_last_updated_and_id(client, auth_headers, orders):
    headers = auth_headers()
    first = orders["orders"][0]
    assert _ids(client, headers, f"_id={first['id']}") == [first["id"]]
    stamp = first["meta"]["lastUpdated"]
    assert first["id"] in _ids(client, headers, f"_lastUpdated=ge{stamp}")
    assert first["id"] not in _ids(client, headers, f"_lastUpdated=lt{stamp}")


def test_post_search_matches_get(client, auth_headers, orders):
    headers = {**auth_headers(), "Content-Type": "application/x-www-form-urlencoded"}
    body = client.post("/fhir/ServiceRequest/_search", data="status=draft",
                       headers=headers).get_json()
    assert [e["resource"]["id"] for e in body["entry"]] == [orders["orders"][3]["id"]]


def _found(client, headers, url):
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.data
    return {e["resource"]["id"] for e in response.get_json().get("entry", [])
            if e["search"]["mode"] == "match"}


def test_string_search_ignores_accents(client, auth_headers):
    """search.html#string: matching is case- and accent-insensitive (given=zoe finds Zoë)."""
    headers = auth_headers()
    made = client.post("/fhir/Patient", json={**patient(), "name": [
        {"family": "Brontë", "given": ["Zoë"]}]}, headers=headers).get_json()
    assert _found(client, headers, "/fhir/Patient?given=zoe") == {made["id"]}
    assert _found(client, headers, "/fhir/Patient?family:exact=bronte") == {made["id"]}
    assert _found(client, headers, "/fhir/Patient?name:contains=ONT") == {made["id"]}


def test_escaped_separators_in_token_values(client, auth_headers):
    """search.html#escaping: \\| \\, and \\$ are literal characters of the value."""
    headers = auth_headers()
    order = service_request_with_identifier(client, headers, "A|B,C$D")
    url = "/fhir/ServiceRequest?identifier=https://gp.example/orders|A\\|B\\,C\\$D"
    assert _found(client, headers, url.replace("|A", "|A", 1)) == {order["id"]}
    assert _found(client, headers, "/fhir/ServiceRequest?identifier=A\\|B\\,C\\$D") == \
        {order["id"]}
    assert _found(client, headers, "/fhir/ServiceRequest?identifier=A") == set()


def service_request_with_identifier(client, headers, value):
    pid = client.post("/fhir/Patient", json=patient(), headers=headers).get_json()["id"]
    resource = service_request(f"Patient/{pid}")
    resource["identifier"] = [{"system": "https://gp.example/orders", "value": value}]
    response = client.post("/fhir/ServiceRequest", json=resource, headers=headers)
    assert response.status_code == 201, response.data
    return response.get_json()


def test_long_values_are_found_exactly_and_only_by_themselves(client, auth_headers):
    """Values longer than the index column (255) are bounded alike on both sides."""
    headers = auth_headers()
    long_id = "X" * 300
    order = service_request_with_identifier(client, headers, long_id)
    service_request_with_identifier(client, headers, "X" * 299 + "Y")
    assert _found(client, headers, f"/fhir/ServiceRequest?identifier={long_id}") == {order["id"]}
    first = client.post("/fhir/Patient", json={**patient(), "name": [
        {"family": "A" * 300}]}, headers=headers).get_json()
    client.post("/fhir/Patient", json={**patient(nhs_number="9000000009"), "name": [
        {"family": "A" * 299 + "B"}]}, headers=headers)
    assert _found(client, headers, f"/fhir/Patient?family:exact={'a' * 300}") == {first["id"]}


def test_tag_profile_and_security(client, auth_headers):
    headers = auth_headers()
    made = client.post("/fhir/Patient", json={**patient(), "meta": {
        "tag": [{"system": "https://t.example", "code": "trial"}],
        "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"],
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                      "code": "R"}]}}, headers=headers).get_json()
    assert _found(client, headers, "/fhir/Patient?_tag=https://t.example|trial") == {made["id"]}
    assert _found(client, headers, "/fhir/Patient?_profile=https://fhir.hl7.org.uk/"
                                 "StructureDefinition/UKCore-Patient") == {made["id"]}
    assert _found(client, headers, "/fhir/Patient?_security=R") == {made["id"]}


def _bundle(client, headers, url):
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.data
    return response.get_json()


def test_chained_and_reverse_chained_parameters(client, auth_headers, orders):
    """search.html#chaining and #has."""
    headers = auth_headers()
    nhs = "https://fhir.nhs.uk/Id/nhs-number|9000000009"
    second = {orders["orders"][3]["id"]}
    assert set(_ids(client, headers, f"subject:Patient.identifier={nhs}")) == second
    assert set(_ids(client, headers, "patient.family=brown")) == second
    assert set(_ids(client, headers, f"subject:Patient._id={orders['second']['id']}")) == second
    assert _found(client, headers, "/fhir/Patient?_has:ServiceRequest:subject:status=draft") \
        == {orders["second"]["id"]}
    bad = client.get("/fhir/ServiceRequest?subject.identifier=x", headers=headers)
    assert bad.status_code == 400  # the target type must be named for subject


def test_elements_total_and_lenient_handling(client, auth_headers, orders):
    headers = auth_headers()
    body = _bundle(client, headers, "/fhir/ServiceRequest?_elements=status,subject")
    resource = body["entry"][0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "status", "subject", "intent"}
    assert any(t["code"] == "SUBSETTED" for t in resource["meta"]["tag"])
    assert "total" not in _bundle(client, headers, "/fhir/ServiceRequest?_total=none")
    assert _bundle(client, headers, "/fhir/ServiceRequest?_total=accurate")["total"] == 4
    strict = client.get("/fhir/ServiceRequest?colour=blue", headers=headers)
    assert strict.status_code == 400
    lenient = client.get("/fhir/ServiceRequest?colour=blue&status=draft",
                         headers={**headers, "Prefer": "handling=lenient"}).get_json()
    self_link = next(link["url"] for link in lenient["link"] if link["relation"] == "self")
    assert "colour" not in self_link and "status=draft" in self_link
    outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert "colour" in outcome[0]["resource"]["issue"][0]["diagnostics"]


def test_include_diagnostic_report_results(client, auth_headers):
    headers = auth_headers("demo-admin")
    pid = client.post("/fhir/Patient", json=patient(), headers=headers).get_json()["id"]
    obs = client.post("/fhir/Observation", json={
        "resourceType": "Observation", "status": "final", "subject": {"reference":
                                                                       f"Patient/{pid}"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "450360000"}]},
        "valueQuantity": {"value": 12, "unit": "{score}"}}, headers=headers).get_json()
    report = client.post("/fhir/DiagnosticReport", json={
        "resourceType": "DiagnosticReport", "status": "final",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "426005005"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "result": [{"reference": f"Observation/{obs['id']}"}]}, headers=headers).get_json()
    body = _bundle(client, headers, f"/fhir/DiagnosticReport?_id={report['id']}"
                                    "&_include=DiagnosticReport:result")
    assert {(e["resource"]["resourceType"], e["search"]["mode"]) for e in body["entry"]} == \
        {("DiagnosticReport", "match"), ("Observation", "include")}
