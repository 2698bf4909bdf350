"""Opening a patient report link: the date of birth, lockout, sessions, the neutral page.

Expected values: CONTRACT §7 (``birthDate`` YYYY-MM-DD; a wrong answer gives
nothing away; repeated wrong answers lock the link; a revoked link shows only a
neutral page), the patient's birth date as created (``BORN``), and the limits
``patient.access`` documents (5 per link, 20 per address in 15 minutes).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from core.db import engine_for
from core.settings import Settings
from patient.models import PatientLink, PatientLinkFailure
from tests.patient.conftest import BORN, GP, Headers, SignedLink, answer, form_token

WRONG = "1961-04-24"
NOT_AVAILABLE = "This page is not available"


def neutral_body(client: FlaskClient) -> bytes:
    """The neutral page as an unknown link gets it (the reference every case matches)."""
    response = client.get(f"/r/{secrets.token_urlsafe(32)}")
    assert response.status_code == 404
    return response.data


def test_the_link_asks_for_the_date_of_birth(client: FlaskClient,
                                             signed_link: SignedLink) -> None:
    page = client.get(signed_link.path)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Confirm your date of birth" in text and 'name="birthDate-day"' in text
    assert "Coronary artery calcium" not in text  # nothing of the report before the answer


def test_wrong_then_right_birth_date(client: FlaskClient, signed_link: SignedLink) -> None:
    wrong = answer(client, signed_link, WRONG)
    text = wrong.get_data(as_text=True)
    assert wrong.status_code == 200 and "do not match" in text
    assert "contact your GP surgery" in text
    assert not re.search(r"\d+ (more )?(tries|attempts)", text)  # no count of tries left
    right = answer(client, signed_link, BORN)
    assert right.status_code == 303
    cookie = right.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/r/" in cookie
    report = client.get(signed_link.path)
    assert report.status_code == 200
    assert "Coronary artery calcium score 0." in report.get_data(as_text=True)


def test_the_three_part_date_input_is_accepted(client: FlaskClient,
                                               signed_link: SignedLink) -> None:
    response = answer(client, signed_link, "", **{
        "birthDate-day": "23", "birthDate-month": "4", "birthDate-year": "1961"})
    assert response.status_code == 303


def test_a_date_that_is_no_date_is_asked_again_and_not_counted(
        client: FlaskClient, signed_link: SignedLink, settings: Settings) -> None:
    for _ in range(6):
        response = answer(client, signed_link, "1961-02-30")
        assert response.status_code == 400 and "for example" in response.get_data(as_text=True)
    assert answer(client, signed_link, BORN).status_code == 303


def lock(client: FlaskClient, link: SignedLink) -> None:
    for _ in range(5):
        assert answer(client, link, WRONG).status_code == 200


def test_five_wrong_answers_lock_the_link_even_after_a_restart(
        app: Flask, signed_link: SignedLink, settings: Settings) -> None:
    """Runs on SQLite and PostgreSQL (the suite's ``settings`` fixture)."""
    from scanpath.app import create_app

    client = app.test_client()
    lock(client, signed_link)
    assert client.get(signed_link.path).status_code == 404
    restarted = create_app(settings).test_client()  # a new process over the same database
    assert restarted.get(signed_link.path).status_code == 404
    assert restarted.get(signed_link.path).data == neutral_body(restarted)


def test_twenty_wrong_answers_from_one_address_block_it(
        client: FlaskClient, link_for: Callable[..., SignedLink], settings: Settings) -> None:
    links = [link_for() for _ in range(5)]
    for link in links[:4]:
        lock(client, link)  # 4 links x 5 = 20 wrong answers from 127.0.0.1
    fresh = links[4]
    assert client.get(fresh.path).status_code == 404  # an untouched link, refused too
    other = client.get(fresh.path, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 200  # another address is not blocked
    with Session(engine_for(settings.database_url)) as session:  # the window passes
        for row in session.exec(select(PatientLinkFailure)).all():
            row.at = datetime.now(UTC) - timedelta(minutes=16)
            session.add(row)
        session.commit()
    assert client.get(fresh.path).status_code == 200


def set_expiry(settings: Settings, link: SignedLink, when: datetime) -> None:
    with Session(engine_for(settings.database_url)) as session:
        row = session.exec(select(PatientLink).where(
            PatientLink.document_reference_id == link.document["id"])).one()
        row.expires_at = when
        session.add(row)
        session.commit()


def staff_revoke(app: Flask, settings: Settings, link: SignedLink) -> None:
    from tests.staff.conftest import create_staff_user, csrf_token, log_in

    staff = app.test_client()
    username, password = create_staff_user(settings, "radiologist")
    assert log_in(staff, username, password).status_code == 303
    page = f"/staff/reports/{link.report['id']}"
    assert "Revoke patient link" in staff.get(page).get_data(as_text=True)
    response = staff.post(f"{page}/patient-link/revoke",
                          data={"csrf_token": csrf_token(staff, page), "reason": "wrong patient"})
    assert response.status_code == 303


def gp_revoke(client: FlaskClient, auth_headers: Headers, link: SignedLink) -> None:
    response = client.patch(
        f"/fhir/DocumentReference/{link.document['id']}",
        json=[{"op": "replace", "path": "/status", "value": "entered-in-error"}],
        headers={**auth_headers(GP), "Content-Type": "application/json-patch+json"})
    assert response.status_code == 200


def tampered(token: str) -> str:
    """The token with one character changed (still a base64url character)."""
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


def test_every_unavailable_link_gets_the_same_neutral_page(
        app: Flask, client: FlaskClient, auth_headers: Headers, settings: Settings,
        link_for: Callable[..., SignedLink]) -> None:
    reference = neutral_body(client)
    assert NOT_AVAILABLE.encode() in reference
    expired, by_gp, by_staff, kept = (link_for() for _ in range(4))
    set_expiry(settings, expired, datetime.now(UTC) - timedelta(seconds=1))
    gp_revoke(client, auth_headers, by_gp)
    staff_revoke(app, settings, by_staff)
    paths = [expired.path, by_gp.path, by_staff.path, f"/r/{tampered(kept.token)}",
             f"/r/{secrets.token_urlsafe(32)}", "/r/x", f"{kept.path}x"]
    fresh = app.test_client()  # no cookies: as a stranger's browser
    for path in paths:
        response = fresh.get(path)
        assert (response.status_code, response.data) == (404, reference), path
        assert "Set-Cookie" not in response.headers, path
    assert fresh.get(kept.path).status_code == 200  # the untouched one still opens


def test_the_session_of_one_link_does_not_open_another(
        client: FlaskClient, link_for: Callable[..., SignedLink]) -> None:
    first, second = link_for(), link_for()
    assert answer(client, first, BORN).status_code == 303
    other = client.get(second.path)
    assert other.status_code == 200 and "Confirm your date of birth" in other.get_data(as_text=True)
    assert client.get(f"{second.path}/report.pdf").status_code == 404
    own = client.get(first.path)  # the session still opens its own link's report
    assert own.status_code == 200 and "Coronary artery calcium score 0." in own.get_data(
        as_text=True)


def test_files_need_a_session(client: FlaskClient, signed_link: SignedLink) -> None:
    reference = neutral_body(client)
    for tail in ("/report.pdf", "/images/1.png", "/model.glb", "/model.png"):
        response = client.get(signed_link.path + tail)
        assert (response.status_code, response.data) == (404, reference), tail


def test_close_ends_the_session(client: FlaskClient, signed_link: SignedLink) -> None:
    assert answer(client, signed_link, BORN).status_code == 303
    token = form_token(client, signed_link.path)  # the report page's close form
    assert client.post(f"{signed_link.path}/close", data={"csrf_token": token}).status_code == 303
    assert "Confirm your date of birth" in client.get(signed_link.path).get_data(as_text=True)
    assert client.get(f"{signed_link.path}/report.pdf").status_code == 404


def test_forms_without_their_csrf_token_are_refused(client: FlaskClient,
                                                    signed_link: SignedLink) -> None:
    client.get(signed_link.path)
    for path in (signed_link.path, f"{signed_link.path}/close"):
        response = client.post(path, data={"birthDate": BORN})
        assert response.status_code == 400, path
        assert response.content_type.startswith("text/html")
    assert "Confirm your date of birth" in client.get(signed_link.path).get_data(as_text=True)


@pytest.mark.parametrize("tail", ["", "/report.pdf", "/images/1.png", "/close"])
def test_every_patient_response_has_the_private_page_headers(
        client: FlaskClient, signed_link: SignedLink, tail: str) -> None:
    for response in (client.get(signed_link.path + tail), client.post(signed_link.path + tail),
                     client.get(f"/r/{secrets.token_urlsafe(8)}{tail}")):
        headers = response.headers
        assert headers["Cache-Control"] == "no-store"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Robots-Tag"].startswith("noindex")
        csp = headers["Content-Security-Policy"]
        for part in ("default-src 'self'", "frame-ancestors 'none'", "form-action 'self'",
                     "base-uri 'none'"):
            assert part in csp
        assert "unsafe-inline" not in csp
        assert response.status_code < 500 and response.content_type.startswith("text/html")
