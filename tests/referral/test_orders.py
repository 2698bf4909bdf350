"""The order's state machine through FHIR (issue 11 item 1; shared/CONTRACT.md §6).

A GP's system places orders (``demo-gp``); the RIS (``demo-radiology``) moves
them by PUT or JSON Patch on the order's Task. The moves the RIS may make are
written out here from the issue's list, not read from ``referral.states``:
every other move is refused with 409 and an OperationOutcome, through PUT and
PATCH alike, and inside Bundles. SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session

from core.db import engine_for
from core.settings import Settings
from fhir.store import Store
from referral import orders
from referral.states import Actor, IllegalMove
from tests import factories
from tests.referral.moves import (
    GP,
    RIS,
    SYSTEM,
    WHEN,
    Headers,
    audit_descriptions,
    business,
    imaging_publishes,
    order_status,
    patch,
    place,
    put,
    reach,
    refused,
    revoke,
    state,
    task_of,
)

CODES = ("received", "vetting", "accepted", "rejected", "more-info-requested", "scheduled",
         "in-progress", "analysed", "reported", "completed", "cancelled", "reconcile")
# The moves the issue gives the RIS (radiology); cancelling is the GP's, and the RIS may
# cancel too before the examination. in-progress -> reported serves procedures no
# analyser reads; more-info-requested -> rejected, a requester who never answers.
RIS_MOVES = {
    "received": {"vetting", "cancelled"},
    "vetting": {"accepted", "rejected", "more-info-requested", "cancelled"},
    "more-info-requested": {"vetting", "rejected", "cancelled"},
    "accepted": {"scheduled", "cancelled"},
    "scheduled": {"in-progress", "cancelled"},
    "in-progress": {"reported"},
    "analysed": {"reported"},
    "reported": {"completed"},
    "completed": set(), "rejected": set(), "cancelled": set(),
}

# --- intake -------------------------------------------------------------------------------

def test_intake_opens_one_task_for_the_order(client: FlaskClient, auth_headers: Headers) -> None:
    order = place(client, auth_headers)
    task = task_of(client, auth_headers, order["id"])
    assert (state(task), task["status"], task["intent"]) == ("received", "requested", "order")
    assert task["focus"] == {"reference": f"ServiceRequest/{order['id']}"}
    assert task["for"] == order["subject"]
    accession = [i for i in order["identifier"] if i["type"]["coding"][0]["code"] == "ACSN"]
    assert task["identifier"] == accession
    owner = client.get(f"/fhir/{task['owner']['reference']}", headers=auth_headers(RIS))
    assert owner.status_code == 200 and owner.get_json()["resourceType"] == "Organization"
    assert order["status"] == "active"
    assert any("received" in d for d in audit_descriptions(client, auth_headers, task["id"]))


def test_the_task_exists_right_after_a_transaction_intake(
        client: FlaskClient, auth_headers: Headers) -> None:
    bundle = factories.transaction(
        factories.post_entry(factories.patient(), "urn:uuid:p1"),
        factories.post_entry(factories.service_request("urn:uuid:p1"), "urn:uuid:o1"))
    answer = client.post("/fhir", json=bundle, headers=auth_headers(GP))
    assert answer.status_code == 200, answer.get_json()
    order_id = answer.get_json()["entry"][1]["resource"]["id"]
    assert state(task_of(client, auth_headers, order_id)) == "received"


def test_a_draft_order_gets_its_task_when_it_becomes_active(
        client: FlaskClient, auth_headers: Headers) -> None:
    order = place(client, auth_headers, status="draft")
    found = client.get(f"/fhir/Task?focus=ServiceRequest/{order['id']}",
                       headers=auth_headers(RIS)).get_json()
    assert found["total"] == 0  # a draft is not an order yet
    active = client.put(f"/fhir/ServiceRequest/{order['id']}", json={**order, "status": "active"},
                        headers=auth_headers(GP))
    assert active.status_code == 200
    assert state(task_of(client, auth_headers, order["id"])) == "received"


def test_the_order_state_code_system_is_published(client: FlaskClient,
                                                  auth_headers: Headers) -> None:
    system = client.get("/fhir/CodeSystem/order-state", headers=auth_headers(RIS)).get_json()
    assert system["url"] == SYSTEM
    assert {c["code"] for c in system["concept"]} == set(CODES)


# --- the RIS drives it --------------------------------------------------------------------

def test_the_happy_path_by_a_ris(client: FlaskClient, auth_headers: Headers) -> None:
    order = place(client, auth_headers)
    seen = []
    steps = [("vetting", ()), ("accepted", ()),
             ("scheduled", ({"op": "add", "path": "/restriction",
                             "value": {"period": {"start": WHEN}}},)),
             ("in-progress", ()), ("reported", ()), ("completed", ())]
    for code, more in steps:
        task = task_of(client, auth_headers, order["id"])
        moved = patch(client, auth_headers, task, code, *more)
        assert moved.status_code == 200, moved.get_json()
        body = moved.get_json()
        seen.append((state(body), body["status"], order_status(client, auth_headers, order["id"])))
    # R4 task-status and request-status for each state (referral.states documents why).
    assert seen == [("vetting", "received", "active"), ("accepted", "accepted", "active"),
                    ("scheduled", "accepted", "active"), ("in-progress", "in-progress", "active"),
                    ("reported", "in-progress", "active"), ("completed", "completed", "completed")]
    task = task_of(client, auth_headers, order["id"])
    assert task["restriction"]["period"]["start"] == WHEN
    described = audit_descriptions(client, auth_headers, task["id"])
    for before, after in [("received", "vetting"), ("scheduled", "in-progress"),
                          ("reported", "completed")]:
        assert any(f"moved from {before} to {after} by radiology" in d for d in described)


def test_scheduling_takes_the_time_from_the_order_or_refuses_without_one(
        client: FlaskClient, auth_headers: Headers, settings: Settings) -> None:
    timed = place(client, auth_headers, occurrenceDateTime=WHEN)
    for step in ("vetting", "accepted", "scheduled"):
        moved = put(client, auth_headers, task_of(client, auth_headers, timed["id"]), step)
        assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["restriction"]["period"]["start"] == WHEN

    untimed, task = reach(client, auth_headers, settings, "accepted")
    assert "appointment time" in refused(put(client, auth_headers, task, "scheduled"), 422)
    assert state(task_of(client, auth_headers, untimed["id"])) == "accepted"


def test_rejection_needs_a_reason_and_revokes_the_order(
        client: FlaskClient, auth_headers: Headers, settings: Settings) -> None:
    order, task = reach(client, auth_headers, settings, "vetting")
    refused(patch(client, auth_headers, task, "rejected"), 422)
    moved = patch(client, auth_headers, task, "rejected",
                  {"op": "add", "path": "/statusReason", "value": {"text": "Not indicated"}})
    assert moved.status_code == 200
    assert (moved.get_json()["status"], order_status(client, auth_headers, order["id"])) == \
        ("rejected", "revoked")


def test_more_information_puts_the_order_on_hold_until_vetting_resumes(
        client: FlaskClient, auth_headers: Headers, settings: Settings) -> None:
    order, task = reach(client, auth_headers, settings, "more-info-requested")
    assert (task["status"], order_status(client, auth_headers, order["id"])) == \
        ("on-hold", "on-hold")
    assert patch(client, auth_headers, task, "vetting").status_code == 200
    assert order_status(client, auth_headers, order["id"]) == "active"


def test_radiology_may_cancel_before_the_examination_too(
        client: FlaskClient, auth_headers: Headers, settings: Settings) -> None:
    order, task = reach(client, auth_headers, settings, "scheduled")
    moved = patch(client, auth_headers, task, "cancelled")
    assert moved.status_code == 200 and moved.get_json()["status"] == "cancelled"
    assert order_status(client, auth_headers, order["id"]) == "revoked"


@pytest.mark.parametrize("start", list(RIS_MOVES))
def test_every_illegal_move_is_refused_through_put_and_patch(
        client: FlaskClient, auth_headers: Headers, settings: Settings, start: str) -> None:
    order, task = reach(client, auth_headers, settings, start)
    status = order_status(client, auth_headers, order["id"])
    illegal = [code for code in CODES if code != start and code not in RIS_MOVES[start]]
    assert illegal
    for code in illegal:
        for send in (put, patch):
            diagnostics = refused(send(client, auth_headers, task, code))
            assert start in diagnostics and code in diagnostics
    after = task_of(client, auth_headers, order["id"])
    assert after["meta"]["versionId"] == task["meta"]["versionId"]
    assert order_status(client, auth_headers, order["id"]) == status


def test_an_illegal_move_in_a_transaction_or_batch_is_409(
        client: FlaskClient, auth_headers: Headers, settings: Settings) -> None:
    order, task = reach(client, auth_headers, settings, "received")
    entry = {"resource": {**task, "businessStatus": business("completed")},
             "request": {"method": "PUT", "url": f"Task/{task['id']}"}}
    note = {"resource": factories.patient(family="Unwritten"),
            "request": {"method": "POST", "url": "Patient"}}
    refused(client.post("/fhir", json=factories.transaction(entry, note),
                        headers=auth_headers("demo-admin")))
    found = client.get("/fhir/Patient?family=Unwritten", headers=auth_headers(RIS)).get_json()
    assert found["total"] == 0  # all or nothing
    batch = client.post("/fhir", json=factories.transaction(entry, kind="batch"),
                        headers=auth_headers(RIS)).get_json()
    assert batch["entry"][0]["response"]["status"] == "409"
    assert batch["entry"][0]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert state(task_of(client, auth_headers, order["id"])) == "received"


def test_the_task_status_follows_its_business_status(
        client: FlaskClient, auth_headers: Headers, settings: Settings) -> None:
    _, task = reach(client, auth_headers, settings, "vetting")
    refused(client.put(f"/fhir/Task/{task['id']}", json={**task, "status": "completed"},
                       headers=auth_headers(RIS)))
    moved = put(client, auth_headers, task, "accepted")  # the old status, a new state
    assert moved.status_code == 200 and moved.get_json()["status"] == "accepted"


def test_a_client_cannot_open_a_second_task_or_repoint_one(
        client: FlaskClient, auth_headers: Headers, settings: Settings) -> None:
    order, task = reach(client, auth_headers, settings, "received")
    second = {k: v for k, v in task.items() if k not in ("id", "meta")}
    refused(client.post("/fhir/Task", json=second, headers=auth_headers(RIS)))
    other = place(client, auth_headers)
    repointed = client.put(f"/fhir/Task/{task['id']}", headers=auth_headers(RIS), json={
        **task, "focus": {"reference": f"ServiceRequest/{other['id']}"}})
    assert "focus" in refused(repointed, 422)
    assert task_of(client, auth_headers, order["id"])["id"] == task["id"]


def test_a_hold_task_is_not_moved_by_the_ris(client: FlaskClient, auth_headers: Headers,
                                             settings: Settings) -> None:
    order, parent = reach(client, auth_headers, settings, "in-progress")
    with Session(engine_for(settings.database_url)) as session:
        store = Store(session, settings)
        held = orders.hold_for_person(store, order, order["subject"]["reference"],
                                      "second-study", "A second study waits for a person")
        session.commit()
    hold = client.get(f"/fhir/Task/{held}", headers=auth_headers(RIS)).get_json()
    assert hold["partOf"] == [{"reference": f"Task/{parent['id']}"}]
    refused(patch(client, auth_headers, hold, "completed"))
    assert task_of(client, auth_headers, order["id"])["id"] == parent["id"]  # still one


# --- the GP -------------------------------------------------------------------------------

def test_a_gp_cannot_move_radiology_states(client: FlaskClient, auth_headers: Headers,
                                           settings: Settings) -> None:
    order, task = reach(client, auth_headers, settings, "vetting")
    moved = client.put(f"/fhir/Task/{task['id']}", headers=auth_headers(GP),
                       json={**task, "businessStatus": business("accepted")})
    assert moved.status_code == 403
    for status in ("completed", "on-hold", "entered-in-error"):
        diagnostics = refused(client.put(f"/fhir/ServiceRequest/{order['id']}",
                                         json={**order, "status": status},
                                         headers=auth_headers(GP)))
        assert "revoke" in diagnostics
    assert state(task_of(client, auth_headers, order["id"])) == "vetting"


@pytest.mark.parametrize("start", ["received", "vetting", "more-info-requested", "accepted",
                                   "scheduled"])
def test_the_gp_revokes_an_order_before_the_examination(
        client: FlaskClient, auth_headers: Headers, settings: Settings, start: str) -> None:
    order, _ = reach(client, auth_headers, settings, start)
    assert revoke(client, auth_headers, order["id"]).status_code == 200
    task = task_of(client, auth_headers, order["id"])
    assert (state(task), task["status"]) == ("cancelled", "cancelled")
    assert order_status(client, auth_headers, order["id"]) == "revoked"
    described = audit_descriptions(client, auth_headers, task["id"])
    assert any(f"moved from {start} to cancelled by requester" in d for d in described)


@pytest.mark.parametrize("start", ["in-progress", "analysed", "reported", "completed"])
def test_the_gp_cannot_revoke_once_the_examination_started(
        client: FlaskClient, auth_headers: Headers, settings: Settings, start: str) -> None:
    order, task = reach(client, auth_headers, settings, start)
    status = order_status(client, auth_headers, order["id"])
    diagnostics = refused(revoke(client, auth_headers, order["id"]))
    assert "cancelled" in diagnostics
    assert state(task_of(client, auth_headers, order["id"])) == start
    assert order_status(client, auth_headers, order["id"]) == status


def test_only_the_imaging_core_marks_an_order_analysed(
        client: FlaskClient, auth_headers: Headers, settings: Settings) -> None:
    order, task = reach(client, auth_headers, settings, "in-progress")
    assert "imaging" in refused(patch(client, auth_headers, task, "analysed"))
    imaging_publishes(settings, order["id"])
    assert state(task_of(client, auth_headers, order["id"])) == "analysed"
    with Session(engine_for(settings.database_url)) as session:  # and only from in-progress
        store = Store(session, settings)
        with pytest.raises(IllegalMove):
            orders.move(store, store.read("ServiceRequest", order["id"]), "completed",
                        Actor.IMAGING)
