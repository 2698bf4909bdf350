"""The whole referral-to-result journey through real peers (issue 11 "Tests", first bullet).

A GP system (fhirpy, over a real loopback HTTP socket) places a calcium-scoring
order by FHIR transaction; the RIS (``demo-radiology``) vets, accepts and
schedules its Task by JSON Patch with a station AE; dcmtk's ``findscu -W``
finds it on the worklist (a rejected order is absent); dcmtk's ``storescu``
sends the thorax phantom; the jobs run in process; the GP's rest-hook
Subscription (a real loopback HTTP server) is notified of the preliminary
report; the RIS signs it off and amends it; a real Orthanc (when installed)
receives the SR, SEG and PDF. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fhirpy import SyncFHIRClient
from flask import Flask
from flask.testing import FlaskClient
from pydicom.uid import generate_uid
from sqlmodel import Session

from auth.clients import issue_token_for
from core.db import engine_for
from core.settings import Settings
from fhir.dates import now_utc
from imaging_core import pacs
from referral.notify import deliver_due
from tests import factories
from tests.conftest import ORTHANC, Orthanc, serving
from tests.imaging_core import thorax
from tests.imaging_core.conftest import (  # noqa: F401
    accession_of,
    needs_dcmtk,
    practitioner,
    scp,
    storescu,
)
from tests.imaging_core.phantoms import write
from tests.imaging_core.test_completion import quick, reports, schedule  # noqa: F401
from tests.imaging_core.test_end_to_end import _arteries
from tests.imaging_core.test_pacs import RESULT_CLASSES
from tests.imaging_core.test_review import run_queued
from tests.imaging_core.test_signoff import REASON, observation_statuses, put, signer
from tests.imaging_core.test_worklist import FINDSCU, accessions, findscu, station
from tests.referral.moves import GP, WHEN, order_status, patch, state, task_of
from tests.referral.test_subscriptions import Subscriber, subscriber  # noqa: F401

Headers = Callable[..., dict[str, str]]
SCT = "http://snomed.info/sct"
CAC = {"coding": [{"system": SCT, "code": "426005005",
                   "display": "Cardiac CT for calcium scoring"}]}  # as cac_order places it
pytestmark = pytest.mark.skipif(FINDSCU is None, reason="dcmtk (findscu) not installed")


@pytest.fixture
def settings(settings: Settings, tmp_path: Path,
             subscriber: Subscriber) -> Settings:  # noqa: F811
    """A var directory of the test's own, an ephemeral DICOM port, the GP's endpoint."""
    return settings.model_copy(update={"var_dir": tmp_path / "var", "dicom_port": 0,
                                       "subscription_endpoints": [f"{subscriber.url}/gp"]})


@pytest.fixture
def gp(app: Flask, settings: Settings) -> Iterator[SyncFHIRClient]:
    """fhirpy as the GP system, talking HTTP to the app served on loopback."""
    with Session(engine_for(settings.database_url)) as session:
        token = issue_token_for(session, settings, GP)
    with serving(app) as base:
        yield SyncFHIRClient(f"{base}/fhir", authorization=f"Bearer {token}")


def intake(gp: SyncFHIRClient) -> tuple[str, str, str]:
    """A Patient (the phantom's) and a calcium-scoring order in one transaction; the order's
    id, accession number and the patient reference."""
    order = {**factories.service_request("urn:uuid:p"), "code": CAC,
             "category": [{"coding": [{"system": SCT, "code": "363679005"}]}]}
    answer = gp.execute("", method="post", data=factories.transaction(
        factories.post_entry(factories.patient(), "urn:uuid:p"),
        factories.post_entry(order, "urn:uuid:o")))
    made = answer["entry"][1]["resource"]
    return str(made["id"]), accession_of(made), str(made["subject"]["reference"])


def move(client: FlaskClient, auth_headers: Headers, order_id: str, code: str,
         *more: dict[str, Any]) -> dict[str, Any]:
    """The RIS moves the order's Task to ``code`` by JSON Patch; the Task."""
    moved = patch(client, auth_headers, task_of(client, auth_headers, order_id), code, *more)
    assert moved.status_code == 200, moved.get_json()
    return dict(moved.get_json())


def signed_off(client: FlaskClient, auth_headers: Headers, report: dict[str, Any],
               **changes: Any) -> dict[str, Any]:
    """The RIS's PUT of ``report`` with ``changes``; the report as answered."""
    answer = put(client, auth_headers, report, **changes)
    assert answer.status_code == 200, answer.get_json()
    return dict(answer.get_json())


def told_of(subscriber: Subscriber, report_id: str) -> list[dict[str, Any]]:  # noqa: F811
    """The versions of the report the GP system's endpoint accepted."""
    bodies = [json.loads(r.body) for r in subscriber.delivered() if r.body]
    return [b for b in bodies if b.get("resourceType") == "DiagnosticReport"
            and b["id"] == report_id]


@needs_dcmtk
def test_an_order_goes_from_the_gp_to_a_signed_and_amended_report(
        quick: Settings, client: FlaskClient, auth_headers: Headers,  # noqa: F811
        gp: SyncFHIRClient, scp: int, subscriber: Subscriber,  # noqa: F811
        practitioner: Callable[[str], str], tmp_path: Path,  # noqa: F811
        request: pytest.FixtureRequest) -> None:
    peer: Orthanc | None = request.getfixturevalue("orthanc") if ORTHANC else None
    if peer is not None:
        quick = quick.model_copy(update={"dicom_destinations": [peer.destination]})

    # The GP places two orders by transaction; each has its Task at intake.
    order_id, accession, patient = intake(gp)
    refused_id, refused_acsn, _ = intake(gp)
    assert state(task_of(client, auth_headers, order_id)) == "received"
    gp.execute("Subscription", method="post", data={
        "resourceType": "Subscription", "status": "requested", "reason": "Reports for my GP",
        "criteria": f"DiagnosticReport?subject={patient}",
        "channel": {"type": "rest-hook", "endpoint": f"{subscriber.url}/gp/fhir",
                    "payload": "application/fhir+json"}})

    # The RIS vets, accepts and books one on station CT01, and rejects the other.
    for code in ("vetting", "accepted"):
        move(client, auth_headers, order_id, code)
    booked = move(client, auth_headers, order_id, "scheduled", station("CT01"),
                  {"op": "add", "path": "/restriction", "value": {"period": {"start": WHEN}}})
    assert state(booked) == "scheduled"
    move(client, auth_headers, refused_id, "vetting")
    move(client, auth_headers, refused_id, "rejected",
         {"op": "add", "path": "/statusReason", "value": {"text": "Not indicated"}})

    # The modality finds the booked order by accession number; the rejected one is absent.
    [item] = findscu(scp, tmp_path / "wl", f"AccessionNumber={accession}", "PatientName",
                     "ScheduledProcedureStepSequence[0].ScheduledStationAETitle")
    assert str(item.AccessionNumber) == accession
    assert item.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "CT01"
    assert findscu(scp, tmp_path / "wl", f"AccessionNumber={refused_acsn}") == []
    assert refused_acsn not in accessions(findscu(scp, tmp_path / "wl", "AccessionNumber"))

    # The scanner sends the thorax; the analysis runs; a preliminary per-artery report.
    image = thorax.build(thorax.scan_changed(thorax.thorax_42(), accession=accession,
                                             study_uid=generate_uid()))
    study = thorax.datasets(image)
    sent = storescu(scp, write(study, tmp_path / "study"))
    assert sent.returncode == 0, sent.stderr
    assert schedule(quick)  # once the study has fallen quiet
    run_queued(quick)
    [report] = reports(client, auth_headers, order_id)
    assert report["status"] == "preliminary"
    # Each artery within 2 % of the phantom's geometric truth (issue 10): the LAD's plaque,
    # nothing in the others.
    per_artery = {name: image.truth(name).agatston for name in thorax.ARTERIES}
    assert _arteries(client, auth_headers, report) == pytest.approx(per_artery, rel=0.02)

    # The GP system was told about the report.
    deliver_due(quick, "worker-1", now=now_utc())
    assert "preliminary" in {b["status"] for b in told_of(subscriber, report["id"])}

    # The RIS signs it off: everything final, the order completed.
    radiologist = practitioner("Jones")
    signed = signed_off(client, auth_headers, report, status="final",
                        resultsInterpreter=signer(radiologist))
    assert signed["status"] == "final"
    assert observation_statuses(client, auth_headers, report) == {"final"}
    assert state(task_of(client, auth_headers, order_id)) == "completed"
    assert order_status(client, auth_headers, order_id) == "completed"
    run_queued(quick)
    deliver_due(quick, "worker-1", now=now_utc())  # and the GP system hears it is final
    assert "final" in {b["status"] for b in told_of(subscriber, report["id"])}

    # An amendment with its reason; the history keeps the preliminary and final versions.
    amended = signed_off(client, auth_headers, reports(client, auth_headers, order_id)[0],
                         conclusion="Calcium in the LAD.",
                         extension=[{"url": REASON, "valueString": "Artery named"}])
    assert amended["status"] == "amended"
    history = client.get(f"/fhir/DiagnosticReport/{report['id']}/_history",
                         headers=auth_headers(GP)).get_json()
    versions = [e["resource"] for e in history["entry"]]
    assert {"preliminary", "final", "amended"} <= {v["status"] for v in versions}
    assert [v["extension"] for v in versions if v["status"] == "amended"][0] == \
        [{"url": REASON, "valueString": "Artery named"}]
    run_queued(quick)

    if peer is not None:  # the PACS holds the SR, SEG and PDF of the study
        pacs.deliver_due(quick)
        held = peer.tags()
        assert {tags["SOPClassUID"] for tags in held} >= RESULT_CLASSES
        assert {tags["StudyInstanceUID"] for tags in held} == {str(study[0].StudyInstanceUID)}
        assert "VERIFIED" in {tags.get("VerificationFlag") for tags in held}  # the signed SR
