"""The staff admin page (``/staff/admin``, CONTRACT §8): admin only; held studies decided
through the RIS's Task update, dead notifications retried, failed jobs and clients listed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session

from core.db import engine_for
from core.settings import Settings
from fhir.store import Store
from imaging_core.models import AnalysisJob
from referral import orders
from referral.models import Notification
from tests.referral.moves import RIS, Headers, place
from tests.staff.conftest import csrf_token, staff_client  # noqa: F401  (fixture)

WHEN = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def staff(staff_client: Callable[[str], FlaskClient]) -> Callable[[str], FlaskClient]:  # noqa: F811
    """``staff(role)``: a test client logged in as a new user of ``role``."""
    return staff_client


def _hold(settings: Settings, order: dict[str, object] | None) -> str:
    with Session(engine_for(settings.database_url)) as session:
        store = Store(session, settings)
        full = store.read("ServiceRequest", str(order["id"])) if order else None
        task_id = orders.hold_unlinked(store, full, "1.2.826.0.1.3680043.8.498.1", "SP9",
                                       "patient-mismatch", "Header names another patient")
        session.commit()
    return task_id


def _dead_notification(settings: Settings) -> int:
    with Session(engine_for(settings.database_url)) as session:
        row = Notification(subscription_id="sub-1", resource_type="ServiceRequest",
                           resource_id="x", version_id=1, endpoint="http://127.0.0.1:9/gp",
                           method="POST", headers="{}", status="dead", attempts=12,
                           next_attempt_at=WHEN, created_at=WHEN, updated_at=WHEN,
                           last_error="connection refused")
        session.add(row)
        session.add(AnalysisJob(idempotency_key="k1", study_uid="1.2.3", service_request_id="x",
                                procedure="CT-CAC", analyser_version="v1", status="failed",
                                attempts=3, error="no heart found", created_at=WHEN,
                                updated_at=WHEN))
        session.commit()
        assert row.id is not None
        return row.id


@pytest.mark.parametrize("role", ["radiographer", "radiologist"])
def test_only_an_admin_opens_the_admin_page(staff: Callable[[str], FlaskClient],
                                            role: str) -> None:
    assert staff(role).get("/staff/admin").status_code == 403
    assert staff("admin").get("/staff/admin").status_code == 200


def test_the_page_lists_what_needs_a_person(settings: Settings,
                                            staff: Callable[[str], FlaskClient]) -> None:
    notification = _dead_notification(settings)
    task_id = _hold(settings, None)
    page = staff("admin").get("/staff/admin").text
    assert task_id in page and "Header names another patient" in page
    assert f"Retry notification {notification}" in page and "connection refused" in page
    assert "no heart found" in page
    assert "demo-gp" in page  # a registered client


def test_an_admin_rejects_a_held_study(client: FlaskClient, auth_headers: Headers,
                                       settings: Settings,
                                       staff: Callable[[str], FlaskClient]) -> None:
    task_id = _hold(settings, None)
    admin = staff("admin")
    done = admin.post(f"/staff/admin/holds/{task_id}", data={
        "decision": "reject", "csrf_token": csrf_token(admin, "/staff/admin")})
    assert done.status_code == 303
    task = client.get(f"/fhir/Task/{task_id}", headers=auth_headers(RIS)).get_json()
    assert task["status"] == "rejected"
    assert task_id not in admin.get("/staff/admin").text


def test_linking_to_an_unknown_order_is_refused(settings: Settings,
                                                staff: Callable[[str], FlaskClient]) -> None:
    task_id = _hold(settings, None)
    admin = staff("admin")
    refused = admin.post(f"/staff/admin/holds/{task_id}", data={
        "decision": "link", "order_id": "no-such-order",
        "csrf_token": csrf_token(admin, "/staff/admin")})
    assert refused.status_code == 422 and "does not exist" in refused.text


def test_a_dead_notification_is_queued_again(settings: Settings,
                                             staff: Callable[[str], FlaskClient]) -> None:
    notification = _dead_notification(settings)
    admin = staff("admin")
    path = f"/staff/admin/notifications/{notification}/retry"
    assert admin.post(path, data={}).status_code == 400  # no CSRF token
    done = admin.post(path, data={"csrf_token": csrf_token(admin, "/staff/admin")})
    assert done.status_code == 303
    with Session(engine_for(settings.database_url)) as session:
        row = session.get(Notification, notification)
        assert row is not None and row.status == "queued"
    again = admin.post(path, data={"csrf_token": csrf_token(admin, "/staff/admin")})
    assert again.status_code == 409


def test_an_admin_cannot_decide_a_hold_without_a_choice(
        client: FlaskClient, auth_headers: Headers, settings: Settings,
        staff: Callable[[str], FlaskClient]) -> None:
    order = place(client, auth_headers)
    task_id = _hold(settings, order)
    admin = staff("admin")
    refused = admin.post(f"/staff/admin/holds/{task_id}", data={
        "decision": "maybe", "csrf_token": csrf_token(admin, "/staff/admin")})
    assert refused.status_code == 400
