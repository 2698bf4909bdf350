"""Keeping instances: checks, content-addressed files, idempotence, linking to orders.

Runs on SQLite and PostgreSQL. Expected values come from the phantoms and
the FHIR R4 ImagingStudy definition, never from the code under test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import Comprehensive3DSRStorage, MRImageStorage, generate_uid
from sqlmodel import Session, select

from core.db import engine_for
from core.settings import Settings
from fhir.store import Store
from imaging_core.errors import (
    DatasetMismatch,
    InstanceConflict,
    MalformedInstance,
    StorageError,
    UnsupportedSopClass,
)
from imaging_core.models import DicomInstance, ReceivedStudy
from imaging_core.storage import receive, store_instance, study_started
from imaging_core.studies import match_pending_studies
from referral.models import Accession
from tests.imaging_core.conftest import Order, encoded, rows, sha256, stored_files, study

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"  # PS3.4 B.5


def imaging_studies(client: FlaskClient, headers: dict[str, str], order_id: str) -> list[dict]:
    found = client.get(f"/fhir/ImagingStudy?based-on=ServiceRequest/{order_id}", headers=headers)
    assert found.status_code == 200
    return [entry["resource"] for entry in found.get_json().get("entry", [])]


def test_instances_of_an_ordered_study_make_its_imaging_study(
        settings: Settings, client: FlaskClient, order: Callable[[], Order],
        auth_headers: Callable[..., dict[str, str]]) -> None:
    placed = order()
    series = study(placed.accession, n_slices=4)
    for ds in series:
        receive(settings, encoded(ds), "stow")

    [imaging] = imaging_studies(client, auth_headers("demo-radiology"), placed.id)
    assert imaging["status"] == "available"
    assert imaging["subject"] == placed.subject
    assert imaging["basedOn"] == [{"reference": f"ServiceRequest/{placed.id}"}]
    assert {"system": "urn:dicom:uid", "value": f"urn:oid:{series[0].StudyInstanceUID}"} \
        in imaging["identifier"]
    acsn = [i for i in imaging["identifier"] if i.get("type", {}).get("coding", [{}])[0]
            .get("code") == "ACSN"]
    assert [i["value"] for i in acsn] == [placed.accession]
    assert (imaging["numberOfSeries"], imaging["numberOfInstances"]) == (1, 4)
    [fhir_series] = imaging["series"]
    assert fhir_series["uid"] == series[0].SeriesInstanceUID
    assert fhir_series["modality"] == {"system": "http://dicom.nema.org/resources/ontology/DCM",
                                       "code": "CT"}
    assert [i["number"] for i in fhir_series["instance"]] == [1, 2, 3, 4]
    assert {i["uid"] for i in fhir_series["instance"]} == {ds.SOPInstanceUID for ds in series}
    assert fhir_series["instance"][0]["sopClass"] == {"system": "urn:ietf:rfc:3986",
                                                      "code": f"urn:oid:{CT_IMAGE}"}
    assert imaging["started"] == "2025-01-01"  # the phantom gives no time zone offset

    [received] = rows(settings, ReceivedStudy)
    assert received.matched and received.service_request_id == placed.id
    assert received.instance_count == 4
    assert received.imaging_study_id == imaging["id"]


def test_files_are_content_addressed_under_the_var_directory(settings: Settings) -> None:
    data = encoded(study("ACC-FILES", n_slices=1)[0])
    stored = receive(settings, data, "stow")
    digest = sha256(data)
    assert stored.path == settings.var_dir / "dicom" / digest[:2] / digest
    assert stored.path.read_bytes() == data
    [row] = rows(settings, DicomInstance)
    assert (row.content_hash, row.size) == (digest, len(data))
    assert row.path == f"dicom/{digest[:2]}/{digest}"
    assert row.source == "stow" and row.received_at.tzinfo is not None


def test_unknown_accession_is_kept_and_flagged(settings: Settings) -> None:
    stored = receive(settings, encoded(study("NO-SUCH-ORDER", n_slices=1)[0]), "c-store", "CT1")
    assert stored.path.is_file() and not stored.matched
    [received] = rows(settings, ReceivedStudy)
    assert (received.matched, received.service_request_id, received.imaging_study_id) == \
        (False, None, None)
    assert received.accession_number == "NO-SUCH-ORDER"
    assert rows(settings, DicomInstance)[0].calling_ae == "CT1"


@pytest.mark.parametrize("payload", [
    b"not dicom at all" * 20,
    b"\0" * 128 + b"DICM" + b"\x02\x00",  # a Part 10 prefix, then nothing readable
])
def test_non_dicom_is_refused_and_nothing_is_written(settings: Settings, payload: bytes) -> None:
    with pytest.raises(MalformedInstance) as refused:
        receive(settings, payload, "stow")
    assert refused.value.status == 0xC000  # Error: Cannot understand (PS3.4 B.2.3)
    assert stored_files(settings) == []
    assert rows(settings, DicomInstance) == [] and rows(settings, ReceivedStudy) == []


def test_truncated_file_is_refused(settings: Settings) -> None:
    data = encoded(study("ACC-TRUNC", n_slices=1)[0])
    with pytest.raises(MalformedInstance, match="truncated"):
        receive(settings, data[:-100], "stow")
    assert stored_files(settings) == [] and rows(settings, DicomInstance) == []


def test_missing_identity_and_pixels_are_refused(settings: Settings) -> None:
    no_series = study("ACC-UIDS", n_slices=1)[0]
    del no_series.SeriesInstanceUID
    with pytest.raises(MalformedInstance, match="SeriesInstanceUID"):
        receive(settings, encoded(no_series), "stow")
    no_pixels = study("ACC-PIXELS", n_slices=1)[0]
    del no_pixels.PixelData
    with pytest.raises(DatasetMismatch) as refused:
        receive(settings, encoded(no_pixels), "stow")
    assert refused.value.status == 0xA900
    assert stored_files(settings) == [] and rows(settings, DicomInstance) == []


def test_unsupported_sop_class_is_refused(settings: Settings) -> None:
    ds = study("ACC-MR", n_slices=1)[0]
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    with pytest.raises(UnsupportedSopClass) as refused:
        receive(settings, encoded(ds), "stow")
    assert refused.value.status == 0x0122
    assert refused.value.sop_instance_uid == ds.SOPInstanceUID
    assert stored_files(settings) == []


def test_a_bare_dataset_is_stored_in_the_file_format(settings: Settings) -> None:
    ds = study("ACC-BARE", n_slices=1)[0]
    del ds.file_meta
    stored = receive(settings, ds, "stow")
    kept = dcmread(stored.path)
    assert kept.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert kept.PixelData == ds.PixelData


def test_the_same_bytes_twice_change_nothing(settings: Settings) -> None:
    data = encoded(study("ACC-TWICE", n_slices=1)[0])
    first = receive(settings, data, "c-store")
    [before] = rows(settings, ReceivedStudy)
    again = receive(settings, data, "c-store")
    assert (first.outcome, again.outcome) == ("new", "duplicate")
    [after] = rows(settings, ReceivedStudy)
    assert after.last_received_at == before.last_received_at  # no new data: not "more to come"
    assert len(rows(settings, DicomInstance)) == 1 and len(stored_files(settings)) == 1


def test_different_bytes_for_a_stored_instance_replace_its_row(settings: Settings) -> None:
    ds = study("ACC-FIX", n_slices=1)[0]
    original = encoded(ds)
    receive(settings, original, "c-store")
    ds.ImageComments = "corrected at the modality"
    corrected = encoded(ds)
    assert receive(settings, corrected, "c-store").outcome == "replaced"
    [row] = rows(settings, DicomInstance)
    assert row.content_hash == sha256(corrected)
    assert len(stored_files(settings)) == 2  # the first file is kept, never deleted
    assert rows(settings, ReceivedStudy)[0].instance_count == 1


def test_an_instance_uid_already_in_another_study_is_refused(settings: Settings) -> None:
    ds = study("ACC-CLASH", n_slices=1)[0]
    receive(settings, encoded(ds), "c-store")
    ds.StudyInstanceUID = generate_uid()
    with pytest.raises(InstanceConflict) as refused:
        receive(settings, encoded(ds), "c-store")
    assert isinstance(refused.value, StorageError)
    assert len(stored_files(settings)) == 1 and len(rows(settings, DicomInstance)) == 1


def test_every_instance_moves_the_study_on(settings: Settings) -> None:
    series = study("ACC-IDLE", n_slices=2)
    receive(settings, encoded(series[0]), "c-store")
    [first] = rows(settings, ReceivedStudy)
    receive(settings, encoded(series[1]), "c-store")
    [second] = rows(settings, ReceivedStudy)
    assert second.first_received_at == first.first_received_at
    assert second.last_received_at >= first.last_received_at
    assert second.last_received_at.tzinfo is not None
    assert (first.instance_count, second.instance_count) == (1, 2)


def test_a_new_order_links_images_that_came_first(
        settings: Settings, client: FlaskClient, order: Callable[[], Order],
        auth_headers: Callable[..., dict[str, str]]) -> None:
    from referral.accession import accession_value

    with Session(engine_for(settings.database_url)) as session:
        issued = len(session.exec(select(Accession)).all())
    upcoming = accession_value(settings.accession_prefix, issued + 1)
    receive(settings, encoded(study(upcoming, n_slices=2)[0]), "c-store")
    assert not rows(settings, ReceivedStudy)[0].matched
    open_holds = "/fhir/Task?business-status=reconcile&status=requested"
    [held] = client.get(open_holds, headers=auth_headers("demo-radiology")).get_json()["entry"]
    assert held["resource"]["statusReason"]["text"] == "no-order"

    placed = order()
    assert placed.accession == upcoming
    [imaging] = imaging_studies(client, auth_headers("demo-radiology"), placed.id)
    assert imaging["numberOfInstances"] == 1
    assert rows(settings, ReceivedStudy)[0].matched
    # the hold closed by itself: no one has anything left to decide
    assert client.get(open_holds, headers=auth_headers("demo-radiology")).get_json()["total"] == 0


def test_match_pending_studies_links_a_reconciled_study(
        settings: Settings, client: FlaskClient, order: Callable[[], Order],
        auth_headers: Callable[..., dict[str, str]]) -> None:
    placed = order()
    receive(settings, encoded(study("TYPO-AT-SCANNER", n_slices=1)[0]), "c-store")
    with Session(engine_for(settings.database_url)) as session:
        assert match_pending_studies(Store(session, settings)) == []
        received = session.exec(select(ReceivedStudy)).one()
        received.accession_number = placed.accession  # corrected by an operator
        session.add(received)
        linked = match_pending_studies(Store(session, settings))
        assert linked == [received.study_uid]
        session.commit()
    assert len(imaging_studies(client, auth_headers("demo-radiology"), placed.id)) == 1


def test_store_instance_leaves_the_commit_to_the_caller(settings: Settings) -> None:
    data = encoded(study("ACC-ROLLBACK", n_slices=1)[0])
    with Session(engine_for(settings.database_url)) as session:
        store_instance(session, settings, data, "stow")
        session.rollback()
    assert rows(settings, DicomInstance) == []


@pytest.mark.filterwarnings("ignore:Invalid value for VR DA")
@pytest.mark.parametrize(("date", "time", "offset", "expected"), [
    ("20250101", "090000", None, "2025-01-01"),
    ("20250101", "093015.123", "+0100", "2025-01-01T09:30:15+01:00"),
    ("20250101", "0930", "-0500", "2025-01-01T09:30:00-05:00"),
    ("2025", "0930", None, None),
    ("20251301", "", None, None),
])
def test_study_started_is_a_fhir_datetime(date: str, time: str, offset: str | None,
                                          expected: str | None) -> None:
    ds = Dataset()
    ds.StudyDate, ds.StudyTime = date, time
    if offset:
        ds.TimezoneOffsetFromUTC = offset
    assert study_started(ds) == expected


def test_the_analysis_may_add_its_sr_without_restarting_the_idle_clock(
        settings: Settings) -> None:
    image = study("ACC-DERIVED", n_slices=1)[0]
    receive(settings, encoded(image), "c-store")
    [before] = rows(settings, ReceivedStudy)
    report = Dataset()
    report.file_meta = FileMetaDataset()
    report.SOPClassUID = Comprehensive3DSRStorage
    report.SOPInstanceUID = generate_uid()
    report.StudyInstanceUID, report.SeriesInstanceUID = image.StudyInstanceUID, generate_uid()
    report.Modality, report.AccessionNumber = "SR", image.AccessionNumber
    with pytest.raises(UnsupportedSopClass):  # senders may not push SRs here
        receive(settings, report, "stow")
    assert receive(settings, report, "derived").outcome == "new"
    [after] = rows(settings, ReceivedStudy)
    assert after.last_received_at == before.last_received_at
    assert after.instance_count == 2


def test_concurrent_first_instances_of_a_study_are_all_counted(settings: Settings) -> None:
    # Every thread tries to create the study's row at once; the losers retry.
    blobs = [encoded(ds) for ds in study("ACC-RACE", n_slices=6)]
    start = threading.Barrier(len(blobs))
    failures: list[Exception] = []

    def deliver(data: bytes) -> None:
        start.wait()
        try:
            receive(settings, data, "stow")
        except Exception as error:  # collected: a thread's exception would go unseen
            failures.append(error)

    threads = [threading.Thread(target=deliver, args=(data,)) for data in blobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert rows(settings, ReceivedStudy)[0].instance_count == 6
    assert len(rows(settings, DicomInstance)) == 6
