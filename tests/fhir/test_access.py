"""Authentication, scopes, the audit trail, and the CapabilityStatement."""

from __future__ import annotations

from fhir.registry import REGISTRY
from tests.factories import patient


def test_no_token_is_401_with_an_operation_outcome(client):
    response = client.get("/fhir/Patient")
    assert response.status_code == 401
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_forged_token_is_401(client, auth_headers):
    headers = auth_headers()
    headers["Authorization"] = headers["Authorization"][:-4] + "AAAA"
    assert client.get("/fhir/Patient", headers=headers).status_code == 401


def test_scope_that_does_not_cover_the_request_is_403(client, auth_headers):
    report = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "CT"}}
    response = client.post("/fhir/DiagnosticReport", json=report, headers=auth_headers("demo-gp"))
    assert response.status_code == 403
    assert response.get_json()["resourceType"] == "OperationOutcome"
    allowed = client.post("/fhir/DiagnosticReport", json=report,
                          headers=auth_headers("demo-radiology"))
    assert allowed.status_code == 201


def test_every_interaction_is_audited_with_client_action_and_outcome(client, auth_headers):
    made = client.post("/fhir/Patient", json=patient(), headers=auth_headers()).get_json()
    client.get(f"/fhir/Patient/{made['id']}", headers=auth_headers())
    client.post("/fhir/DiagnosticReport", json={"resourceType": "DiagnosticReport"},
                headers=auth_headers())
    events = client.get("/fhir/AuditEvent?_count=50&_sort=_lastUpdated",
                        headers=auth_headers("demo-admin")).get_json()
    summary = [(e["resource"]["subtype"][0]["code"], e["resource"]["action"],
                e["resource"]["outcome"], e["resource"]["agent"][0]["altId"],
                [x["what"]["reference"] for x in e["resource"].get("entity", []) if "what" in x])
               for e in events["entry"]]
    ref = f"Patient/{made['id']}/_history/1"
    assert summary[:3] == [("create", "C", "0", "demo-gp", [ref]),
                           ("read", "R", "0", "demo-gp", [ref]),
                           ("create", "C", "4", "demo-gp", [])]


def test_audit_of_a_change_commits_with_the_change(client, auth_headers):
    made = client.post("/fhir/Patient", json=patient(), headers=auth_headers()).get_json()
    found = client.get(f"/fhir/AuditEvent?entity=Patient/{made['id']}",
                       headers=auth_headers("demo-admin")).get_json()
    assert found["total"] == 1


def test_gp_client_cannot_read_the_audit_trail(client, auth_headers):
    assert client.get("/fhir/AuditEvent", headers=auth_headers("demo-gp")).status_code == 403


def test_metadata_needs_no_token_and_lists_exactly_what_is_served(client):
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    statement = response.get_json()
    assert statement["fhirVersion"] == "4.0.1"
    resources = statement["rest"][0]["resource"]
    assert {r["type"] for r in resources} == set(REGISTRY)
    audit = next(r for r in resources if r["type"] == "AuditEvent")
    assert "create" not in {i["code"] for i in audit["interaction"]}
    order = next(r for r in resources if r["type"] == "ServiceRequest")
    names = {p["name"] for p in order["searchParam"]}
    assert {"identifier", "patient", "subject", "status", "code", "based-on", "authored",
            "_id", "_lastUpdated"} <= names


def test_every_advertised_search_parameter_is_accepted(client, auth_headers):
    statement = client.get("/fhir/metadata").get_json()
    headers = auth_headers("demo-admin")
    for resource in statement["rest"][0]["resource"]:
        for param in resource["searchParam"]:
            value = {"date": "2026", "reference": "Patient/x"}.get(param["type"], "x")
            response = client.get(f"/fhir/{resource['type']}?{param['name']}={value}",
                                  headers=headers)
            assert response.status_code == 200, (resource["type"], param["name"], response.data)


def test_health_and_readiness(client):
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["migrations"] == "head"


def test_metrics_need_an_operator_token(client, auth_headers):
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers=auth_headers("demo-admin"))
    assert response.status_code == 200
    assert b"scanpath_http_requests_total" in response.data


def test_includes_never_return_types_the_token_cannot_read(client, auth_headers):
    made = client.post("/fhir/Patient", json=patient(), headers=auth_headers()).get_json()
    leak = client.get(f"/fhir/Patient?_id={made['id']}&_revinclude=AuditEvent:entity",
                      headers=auth_headers("demo-gp")).get_json()
    assert {e["resource"]["resourceType"] for e in leak["entry"]} == {"Patient"}
    admin = client.get(f"/fhir/Patient?_id={made['id']}&_revinclude=AuditEvent:entity",
                       headers=auth_headers("demo-admin")).get_json()
    assert "AuditEvent" in {e["resource"]["resourceType"] for e in admin["entry"]}


def test_update_as_create_needs_the_create_scope(client, auth_headers):
    made = client.post("/fhir/Patient", json=patient(), headers=auth_headers()).get_json()
    order = {"resourceType": "ServiceRequest", "id": "rad-made-1", "status": "active",
             "intent": "order", "subject": {"reference": f"Patient/{made['id']}"}}
    response = client.put("/fhir/ServiceRequest/rad-made-1", json=order,
                          headers=auth_headers("demo-radiology"))
    assert response.status_code == 403


def test_metadata_lists_patch_delete_history_and_policies(client):
    statement = client.get("/fhir/metadata").get_json()
    rest = statement["rest"][0]
    assert statement["patchFormat"] == ["application/json-patch+json",
                                        "application/merge-patch+json"]
    assert {"transaction", "batch", "history-system"} == {i["code"] for i in rest["interaction"]}
    resources = {r["type"]: r for r in rest["resource"]}
    patient = resources["Patient"]
    assert {"patch", "delete", "history-type"} <= {i["code"] for i in patient["interaction"]}
    assert patient["conditionalUpdate"] is True and patient["conditionalDelete"] == "single"
    assert "enforced" in patient["referencePolicy"]
    order = resources["ServiceRequest"]
    assert "delete" not in {i["code"] for i in order["interaction"]}
    assert order["conditionalDelete"] == "not-supported"
    assert "DiagnosticReport:result" in resources["DiagnosticReport"]["searchInclude"]
    assert {"_tag", "_profile", "_security"} <= {p["name"] for p in patient["searchParam"]}
    assert "handling=lenient" in rest["documentation"]
    provenance = {i["code"] for i in resources["Provenance"]["interaction"]}
    assert "create" in provenance and not {"update", "patch", "delete"} & provenance
    assert resources["Provenance"]["updateCreate"] is False
    assert resources["Provenance"]["conditionalUpdate"] is False


def test_a_provenance_is_never_changed(client, auth_headers):
    headers = auth_headers("demo-admin")
    made = client.post("/fhir/Patient", json=patient(), headers=headers).get_json()
    record = {"resourceType": "Provenance", "recorded": "2026-11-30T10:00:00Z",
              "target": [{"reference": f"Patient/{made['id']}"}],
              "agent": [{"who": {"display": "RIS"}}]}
    created = client.post("/fhir/Provenance", json=record, headers=headers)
    assert created.status_code == 201
    url = f"/fhir/Provenance/{created.get_json()['id']}"
    changed = client.put(url, json={**created.get_json(), "recorded": "2026-11-30T11:00:00Z"},
                         headers=headers)
    assert changed.status_code == 405
    assert changed.headers["Allow"] == "GET, POST"
    assert changed.get_json()["resourceType"] == "OperationOutcome"


def _audit_events(client, admin):
    return client.get("/fhir/AuditEvent?_count=500", headers=admin).get_json().get("entry", [])


def test_read_only_types_are_read_only_on_every_path(client, auth_headers):
    """Issue 9 item 4: AuditEvent and CodeSystem cannot be written by REST, PATCH,
    conditional update, batch or transaction, even with system/*.cruds; nothing is stored."""
    admin = auth_headers("demo-admin")
    client.get("/fhir/Patient/none", headers=admin)  # leaves an AuditEvent to aim at
    target = _audit_events(client, admin)[0]["resource"]
    forged = {**target, "agent": [{**target["agent"][0], "who": {"display": "someone else"}}]}
    codesystem = {"resourceType": "CodeSystem", "id": "forged", "status": "active",
                  "content": "complete"}
    attempts = [
        client.put(f"/fhir/AuditEvent/{target['id']}", json=forged, headers=admin),
        client.patch(f"/fhir/AuditEvent/{target['id']}", json=[
            {"op": "replace", "path": "/outcome", "value": "8"}],
            headers={**admin, "Content-Type": "application/json-patch+json"}),
        client.put(f"/fhir/AuditEvent?_id={target['id']}", json=forged, headers=admin),
        client.delete(f"/fhir/AuditEvent/{target['id']}", headers=admin),
        client.delete(f"/fhir/AuditEvent?_id={target['id']}", headers=admin),
        client.post("/fhir/AuditEvent", json=forged, headers=admin),
        client.put("/fhir/CodeSystem/forged", json=codesystem, headers=admin),
        client.post("/fhir/CodeSystem", json=codesystem, headers=admin),
    ]
    assert [r.status_code for r in attempts] == [405] * len(attempts)
    for kind in ("transaction", "batch"):
        bundle = {"resourceType": "Bundle", "type": kind, "entry": [
            {"resource": forged, "request": {"method": "PUT",
                                             "url": f"AuditEvent/{target['id']}"}},
            {"resource": {**forged, "id": None}, "request": {"method": "POST",
                                                             "url": "AuditEvent"}},
            {"resource": codesystem, "request": {"method": "PUT", "url": "CodeSystem/forged"}}]}
        response = client.post("/fhir", json=bundle, headers=admin)
        if kind == "transaction":
            assert response.status_code == 405
            assert response.get_json()["issue"][0]["expression"] == ["Bundle.entry[0]"]
        else:
            statuses = [e["response"]["status"] for e in response.get_json()["entry"]]
            assert statuses == ["405", "405", "405"]
    stored = client.get(f"/fhir/AuditEvent/{target['id']}", headers=admin).get_json()
    assert stored["meta"]["versionId"] == "1" and stored["agent"] == target["agent"]
    assert client.get("/fhir/CodeSystem/forged", headers=admin).status_code == 404
    validated = client.post("/fhir/AuditEvent/$validate", json=forged, headers=admin)
    assert validated.status_code == 200  # checking is a read; it stores nothing
    assert client.get(f"/fhir/AuditEvent/{target['id']}/_history",
                      headers=admin).get_json()["total"] == 1
