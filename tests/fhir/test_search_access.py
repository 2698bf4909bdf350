"""Every type a search traverses needs the search scope (issue 9 item 4's class).

``_has`` and chains read another type to decide the matches: a client that may not
search that type must not learn, from a total or a match, what it holds. Each path
that searches (GET, POST _search, If-None-Exist, conditional update and delete,
batch and transaction entries, conditional references) is refused alike.
"""

from __future__ import annotations

from typing import Any

import pytest

from auth.tokens import mint_access_token
from tests.factories import patient, post_entry, service_request, transaction

HAS_AUDIT = "_has:AuditEvent:entity:type=rest"  # demo-gp has no AuditEvent scope


@pytest.fixture
def made(client, auth_headers) -> dict[str, Any]:
    """A patient (whose creation is audited) and an order for them."""
    gp = auth_headers("demo-gp")
    person = client.post("/fhir/Patient", json=patient(family="Zedd"), headers=gp).get_json()
    order = client.post("/fhir/ServiceRequest", json=service_request(f"Patient/{person['id']}"),
                        headers=gp).get_json()
    return {"patient": person, "order": order}


@pytest.fixture
def orders_only(settings, auth_headers) -> dict[str, str]:
    """Headers of demo-gp's registration with a token for ServiceRequest alone."""
    token = mint_access_token(settings, "demo-gp", "system/ServiceRequest.crus", 1)
    return {**auth_headers("demo-gp"), "Authorization": f"Bearer {token}"}


def _refused(response: Any) -> None:
    assert response.status_code == 403, response.get_data(as_text=True)
    assert response.get_json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("code", ["rest", "nonexistentcode"])
def test_reverse_chain_on_an_unreadable_type_is_403_whatever_it_matches(
        client, auth_headers, made, code):
    _refused(client.get(f"/fhir/Patient?_has:AuditEvent:entity:type={code}",
                        headers=auth_headers("demo-gp")))


def test_reverse_chain_on_a_readable_type_still_answers(client, auth_headers, made):
    admin = client.get(f"/fhir/Patient?{HAS_AUDIT}", headers=auth_headers("demo-admin"))
    assert admin.status_code == 200 and admin.get_json()["total"] >= 1
    gp = client.get("/fhir/Patient?_has:ServiceRequest:subject:status=active",
                    headers=auth_headers("demo-gp")).get_json()
    assert [e["resource"]["id"] for e in gp["entry"]] == [made["patient"]["id"]]


def test_nested_has_is_refused_not_answered(client, auth_headers, made):
    response = client.get("/fhir/Patient?_has:Observation:patient:_has:AuditEvent:entity:"
                          "type=rest", headers=auth_headers("demo-gp"))
    assert response.status_code in (400, 403)


def test_post_search_with_a_reverse_chain_is_refused(client, auth_headers, made):
    headers = {**auth_headers("demo-gp"), "Content-Type": "application/x-www-form-urlencoded"}
    _refused(client.post("/fhir/Patient/_search", data=HAS_AUDIT, headers=headers))


@pytest.mark.parametrize("query", ["subject:Patient.name=Zedd", "patient.name=Zedd",
                                   "patient.identifier=9434765919"])
def test_forward_chain_needs_the_target_type(client, auth_headers, orders_only, made, query):
    _refused(client.get(f"/fhir/ServiceRequest?{query}", headers=orders_only))
    found = client.get(f"/fhir/ServiceRequest?{query}", headers=auth_headers("demo-gp"))
    assert [e["resource"]["id"] for e in found.get_json()["entry"]] == [made["order"]["id"]]


def test_include_leaves_out_what_the_token_cannot_read(client, orders_only, made):
    found = client.get("/fhir/ServiceRequest?_include=ServiceRequest:subject",
                       headers=orders_only).get_json()
    assert {e["resource"]["resourceType"] for e in found["entry"]} == {"ServiceRequest"}


def test_conditional_create_update_and_delete_criteria_are_gated(client, auth_headers, made):
    gp = auth_headers("demo-gp")
    _refused(client.post("/fhir/Patient", json=patient(),
                         headers={**gp, "If-None-Exist": HAS_AUDIT}))
    _refused(client.put(f"/fhir/Patient?{HAS_AUDIT}", json=patient(), headers=gp))
    _refused(client.delete(f"/fhir/Patient?{HAS_AUDIT}", headers=gp))
    assert client.get(f"/fhir/Patient/{made['patient']['id']}", headers=gp).status_code == 200
    same = client.post("/fhir/ServiceRequest", json=service_request("Patient/x"),
                       headers={**gp, "If-None-Exist": "subject:Patient.name=Zedd"})
    assert same.status_code == 200 and same.get_json()["id"] == made["order"]["id"]


def test_conditional_criteria_need_the_chained_type(client, orders_only, made):
    order = service_request(f"Patient/{made['patient']['id']}")
    _refused(client.post("/fhir/ServiceRequest", json=order,
                         headers={**orders_only, "If-None-Exist": "patient.name=Zedd"}))
    _refused(client.put("/fhir/ServiceRequest?patient.name=Zedd", json=order,
                        headers=orders_only))


def test_batch_search_entry_is_refused_in_its_entry(client, auth_headers, made):
    bundle = transaction({"request": {"method": "GET", "url": f"Patient?{HAS_AUDIT}"}},
                         {"request": {"method": "GET", "url": "Patient?name=Zedd"}},
                         kind="batch")
    body = client.post("/fhir", json=bundle, headers=auth_headers("demo-gp")).get_json()
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses[0].startswith("403") and statuses[1].startswith("200")
    assert body["entry"][1]["resource"]["total"] == 1


def test_transaction_search_and_conditional_create_are_refused(client, auth_headers, made):
    gp = auth_headers("demo-gp")
    search = transaction({"request": {"method": "GET", "url": f"Patient?{HAS_AUDIT}"}})
    _refused(client.post("/fhir", json=search, headers=gp))
    create = post_entry(patient())
    create["request"]["ifNoneExist"] = HAS_AUDIT
    _refused(client.post("/fhir", json=transaction(create), headers=gp))


def test_conditional_reference_is_refused(client, auth_headers, orders_only, made):
    gp = auth_headers("demo-gp")
    bundle = transaction(post_entry(service_request(f"Patient?{HAS_AUDIT}")))
    _refused(client.post("/fhir", json=bundle, headers=gp))
    order = service_request(f"Patient/{made['patient']['id']}")
    earlier = f"ServiceRequest?patient.name=Zedd&_id={made['order']['id']}"
    order["basedOn"] = [{"reference": earlier}]
    _refused(client.post("/fhir", json=transaction(post_entry(order)), headers=orders_only))
    written = client.post("/fhir", json=transaction(post_entry(order)), headers=gp)
    assert written.status_code == 200, written.get_data(as_text=True)
