"""PATCH, DELETE, conditional update and delete, history, raw Binary (FHIR R4 http.html)."""

from __future__ import annotations

import base64

from tests.factories import condition, patient

JSON_PATCH = "application/json-patch+json"


def _made(client, headers, **kwargs):
    response = client.post("/fhir/Patient", json=patient(**kwargs), headers=headers)
    assert response.status_code == 201
    return response.get_json()


def _patch(client, headers, url, body, content_type=JSON_PATCH, **extra):
    return client.patch(url, json=body, headers={**headers, "Content-Type": content_type,
                                                  **extra})


def test_json_patch_updates_and_versions(client, auth_headers):
    headers = auth_headers("demo-admin")
    made = _made(client, headers)
    ops = [{"op": "replace", "path": "/gender", "value": "male"},
           {"op": "add", "path": "/name/0/given/-", "value": "Jo"}]
    response = _patch(client, headers, f"/fhir/Patient/{made['id']}", ops)
    assert response.status_code == 200
    body = response.get_json()
    assert body["gender"] == "male" and body["name"][0]["given"] == ["Alex", "Jo"]
    assert response.headers["ETag"] == 'W/"2"'
    history = client.get(f"/fhir/Patient/{made['id']}/_history", headers=headers).get_json()
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT", "POST"]


def test_a_failed_test_op_is_422_and_changes_nothing(client, auth_headers):
    headers = auth_headers("demo-admin")
    made = _made(client, headers)
    ops = [{"op": "test", "path": "/gender", "value": "male"},
           {"op": "replace", "path": "/gender", "value": "other"}]
    response = _patch(client, headers, f"/fhir/Patient/{made['id']}", ops)
    assert response.status_code == 422
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    diagnostics = outcome["issue"][0]["diagnostics"]
    assert "operation 1 (test /gender)" in diagnostics
    assert "female" not in diagnostics and "Alex" not in diagnostics  # no record echoed
    missing = _patch(client, headers, f"/fhir/Patient/{made['id']}",
                     [{"op": "remove", "path": "/name/0/suffix"}])
    assert missing.status_code == 422 and "Alex" not in missing.get_data(as_text=True)
    assert client.get(f"/fhir/Patient/{made['id']}", headers=headers).get_json()["gender"] == \
        "female"


def test_patch_if_match_and_bad_documents(client, auth_headers):
    headers = auth_headers("demo-admin")
    made = _made(client, headers)
    url = f"/fhir/Patient/{made['id']}"
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    assert _patch(client, headers, url, ops, **{"If-Match": 'W/"9"'}).status_code == 412
    assert _patch(client, headers, url, [{"op": "jump"}]).status_code == 400
    assert _patch(client, headers, url, {"gender": "male"}).status_code == 400  # not an array
    assert _patch(client, headers, url, ops, content_type="text/plain").status_code == 415
    # the patched resource is validated like any update
    bad = [{"op": "replace", "path": "/gender", "value": "nope"}]
    assert _patch(client, headers, url, bad).status_code in (400, 422)
    assert _patch(client, headers, url, [{"op": "replace", "path": "/id",
                                          "value": "other"}]).status_code == 400


def test_merge_patch_removes_with_null(client, auth_headers):
    headers = auth_headers("demo-admin")
    made = _made(client, headers)
    response = _patch(client, headers, f"/fhir/Patient/{made['id']}", {"birthDate": None},
                      content_type="application/merge-patch+json")
    assert response.status_code == 200
    assert "birthDate" not in response.get_json()


def test_delete_keeps_history_and_reads_410(client, auth_headers):
    headers = auth_headers("demo-admin")
    made = _made(client, headers)
    url = f"/fhir/Patient/{made['id']}"
    assert client.delete(url, headers=headers).status_code == 204
    gone = client.get(url, headers=headers)
    assert gone.status_code == 410
    assert gone.get_json()["issue"][0]["code"] == "deleted"
    assert client.get(f"{url}/_history/1", headers=headers).status_code == 200
    history = client.get(f"{url}/_history", headers=headers).get_json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert "resource" not in history["entry"][0]
    assert client.delete(url, headers=headers).status_code == 204  # already deleted
    assert client.get(f"/fhir/Patient?_id={made['id']}", headers=headers).get_json()["total"] \
        == 0
    # it can come back with PUT, as the next version
    again = client.put(url, json={**patient(), "id": made["id"]}, headers=headers)
    assert again.status_code == 201
    assert again.get_json()["meta"]["versionId"] == "3"


def test_delete_of_unknown_is_404_and_of_a_referenced_resource_is_409(client, auth_headers):
    headers = auth_headers("demo-admin")
    assert client.delete("/fhir/Patient/never-was", headers=headers).status_code == 404
    made = _made(client, headers)
    assert client.post("/fhir/Condition", json=condition(f"Patient/{made['id']}"),
                       headers=headers).status_code == 201
    response = client.delete(f"/fhir/Patient/{made['id']}", headers=headers)
    assert response.status_code == 409
    assert "Condition/" in response.get_json()["issue"][0]["diagnostics"]


def test_delete_needs_the_delete_scope(client, auth_headers):
    """demo-radiology reads Patients (system/Patient.rs) but may not delete them."""
    made = _made(client, auth_headers("demo-admin"))
    response = client.delete(f"/fhir/Patient/{made['id']}",
                             headers=auth_headers("demo-radiology"))
    assert response.status_code == 403


def test_conditional_delete_and_update(client, auth_headers):
    headers = auth_headers("demo-admin")
    query = "identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"
    created = client.put(f"/fhir/Patient?{query}", json=patient(), headers=headers)
    assert created.status_code == 201
    pid = created.get_json()["id"]
    updated = client.put(f"/fhir/Patient?{query}", json=patient(gender="male"), headers=headers)
    assert updated.status_code == 200 and updated.get_json()["id"] == pid
    wrong = client.put(f"/fhir/Patient?{query}", json={**patient(), "id": "someone-else"},
                       headers=headers)
    assert wrong.status_code == 400
    assert client.put(f"/fhir/Patient?{query}", json=[patient()],
                      headers=headers).status_code == 400  # not a resource, never a 500
    # No match, and the body names a Patient that exists but does not match: 409, not
    # an overwrite of someone else's record.
    other = _made(client, headers, nhs_number="9000000009", family="Other")
    clash = client.put("/fhir/Patient?identifier=nobody|x",
                       json={**patient(family="Overwritten"), "id": other["id"]},
                       headers=headers)
    assert clash.status_code == 409
    kept = client.get(f"/fhir/Patient/{other['id']}", headers=headers).get_json()
    assert kept["name"][0]["family"] == "Other"
    _made(client, headers, nhs_number="9000000017", family="Twin")
    _made(client, headers, nhs_number="9000000025", family="Twin")
    assert client.delete("/fhir/Patient?family=Twin", headers=headers).status_code == 412
    assert client.delete(f"/fhir/Patient?{query}", headers=headers).status_code == 204
    assert client.get(f"/fhir/Patient/{pid}", headers=headers).status_code == 410
    assert client.delete(f"/fhir/Patient?{query}", headers=headers).status_code == 204


def test_type_and_system_history(client, auth_headers):
    headers = auth_headers("demo-admin")
    made = _made(client, headers)
    patients = client.get("/fhir/Patient/_history", headers=headers).get_json()
    assert patients["type"] == "history"
    assert any(e["resource"]["id"] == made["id"] for e in patients["entry"]
               if "resource" in e)
    system = client.get("/fhir/_history?_count=5", headers=headers).get_json()
    assert system["type"] == "history" and len(system["entry"]) <= 5
    for _ in range(3):
        _made(client, headers)
    first = client.get("/fhir/Patient/_history?_count=2", headers=headers).get_json()
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert links["self"].startswith("http://localhost/fhir/Patient/_history?")
    second = client.get(links["next"].removeprefix("http://localhost"), headers=headers)
    seen = [(e["fullUrl"], e["response"]["etag"]) for e in first["entry"]]
    later = [(e["fullUrl"], e["response"]["etag"]) for e in second.get_json()["entry"]]
    assert len(later) == 2 and not set(seen) & set(later)  # paged, no overlap
    assert "previous" in {link["relation"] for link in second.get_json()["link"]}
    one = client.get(f"/fhir/Patient/{made['id']}/_history", headers=headers).get_json()
    assert one["link"] == [{"relation": "self",
                            "url": f"http://localhost/fhir/Patient/{made['id']}/_history"}]
    assert client.get("/fhir/Patient/_history?name=x", headers=headers).status_code == 400


def test_binary_is_served_raw_in_its_own_type(client, auth_headers):
    headers = auth_headers("demo-admin")
    data = b"%PDF-1.4 report"
    made = client.post("/fhir/Binary", json={
        "resourceType": "Binary", "contentType": "application/pdf",
        "data": base64.b64encode(data).decode()}, headers=headers).get_json()
    url = f"/fhir/Binary/{made['id']}"
    raw = client.get(url, headers={**headers, "Accept": "application/pdf"})
    assert raw.status_code == 200 and raw.data == data
    assert raw.headers["Content-Type"] == "application/pdf"
    assert client.get(url, headers={**headers, "Accept": "*/*"}).data == data
    assert client.get(url, headers=headers).get_json()["resourceType"] == "Binary"
    assert client.get(url, headers={**headers, "Accept": "image/png"}).status_code == 406


def test_patch_needs_the_read_scope_too(client, auth_headers, db, token):
    """test, copy and move read the record, and the answer returns it: a client that may
    update but not read Patients gets 403, never the record in an error message."""
    import json

    from auth.clients import register_client
    from auth.models import Client

    made = _made(client, auth_headers("demo-admin"))
    jwks = json.loads(db.get(Client, "demo-gp").jwks)
    register_client(db, "writer-only", "Writes", "system/Patient.u", jwks=jwks)
    db.commit()
    headers = {"Authorization": f"Bearer {token('writer-only')}"}
    leak = [{"op": "copy", "from": "/name/0/family", "path": "/gender"}]
    response = _patch(client, headers, f"/fhir/Patient/{made['id']}", leak)
    assert response.status_code == 403
    assert made["name"][0]["family"] not in response.get_data(as_text=True)
