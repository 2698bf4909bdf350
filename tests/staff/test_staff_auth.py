"""Issue 12 item 1: staff accounts, login, sessions, lockout, CSRF, roles, headers, audit.

Expected values come from the brief and CONTRACT §8 (30 minutes idle, 12 hours
absolute, 5 failures in 15 minutes, the CSP text), never from the code's output.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Blueprint
from sqlmodel import Session, select

from auth.models import StaffSession
from auth.staff import audit_staff, current_staff, staff_required
from core.db import engine_for
from tests.staff.conftest import create_staff_user, csrf_token, log_in

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")


def _sessions(settings, username):
    with Session(engine_for(settings.database_url)) as session:
        return list(session.exec(select(StaffSession).where(StaffSession.username == username)))


def staff_events(client, auth_headers, username):
    """The AuditEvents whose agent is the staff user ``username`` (read through the API)."""
    api = client.application.test_client()
    bundle = api.get("/fhir/AuditEvent?_count=500", headers=auth_headers("demo-admin")).get_json()
    events = [entry["resource"] for entry in bundle.get("entry", [])]
    return [e for e in events if e["agent"][0].get("altId") == f"staff:{username}"]


def test_login_with_the_right_password_opens_the_landing_page(client, settings):
    username, password = create_staff_user(settings, "radiologist")
    response = log_in(client, username, password)
    assert response.status_code == 303 and response.headers["Location"] == "/staff"
    cookie = next(c for c in response.headers.getlist("Set-Cookie")
                  if c.startswith("scanpath_staff="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" in cookie  # the test environment is not development
    page = client.get("/staff")
    assert page.status_code == 200
    assert "ScanPath radiology" in page.text and "Log out" in page.text
    assert "radiologist" in page.text


def test_wrong_password_and_unknown_user_look_the_same(client, settings):
    username, _ = create_staff_user(settings, "radiographer")
    wrong = log_in(client, username, "not the password at all")
    unknown = log_in(client, "nobody-here", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert "The username or password is not right." in wrong.text
    assert "The username or password is not right." in unknown.text
    assert client.get("/staff").status_code == 302


def test_five_failures_in_fifteen_minutes_lock_the_username(client, settings):
    username, password = create_staff_user(settings, "radiologist")
    for _ in range(5):
        assert log_in(client, username, "a wrong password!").status_code == 401
    locked = log_in(client, username, password)
    assert locked.status_code == 401 and "blocked" in locked.text
    assert client.get("/staff").status_code == 302
    # An unknown username is locked the same way: the lockout reveals nobody.
    for _ in range(5):
        log_in(client, "ghost-user", "a wrong password!")
    assert "blocked" in log_in(client, "ghost-user", "a wrong password!").text


def test_the_lockout_ends_when_the_failures_are_older_than_fifteen_minutes(client, settings):
    from auth.models import StaffLoginFailure

    username, password = create_staff_user(settings, "radiologist")
    for _ in range(5):
        log_in(client, username, "a wrong password!")
    with Session(engine_for(settings.database_url)) as session:
        for failure in session.exec(select(StaffLoginFailure).where(
                StaffLoginFailure.username == username)):
            failure.at = datetime.now(UTC) - timedelta(minutes=16)
            session.add(failure)
        session.commit()
    assert log_in(client, username, password).status_code == 303


@pytest.mark.parametrize("column", ["expires_at", "absolute_expires_at"])
def test_an_expired_session_sends_the_user_to_login(client, settings, column):
    username, password = create_staff_user(settings, "radiologist")
    log_in(client, username, password)
    assert client.get("/staff").status_code == 200
    with Session(engine_for(settings.database_url)) as session:
        for row in session.exec(select(StaffSession).where(StaffSession.username == username)):
            setattr(row, column, datetime.now(UTC) - timedelta(seconds=1))
            session.add(row)
        session.commit()
    response = client.get("/staff")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/staff/login")
    assert _sessions(settings, username) == []  # removed on the server too


def test_a_new_session_expires_after_30_idle_minutes_and_12_hours_at_most(client, settings):
    username, password = create_staff_user(settings, "radiographer")
    before = datetime.now(UTC)
    log_in(client, username, password)
    (row,) = _sessions(settings, username)
    expires = row.expires_at.replace(tzinfo=row.expires_at.tzinfo or UTC)
    absolute = row.absolute_expires_at.replace(tzinfo=row.absolute_expires_at.tzinfo or UTC)
    assert timedelta(minutes=29) < expires - before <= timedelta(minutes=31)
    assert timedelta(hours=11, minutes=59) < absolute - before <= timedelta(hours=12, minutes=1)
    assert len(row.token_hash) == 64  # a SHA-256, never the cookie's token itself


def test_logout_ends_the_session_on_the_server(client, settings):
    username, password = create_staff_user(settings, "radiologist")
    log_in(client, username, password)
    cookie = client.get_cookie("scanpath_staff").value
    response = client.post("/staff/logout", data={"csrf_token": csrf_token(client, "/staff")})
    assert response.status_code == 303
    assert _sessions(settings, username) == []
    # The old cookie, replayed, no longer opens anything.
    client.set_cookie("scanpath_staff", cookie, path="/")
    assert client.get("/staff").status_code == 302


def test_a_password_change_ends_every_session(client, settings):
    from auth.staff import set_password

    username, password = create_staff_user(settings, "radiologist")
    log_in(client, username, password)
    with Session(engine_for(settings.database_url)) as session:
        set_password(session, username, "another long password")
        session.commit()
    assert client.get("/staff").status_code == 302


def test_a_form_without_its_csrf_token_is_refused(client, settings):
    username, password = create_staff_user(settings, "radiologist")
    response = client.post("/staff/login", data={"username": username, "password": password})
    assert response.status_code == 400
    assert response.content_type.startswith("text/html")
    assert "CSRF" in response.text
    log_in(client, username, password)
    assert client.post("/staff/logout", data={}).status_code == 400
    assert client.get("/staff").status_code == 200  # still logged in


def test_the_api_needs_no_csrf_token(client, auth_headers):
    response = client.post("/fhir/Patient", json={"resourceType": "Patient"},
                           headers=auth_headers("demo-gp"))
    assert response.status_code == 201


def test_pages_without_a_session_redirect_to_login_and_back(client, settings):
    response = client.get("/staff?x=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/login?next=%2Fstaff%3Fx%3D1"
    username, password = create_staff_user(settings, "radiologist")
    back = client.post("/staff/login", data={"username": username, "password": password,
                                             "next": "/staff?x=1",
                                             "csrf_token": csrf_token(client)})
    assert back.headers["Location"] == "/staff?x=1"


def test_login_never_redirects_off_the_staff_app(client, settings):
    username, password = create_staff_user(settings, "radiologist")
    response = client.post("/staff/login", data={
        "username": username, "password": password, "next": "https://evil.example/staff",
        "csrf_token": csrf_token(client)})
    assert response.headers["Location"] == "/staff"


@pytest.fixture
def role_app(app):
    """The app with a radiologist-only test view (as vetting and sign-off will be)."""
    views = Blueprint("staff_test", __name__, url_prefix="/staff/test")

    @views.post("/sign")
    @staff_required("radiologist")
    def sign():
        audit_staff("sign-off", "DiagnosticReport/1", detail="test view")
        return f"signed by {current_staff().username}"

    app.register_blueprint(views)
    return app


def test_a_radiographer_gets_403_on_a_radiologist_only_view(role_app, settings):
    client = role_app.test_client()
    username, password = create_staff_user(settings, "radiographer")
    log_in(client, username, password)
    response = client.post("/staff/test/sign", data={"csrf_token": csrf_token(client, "/staff")})
    assert response.status_code == 403
    assert response.content_type.startswith("text/html")
    assert "You cannot open this page" in response.text


def test_a_radiologist_passes_the_same_view(role_app, settings):
    client = role_app.test_client()
    username, password = create_staff_user(settings, "radiologist")
    log_in(client, username, password)
    response = client.post("/staff/test/sign", data={"csrf_token": csrf_token(client, "/staff")})
    assert response.status_code == 200 and response.text == f"signed by {username}"


def test_staff_pages_carry_the_security_headers(client):
    response = client.get("/staff/login")
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "<script>" not in response.text and "style=" not in response.text


def test_errors_under_staff_are_pages_and_the_api_keeps_operationoutcome(client):
    page = client.get("/staff/no-such-page")
    assert page.status_code == 404 and page.content_type.startswith("text/html")
    assert "Page not found" in page.text
    api = client.get("/fhir/no-such-type/1")
    assert api.content_type.startswith("application/fhir+json")
    assert api.get_json()["resourceType"] == "OperationOutcome"


def test_logins_and_page_views_are_audited(client, settings, auth_headers):
    username, password = create_staff_user(settings, "radiologist")
    log_in(client, username, "a wrong password!")
    log_in(client, username, password)
    client.get("/staff")
    events = staff_events(client, auth_headers, username)
    logins = [e for e in events if e["type"]["code"] == "110114"]  # DCM User Authentication
    assert sorted(e["outcome"] for e in logins) == ["0", "4"]  # one success, one failure
    views = [e for e in events if e["type"]["code"] == "access"]
    assert len(views) == 1 and views[0]["action"] == "R"
    assert "GET /staff" in views[0]["outcomeDesc"]


def test_a_refused_action_is_audited(role_app, settings, auth_headers):
    client = role_app.test_client()
    username, password = create_staff_user(settings, "radiographer")
    log_in(client, username, password)
    client.post("/staff/test/sign", data={"csrf_token": csrf_token(client, "/staff")})
    events = staff_events(client, auth_headers, username)
    assert any(e["outcome"] == "4" and "access-denied" in e["outcomeDesc"] for e in events)


def test_a_page_may_allow_webassembly_and_only_that_page(app, settings):
    from auth.staff import allow_wasm_eval

    views = Blueprint("staff_wasm", __name__, url_prefix="/staff/wasm")

    @views.get("")
    @staff_required()
    def viewer():
        allow_wasm_eval()
        return "viewer"

    app.register_blueprint(views)
    client = app.test_client()
    username, password = create_staff_user(settings, "radiographer")
    log_in(client, username, password)
    csp = client.get("/staff/wasm").headers["Content-Security-Policy"]
    assert "script-src 'self' 'wasm-unsafe-eval';" in csp
    assert "frame-ancestors 'none'" in csp
    assert "wasm-unsafe-eval" not in client.get("/staff").headers["Content-Security-Policy"]


def test_staff_session_user_is_none_without_a_session_and_never_raises(app, settings):
    from auth.staff import staff_session_user

    with app.test_request_context("/dicomweb/studies"):
        assert staff_session_user() is None
    with app.test_request_context("/dicomweb/studies",
                                  headers={"Cookie": "scanpath_staff=forged-token"}):
        assert staff_session_user() is None
    client = app.test_client()
    username, password = create_staff_user(settings, "radiologist")
    log_in(client, username, password)
    cookie = client.get_cookie("scanpath_staff")
    assert cookie.path == "/"  # sent to the same-origin viewer's /dicomweb reads too
    with app.test_request_context("/dicomweb/studies",
                                  headers={"Cookie": f"scanpath_staff={cookie.value}"}):
        user = staff_session_user()
        assert user is not None and (user.username, user.role) == (username, "radiologist")


def test_error_pages_carry_the_staff_headers_too(client):
    page = client.get("/staff/no-such-page")
    assert page.headers["Content-Security-Policy"] == CSP
    assert page.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("username", ["bad\x00name", "x" * 65])
def test_an_unusable_username_is_a_400_page_not_a_500(client, username):
    response = client.post("/staff/login", data={"username": username, "password": "whatever",
                                                 "csrf_token": csrf_token(client)})
    assert response.status_code == 400
    assert response.content_type.startswith("text/html")
