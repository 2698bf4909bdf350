"""Fixtures for patient report links (issue 13), for any test that needs a signed report.

- ``signed_link``: a Patient born 23 April 1961 (``BORN``), a preliminary
  DiagnosticReport written by the RIS and signed off by it (PUT, status final,
  a radiologist in ``resultsInterpreter``, as CONTRACT §6 says); returns a
  ``SignedLink`` with the report, its DocumentReference as the GP system reads it,
  and the link's token (taken from that URL, as the GP system would pass it on).
- ``link_for``: the same for a new patient each call (several links in one test).
- ``form_token(client, path)``: the CSRF token of the form on ``path``.
- ``answer(client, token, birth_date)``: GET the form, POST ``birthDate``.

No images are analysed: sign-off of a report without an analysis makes the same
link (the analysis only adds the re-issued PDF).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

Headers = Callable[..., dict[str, str]]
RIS, GP = "demo-radiology", "demo-gp"
REASON_URL = "https://scanpath.example/fhir/StructureDefinition/amendment-reason"
BORN = "1961-04-23"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class SignedLink:
    """A signed-off report and its patient link."""

    patient_id: str
    report: dict[str, Any]
    document: dict[str, Any]
    url: str

    @property
    def token(self) -> str:
        return self.url.rsplit("/r/", 1)[1]

    @property
    def path(self) -> str:
        return f"/r/{self.token}"


def created(client: FlaskClient, headers: dict[str, str], body: dict[str, Any]) -> Any:
    response = client.post(f"/fhir/{body['resourceType']}", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def links_of(client: FlaskClient, auth_headers: Headers, patient_id: str) -> list[Any]:
    """The patient's DocumentReferences as the GP system finds them."""
    bundle = client.get(f"/fhir/DocumentReference?subject=Patient/{patient_id}",
                        headers=auth_headers(GP)).get_json()
    return [e["resource"] for e in bundle.get("entry", [])]


def sign_off(client: FlaskClient, auth_headers: Headers, report: dict[str, Any],
             **changes: Any) -> dict[str, Any]:
    body = {k: v for k, v in {**report, **changes}.items() if k != "meta"}
    response = client.put(f"/fhir/DiagnosticReport/{report['id']}", json=body,
                          headers=auth_headers(RIS))
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


@pytest.fixture
def link_for(client: FlaskClient, auth_headers: Headers) -> Callable[..., SignedLink]:
    def make(born: str = BORN) -> SignedLink:
        patient = created(client, auth_headers(GP), {
            "resourceType": "Patient", "name": [{"family": "Example", "given": ["Pat"]}],
            "birthDate": born})
        doctor = created(client, auth_headers("demo-admin"), {
            "resourceType": "Practitioner", "name": [{"family": "Reader"}]})
        report = created(client, auth_headers(RIS), {
            "resourceType": "DiagnosticReport", "status": "preliminary",
            "code": {"text": "CT coronary calcium score"},
            "subject": {"reference": f"Patient/{patient['id']}"},
            "conclusion": "Coronary artery calcium score 0."})
        signed = sign_off(client, auth_headers, report, status="final",
                          resultsInterpreter=[{"reference": f"Practitioner/{doctor['id']}"}])
        [document] = links_of(client, auth_headers, patient["id"])
        return SignedLink(patient["id"], signed, document,
                          document["content"][0]["attachment"]["url"])

    return make


@pytest.fixture
def signed_link(link_for: Callable[..., SignedLink]) -> SignedLink:
    return link_for()


def form_token(client: FlaskClient, path: str) -> str:
    page = client.get(path)
    match = _CSRF.search(page.get_data(as_text=True))
    assert match, f"no csrf_token on {path} ({page.status_code})"
    return match[1]


def answer(client: FlaskClient, link: SignedLink, birth_date: str, **fields: str) -> Any:
    token = form_token(client, link.path)
    data = {"csrf_token": token, **({"birthDate": birth_date} if birth_date else {}), **fields}
    return client.post(link.path, data=data)
