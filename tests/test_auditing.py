"""AuditEvents for the token endpoint, /metrics and CDS Hooks feedback; bounded search
queries; and a disabled client's tokens refused on every path."""

from __future__ import annotations

import base64
import uuid

import pytest
from sqlmodel import Session

from auth.clients import client_assertion, key_path, set_active
from core.db import engine_for
from fhir.audit import MAX_AUDIT_QUERY

TOKEN_URL = "http://localhost/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _address() -> str:
    """A client address of its own (TEST-NET-2), so no other test shares its audit window."""
    return f"198.51.100.{uuid.uuid4().int % 250 + 1}:{uuid.uuid4().hex[:6]}"


def _events(client, auth_headers, **params: str) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    bundle = client.get(f"/fhir/AuditEvent?_count=500&{query}",
                        headers=auth_headers("demo-admin")).get_json()
    return [entry["resource"] for entry in bundle.get("entry", [])]


def _at(events: list[dict], address: str) -> list[dict]:
    return [e for e in events if e["agent"][0].get("network", {}).get("address") == address]


def _token_form(settings, client_id: str, audience: str = TOKEN_URL) -> dict[str, str]:
    assertion = client_assertion(client_id, key_path(settings, client_id).read_bytes(), audience)
    return {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion, "scope": "system/Patient.rs"}


def test_an_issued_token_is_audited(client, auth_headers, settings):
    address = _address()
    response = client.post("/auth/token", data=_token_form(settings, "demo-gp"),
                           environ_overrides={"REMOTE_ADDR": address})
    assert response.status_code == 200

    [event] = _at(_events(client, auth_headers), address)
    assert event["outcome"] == "0"
    assert event["type"]["code"] == "110114"  # DCM User Authentication
    assert event["agent"][0]["altId"] == "demo-gp"
    assert "system/Patient.rs" in event["outcomeDesc"]
    assert response.get_json()["access_token"] not in str(event)


def test_token_refusals_are_audited_once_a_minute_per_address(client, auth_headers, settings):
    address = _address()
    for _ in range(3):
        forged = _token_form(settings, "demo-gp", audience="http://evil.example/auth/token")
        response = client.post("/auth/token", data=forged,
                               environ_overrides={"REMOTE_ADDR": address})
        assert response.status_code == 401

    [event] = _at(_events(client, auth_headers), address)
    assert event["outcome"] == "4"
    assert event["agent"][0]["altId"] == "anonymous"  # the claim was not proven
    assert "'demo-gp'" in event["outcomeDesc"] and "invalid_client" in event["outcomeDesc"]


def test_metrics_access_is_audited_allowed_and_refused(client, auth_headers):
    allowed, refused, anonymous = _address(), _address(), _address()
    assert client.get("/metrics", headers=auth_headers("demo-admin"),
                      environ_overrides={"REMOTE_ADDR": allowed}).status_code == 200
    assert client.get("/metrics", headers=auth_headers("demo-gp"),
                      environ_overrides={"REMOTE_ADDR": refused}).status_code == 403
    assert client.get("/metrics", environ_overrides={"REMOTE_ADDR": anonymous}
                      ).status_code == 401

    events = _events(client, auth_headers)
    [ok], [scope], [nobody] = (_at(events, a) for a in (allowed, refused, anonymous))
    assert (ok["outcome"], ok["agent"][0]["altId"]) == ("0", "demo-admin")
    assert (scope["outcome"], scope["agent"][0]["altId"]) == ("4", "demo-gp")
    assert (nobody["outcome"], nobody["agent"][0]["altId"]) == ("4", "anonymous")
    assert base64.b64decode(ok["entity"][0]["query"]) == b"/metrics"


def test_cds_feedback_is_audited(client, auth_headers):
    address = _address()
    body = {"feedback": [{"card": str(uuid.uuid4()), "outcome": "accepted",
                          "acceptedSuggestions": [{"id": str(uuid.uuid4())}],
                          "outcomeTimestamp": "2026-11-23T10:00:00Z"}]}
    response = client.post("/cds-services/imaging-order-select/feedback", json=body,
                           headers=auth_headers("demo-gp"),
                           environ_overrides={"REMOTE_ADDR": address})
    assert response.status_code == 200

    [event] = _at(_events(client, auth_headers), address)
    assert event["agent"][0]["altId"] == "demo-gp"
    assert "feedback" in event["outcomeDesc"] and "imaging-order-select" in event["outcomeDesc"]


def test_refused_and_failed_cds_calls_are_audited(client, auth_headers):
    nobody, bad_body = _address(), _address()
    refused = client.post("/cds-services/imaging-order-select", json={"hook": "order-select"},
                          environ_overrides={"REMOTE_ADDR": nobody})
    failed = client.post("/cds-services/imaging-order-sign/feedback", json={"feedback": []},
                         headers=auth_headers("demo-gp"),
                         environ_overrides={"REMOTE_ADDR": bad_body})
    assert (refused.status_code, failed.status_code) == (401, 400)

    events = _events(client, auth_headers)
    [anonymous], [gp] = _at(events, nobody), _at(events, bad_body)
    assert (anonymous["outcome"], anonymous["agent"][0]["altId"]) == ("4", "anonymous")
    assert "HTTP 401" in anonymous["outcomeDesc"]
    assert (gp["outcome"], gp["agent"][0]["altId"]) == ("4", "demo-gp")
    assert "/cds-services/imaging-order-sign/feedback: HTTP 400" in gp["outcomeDesc"]


def test_a_huge_search_query_is_stored_bounded_in_its_audit(client, auth_headers):
    address = _address()
    query = "family=" + "x" * 200_000 + "&given=y"
    client.get("/fhir/Patient", query_string=query, headers=auth_headers("demo-admin"),
               environ_overrides={"REMOTE_ADDR": address})

    [event] = _at(_events(client, auth_headers), address)
    [entity] = [e for e in event["entity"] if "query" in e]
    assert len(base64.b64decode(entity["query"])) <= MAX_AUDIT_QUERY * 4  # UTF-8 at most
    details = {d["type"]: d["valueString"] for d in entity["detail"]}
    assert details["query-truncated-from-characters"] == str(len(query))
    assert details["query-parameter-names"] == "family&given"
    assert len(details["query-sha256"]) == 64


@pytest.fixture
def disabled_admin(settings):
    """demo-admin disabled after its token was issued; enabled again afterwards."""
    def switch(active: bool) -> None:
        with Session(engine_for(settings.database_url)) as session:
            set_active(session, "demo-admin", active)
            session.commit()
    yield switch
    switch(True)


def test_a_disabled_clients_token_stops_on_every_path(client, auth_headers, settings,
                                                      disabled_admin):
    headers = auth_headers("demo-admin")
    paths = [("GET", "/fhir/Patient", None), ("GET", "/fhir/metadata?_summary=true", None),
             ("POST", "/fhir", {"resourceType": "Bundle", "type": "batch", "entry": []}),
             ("POST", "/cds-services/imaging-order-select", {"hook": "order-select"}),
             ("POST", "/cds-services/imaging-order-select/feedback", {"feedback": []}),
             ("GET", "/dicomweb/studies", None), ("GET", "/metrics", None)]
    before = {path: client.open(path, method=method, json=body, headers=headers).status_code
              for method, path, body in paths}
    disabled_admin(False)

    for method, path, body in paths:
        response = client.open(path, method=method, json=body, headers=headers)
        if path.startswith("/fhir/metadata"):
            assert response.status_code == 200  # open to all, token or not
            continue
        assert before[path] != 401, path
        assert response.status_code == 401, path
        assert "not active" in str(response.get_json()), path
    refused = client.post("/auth/token", data=_token_form(settings, "demo-admin"))
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"


def test_a_search_without_a_query_is_audited_as_a_valid_audit_event(client, auth_headers):
    """An empty query is no base64Binary: the entity names the type and holds no query."""
    address = _address()
    assert client.get("/fhir/Patient", headers=auth_headers("demo-admin"),
                      environ_overrides={"REMOTE_ADDR": address}).status_code == 200

    [event] = _at(_events(client, auth_headers), address)  # the client validates the Bundle
    assert event["entity"] == [{"description": "Patient"}]
