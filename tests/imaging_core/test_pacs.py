"""Results to PACS (issue 11 item 5; CONTRACT §6): SR, SEG and Encapsulated PDF by C-STORE.

The PACS is a real Orthanc (Debian's package, ``make system-deps``), started by
each test on free loopback ports with a configuration and storage folder in
``tmp_path``, never the package's own service. What arrived is read back
through Orthanc's REST API. Retries are driven by calling
``pacs.deliver_due`` with a controlled clock: no test waits for a backoff.
The first test sends the study in with dcmtk's storescu to the listener; the others
use `storage.receive` (the same path). Jobs run in process, over SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from pydicom.uid import (
    Comprehensive3DSRStorage,
    EncapsulatedPDFStorage,
    SegmentationStorage,
)
from sqlmodel import Session, col, select

from core.db import engine_for
from core.settings import Settings
from fhir.dates import now_utc
from imaging_core import jobs, pacs
from imaging_core.models import DicomInstance, PacsDelivery
from tests.conftest import ORTHANC, Orthanc
from tests.imaging_core import phantoms
from tests.imaging_core.conftest import needs_dcmtk, rows, storescu
from tests.imaging_core.test_completion import (  # noqa: F401
    analyse,
    chest_series,
    placed,
    quick,
    send,
)
from tests.imaging_core.test_review import (  # noqa: F401
    change,
    listing,
    parts,
    post_review,
    run_queued,
)

pytestmark = pytest.mark.skipif(ORTHANC is None and os.environ.get("CI") != "true",
                                reason="Orthanc not installed (make system-deps)")
Headers = Callable[..., dict[str, str]]
RESULT_CLASSES = {Comprehensive3DSRStorage, SegmentationStorage, EncapsulatedPDFStorage}


@pytest.fixture
def sending(quick: Settings, orthanc: Orthanc) -> Settings:  # noqa: F811
    """Settings that send results to the test's Orthanc."""
    return quick.model_copy(update={"dicom_destinations": [orthanc.destination]})


def deliveries(settings: Settings) -> list[PacsDelivery]:
    return sorted(rows(settings, PacsDelivery), key=lambda row: row.id or 0)


def analysed(settings: Settings, client: FlaskClient, auth_headers: Headers) -> str:
    """An order whose phantom study (a thorax with one LAD plaque) was sent and analysed;
    the StudyInstanceUID."""
    _, accession = placed(client, auth_headers)
    study, _ = chest_series(accession)
    send(settings, study)
    assert len(analyse(settings)) == 1
    return str(study[0].StudyInstanceUID)


@needs_dcmtk
def test_orthanc_receives_the_sr_seg_and_pdf_after_analysis(
        sending: Settings, orthanc: Orthanc, scp: int, client: FlaskClient,
        auth_headers: Headers, tmp_path: Path) -> None:
    _, accession = placed(client, auth_headers)
    study, _ = chest_series(accession)
    sent = storescu(scp, phantoms.write(study, tmp_path / "study"))  # C-STORE in
    assert sent.returncode == 0, sent.stderr
    worker = jobs.Worker(sending)  # the worker's own round: analyse, then deliver
    time.sleep(sending.study_idle_seconds * 1.5)
    worker.tick()
    stored = orthanc.instances()
    assert set(stored) == RESULT_CLASSES
    uid = str(study[0].StudyInstanceUID)
    assert {tags["StudyInstanceUID"] for tags in stored.values()} == {uid}
    assert {tags["PatientID"] for tags in stored.values()} == {str(study[0].PatientID)}
    pdf = stored[EncapsulatedPDFStorage]
    assert pdf["MIMETypeOfEncapsulatedDocument"] == "application/pdf"
    assert pdf["Modality"] == "DOC"
    document = orthanc.get(f"/instances/{pdf['orthanc_id']}/content/0042-0011")
    assert document.startswith(b"%PDF")
    # The SR and SEG Orthanc holds are the ones ScanPath keeps with the study.
    with Session(engine_for(sending.database_url)) as session:
        derived = session.exec(select(DicomInstance.sop_instance_uid).where(
            col(DicomInstance.source) == "derived")).all()
    assert {stored[c]["SOPInstanceUID"] for c in (Comprehensive3DSRStorage,
                                                   SegmentationStorage)} == set(derived)
    assert [(row.status, row.attempts) for row in deliveries(sending)] == [("sent", 1)] * 3


def tried_while_down(settings: Settings, orthanc: Orthanc, client: FlaskClient,
                     auth_headers: Headers) -> datetime:
    """With Orthanc stopped, a study analysed and its first delivery tried; when."""
    orthanc.stop()
    analysed(settings, client, auth_headers)
    start = now_utc()
    pacs.deliver_due(settings, start)
    return start


def test_a_destination_down_at_first_gets_the_results_once_it_is_back(
        sending: Settings, orthanc: Orthanc, client: FlaskClient,
        auth_headers: Headers) -> None:
    start = tried_while_down(sending, orthanc, client, auth_headers)
    first = deliveries(sending)
    assert [(row.status, row.attempts) for row in first] == [("pending", 1)] * 3
    assert all("no association" in (row.last_error or "") for row in first)
    retry_at = start + timedelta(seconds=sending.pacs_retry_base_seconds)

    orthanc.start()
    assert pacs.deliver_due(sending, retry_at - timedelta(seconds=1)) == []  # not yet due
    assert orthanc.get("/instances") == []
    pacs.deliver_due(sending, retry_at)
    assert set(orthanc.instances()) == RESULT_CLASSES
    assert [(row.status, row.attempts) for row in deliveries(sending)] == [("sent", 2)] * 3


def test_the_wait_doubles_after_each_failure_up_to_the_cap(quick: Settings) -> None:  # noqa: F811
    settings = quick.model_copy(update={"pacs_retry_base_seconds": 30.0,
                                        "pacs_retry_max_seconds": 3600.0})
    waits = [pacs.backoff(settings, attempt).total_seconds() for attempt in range(1, 10)]
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_a_refusing_destination_is_recorded_and_not_retried(
        quick: Settings, orthanc: Orthanc, client: FlaskClient,  # noqa: F811
        auth_headers: Headers) -> None:
    # Orthanc checks the called AE title: one it does not answer to is refused for good.
    wrong = orthanc.destination._replace(ae_title="NOT-ORTHANC")
    settings = quick.model_copy(update={"dicom_destinations": [wrong]})
    analysed(settings, client, auth_headers)
    start = now_utc()
    pacs.deliver_due(settings, start)
    refused = deliveries(settings)
    assert [(row.status, row.attempts) for row in refused] == [("failed", 1)] * 3
    assert all("rejected" in (row.last_error or "") for row in refused)
    assert pacs.deliver_due(settings, start + timedelta(days=30)) == []
    assert orthanc.get("/instances") == []


def test_a_destination_that_drops_every_store_is_given_up_after_the_last_attempt(
        sending: Settings, orthanc: Orthanc, client: FlaskClient,
        auth_headers: Headers) -> None:
    # Orthanc stores only from the AEs it knows, and aborts the association when
    # another one sends (no status): that may be a crash, so it is retried, but not forever.
    stranger = sending.model_copy(update={"dicom_ae_title": "STRANGER", "pacs_max_attempts": 2,
                                          "pacs_timeout_seconds": 5.0})
    analysed(stranger, client, auth_headers)
    start = now_utc()
    pacs.deliver_due(stranger, start)
    assert [(row.status, row.attempts) for row in deliveries(stranger)] == [("pending", 1)] * 3
    pacs.deliver_due(stranger, start + timedelta(seconds=stranger.pacs_retry_base_seconds))
    given_up = deliveries(stranger)
    assert [(row.status, row.attempts) for row in given_up] == [("failed", 2)] * 3
    assert all((row.last_error or "").startswith("gave up after 2 attempts") for row in given_up)
    assert orthanc.get("/instances") == []


def test_a_restart_between_attempts_loses_nothing(
        sending: Settings, orthanc: Orthanc, client: FlaskClient,
        auth_headers: Headers) -> None:
    start = tried_while_down(sending, orthanc, client, auth_headers)
    engine_for(sending.database_url).dispose()  # ScanPath stops: nothing held in memory
    orthanc.start()
    restarted = sending.model_copy()
    later = start + timedelta(seconds=restarted.pacs_retry_base_seconds)
    pacs.deliver_due(restarted, later)
    assert set(orthanc.instances()) == RESULT_CLASSES
    assert [row.status for row in deliveries(restarted)] == ["sent"] * 3


def test_queueing_again_sends_only_what_is_not_already_owed(
        sending: Settings, orthanc: Orthanc, client: FlaskClient,
        auth_headers: Headers) -> None:
    analysed(sending, client, auth_headers)
    [report_id] = {row.diagnostic_report_id for row in deliveries(sending)}
    with Session(engine_for(sending.database_url)) as session:
        assert pacs.queue_results_to_pacs(session, report_id, sending) == []  # pending
        session.commit()
    pacs.deliver_due(sending)
    with Session(engine_for(sending.database_url)) as session:
        assert pacs.queue_results_to_pacs(session, report_id, sending) == []  # sent
    assert len(orthanc.get("/instances")) == 3


def test_a_review_sends_the_regenerated_results_too(
        sending: Settings, orthanc: Orthanc, client: FlaskClient, auth_headers: Headers,
        practitioner: Callable[[str], str]) -> None:  # noqa: F811
    analysed(sending, client, auth_headers)
    pacs.deliver_due(sending)
    [report_id] = {row.diagnostic_report_id for row in deliveries(sending)}
    candidates = [parts(p) for p in listing(client, auth_headers, report_id)["parameter"]
                  if p["name"] == "lesion"]
    [lesion] = [c for c in candidates if c["counted"]]  # the thorax's one LAD plaque
    reviewed = post_review(client, auth_headers, report_id, practitioner("Reviewer"),
                           change(lesion["id"], "reject"))
    assert reviewed.status_code == 200, reviewed.get_json()
    run_queued(sending)
    pacs.deliver_due(sending)
    classes = Counter(tags["SOPClassUID"] for tags in orthanc.tags())
    # A new SR and PDF; with the only lesion rejected the score is 0, so no second SEG.
    assert classes == {Comprehensive3DSRStorage: 2, EncapsulatedPDFStorage: 2,
                       SegmentationStorage: 1}
    assert {row.status for row in deliveries(sending)} == {"sent"}


def test_nothing_is_owed_without_a_destination(quick: Settings, client: FlaskClient,  # noqa: F811
                                               auth_headers: Headers) -> None:
    analysed(quick, client, auth_headers)
    assert deliveries(quick) == []


@pytest.mark.parametrize(("status", "verdict"), [
    (0x0000, "sent"),
    (0xB000, "sent"),  # Warning: coercion of data elements (PS3.4 B.2.3)
    (0xA700, "retry"),  # Refused: out of resources
    (0x0213, "retry"),  # Resource limitation (PS3.7 C.5.22)
    (0x0110, "retry"),  # Processing failure
    (0xA900, "failed"),  # Error: data set does not match SOP Class
    (0xC000, "failed"),  # Error: cannot understand
    (0x0122, "failed"),  # SOP Class not supported
    (0x0124, "failed"),  # Refused: not authorized
])
def test_c_store_statuses_are_judged_by_their_ps3_4_class(status: int, verdict: str) -> None:
    assert pacs.classify(status).verdict == verdict
