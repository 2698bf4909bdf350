"""The staff worklist and order pages over HTTP (issue 12 items 2 and 3): what a user
sees and what each role may do; CSRF; bad input gets a 4xx page, never a 500."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.settings import Settings
from tests.referral.moves import Headers, place, reach, state, task_of
from tests.staff.conftest import csrf_token, staff_client  # noqa: F401  (fixture)

SNOMED = "http://snomed.info/sct"
CT_CHEST = {"system": SNOMED, "code": "169069000", "display": "Computed tomography of chest"}


@pytest.fixture
def staff(staff_client: Callable[[str], FlaskClient]) -> Callable[[str], FlaskClient]:  # noqa: F811
    """``staff(role)``: a test client logged in as a new user of ``role``."""
    return staff_client


def _post(client: FlaskClient, path: str, page: str, **form: str) -> object:
    return client.post(path, data={**form, "csrf_token": csrf_token(client, page)})


def test_worklist_shows_the_orders_with_their_decision(
        client: FlaskClient, auth_headers: Headers, staff: Callable[[str], FlaskClient]) -> None:
    order = place(client, auth_headers, code={"coding": [CT_CHEST]}, priority="urgent")
    page = staff("radiographer").get("/staff/worklist?modality=CT&priority=urgent")
    assert page.status_code == 200
    assert f"/staff/orders/{order['id']}" in page.text
    assert "SMITH, Alex" in page.text and "Urgent" in page.text
    # Chest pain alone, no ECG changes: NICE CG95 advises no cardiac imaging, so a CT
    # ordered for it goes against the guidance and the row says so.
    assert "Against guidance" in page.text and "no-imaging" in page.text


def test_an_order_stating_no_priority_is_routine(
        client: FlaskClient, auth_headers: Headers, staff: Callable[[str], FlaskClient]) -> None:
    # FHIR R4 ServiceRequest.priority, meaning when missing: "this task should be
    # performed with normal priority".
    unstated = place(client, auth_headers)
    assert "priority" not in unstated
    urgent = place(client, auth_headers, priority="urgent")
    routine = staff("radiographer").get("/staff/worklist?priority=routine").text
    assert f"/staff/orders/{unstated['id']}" in routine
    assert f"/staff/orders/{urgent['id']}" not in routine
    urgent_only = staff("radiographer").get("/staff/worklist?priority=urgent").text
    assert f"/staff/orders/{unstated['id']}" not in urgent_only


@pytest.mark.parametrize("query", ["state=lost", "page=-1", "from=31/12/2026", "sort=x"])
def test_bad_filters_get_a_400_page(staff: Callable[[str], FlaskClient], query: str) -> None:
    page = staff("radiologist").get(f"/staff/worklist?{query}")
    assert page.status_code == 400 and "text/html" in page.content_type


def test_an_unknown_order_is_a_404_page(staff: Callable[[str], FlaskClient]) -> None:
    page = staff("radiologist").get("/staff/orders/no-such-order")
    assert page.status_code == 404 and "text/html" in page.content_type


def test_the_order_page_cites_the_guidance(
        client: FlaskClient, auth_headers: Headers, staff: Callable[[str], FlaskClient]) -> None:
    order = place(client, auth_headers)
    page = staff("radiographer").get(f"/staff/orders/{order['id']}")
    assert page.status_code == 200
    assert "How the decision was reached" in page.text and "Source:" in page.text
    assert "Received" in page.text  # the Task's history


def test_a_radiologist_rejects_with_a_reason(
        client: FlaskClient, auth_headers: Headers, staff: Callable[[str], FlaskClient]) -> None:
    order = place(client, auth_headers)
    radiologist = staff("radiologist")
    path = f"/staff/orders/{order['id']}"
    done = _post(radiologist, f"{path}/vet", path, decision="reject",
                 reason="No red flags: X-ray first")
    assert done.status_code == 303  # type: ignore[attr-defined]
    task = task_of(client, auth_headers, order["id"])
    assert state(task) == "rejected" and task["statusReason"]["text"] == "No red flags: X-ray first"
    assert "No red flags: X-ray first" in radiologist.get(path).text


def test_a_radiographer_cannot_vet(client: FlaskClient, auth_headers: Headers,
                                   staff: Callable[[str], FlaskClient]) -> None:
    order = place(client, auth_headers)
    radiographer = staff("radiographer")
    path = f"/staff/orders/{order['id']}"
    refused = _post(radiographer, f"{path}/vet", path, decision="accept")
    assert refused.status_code == 403  # type: ignore[attr-defined]
    assert state(task_of(client, auth_headers, order["id"])) == "received"


def test_vetting_without_the_csrf_token_is_400(
        client: FlaskClient, auth_headers: Headers, staff: Callable[[str], FlaskClient]) -> None:
    order = place(client, auth_headers)
    refused = staff("radiologist").post(f"/staff/orders/{order['id']}/vet",
                                        data={"decision": "accept"})
    assert refused.status_code == 400
    assert state(task_of(client, auth_headers, order["id"])) == "received"


def test_an_illegal_move_shows_the_reason_as_a_409_page(
        client: FlaskClient, auth_headers: Headers, settings: Settings,
        staff: Callable[[str], FlaskClient]) -> None:
    order, _ = reach(client, auth_headers, settings, "received")
    radiographer = staff("radiographer")
    path = f"/staff/orders/{order['id']}"
    refused = _post(radiographer, f"{path}/schedule", path, date="2026-12-03", time="09:00",
                    modality="DX", station_ae="XR_ROOM_1")
    assert refused.status_code == 409  # type: ignore[attr-defined]
    assert "cannot move from received to scheduled" in refused.text  # type: ignore[attr-defined]


def test_a_radiographer_schedules_an_accepted_order(
        client: FlaskClient, auth_headers: Headers, settings: Settings,
        staff: Callable[[str], FlaskClient]) -> None:
    order, _ = reach(client, auth_headers, settings, "accepted")
    radiographer = staff("radiographer")
    path = f"/staff/orders/{order['id']}"
    bad = _post(radiographer, f"{path}/schedule", path, date="tomorrow", time="09:00",
                modality="DX", station_ae="XR_ROOM_1")
    assert bad.status_code == 422  # type: ignore[attr-defined]
    done = _post(radiographer, f"{path}/schedule", path, date="2026-12-03", time="09:00",
                 modality="DX", station_ae="XR_ROOM_1", protocol="PA erect")
    assert done.status_code == 303  # type: ignore[attr-defined]
    task = task_of(client, auth_headers, order["id"])
    assert state(task) == "scheduled"
    assert task["restriction"]["period"]["start"].startswith("2026-12-03T09:00:00")
    assert any(i.get("valueString") == "XR_ROOM_1" for i in task["input"])


def test_pages_need_a_session(app: Flask) -> None:
    anonymous = app.test_client()
    for path in ("/staff/worklist", "/staff/orders/x"):
        response = anonymous.get(path)
        assert response.status_code == 302 and "/staff/login" in response.headers["Location"]
