"""Driving an order through FHIR in tests: placing it (GP), moving its Task (RIS),
revoking it, and the imaging core's move; shared by tests/referral and
tests/imaging_core."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlmodel import Session

from core.db import engine_for
from core.settings import Settings
from fhir.store import Store
from referral import orders
from tests import factories

Headers = Callable[..., dict[str, str]]
GP, RIS = "demo-gp", "demo-radiology"
SYSTEM = "https://scanpath.example/fhir/CodeSystem/order-state"  # the default canonical base
JSON_PATCH = "application/json-patch+json"
WHEN = "2026-12-01T09:30:00Z"
# How to reach each state: RIS moves, "gp-revoke", "imaging" (analysis published).
PATHS = {
    "received": [], "vetting": ["vetting"], "accepted": ["vetting", "accepted"],
    "rejected": ["vetting", "rejected"], "more-info-requested": ["vetting",
                                                                 "more-info-requested"],
    "scheduled": ["vetting", "accepted", "scheduled"],
    "in-progress": ["vetting", "accepted", "scheduled", "in-progress"],
    "analysed": ["vetting", "accepted", "scheduled", "in-progress", "imaging"],
    "reported": ["vetting", "accepted", "scheduled", "in-progress", "reported"],
    "completed": ["vetting", "accepted", "scheduled", "in-progress", "reported", "completed"],
    "cancelled": ["vetting", "gp-revoke"],
}


def place(client: FlaskClient, auth_headers: Headers, **changes: Any) -> dict[str, Any]:
    """A Patient and an active imaging ServiceRequest, as the GP's system creates them."""
    patient = client.post("/fhir/Patient", json=factories.patient(), headers=auth_headers(GP))
    assert patient.status_code == 201
    order = {**factories.service_request(f"Patient/{patient.get_json()['id']}"), **changes}
    made = client.post("/fhir/ServiceRequest", json=order, headers=auth_headers(GP))
    assert made.status_code == 201, made.get_json()
    return dict(made.get_json())


def task_of(client: FlaskClient, auth_headers: Headers, order_id: str) -> dict[str, Any]:
    """The one Task whose focus is the order."""
    found = client.get(f"/fhir/Task?focus=ServiceRequest/{order_id}",
                       headers=auth_headers(RIS)).get_json()
    assert found["total"] == 1, found
    return dict(found["entry"][0]["resource"])


def state(task: dict[str, Any]) -> str:
    [code] = [c["code"] for c in task["businessStatus"]["coding"] if c["system"] == SYSTEM]
    return str(code)


def order_status(client: FlaskClient, auth_headers: Headers, order_id: str) -> str:
    return str(client.get(f"/fhir/ServiceRequest/{order_id}",
                          headers=auth_headers(GP)).get_json()["status"])


def business(code: str) -> dict[str, Any]:
    return {"coding": [{"system": SYSTEM, "code": code}]}


def put(client: FlaskClient, auth_headers: Headers, task: dict[str, Any], code: str,
        **extra: Any) -> Any:
    body = {**task, "businessStatus": business(code), **extra}
    return client.put(f"/fhir/Task/{task['id']}", json=body, headers=auth_headers(RIS))


def patch(client: FlaskClient, auth_headers: Headers, task: dict[str, Any], code: str,
          *more: dict[str, Any]) -> Any:
    operations = [{"op": "replace", "path": "/businessStatus", "value": business(code)}, *more]
    return client.patch(f"/fhir/Task/{task['id']}", json=operations,
                        headers=auth_headers(RIS, Content_Type=JSON_PATCH))


def revoke(client: FlaskClient, auth_headers: Headers, order_id: str) -> Any:
    current = client.get(f"/fhir/ServiceRequest/{order_id}", headers=auth_headers(GP))
    return client.put(f"/fhir/ServiceRequest/{order_id}",
                      json={**current.get_json(), "status": "revoked"}, headers=auth_headers(GP))


def imaging_publishes(settings: Settings, order_id: str) -> None:
    """What the imaging core does once its analysis is written (results.publish)."""
    with Session(engine_for(settings.database_url)) as session:
        store = Store(session, settings)
        assert orders.analysed(store, store.read("ServiceRequest", order_id), None)
        session.commit()


def reach(client: FlaskClient, auth_headers: Headers, settings: Settings,
          target: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new order brought to ``target``; the order and its Task."""
    order = place(client, auth_headers)
    for step in PATHS[target]:
        if step == "gp-revoke":
            assert revoke(client, auth_headers, order["id"]).status_code == 200
        elif step == "imaging":
            imaging_publishes(settings, order["id"])
        else:
            extra = {"rejected": {"statusReason": {"text": "Not indicated"}},
                     "scheduled": {"restriction": {"period": {"start": WHEN}}}}.get(step, {})
            task = task_of(client, auth_headers, order["id"])
            moved = put(client, auth_headers, task, step, **extra)
            assert moved.status_code == 200, moved.get_json()
    task = task_of(client, auth_headers, order["id"])
    assert state(task) == target
    return order, task


def refused(response: Any, status: int = 409) -> str:
    """The diagnostics of an OperationOutcome answer with ``status``."""
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0]["diagnostics"])


def audit_descriptions(client: FlaskClient, auth_headers: Headers, task_id: str) -> list[str]:
    found = client.get(f"/fhir/AuditEvent?entity=Task/{task_id}&_count=100",
                       headers=auth_headers("demo-admin")).get_json()
    return [e["resource"].get("outcomeDesc", "") for e in found.get("entry", [])]
