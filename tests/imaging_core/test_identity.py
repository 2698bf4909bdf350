"""Identity check and reconciliation (issue 11 item 3; CONTRACT §6 "Identity check").

Studies are sent with dcmtk's ``storescu``; the order's Patient is
``tests.factories.patient()`` (Smith, Alex, NHS number 9434765919, born
1968-04-02), which the phantom's header names unless a test changes it.
SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, select

from core.db import engine_for
from core.settings import Settings
from fhir.store import Store
from imaging_core.models import AnalysisJob, DicomInstance, ReceivedStudy
from imaging_core.studies import link_study
from referral.identity import Header, check, normalise
from tests import factories
from tests.imaging_core.conftest import accession_of, cac_order, needs_dcmtk, rows, storescu
from tests.imaging_core.phantoms import write
from tests.imaging_core.test_completion import analyse, quick, reports, series  # noqa: F401
from tests.referral.moves import RIS, Headers, audit_descriptions

PATIENT = factories.patient()
SAME = Header(factories.VALID_NHS_NUMBER, "Smith^Alex", "19680402")


@pytest.mark.parametrize("header", [
    SAME,
    Header("943 476 5919", "SMITH^ALEX^JAMES^^", "19680402"),  # spaces, case, middle name
    Header("9434765919", "Smith^Alex=スミス^アレックス", "19680402"),  # ideographic group
    Header("9434765919", "  smith ^ alex ", "19680402"),  # extra spaces
    Header("9434765919", "Alex Smith", "19680402"),  # free text, no components
])
def test_the_same_patient_written_differently_matches(header: Header) -> None:
    assert check(PATIENT, header) == []


def test_accents_are_not_a_difference() -> None:
    patient = factories.patient(family="Zoë-Müller")
    assert check(patient, Header(factories.VALID_NHS_NUMBER, "ZOE MULLER^Alex",
                                 "19680402")) == []
    assert normalise("  O'Brien-Zoë ") == "o brien zoe"


@pytest.mark.parametrize(("header", "element"), [
    (Header("1234567890", "Smith^Alex", "19680402"), "PatientID"),
    (Header(None, "Smith^Alex", "19680402"), "PatientID"),  # missing is not a match
    (Header(factories.VALID_NHS_NUMBER, "Smith^Alex", "19680403"), "PatientBirthDate"),
    (Header(factories.VALID_NHS_NUMBER, "Smith^Alex", ""), "PatientBirthDate"),
    (Header(factories.VALID_NHS_NUMBER, "Smith^Alexandra", "19680402"), "PatientName"),
    (Header(factories.VALID_NHS_NUMBER, "Alex^Smith", "19680402"), "PatientName"),
    (Header(factories.VALID_NHS_NUMBER, None, "19680402"), "PatientName"),
])
def test_a_difference_or_a_missing_value_is_a_discrepancy(header: Header, element: str) -> None:
    assert [d.element for d in check(PATIENT, header)] == [element]


def test_a_patient_without_a_birth_date_is_never_a_match() -> None:
    patient = {k: v for k, v in PATIENT.items() if k != "birthDate"}
    assert [d.element for d in check(patient, SAME)] == ["PatientBirthDate"]


# --- through the DICOM listener -----------------------------------------------------------

def send(scp: int, tmp_path: Path, accession: str, **header: str) -> str:
    """A CT study sent by storescu with ``header`` attributes changed; its Study UID."""
    slices = series(accession)
    for ds in slices:
        for keyword, value in header.items():
            setattr(ds, keyword, value)
    sent = storescu(scp, write(slices, tmp_path / "send"))
    assert sent.returncode == 0, sent.stderr
    return str(slices[0].StudyInstanceUID)


def holds(client: FlaskClient, auth_headers: Headers) -> list[dict[str, Any]]:
    """What staff and the RIS find: every open reconcile Task."""
    found = client.get("/fhir/Task?business-status=reconcile&status=requested",
                       headers=auth_headers(RIS))
    assert found.status_code == 200, found.get_json()
    return [entry["resource"] for entry in found.get_json().get("entry", [])]


def decide(client: FlaskClient, auth_headers: Headers, task: dict[str, Any], status: str,
           order_id: str | None = None) -> Any:
    operations: list[dict[str, Any]] = [{"op": "replace", "path": "/status", "value": status}]
    if order_id:
        operations.append({"op": "add", "path": "/output", "value": [{
            "type": {"text": "linked-order"},
            "valueReference": {"reference": f"ServiceRequest/{order_id}"}}]})
    return client.patch(f"/fhir/Task/{task['id']}", json=operations,
                        headers=auth_headers(RIS, Content_Type="application/json-patch+json"))


@needs_dcmtk
def test_another_patients_study_is_held_and_analysed_once_a_person_links_it(
        quick: Settings, scp: int, tmp_path: Path, client: FlaskClient,  # noqa: F811
        auth_headers: Headers) -> None:
    order = cac_order(client, auth_headers)
    uid = send(scp, tmp_path, accession_of(order), PatientID="1234567890")
    [received] = rows(quick, ReceivedStudy)
    assert received.hold_reason == "identity-mismatch" and not received.matched
    assert len(rows(quick, DicomInstance)) == len(series("x"))  # stored
    assert analyse(quick) == [] and reports(client, auth_headers, order["id"]) == []
    [hold] = holds(client, auth_headers)
    assert hold["basedOn"] == [{"reference": f"ServiceRequest/{order['id']}"}]
    assert "1234567890" in hold["description"] and "for" not in hold
    assert {"study-instance-uid": uid}.items() <= {
        i["type"]["text"]: i["valueString"] for i in hold["input"]}.items()

    linked = decide(client, auth_headers, hold, "completed", order["id"])
    assert linked.status_code == 200, linked.get_json()
    assert len(analyse(quick)) == 1
    [report] = reports(client, auth_headers, order["id"])
    assert report["subject"] == order["subject"]
    assert holds(client, auth_headers) == []
    assert any("linked by a person" in d for d in
               audit_descriptions(client, auth_headers, hold["id"]))


@needs_dcmtk
def test_a_later_image_of_another_patient_holds_the_linked_study(
        quick: Settings, scp: int, tmp_path: Path, client: FlaskClient,  # noqa: F811
        auth_headers: Headers) -> None:
    order = cac_order(client, auth_headers)
    slices = series(accession_of(order))[:4]
    slices[3].PatientID = "1234567890"  # the 4th image: the listener checks at 1, 2, 4...
    for number, ds in enumerate(slices):
        sent = storescu(scp, write([ds], tmp_path / f"send{number}"))
        assert sent.returncode == 0, sent.stderr
    assert [s.hold_reason for s in rows(quick, ReceivedStudy)] == ["identity-mismatch"]
    assert analyse(quick) == []
    [hold] = holds(client, auth_headers)
    assert decide(client, auth_headers, hold, "completed", order["id"]).status_code == 200
    with Session(engine_for(quick.database_url)) as session:  # as the worker's refresh does
        study = session.exec(select(ReceivedStudy)).one()
        assert link_study(Store(session, quick), study)  # a person's link stands
        session.commit()
    assert len(analyse(quick)) == 1


@needs_dcmtk
def test_a_study_without_a_birth_date_is_held(
        quick: Settings, scp: int, tmp_path: Path, client: FlaskClient,  # noqa: F811
        auth_headers: Headers) -> None:
    order = cac_order(client, auth_headers)
    send(scp, tmp_path, accession_of(order), PatientBirthDate="")
    assert [s.hold_reason for s in rows(quick, ReceivedStudy)] == ["identity-mismatch"]
    assert analyse(quick) == []


@pytest.fixture
def unknown(quick: Settings, scp: int, tmp_path: Path, client: FlaskClient,  # noqa: F811
            auth_headers: Headers) -> dict[str, Any]:
    """The hold Task of a study sent with an accession number that names no order."""
    send(scp, tmp_path, "NOSUCHORDER1")
    [hold] = holds(client, auth_headers)
    assert hold["statusReason"]["text"] == "no-order" and "basedOn" not in hold
    return hold


@needs_dcmtk
def test_an_unknown_accession_is_held_and_a_rejected_hold_stays_stored(
        quick: Settings, client: FlaskClient, auth_headers: Headers,  # noqa: F811
        unknown: dict[str, Any]) -> None:
    rejected = decide(client, auth_headers, unknown, "rejected")
    assert rejected.status_code == 200, rejected.get_json()
    assert [s.hold_reason for s in rows(quick, ReceivedStudy)] == ["rejected"]
    assert len(rows(quick, DicomInstance)) == len(series("x"))  # kept
    assert analyse(quick) == [] and rows(quick, AnalysisJob) == []
    again = decide(client, auth_headers, {**unknown, **rejected.get_json()}, "completed")
    assert again.status_code == 409  # decided once


@needs_dcmtk
def test_linking_needs_an_existing_order(
        quick: Settings, client: FlaskClient, auth_headers: Headers,  # noqa: F811
        unknown: dict[str, Any]) -> None:
    assert decide(client, auth_headers, unknown, "completed").status_code == 422
    assert decide(client, auth_headers, unknown, "completed", "nope").status_code == 422
    assert [s.hold_reason for s in rows(quick, ReceivedStudy)] == ["no-order"]
