"""Sign-off makes a patient report link (CONTRACT §7), amendments replace it, and the
GP system revokes it through FHIR; the token is never stored in clear.

Expected values come from CONTRACT §7 (the DocumentReference's fields, the
revoking status) and from the patient created here (subject, birth date).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlalchemy as sa
from flask.testing import FlaskClient

from core.db import engine_for
from core.settings import Settings
from tests.patient.conftest import GP, REASON_URL, RIS, Headers, SignedLink, links_of, sign_off

JSON_PATCH = "application/json-patch+json"


def stored_text(settings: Settings) -> str:
    """Every row of every ScanPath table, as text (what a copy of the database holds)."""
    engine = engine_for(settings.database_url)
    with engine.connect() as connection:
        names = sa.inspect(connection).get_table_names()
        return "\n".join(json.dumps([list(map(str, row)) for row in connection.execute(
            sa.text(f"SELECT * FROM {name}"))]) for name in names)


def test_sign_off_makes_one_link_with_the_contract_fields(
        client: FlaskClient, auth_headers: Headers, signed_link: SignedLink,
        settings: Settings) -> None:
    document, report = signed_link.document, signed_link.report
    assert document["status"] == "current"
    assert document["subject"] == {"reference": f"Patient/{signed_link.patient_id}"}
    assert document["context"]["related"] == [
        {"reference": f"DiagnosticReport/{report['id']}/_history/{report['meta']['versionId']}"}]
    assert signed_link.url.startswith(f"{settings.public_url}/r/")
    assert len(signed_link.token) >= 22  # 128 bits in base64url at the least
    assert document["type"]["coding"][0]["code"] == "18748-4"
    assert "date of birth" in document["description"]
    # The database holds no token and no URL, only what derives them.
    assert signed_link.token not in stored_text(settings)
    raw = client.get(f"/fhir/DocumentReference/{document['id']}", headers=auth_headers(GP))
    assert raw.get_json()["content"][0]["attachment"]["url"] == signed_link.url


def test_an_amendment_replaces_the_link(client: FlaskClient, auth_headers: Headers,
                                        signed_link: SignedLink) -> None:
    report = signed_link.report
    amended = sign_off(client, auth_headers, report, status="amended",
                       conclusion="Coronary artery calcium score 1.",
                       extension=[{"url": REASON_URL, "valueString": "typing error"}])
    documents = {d["status"]: d for d in links_of(client, auth_headers, signed_link.patient_id)}
    assert set(documents) == {"current", "superseded"}
    new = documents["current"]
    assert new["context"]["related"] == [{"reference": f"DiagnosticReport/{report['id']}"
                                          f"/_history/{amended['meta']['versionId']}"}]
    assert new["relatesTo"][0]["target"]["reference"] == \
        f"DocumentReference/{signed_link.document['id']}"
    assert "url" not in documents["superseded"]["content"][0]["attachment"]
    assert new["content"][0]["attachment"]["url"] != signed_link.url
    assert client.get(signed_link.path).status_code == 404


def test_resending_the_signed_report_makes_no_second_link(
        client: FlaskClient, auth_headers: Headers, signed_link: SignedLink) -> None:
    sign_off(client, auth_headers, signed_link.report)
    assert len(links_of(client, auth_headers, signed_link.patient_id)) == 1


def test_the_gp_system_revokes_by_put(client: FlaskClient, auth_headers: Headers,
                                      signed_link: SignedLink) -> None:
    document = {k: v for k, v in signed_link.document.items() if k != "meta"}
    response = client.put(f"/fhir/DocumentReference/{document['id']}",
                          json={**document, "status": "entered-in-error"},
                          headers=auth_headers(GP))
    assert response.status_code == 200, response.get_json()
    assert "url" not in response.get_json()["content"][0]["attachment"]
    assert client.get(signed_link.path).status_code == 404


def test_the_gp_system_revokes_by_patch(client: FlaskClient, auth_headers: Headers,
                                        signed_link: SignedLink) -> None:
    response = client.patch(
        f"/fhir/DocumentReference/{signed_link.document['id']}",
        json=[{"op": "replace", "path": "/status", "value": "entered-in-error"}],
        headers={**auth_headers(GP), "Content-Type": JSON_PATCH})
    assert response.status_code == 200, response.get_json()
    assert client.get(signed_link.path).status_code == 404


def test_an_amendment_after_a_revocation_makes_no_new_link(
        client: FlaskClient, auth_headers: Headers, signed_link: SignedLink) -> None:
    revoked = client.patch(
        f"/fhir/DocumentReference/{signed_link.document['id']}",
        json=[{"op": "replace", "path": "/status", "value": "entered-in-error"}],
        headers={**auth_headers(GP), "Content-Type": JSON_PATCH})
    assert revoked.status_code == 200, revoked.get_json()
    sign_off(client, auth_headers, signed_link.report, status="amended",
             conclusion="Coronary artery calcium score 1.",
             extension=[{"url": REASON_URL, "valueString": "typing error"}])
    statuses = [d["status"] for d in links_of(client, auth_headers, signed_link.patient_id)]
    assert statuses == ["entered-in-error"]  # the GP's decision holds for the new version


def test_a_link_is_not_editable_except_to_revoke(
        client: FlaskClient, auth_headers: Headers, signed_link: SignedLink) -> None:
    path = f"/fhir/DocumentReference/{signed_link.document['id']}"
    headers = {**auth_headers(GP), "Content-Type": JSON_PATCH}
    changed = client.patch(path, headers=headers, json=[
        {"op": "replace", "path": "/description", "value": "something else"}])
    assert changed.status_code == 422
    assert changed.get_json()["resourceType"] == "OperationOutcome"
    other_url = client.patch(path, headers=headers, json=[
        {"op": "replace", "path": "/content/0/attachment/url", "value": "https://evil.example/"}])
    assert other_url.status_code in (200, 422)  # the URL is never stored: dropped or refused
    superseded = client.patch(path, headers=headers, json=[
        {"op": "replace", "path": "/status", "value": "superseded"}])
    assert superseded.status_code == 409
    for client_id in (GP, RIS):
        again = client.get(path, headers=auth_headers(client_id)).get_json()
        assert again["content"][0]["attachment"]["url"] == signed_link.url


def test_a_patient_without_a_full_birth_date_gets_no_link(
        link_for: Callable[..., SignedLink]) -> None:
    try:
        link_for(born="1961")
    except ValueError:  # the fixture unpacks exactly one DocumentReference
        return
    raise AssertionError("a link was made for a patient whose birth date is only a year")
