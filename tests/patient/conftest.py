"""Two patients' calcium reports, analysed by the imaging core and signed off (issue 13).

``signed_pair`` (once per test session, SQLite): patient A's thorax with one LAD plaque
(tests/imaging_core/thorax.py ``thorax_42``: about 42 Agatston, A1/N1 by its geometry)
signed off by a radiologist in the staff app with a next step for the patient; patient
B's thorax with no coronary calcium (``thorax_a0``) signed off by the RIS with a FHIR PUT
and no next step. Both signed outputs are issued again (the reissue jobs run), as the
worker would. Jobs run in process.

Patient report links (branch patient-links):

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
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydicom.uid import generate_uid
from sqlmodel import Session, col, select

from auth.clients import issue_token_for
from core.db import engine_for
from core.settings import Settings
from imaging_core import results
from imaging_core.models import AnalysisJob
from tests import factories
from tests.conftest import _settings
from tests.imaging_core.conftest import accession_of
from tests.imaging_core.test_completion import analyse, reports, send
from tests.imaging_core.test_review import run_queued
from tests.imaging_core.thorax import build, scan_changed, thorax_42, thorax_a0
from tests.imaging_core.thorax import datasets as thorax_datasets
from tests.staff.conftest import create_staff_user, csrf_token, log_in

NEXT_STEP = "Your GP will contact you within 2 weeks to talk about a statin."
REASON_A = "Chest tightness on exertion, family history of heart disease"
REASON_B = "Raised cholesterol, GP asked for risk check"
SCT = "http://snomed.info/sct"


@dataclass(frozen=True)
class Signed:
    """One signed calcium report and every identifier that must stay off the page."""

    report_id: str
    version: str
    order_id: str
    accession: str
    patient_id: str
    nhs_number: str
    family: str
    study_uid: str
    truth_agatston: float

    @property
    def identifiers(self) -> list[str]:
        return [self.report_id, self.order_id, self.accession, self.patient_id,
                self.nhs_number, self.study_uid]


@dataclass(frozen=True)
class Pair:
    settings: Settings
    app: Flask
    a: Signed
    b: Signed


def _nhs_number(stem: str) -> str:
    """A valid NHS number from 9 digits (modulus 11, NHS Data Dictionary "NHS Number")."""
    check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(stem)) % 11
    assert check != 10, "stem gives no valid NHS number"
    return stem + str(0 if check == 11 else check)


def _headers(settings: Settings, client_id: str) -> dict[str, str]:
    with Session(engine_for(settings.database_url)) as session:
        token = issue_token_for(session, settings, client_id)
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json",
            "Accept": "application/fhir+json"}


def _order(client: FlaskClient, settings: Settings, nhs: str, family: str,
           reason: str) -> dict[str, Any]:
    gp = _headers(settings, "demo-gp")
    patient = client.post("/fhir/Patient", headers=gp,
                          json=factories.patient(nhs_number=nhs, family=family))
    assert patient.status_code == 201, patient.get_json()
    order = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
             "subject": {"reference": f"Patient/{patient.get_json()['id']}"},
             "category": [{"coding": [{"system": SCT, "code": "363679005"}]}],
             "code": {"coding": [{"system": SCT, "code": "426005005",
                                  "display": "Cardiac CT for calcium scoring"}]},
             "reasonCode": [{"text": reason}]}
    made = client.post("/fhir/ServiceRequest", json=order, headers=gp)
    assert made.status_code == 201, made.get_json()
    return dict(made.get_json())


def _analysed(client: FlaskClient, settings: Settings, thorax: Any, nhs: str, family: str,
              reason: str) -> tuple[dict[str, Any], dict[str, Any], float, str]:
    order = _order(client, settings, nhs, family, reason)
    study_uid = generate_uid()
    image = build(scan_changed(thorax, accession=accession_of(order), study_uid=study_uid))
    instances = thorax_datasets(image)
    for ds in instances:  # the images name this patient (CONTRACT §6 identity check)
        ds.PatientID, ds.PatientName = nhs, f"{family}^Alex"
    send(settings, instances)
    analyse(settings)
    ris = lambda client_id="demo-radiology": _headers(settings, client_id)  # noqa: E731
    [report] = reports(client, ris, order["id"])
    return order, report, float(image.truth().agatston), study_uid


def _sign_in_staff_app(app: Flask, settings: Settings, report: dict[str, Any]) -> None:
    staff = app.test_client()
    username, password = create_staff_user(settings, "radiologist")
    assert log_in(staff, username, password).status_code == 303
    page = f"/staff/reports/{report['id']}"
    signed = staff.post(f"{page}/sign-off", data={
        "conclusion": report["conclusion"], "version": report["meta"]["versionId"],
        "next_step": NEXT_STEP, "csrf_token": csrf_token(staff, page)})
    assert signed.status_code == 303, signed.get_data(as_text=True)


def _sign_by_ris(client: FlaskClient, settings: Settings, report: dict[str, Any]) -> None:
    admin = _headers(settings, "demo-admin")
    doctor = client.post("/fhir/Practitioner", headers=admin, json={
        "resourceType": "Practitioner", "name": [{"family": "Okafor", "given": ["Ngozi"]}]})
    body = {k: v for k, v in report.items() if k != "meta"}
    body.update(status="final", resultsInterpreter=[
        {"reference": f"Practitioner/{doctor.get_json()['id']}"}])
    put = client.put(f"/fhir/DiagnosticReport/{report['id']}", json=body,
                     headers=_headers(settings, "demo-radiology"))
    assert put.status_code == 200, put.get_json()


def _signed_version(settings: Settings, report_id: str) -> str:
    """The version the sign-off wrote: the first ``final`` one (before the reissue)."""
    from fhir.store import Store

    with Session(engine_for(settings.database_url)) as session:
        history = Store(session, settings).history("DiagnosticReport", report_id)
    return min((r["meta"]["versionId"] for _, r in history if r["status"] == "final"), key=int)


def _study_of(settings: Settings, report_id: str) -> str:
    with Session(engine_for(settings.database_url)) as session:
        return str(session.exec(select(AnalysisJob.study_uid).where(
            col(AnalysisJob.diagnostic_report_id) == report_id)).first())


def _make(app: Flask, settings: Settings, thorax: Any, nhs: str, family: str, reason: str,
          staff: bool) -> Signed:
    client = app.test_client()
    order, report, truth, study_uid = _analysed(client, settings, thorax, nhs, family, reason)
    if staff:
        _sign_in_staff_app(app, settings, report)
    else:
        _sign_by_ris(client, settings, report)
    run_queued(settings)  # the reissue job: the PDF says FINAL and who signed
    assert _study_of(settings, report["id"]) == study_uid
    return Signed(report["id"], _signed_version(settings, report["id"]), order["id"],
                  accession_of(order), order["subject"]["reference"].split("/")[1], nhs,
                  family, study_uid, truth)


@pytest.fixture(scope="session")
def signed_pair(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path,
                keys_dir: Path) -> Iterator[Pair]:
    """Patients A (one LAD plaque, staff sign-off with a next step) and B (no coronary
    calcium, RIS sign-off), each with a signed, reissued calcium report."""
    from scanpath.app import create_app

    folder = tmp_path_factory.mktemp("patient-pair")
    shutil.copy(sqlite_template, folder / "scanpath.db")
    settings = _settings(f"sqlite:///{folder / 'scanpath.db'}", keys_dir).model_copy(
        update={"var_dir": folder / "var", "dicom_port": 0, "study_idle_seconds": 0.2})
    results.register()
    app = create_app(settings)
    a = _make(app, settings, thorax_42(), _nhs_number("485777345"), "Pemberton",
              REASON_A, staff=True)
    b = _make(app, settings, thorax_a0(), _nhs_number("401023215"), "Whitcombe",
              REASON_B, staff=False)
    yield Pair(settings, app, a, b)
    engine_for(settings.database_url).dispose()


# --- patient report links: a light signed report (no analysis) and its link -----------

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
