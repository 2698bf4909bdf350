"""Tables of the imaging core: kept instances, studies seen, and analysis jobs.

UIDs are at most 64 characters (PS3.5 9.1), accession numbers 16 (VR SH)
and AE titles 16 (VR AE, PS3.5 6.2). Times are aware UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Text
from sqlmodel import Field, SQLModel


class DicomInstance(SQLModel, table=True):
    """One SOP instance and the content-addressed file that holds it.

    The series-level and instance-level fields are kept so the ImagingStudy
    can be rebuilt from rows without re-reading files.
    """

    __tablename__ = "dicom_instance"
    sop_instance_uid: str = Field(primary_key=True, max_length=64)
    study_uid: str = Field(max_length=64, index=True)
    series_uid: str = Field(max_length=64, index=True)
    sop_class_uid: str = Field(max_length=64)
    transfer_syntax: str = Field(max_length=64)
    accession_number: str | None = Field(default=None, max_length=16)
    modality: str | None = Field(default=None, max_length=16)
    series_number: int | None = None
    instance_number: int | None = None
    content_hash: str = Field(max_length=64)  # sha256 of the file, hex
    path: str = Field(max_length=255)  # relative to the var directory
    size: int = Field(sa_type=BigInteger)  # bytes; multi-frame files may pass 2 GiB
    received_at: datetime
    source: str = Field(max_length=8)  # c-store | stow | derived (our analysis output)
    calling_ae: str | None = Field(default=None, max_length=16)
    # The attributes QIDO-RS matches and returns (PS3.18 Table 10.6.1-5), kept so
    # that a search never re-reads files. Lengths are the VRs' (PS3.5 6.2).
    patient_id: str | None = Field(default=None, max_length=64, index=True)  # LO
    patient_name: str | None = Field(default=None, max_length=324)  # PN, 5 x 64 + "^"s
    patient_birth_date: str | None = Field(default=None, max_length=8)  # DA
    patient_sex: str | None = Field(default=None, max_length=16)  # CS
    study_date: str | None = Field(default=None, max_length=8, index=True)  # DA
    study_time: str | None = Field(default=None, max_length=16)  # TM
    study_id: str | None = Field(default=None, max_length=16)  # SH
    study_description: str | None = Field(default=None, max_length=64)  # LO
    series_description: str | None = Field(default=None, max_length=64)  # LO
    referring_physician_name: str | None = Field(default=None, max_length=324)  # PN
    number_of_frames: int | None = None
    # Images in Acquisition (0020,1002) and Acquisition Number (0020,0012), General
    # Image module (PS3.3 C.7.6.1, Type 3): the sender's own count of the series'
    # acquisition, used to judge whether a study has all its images.
    images_in_acquisition: int | None = None
    acquisition_number: int | None = None


class DicomInstanceVersion(SQLModel, table=True):
    """Every file ever kept for a SOP instance; the current one has no ``superseded_at``.

    A valid different copy of a stored instance (a corrected header) becomes
    the current version; the earlier ones stay, with their files, because
    results may have been computed from them. Nothing here is ever deleted.
    """

    __tablename__ = "dicom_instance_version"
    id: int | None = Field(default=None, primary_key=True)
    sop_instance_uid: str = Field(max_length=64, index=True)
    version: int  # 1, 2, ... in order of arrival
    content_hash: str = Field(max_length=64)
    path: str = Field(max_length=255)
    size: int = Field(sa_type=BigInteger)
    received_at: datetime
    source: str = Field(max_length=8)
    calling_ae: str | None = Field(default=None, max_length=16)
    superseded_at: datetime | None = None


class ReceivedStudy(SQLModel, table=True):
    """A study as it arrives, and whether it is linked to an order.

    ``last_received_at`` moves on every new or changed instance; the analysis
    scheduler treats a study as complete once it has stood still for
    ``SCANPATH_STUDY_IDLE_SECONDS``. ``matched`` is False while no order
    carries the study's accession number; such a study has no ImagingStudy.
    """

    __tablename__ = "received_study"
    study_uid: str = Field(primary_key=True, max_length=64)
    accession_number: str | None = Field(default=None, max_length=16, index=True)
    service_request_id: str | None = Field(default=None, max_length=64, index=True)
    imaging_study_id: str | None = Field(default=None, max_length=64)
    matched: bool = Field(default=False, index=True)
    started: str | None = Field(default=None, max_length=32)  # FHIR dateTime
    description: str | None = Field(default=None, max_length=64)  # StudyDescription, LO
    first_received_at: datetime
    last_received_at: datetime = Field(index=True)
    instance_count: int = 0
    # The instance count the ImagingStudy last showed; it is rewritten as the
    # study grows (at 1, 2, 4, 8... instances) and once more when it is complete.
    synced_count: int = 0
    # Why the study is stored but not analysed until a person decides (e.g.
    # "second-study": its order already has a current study); None when it is not held.
    hold_reason: str | None = Field(default=None, max_length=32, index=True)


class AnalysisJob(SQLModel, table=True):
    """One analysis of one study by one analyser version."""

    __tablename__ = "analysis_job"
    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=200, unique=True)
    study_uid: str = Field(max_length=64, index=True)
    service_request_id: str = Field(max_length=64)
    procedure: str = Field(max_length=32)
    analyser_version: str = Field(max_length=64)
    status: str = Field(max_length=16, index=True)  # queued | running | done | failed
    attempts: int = 0
    leased_until: datetime | None = None
    enqueued_at: datetime | None = None  # last handed to the broker (Celery mode)
    worker: str | None = Field(default=None, max_length=128)
    error: str | None = Field(default=None, sa_column=Column(Text))
    diagnostic_report_id: str | None = Field(default=None, max_length=64)
    # Received instances of the study when the job was queued (its idempotency key
    # carries a digest of their UIDs and hashes): a later arrival makes a new job.
    instance_count: int | None = None
    created_at: datetime
    updated_at: datetime


class LesionDecision(SQLModel, table=True):
    """A radiologist's change to one candidate calcium lesion of an order's report.

    Decisions are kept in order (``id``) and never changed or deleted: the
    analysis applies all of them, in order, every time it scores the study
    again (lesion ids are stable for the same images, ``calcium.Lesion``).
    ``job_id`` is the analysis job that regenerates the report for it.
    """

    __tablename__ = "lesion_decision"
    id: int | None = Field(default=None, primary_key=True)
    service_request_id: str = Field(max_length=64, index=True)
    diagnostic_report_id: str = Field(max_length=64, index=True)
    study_uid: str = Field(max_length=64)
    lesion_id: str = Field(max_length=64)
    action: str = Field(max_length=16)  # reject | accept | relabel
    label: str | None = Field(default=None, max_length=32)
    reviewer: str = Field(max_length=128)  # Practitioner/{id}
    client_id: str = Field(max_length=128)  # the system that sent it
    recorded_at: datetime
    job_id: int | None = Field(default=None, index=True)


class CalciumCandidates(SQLModel, table=True):
    """The candidate lesions of a report's latest analysis, for review without pixels.

    ``lesions`` is the JSON list of ``calcium.Lesion`` as scored, with every
    decision up to ``applied_through`` (a ``LesionDecision.id``; 0: none)
    already applied.
    """

    __tablename__ = "calcium_candidates"
    diagnostic_report_id: str = Field(primary_key=True, max_length=64)
    service_request_id: str = Field(max_length=64, index=True)
    study_uid: str = Field(max_length=64)
    job_id: int
    applied_through: int = 0
    lesions: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime


class ResultObject(SQLModel, table=True):
    """A DICOM object a report's analysis produced for PACS: its SR, SEG or Encapsulated PDF.

    Each analysis (``job_id``) of a report adds its own set; the newest set is
    what :func:`imaging_core.pacs.queue_results_to_pacs` sends. ``path`` is the
    content-addressed Part 10 file under the var directory.
    """

    __tablename__ = "result_object"
    id: int | None = Field(default=None, primary_key=True)
    diagnostic_report_id: str = Field(max_length=64, index=True)
    job_id: int
    kind: str = Field(max_length=8)  # sr | seg | pdf
    sop_class_uid: str = Field(max_length=64)
    sop_instance_uid: str = Field(max_length=64)
    path: str = Field(max_length=255)  # relative to the var directory
    created_at: datetime


class PacsDelivery(SQLModel, table=True):
    """The outbox: one result object owed to one DICOM destination, until it is sent.

    Written in the transaction that publishes the results, so nothing is owed
    that was not published and nothing published is forgotten by a restart.
    ``status`` is ``pending`` (due at ``next_attempt_at``), ``sent`` or
    ``failed`` (the destination refused it in a way that cannot succeed by
    waiting; ``last_error`` says how). Rows are never deleted.
    """

    __tablename__ = "pacs_delivery"
    id: int | None = Field(default=None, primary_key=True)
    result_object_id: int = Field(index=True)
    diagnostic_report_id: str = Field(max_length=64, index=True)
    destination: str = Field(max_length=300)  # AE@host:port
    status: str = Field(max_length=16, index=True)  # pending | sent | failed
    attempts: int = 0
    next_attempt_at: datetime = Field(index=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    last_status: int | None = None  # the DIMSE status of the last C-STORE response, if any
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None
