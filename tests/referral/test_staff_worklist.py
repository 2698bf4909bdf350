"""The staff worklist, order detail, vetting and scheduling, at the service level
(``referral.orderlist``, ``referral.vetting``): orders are placed through the FHIR
API as a GP's system places them and moved as radiology moves them.

Expected values come from the catalogue's published data (rules/data/catalogue.yaml:
CT chest is modality CT, RRL 3 adult; a chest X-ray is DX, RRL 1) and from the issue
(filters, paging, vetting moves), never from this code's output.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, time
from typing import Any

import pytest
from flask.testing import FlaskClient
from pydicom.dataset import Dataset
from sqlmodel import Session, select

from core.db import engine_for
from core.errors import BadRequest, Unprocessable
from core.settings import Settings
from fhir.store import Store
from referral import orderlist, vetting, worklist
from referral.models import Notification
from referral.states import IllegalMove
from tests import factories
from tests.referral.moves import GP, Headers, place, reach, state, task_of

SNOMED = "http://snomed.info/sct"
CT_CHEST = {"system": SNOMED, "code": "169069000", "display": "Computed tomography of chest"}
GP_HOOK = "http://127.0.0.1:9/gp"
XR_CHEST = {"system": SNOMED, "code": "399208008", "display": "Plain X-ray of chest"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Subscriptions may name the GP's (unreached) endpoint: notifications are queued."""
    return settings.model_copy(update={"subscription_endpoints": [GP_HOOK]})


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with Session(engine_for(settings.database_url)) as session:
        yield Store(session, settings)


def _order(client: FlaskClient, auth_headers: Headers, coding: dict[str, str],
           priority: str = "routine", authored: str = "2026-11-20T09:30:00Z") -> dict[str, Any]:
    return place(client, auth_headers, code={"coding": [coding]}, priority=priority,
                 authoredOn=authored)


def _ids(page: orderlist.Page) -> list[str]:
    return [row.order_id for row in page.rows]


def test_filters_by_modality_urgency_and_state(client: FlaskClient, auth_headers: Headers,
                                               store: Store) -> None:
    ct = _order(client, auth_headers, CT_CHEST, "urgent")
    xr = _order(client, auth_headers, XR_CHEST, "routine")
    vetted, _ = reach(client, auth_headers, store.settings, "vetting")
    assert set(_ids(orderlist.worklist(store, orderlist.Filters(modality="CT")))) == {ct["id"]}
    assert xr["id"] in _ids(orderlist.worklist(store, orderlist.Filters(modality="DX")))
    assert _ids(orderlist.worklist(store, orderlist.Filters(priority="urgent"))) == [ct["id"]]
    assert _ids(orderlist.worklist(store, orderlist.Filters(state="vetting"))) == [vetted["id"]]
    assert orderlist.worklist(store, orderlist.Filters(state="scheduled")).total == 0


def test_filters_by_date_sorts_and_pages(client: FlaskClient, auth_headers: Headers,
                                         store: Store) -> None:
    days = [f"2026-10-{day:02d}T08:00:00Z" for day in range(1, 29)]  # 28 orders, one a day
    made = [_order(client, auth_headers, XR_CHEST, authored=day)["id"] for day in days]
    # Task.authoredOn is when the order was received (now): the date filter reads it
    newest = orderlist.worklist(store, orderlist.Filters())
    assert newest.total == 28 and newest.pages == 2 and len(newest.rows) == 25
    assert _ids(newest)[0] == made[-1]
    oldest = orderlist.worklist(store, orderlist.Filters(sort="oldest"))
    assert _ids(oldest)[:3] == made[:3]
    second = orderlist.worklist(store, orderlist.Filters(sort="oldest", page=2))
    assert _ids(second) == made[25:]  # a page past the middle is read from the far end
    last = orderlist.worklist(store, orderlist.Filters(sort="newest", page=2))
    assert _ids(last) == made[2::-1]
    tomorrow = orderlist.Filters(received_from=date(2099, 1, 1))
    assert orderlist.worklist(store, tomorrow).total == 0


def test_bad_filters_are_refused_with_a_reason() -> None:
    for args in ({"state": "lost"}, {"priority": "whenever"}, {"modality": "XX"},
                 {"sort": "random"}, {"from": "yesterday"}, {"page": "0"}, {"page": "x"}):
        with pytest.raises(BadRequest):
            orderlist.parse_filters(args, ["CT", "DX"])


def test_a_row_shows_the_decision_or_says_none_was_recorded(
        client: FlaskClient, auth_headers: Headers, store: Store) -> None:
    made = _order(client, auth_headers, CT_CHEST)
    [row] = orderlist.worklist(store, orderlist.Filters(modality="CT")).rows
    assert row.patient == "SMITH, Alex" and row.nhs_number == factories.VALID_NHS_NUMBER
    assert row.order_id == made["id"]
    assert row.decision.recorded  # the ordering hook recorded a GuidanceResponse
    missing = orderlist.read_decision(None)
    assert not missing.recorded and missing.summary == "no decision recorded"
    assert missing.appropriateness is None and missing.against is None


def test_labels_follow_the_acr_scales() -> None:
    option = {"appropriateness": {"valueInteger": 7}, "rrlAdult": {"valueInteger": 3},
              "rrlPaediatric": {"valueInteger": 4}}
    assert orderlist.appropriateness_label(option) == "7/9 usually appropriate"
    assert orderlist.appropriateness_label({"appropriateness": {"valueInteger": 5}}) == \
        "5/9 may be appropriate"
    assert orderlist.appropriateness_label({"appropriateness": {"valueInteger": 2}}) == \
        "2/9 usually not appropriate"
    assert orderlist.radiation_label(option) == "RRL 3/5 adult, 4/5 child"
    assert orderlist.appropriateness_label(None) is None


def test_detail_shows_the_history_and_the_rules_with_their_citations(
        client: FlaskClient, auth_headers: Headers, store: Store) -> None:
    order, _ = reach(client, auth_headers, store.settings, "vetting")
    detail = orderlist.order_detail(store, order["id"])
    assert detail.state == "vetting"
    assert [h["state"] for h in detail.history] == ["Received", "Vetting"]
    assert detail.decision.recorded
    assert detail.decision.rules, "every rule considered is listed"
    assert all(rule["citation"] for rule in detail.decision.rules)


def test_vetting_moves_the_task_sets_the_reason_and_notifies_the_gp(
        client: FlaskClient, auth_headers: Headers, store: Store) -> None:
    patient = client.post("/fhir/Patient", json=factories.patient(),
                          headers=auth_headers(GP)).get_json()["id"]
    subscription = {"resourceType": "Subscription", "status": "requested",
                    "reason": "orders", "criteria": f"ServiceRequest?subject=Patient/{patient}",
                    "channel": {"type": "rest-hook", "endpoint": f"{GP_HOOK}/fhir",
                                "payload": "application/fhir+json"}}
    made = client.post("/fhir/Subscription", json=subscription, headers=auth_headers(GP))
    assert made.status_code == 201, made.get_json()
    order = client.post("/fhir/ServiceRequest", headers=auth_headers(GP), json=factories.
                        service_request(f"Patient/{patient}")).get_json()
    before = len(store.session.exec(select(Notification)).all())
    vetting.vet(store, order["id"], "reject", "Not justified: no red flags", "dr-house")
    store.session.commit()
    task = task_of(client, auth_headers, order["id"])
    assert state(task) == "rejected"
    assert task["statusReason"]["text"] == "Not justified: no red flags"
    assert client.get(f"/fhir/ServiceRequest/{order['id']}",
                      headers=auth_headers(GP)).get_json()["status"] == "revoked"
    assert len(store.session.exec(select(Notification)).all()) > before


def test_vetting_needs_a_reason_to_reject_and_a_legal_move(
        client: FlaskClient, auth_headers: Headers, store: Store) -> None:
    order = place(client, auth_headers)
    with pytest.raises(Unprocessable):
        vetting.vet(store, order["id"], "reject", "  ", "dr")
    with pytest.raises(Unprocessable):
        vetting.vet(store, order["id"], "approve", "", "dr")
    scheduled, _ = reach(client, auth_headers, store.settings, "scheduled")
    with pytest.raises(IllegalMove):
        vetting.vet(store, scheduled["id"], "accept", "", "dr")


def test_scheduling_puts_the_order_on_the_dicom_worklist(
        client: FlaskClient, auth_headers: Headers, store: Store) -> None:
    order = _order(client, auth_headers, CT_CHEST)
    vetting.vet(store, order["id"], "accept", "", "dr")
    booking = vetting.parse_booking({"date": "2026-12-03", "time": "14:30", "modality": "CT",
                                     "station_ae": "CT_ROOM_1", "protocol": "low dose"},
                                    ["CT", "DX"])
    vetting.schedule(store, order["id"], booking, "radiographer-1")
    store.session.commit()
    query = Dataset()
    query.AccessionNumber = ""
    step = Dataset()
    step.ScheduledStationAETitle = "CT_ROOM_1"
    step.ScheduledProcedureStepStartDate = "20261203"
    step.ScheduledProcedureStepStartTime = ""
    step.Modality = ""
    query.ScheduledProcedureStepSequence = [step]
    found = list(worklist.find(store.session, query))
    store.session.rollback()  # SQLite: end the read so the API can write
    assert len(found) == 1
    item = found[0].ScheduledProcedureStepSequence[0]
    assert item.Modality == "CT" and item.ScheduledProcedureStepStartTime.startswith("1430")
    assert state(task_of(client, auth_headers, order["id"])) == "scheduled"


def test_a_malformed_booking_is_refused(client: FlaskClient, auth_headers: Headers,
                                        store: Store) -> None:
    for form in ({"date": "3/12/2026", "time": "14:30", "modality": "CT", "station_ae": "A"},
                 {"date": "2026-12-03", "time": "14:30", "modality": "XX", "station_ae": "A"},
                 {"date": "2026-12-03", "time": "14:30", "modality": "CT", "station_ae": ""}):
        with pytest.raises(Unprocessable):
            vetting.parse_booking(form, ["CT"])
    order, _ = reach(client, auth_headers, store.settings, "accepted")
    bad = vetting.Booking(date(2026, 12, 3),
                          time(9), "CT", "BAD\\AE")
    with pytest.raises(Unprocessable):
        vetting.schedule(store, order["id"], bad, "r")
