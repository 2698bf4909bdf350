"""The DICOM listener against dcmtk's storescu and echoscu, on SQLite and PostgreSQL.

Statuses are those of PS3.4 Annex B.2.3; storescu reports them in its log.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)
from pynetdicom import AE
from pynetdicom import _config as pynetdicom_config
from sqlalchemy import create_engine, event, pool
from sqlmodel import Session, select

from core.db import engine_for, normalise_url
from core.settings import Settings
from fhir.dates import now_utc
from fhir.store import Store
from imaging_core import storage
from imaging_core.models import DicomInstance, ReceivedStudy
from imaging_core.scp import start_scp, stop_scp
from imaging_core.studies import refresh_complete_studies
from tests.imaging_core.conftest import (
    Order,
    needs_dcmtk,
    rows,
    sha256,
    stored_files,
    storescu,
    study,
)
from tests.imaging_core.phantoms import Phantom, compressed, datasets, write

pytestmark = needs_dcmtk


def succeeded(run: subprocess.CompletedProcess[str]) -> bool:
    """Every store answered 0000 (storescu -v logs each response)."""
    return run.returncode == 0 and "Received Store Response (Success)" in run.stderr \
        and "Error" not in run.stderr


def test_a_series_sent_by_storescu_is_stored_and_linked(
        settings: Settings, scp: int, tmp_path: Path, client: FlaskClient,
        order: Callable[[], Order], auth_headers: Callable[..., dict[str, str]]) -> None:
    placed = order()
    series = study(placed.accession, n_slices=8)
    files = write(series, tmp_path / "send")
    assert succeeded(storescu(scp, files))

    kept = {row.sop_instance_uid: row for row in rows(settings, DicomInstance)}
    assert set(kept) == {ds.SOPInstanceUID for ds in series}
    for ds in series:
        row = kept[ds.SOPInstanceUID]
        data = (settings.var_dir / row.path).read_bytes()
        assert sha256(data) == row.content_hash and len(data) == row.size
        assert dcmread(io.BytesIO(data)).PixelData == ds.PixelData
        assert (row.source, row.calling_ae) == ("c-store", "STORESCU")

    found = client.get(f"/fhir/ImagingStudy?based-on=ServiceRequest/{placed.id}",
                       headers=auth_headers("demo-radiology")).get_json()
    [imaging] = [entry["resource"] for entry in found["entry"]]
    assert imaging["numberOfInstances"] == 8
    assert imaging["basedOn"] == [{"reference": f"ServiceRequest/{placed.id}"}]


def test_success_is_answered_only_after_fsync_and_commit(
        settings: Settings, scp: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync = storage.os.fsync

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def committed(_session: Session) -> None:
        events.append("commit")

    monkeypatch.setattr(storage.os, "fsync", fsync)
    event.listen(Session, "after_commit", committed)
    try:
        [path] = write(study("ACC-DURABLE", n_slices=1), tmp_path / "send")
        assert succeeded(storescu(scp, [path]))
    finally:
        event.remove(Session, "after_commit", committed)
    # File, then every new directory, are fsynced before the one commit.
    assert events.index("commit") > max(i for i, e in enumerate(events) if e == "fsync")

    # A connection of its own, opened after storescu heard 0000, sees row and file.
    fresh = create_engine(normalise_url(settings.database_url), poolclass=pool.NullPool)
    with Session(fresh) as session:
        row = session.exec(select(DicomInstance)).one()
    fresh.dispose()
    assert (settings.var_dir / row.path).is_file()
    assert not [p for p in stored_files(settings) if p.name.startswith(".incoming-")]


def test_unknown_accession_is_stored_unmatched(settings: Settings, scp: int,
                                               tmp_path: Path) -> None:
    files = write(study("UNKNOWN-ACC", n_slices=2), tmp_path / "send")
    assert succeeded(storescu(scp, files))
    [received] = rows(settings, ReceivedStudy)
    assert (received.matched, received.instance_count) == (False, 2)
    assert len(stored_files(settings)) == 2


def _send_broken(settings: Settings, scp: int, tmp_path: Path, ds: Dataset) -> str:
    [path] = write([ds], tmp_path / "broken")
    run = storescu(scp, [path])
    assert not succeeded(run)
    assert stored_files(settings) == []
    assert rows(settings, DicomInstance) == [] and rows(settings, ReceivedStudy) == []
    return run.stderr


def test_an_instance_without_study_uid_is_refused(settings: Settings, scp: int,
                                                  tmp_path: Path) -> None:
    ds = study("ACC-BROKEN", n_slices=1)[0]
    del ds.StudyInstanceUID
    log = _send_broken(settings, scp, tmp_path, ds)
    assert "Received Store Response (Error: CannotUnderstand)" in log  # C000


def test_an_instance_without_pixel_data_is_refused(settings: Settings, scp: int,
                                                   tmp_path: Path) -> None:
    ds = study("ACC-NOPIXELS", n_slices=1)[0]
    del ds.PixelData
    log = _send_broken(settings, scp, tmp_path, ds)
    assert "Received Store Response (Error: DataSetDoesNotMatchSOPClass)" in log  # A900


@pytest.mark.filterwarnings("ignore:Expected explicit VR")
def test_non_dicom_bytes_over_c_store_are_refused(settings: Settings, scp: int, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # storescu will not send a body it cannot parse. pynetdicom in chunked mode
    # sends a file's bytes after its File Meta as they are, like a broken sender.
    header = study("ACC-JUNK", n_slices=1)[0].file_meta
    path = tmp_path / "letter.dcm"
    with path.open("wb") as handle:
        handle.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(handle, header)
        handle.write(b"%PDF-1.4 a referral letter, not an image" * 40)
    monkeypatch.setattr(pynetdicom_config, "STORE_SEND_CHUNKED_DATASET", True)
    ae = AE(ae_title="BROKEN")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    association = ae.associate("127.0.0.1", scp, ae_title="SCANPATH")
    assert association.is_established
    status = association.send_c_store(path)
    association.release()
    assert status.Status == 0xC000  # Error: Cannot understand
    assert stored_files(settings) == [] and rows(settings, DicomInstance) == []


@pytest.mark.parametrize(("syntax", "option"), [(RLELossless, "-xr"),
                                                (JPEG2000Lossless, "-xv")])
def test_compressed_instances_are_stored_as_sent(settings: Settings, scp: int, tmp_path: Path,
                                                 syntax: str, option: str) -> None:
    series = compressed(study("ACC-COMPRESSED", n_slices=2), syntax)
    files = write(series, tmp_path / "send")
    assert succeeded(storescu(scp, files, option))
    kept = {row.sop_instance_uid: row for row in rows(settings, DicomInstance)}
    for ds in series:
        row = kept[ds.SOPInstanceUID]
        assert row.transfer_syntax == syntax
        stored = dcmread(settings.var_dir / row.path)
        assert stored.file_meta.TransferSyntaxUID == syntax
        assert stored.PixelData == ds.PixelData  # the encapsulated fragments, untouched


def test_sending_a_series_again_changes_nothing(settings: Settings, scp: int,
                                                tmp_path: Path) -> None:
    files = write(study("ACC-AGAIN", n_slices=3), tmp_path / "send")
    assert succeeded(storescu(scp, files))
    before = (rows(settings, ReceivedStudy)[0].last_received_at, stored_files(settings))
    assert succeeded(storescu(scp, files))
    after = (rows(settings, ReceivedStudy)[0].last_received_at, stored_files(settings))
    assert after == before
    assert len(rows(settings, DicomInstance)) == 3


def test_c_echo(scp: int) -> None:
    echoscu = shutil.which("echoscu")
    assert echoscu is not None
    run = subprocess.run([echoscu, "-aec", "SCANPATH", "127.0.0.1", str(scp)],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr


def test_an_association_for_another_ae_title_is_rejected(scp: int) -> None:
    echoscu = shutil.which("echoscu")
    assert echoscu is not None
    run = subprocess.run([echoscu, "-aec", "NOTSCANPATH", "127.0.0.1", str(scp)],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode != 0


def test_allowed_calling_ae_titles_are_enforced(settings: Settings, tmp_path: Path) -> None:
    server = start_scp(settings.model_copy(update={"dicom_allowed_aes": ["CT-ROOM-1"]}))
    port = int(server.server_address[1])
    try:
        [path] = write(study("ACC-AE", n_slices=1), tmp_path / "send")
        assert not succeeded(storescu(port, [path], calling_ae="INTRUDER"))
        assert rows(settings, DicomInstance) == []
        assert succeeded(storescu(port, [path], calling_ae="CT-ROOM-1"))
        assert len(rows(settings, DicomInstance)) == 1
    finally:
        stop_scp(server)


def _complete(settings: Settings) -> None:
    """What the analysis worker does once the study is quiet: bring the ImagingStudy up to date."""
    with Session(engine_for(settings.database_url)) as session:
        refresh_complete_studies(Store(session, settings), now_utc() + timedelta(seconds=1))
        session.commit()


def test_two_scanners_sending_one_study_at_once_are_both_counted(
        settings: Settings, scp: int, tmp_path: Path, client: FlaskClient,
        order: Callable[[], Order], auth_headers: Callable[..., dict[str, str]]) -> None:
    placed = order()
    study_uid = generate_uid()
    senders = []
    for number in (1, 2):
        phantom = Phantom(n_slices=6, accession=placed.accession, study_uid=study_uid,
                          name=f"series {number}", series_number=number)
        files = write(datasets(phantom), tmp_path / f"series{number}")
        senders.append(subprocess.Popen(
            ["storescu", "-v", "-aec", "SCANPATH", "127.0.0.1", str(scp), *map(str, files)],
            stderr=subprocess.PIPE, text=True))
    for sender in senders:
        _, log = sender.communicate(timeout=60)
        assert sender.returncode == 0 and "Error" not in log, log

    [received] = rows(settings, ReceivedStudy)
    assert received.instance_count == 12
    _complete(settings)
    found = client.get(f"/fhir/ImagingStudy?based-on=ServiceRequest/{placed.id}",
                       headers=auth_headers("demo-radiology")).get_json()
    [imaging] = [entry["resource"] for entry in found["entry"]]
    assert (imaging["numberOfSeries"], imaging["numberOfInstances"]) == (2, 12)
    assert [s["numberOfInstances"] for s in imaging["series"]] == [6, 6]
    history = client.get(f"/fhir/ImagingStudy/{imaging['id']}/_history",
                         headers=auth_headers("demo-radiology")).get_json()
    assert history["total"] <= 5  # written at 1, 2, 4 and 8 instances, then once complete
