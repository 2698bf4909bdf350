"""Keeping DICOM instances: check, write durably, index, link to the order.

One path serves the C-STORE listener and STOW-RS. An instance is checked
completely before anything is written; a refused one leaves no file and no
row. A kept one is a content-addressed file, ``var/dicom/<sha[:2]>/<sha>``,
made durable (fsync of file and directory) before its row is committed, so
a success answered after the commit survives a crash.

Pixel Data must be whole (``imaging_core.pixelcheck``) before an image is
kept. Re-sending the same bytes changes nothing. Different, valid bytes under
a stored SOP Instance UID (a corrected header re-sent by a modality) are kept
as a new file and become the current version: the row points to it, and
``dicom_instance_version`` keeps every version with the one that is current.
The old file stays, because analysis results may have been computed from it,
and nothing here deletes images. Bytes that fail any check replace nothing.

Files are kept exactly as sent, compressed syntaxes included; nothing is
transcoded (PS3.5 §10). The bytes are the DICOM File Format (PS3.10 §7):
preamble, ``DICM``, File Meta Information, data set.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

from pydicom import dcmread
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filewriter import dcmwrite
from pydicom.uid import (
    JPEG2000,
    UID,
    Comprehensive3DSRStorage,
    ComprehensiveSRStorage,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    RLELossless,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
)
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from core.db import engine_for
from core.errors import Conflict
from core.params import ascii_digits
from core.settings import Settings
from fhir.dates import DateFormatError, date_range, now_utc
from fhir.store import Store
from imaging_core.errors import (
    DatasetMismatch,
    InstanceConflict,
    MalformedInstance,
    OutOfResources,
    StudyMismatch,
    UnsupportedSopClass,
    UnsupportedTransferSyntax,
)
from imaging_core.models import DicomInstance, DicomInstanceVersion, ReceivedStudy
from imaging_core.pixelcheck import check_pixel_data
from imaging_core.studies import link_study

log = logging.getLogger(__name__)

Source = Literal["c-store", "stow", "derived"]  # derived: written by our own analysis
Outcome = Literal["new", "replaced", "duplicate"]

# Storage SOP Classes received (PS3.4 B.5): CT for the analysis, Secondary
# Capture for the key images and dose screens modalities send along.
SOP_CLASSES = (CTImageStorage, EnhancedCTImageStorage, SecondaryCaptureImageStorage)
# Classes the analysis itself adds to a study: its SR and segmentation.
DERIVED_SOP_CLASSES = (Comprehensive3DSRStorage, ComprehensiveSRStorage, SegmentationStorage)
_WITHOUT_PIXELS = (Comprehensive3DSRStorage, ComprehensiveSRStorage)  # SR documents
# Transfer syntaxes kept as sent (PS3.5 §10, Annex A): the uncompressed little
# endian ones and the compressed ones CT scanners and PACS commonly send.
TRANSFER_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless,
                     JPEG2000Lossless, JPEG2000, JPEGBaseline8Bit, JPEGLossless, JPEGLosslessSV1)
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # (FFFE,E0DD), length 0, little endian
_UNDEFINED_LENGTH = 0xFFFFFFFF
_IDENTITY = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
_ATTEMPTS = 3


@dataclass(frozen=True)
class StoredInstance:
    """What became of one received instance."""

    sop_instance_uid: str
    sop_class_uid: str
    study_uid: str
    series_uid: str
    transfer_syntax: str
    content_hash: str
    path: Path  # absolute
    size: int
    outcome: Outcome
    matched: bool
    service_request_id: str | None
    imaging_study_id: str | None


def receive(settings: Settings, instance: bytes | Dataset, source: Source,
            calling_ae: str | None = None, *, study_uid: str | None = None) -> StoredInstance:
    """Store one instance in a transaction of its own and commit it.

    Concurrent deliveries of one study may collide on the study's rows; the
    loser starts again (its file is already there, by content address).
    Database failures after the retries become ``OutOfResources``.
    """
    engine = engine_for(settings.database_url)
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with Session(engine, expire_on_commit=False) as session:
                stored = store_instance(session, settings, instance, source, calling_ae,
                                        study_uid=study_uid)
                session.commit()
                return stored
        except (Conflict, IntegrityError, OperationalError) as error:
            if attempt == _ATTEMPTS:
                log.error("database refused the instance", extra={"error": str(error)})
                raise OutOfResources("The database could not take the instance now") from error
            log.info("concurrent write, retrying", extra={"attempt": attempt})
    raise AssertionError("unreachable")


def store_instance(session: Session, settings: Settings, instance: bytes | Dataset,
                   source: Source, calling_ae: str | None = None, *,
                   study_uid: str | None = None) -> StoredInstance:
    """Check, keep and index one instance; link its study to the order. The caller commits.

    Parameters
    ----------
    instance
        DICOM File Format bytes, or a dataset carrying at least the SOP Class,
        SOP Instance, Study and Series Instance UIDs.
    study_uid
        The study the sender addressed (STOW-RS ``/studies/{study}``); an
        instance of another study is refused.
    """
    data = part10_bytes(instance)
    ds = read_instance(data, derived=source == "derived")
    _check_study(ds, study_uid)
    digest = hashlib.sha256(data).hexdigest()
    existing = session.get(DicomInstance, str(ds.SOPInstanceUID))
    if existing is not None and existing.content_hash == digest:
        write_durably(settings.var_dir, digest, data)  # a stat, or restores a lost file
        study = session.get(ReceivedStudy, existing.study_uid)
        return _result(settings, existing, study, "duplicate")
    _check_same_place(ds, existing)
    relative = write_durably(settings.var_dir, digest, data)
    row = _index(session, existing, ds, digest, relative, len(data), source, calling_ae)
    study = _touch_study(session, ds, arrival=source != "derived")
    if _worth_linking(study) and not link_study(Store(session, settings), study) \
            and study.instance_count == 1:
        log.warning("study has no matching order; kept for reconciliation", extra={
            "study_uid": study.study_uid, "accession": study.accession_number})
    return _result(settings, row, study, "new" if existing is None else "replaced")


def _worth_linking(study: ReceivedStudy) -> bool:
    """Rewrite the ImagingStudy at 1, 2, 4, 8... instances, not at every one.

    Each rewrite is a new version holding every instance, so writing it per
    instance would cost O(n^2) for a study of n; the analysis worker brings it
    up to date once the study is complete (``refresh_complete_studies``).
    """
    count = study.instance_count
    return not study.matched or count & (count - 1) == 0


# --- checking -----------------------------------------------------------------------



def part10_bytes(instance: bytes | Dataset) -> bytes:
    """The instance in the DICOM File Format; a bare dataset gets its File Meta.

    Some STOW-RS clients (dicomweb-client) send the File Meta Information
    without the 128-byte preamble and "DICM" prefix (PS3.10 7.1); those are
    added, so the stored file is Part 10 and nothing else changes.
    """
    if isinstance(instance, bytes | bytearray | memoryview):
        data = bytes(instance)
        return b"\x00" * 128 + b"DICM" + data if _bare_meta(data) else data
    ds = instance.copy()
    meta = FileMetaDataset(getattr(instance, "file_meta", FileMetaDataset()))
    meta.setdefault("TransferSyntaxUID", ExplicitVRLittleEndian)
    for meta_keyword, keyword in (("MediaStorageSOPClassUID", "SOPClassUID"),
                                  ("MediaStorageSOPInstanceUID", "SOPInstanceUID")):
        if keyword not in ds:
            raise MalformedInstance(f"The data set has no {keyword}")
        meta.setdefault(meta_keyword, ds[keyword].value)
    ds.file_meta = meta
    buffer = BytesIO()
    try:
        dcmwrite(buffer, ds, enforce_file_format=True)
    except (ValueError, TypeError, AttributeError) as error:
        raise MalformedInstance(f"The data set cannot be encoded: {error}") from error
    return buffer.getvalue()


def read_instance(data: bytes, *, derived: bool = False) -> Dataset:
    """The parsed instance, if it is complete, identified and of a kind kept here.

    ``derived`` admits the SOP Classes the analysis writes besides those received.
    """
    ds = _parse(data)
    _check_complete(ds, data)
    uids = _identity(ds)
    _check_header(ds, uids)
    _check_supported(ds, uids, SOP_CLASSES + DERIVED_SOP_CLASSES if derived else SOP_CLASSES)
    check_pixel_data(ds, _known(uids))
    return ds


def _bare_meta(data: bytes) -> bool:
    """Starts with a File Meta element (group 0002, explicit VR little endian)."""
    return data[:2] == b"\x02\x00" and data[4:6].isalpha() and data[4:6].isupper()


def _parse(data: bytes) -> Dataset:
    try:
        return dcmread(BytesIO(data))  # no force: Part 10 preamble and "DICM" required
    except InvalidDicomError as error:
        raise MalformedInstance("Not a DICOM file: the Part 10 preamble and 'DICM' prefix "
                                "are missing (PS3.10 7.1)") from error
    except Exception as error:  # pydicom raises many types on garbage; all mean "cannot parse"
        raise MalformedInstance(f"The DICOM file cannot be parsed: {error}") from error


def _check_complete(ds: Dataset, data: bytes) -> None:
    """Refuse a truncated file, which pydicom reads leniently.

    A defined-length element must hold all its bytes; a file whose last
    element has undefined length (encapsulated Pixel Data, a sequence) must
    end with that element's Sequence Delimitation Item (PS3.5 §7.5).
    """
    elements = list(ds.elements())
    for raw in elements:
        if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes) \
                and not _undefined_length(raw) and len(raw.value) != raw.length:
            raise MalformedInstance(f"Element {raw.tag} is truncated: "
                                    f"{len(raw.value)} of {raw.length} bytes")
    if elements and _undefined_length(elements[-1]) and not data.endswith(_SEQUENCE_DELIMITER):
        raise MalformedInstance("The file ends inside an undefined-length element: truncated")


def _undefined_length(element: DataElement | RawDataElement) -> bool:
    if isinstance(element, RawDataElement):
        return element.length == _UNDEFINED_LENGTH
    return element.is_undefined_length


def _identity(ds: Dataset) -> dict[str, str]:
    """The four identifying UIDs, each present and valid (PS3.5 §9.1)."""
    uids = {keyword: str(ds.get(keyword) or "").strip() for keyword in _IDENTITY}
    missing = [keyword for keyword, uid in uids.items() if not uid]
    invalid = [keyword for keyword, uid in uids.items() if uid and not UID(uid).is_valid]
    known = {"sop_class_uid": uids["SOPClassUID"] or None,
             "sop_instance_uid": uids["SOPInstanceUID"] or None}
    if missing:
        raise MalformedInstance(f"Missing {', '.join(missing)}", **known)
    if invalid:
        raise MalformedInstance(f"Not a valid UID: {', '.join(invalid)}", **known)
    return uids


def _check_header(ds: Dataset, uids: dict[str, str]) -> None:
    """The File Meta must name the same instance as the data set (PS3.10 §7.1)."""
    meta = ds.file_meta
    known = _known(uids)
    if str(meta.get("MediaStorageSOPInstanceUID", "")) != uids["SOPInstanceUID"] or \
            str(meta.get("MediaStorageSOPClassUID", "")) != uids["SOPClassUID"]:
        raise DatasetMismatch("The File Meta (or C-STORE request) names another SOP "
                              "Class or Instance than the data set", **known)


def _check_supported(ds: Dataset, uids: dict[str, str], sop_classes: tuple[str, ...]) -> None:
    known = _known(uids)
    if uids["SOPClassUID"] not in sop_classes:
        raise UnsupportedSopClass(f"SOP Class {uids['SOPClassUID']} is not stored here", **known)
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if syntax not in TRANSFER_SYNTAXES:
        raise UnsupportedTransferSyntax(f"Transfer syntax {syntax or '(none)'} is not "
                                        "accepted", **known)
    # Pixel Data is Type 1 in the Image Pixel module of every image class kept.
    if "PixelData" not in ds and uids["SOPClassUID"] not in _WITHOUT_PIXELS:
        raise DatasetMismatch("No Pixel Data (7FE0,0010): not an image, or the file is "
                              "truncated", **known)


def _check_study(ds: Dataset, study_uid: str | None) -> None:
    if study_uid is not None and str(ds.StudyInstanceUID) != study_uid:
        raise StudyMismatch(f"The instance belongs to study {ds.StudyInstanceUID}, "
                            f"not {study_uid}", **_known(_identity(ds)))


def _check_same_place(ds: Dataset, existing: DicomInstance | None) -> None:
    if existing is None:
        return
    if (existing.study_uid, existing.series_uid) != (str(ds.StudyInstanceUID),
                                                      str(ds.SeriesInstanceUID)):
        raise InstanceConflict(f"SOP Instance {existing.sop_instance_uid} is already stored "
                               f"in study {existing.study_uid}, series {existing.series_uid}",
                               **_known(_identity(ds)))


def _known(uids: dict[str, str]) -> dict[str, Any]:
    return {"sop_class_uid": uids["SOPClassUID"], "sop_instance_uid": uids["SOPInstanceUID"]}


# --- writing ------------------------------------------------------------------------

def write_durably(var_dir: Path, digest: str, data: bytes) -> str:
    """Write ``data`` under its hash and make it survive a crash; its path under ``var_dir``.

    Temp file in the same directory, fsync, atomic rename, fsync of the
    directory: a reader sees either nothing or the whole file. An existing
    file of that name already holds these bytes.
    """
    relative = f"dicom/{digest[:2]}/{digest}"
    target = var_dir / relative
    if target.exists():
        return relative
    try:
        _make_directory(target.parent)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)
    except OSError as error:  # disk full, quota, permissions
        raise OutOfResources(f"The instance could not be written: {error.strerror}") from error
    return relative


def _make_directory(path: Path) -> None:
    """Create ``path`` and its parents, each recorded durably in its own parent."""
    if path.is_dir():
        return
    _make_directory(path.parent)
    path.mkdir(exist_ok=True)
    _fsync_directory(path.parent)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- indexing -----------------------------------------------------------------------

def _index(session: Session, row: DicomInstance | None, ds: Dataset, digest: str,
           relative: str, size: int, source: Source, calling_ae: str | None) -> DicomInstance:
    if row is not None:
        log.warning("instance replaced by different bytes", extra={
            "sop_instance_uid": row.sop_instance_uid, "old_hash": row.content_hash,
            "new_hash": digest})
    row = row or DicomInstance(sop_instance_uid=str(ds.SOPInstanceUID), study_uid="",
                               series_uid="", sop_class_uid="", transfer_syntax="",
                               content_hash="", path="", size=0, received_at=now_utc(),
                               source=source)
    row.study_uid, row.series_uid = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)
    row.sop_class_uid = str(ds.SOPClassUID)
    row.transfer_syntax = str(ds.file_meta.TransferSyntaxUID)
    row.accession_number = accession_number(ds)
    row.modality = _text(ds, "Modality", 16)
    row.series_number, row.instance_number = _int(ds, "SeriesNumber"), _int(ds, "InstanceNumber")
    query_attributes(row, ds)
    row.images_in_acquisition = _int(ds, "ImagesInAcquisition")
    row.acquisition_number = _int(ds, "AcquisitionNumber")
    row.content_hash, row.path, row.size = digest, relative, size
    row.received_at, row.source, row.calling_ae = now_utc(), source, calling_ae
    session.add(row)
    session.flush()
    _record_version(session, row)
    return row


def _record_version(session: Session, row: DicomInstance) -> None:
    """Make ``row``'s file the current version of its instance; earlier ones stay."""
    versions = session.exec(select(DicomInstanceVersion).where(
        DicomInstanceVersion.sop_instance_uid == row.sop_instance_uid)).all()
    for earlier in versions:
        if earlier.superseded_at is None:
            earlier.superseded_at = row.received_at
            session.add(earlier)
    session.add(DicomInstanceVersion(
        sop_instance_uid=row.sop_instance_uid, version=len(versions) + 1,
        content_hash=row.content_hash, path=row.path, size=row.size,
        received_at=row.received_at, source=row.source, calling_ae=row.calling_ae))
    session.flush()


def versions_of(session: Session, sop_instance_uid: str) -> list[DicomInstanceVersion]:
    """Every kept version of an instance, oldest first; the last has no ``superseded_at``."""
    return list(session.exec(select(DicomInstanceVersion).where(
        DicomInstanceVersion.sop_instance_uid == sop_instance_uid)
        .order_by(col(DicomInstanceVersion.version))).all())


def _touch_study(session: Session, ds: Dataset, arrival: bool) -> ReceivedStudy:
    """The study's row, created or counted anew, locked until commit.

    Only an ``arrival`` from outside moves ``last_received_at``: the analysis'
    own SR and SEG must not restart the study's idle clock. The row lock
    (PostgreSQL; SQLite holds the database write lock already) makes
    concurrent deliveries of one study count and link one at a time.
    """
    uid, now = str(ds.StudyInstanceUID), now_utc()
    study = session.get(ReceivedStudy, uid, with_for_update=True)
    if study is None:
        study = ReceivedStudy(study_uid=uid, accession_number=accession_number(ds),
                              started=study_started(ds),
                              description=_text(ds, "StudyDescription", 64),
                              first_received_at=now, last_received_at=now)
        log.info("new study", extra={"study_uid": uid, "accession": study.accession_number})
    _note_accession(study, accession_number(ds))
    if arrival:
        study.last_received_at = now
    session.add(study)
    session.flush()
    study.instance_count = session.exec(
        select(func.count()).select_from(DicomInstance)
        .where(col(DicomInstance.study_uid) == uid)).one()
    return study


def _note_accession(study: ReceivedStudy, accession: str | None) -> None:
    if accession and not study.accession_number:
        study.accession_number = accession
    elif accession and accession != study.accession_number:
        log.warning("instance carries another accession number than its study", extra={
            "study_uid": study.study_uid, "study_accession": study.accession_number,
            "instance_accession": accession})


def _result(settings: Settings, row: DicomInstance, study: ReceivedStudy | None,
            outcome: Outcome) -> StoredInstance:
    return StoredInstance(
        sop_instance_uid=row.sop_instance_uid, sop_class_uid=row.sop_class_uid,
        study_uid=row.study_uid, series_uid=row.series_uid,
        transfer_syntax=row.transfer_syntax, content_hash=row.content_hash,
        path=settings.var_dir / row.path, size=row.size, outcome=outcome,
        matched=bool(study and study.matched),
        service_request_id=study.service_request_id if study else None,
        imaging_study_id=study.imaging_study_id if study else None)


# --- attribute values ---------------------------------------------------------------

def accession_number(ds: Dataset) -> str | None:
    """AccessionNumber (0008,0050), or None when absent or empty."""
    return _text(ds, "AccessionNumber", 16)


def study_started(ds: Dataset) -> str | None:
    """StudyDate/StudyTime as a FHIR dateTime.

    FHIR requires a zone with a time; DICOM gives one only in Timezone Offset
    From UTC (0008,0201). Without it the day alone is reported, not a guess.
    """
    day = str(ds.get("StudyDate") or "")
    if len(day) != 8 or not ascii_digits(day):
        return None
    text = f"{day[:4]}-{day[4:6]}-{day[6:]}"
    time, offset = str(ds.get("StudyTime") or ""), str(ds.get("TimezoneOffsetFromUTC") or "")
    if len(time) >= 4 and ascii_digits(time[:6]) and len(offset) == 5 and offset[0] in "+-":
        seconds = time[4:6] if len(time) >= 6 else "00"
        text += f"T{time[:2]}:{time[2:4]}:{seconds}{offset[:3]}:{offset[3:]}"
    try:
        date_range(text)
    except DateFormatError:
        return None
    return text


# DicomInstance column -> (DICOM keyword, the VR's length limit), for QIDO-RS.
QUERY_TEXT = {"patient_id": ("PatientID", 64), "patient_name": ("PatientName", 324),
              "patient_birth_date": ("PatientBirthDate", 8), "patient_sex": ("PatientSex", 16),
              "study_date": ("StudyDate", 8), "study_time": ("StudyTime", 16),
              "study_id": ("StudyID", 16), "study_description": ("StudyDescription", 64),
              "series_description": ("SeriesDescription", 64),
              "referring_physician_name": ("ReferringPhysicianName", 324)}


def query_attributes(row: DicomInstance, ds: Dataset) -> None:
    """Copy the attributes QIDO-RS searches on from the header to the row."""
    for column, (keyword, limit) in QUERY_TEXT.items():
        setattr(row, column, _text(ds, keyword, limit))
    row.number_of_frames = _int(ds, "NumberOfFrames") or 1


def _text(ds: Dataset, keyword: str, limit: int) -> str | None:
    # PS3.5 §6.2 pads UIs with a trailing NUL and text with spaces: both are dropped. A NUL
    # inside a value is no padding, and PostgreSQL text cannot hold it; it becomes U+FFFD
    # rather than vanishing, so "AB\0C" can never match another order's "ABC".
    value = str(ds.get(keyword) or "").rstrip("\x00 ").strip().replace("\x00", "\ufffd")
    return value[:limit] or None


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
