"""Tables of the order workflow."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel


class Accession(SQLModel, table=True):
    """One accession number per ServiceRequest; the row id is the number's counter."""

    __tablename__ = "accession"
    id: int | None = Field(default=None, primary_key=True)
    value: str | None = Field(default=None, unique=True, max_length=16)
    service_request_id: str = Field(unique=True, max_length=64)


class Notification(SQLModel, table=True):
    """One rest-hook notification of one resource version to one Subscription.

    Written in the transaction that changed the resource (the outbox), so a
    change is never committed without it. ``status`` is ``queued`` until it is
    ``delivered``, or ``dead`` once it has failed for
    ``SCANPATH_NOTIFY_GIVE_UP_HOURS`` (kept, listed by ``scanpath notifications``).
    Rows of one (subscription, resource) are delivered in ``id`` order.
    """

    __tablename__ = "notification"
    id: int | None = Field(default=None, primary_key=True)
    subscription_id: str = Field(max_length=64, index=True)
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(max_length=64)
    version_id: int
    endpoint: str = Field(sa_column=Column(Text, nullable=False))
    method: str = Field(max_length=8)  # POST (ping) | PUT (the resource)
    headers: str = Field(sa_column=Column(Text, nullable=False))  # JSON object
    body: str | None = Field(default=None, sa_column=Column(Text))  # None: a ping
    status: str = Field(max_length=16, index=True)  # queued | delivered | dead
    attempts: int = 0
    next_attempt_at: datetime = Field(index=True)
    leased_until: datetime | None = None
    enqueued_at: datetime | None = None  # last handed to the broker (Celery mode)
    worker: str | None = Field(default=None, max_length=128)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None = None


class WorklistStep(SQLModel, table=True):
    """One order's Modality Worklist entry (PS3.4 K.6.1), kept as the order moves.

    Written by ``referral.worklist`` in the transaction that moves the order,
    so a C-FIND reads this table alone, through its indexes, never the FHIR
    resources. ``scheduled`` is True only while the order is ``scheduled``;
    the row stays afterwards so the Study Instance UID handed to the modality
    is never made again. Values are DICOM-encoded, lengths their VRs' (PS3.5 6.2).
    """

    __tablename__ = "worklist_step"
    __table_args__ = (Index("ix_worklist_step_scheduled_date", "scheduled", "start_date"),)
    service_request_id: str = Field(primary_key=True, max_length=64)
    task_id: str = Field(max_length=64)
    patient_resource_id: str = Field(max_length=64, index=True)  # the FHIR Patient's id
    scheduled: bool = False
    accession_number: str | None = Field(default=None, max_length=16, index=True)  # SH
    patient_id: str | None = Field(default=None, max_length=64, index=True)  # LO
    issuer_of_patient_id: str | None = Field(default=None, max_length=64)  # LO
    patient_name: str | None = Field(default=None, max_length=324)  # PN
    patient_birth_date: str | None = Field(default=None, max_length=8)  # DA
    patient_sex: str | None = Field(default=None, max_length=16)  # CS
    start_date: str | None = Field(default=None, max_length=8)  # DA
    start_time: str | None = Field(default=None, max_length=16)  # TM
    modality: str | None = Field(default=None, max_length=16, index=True)  # CS
    station_ae: str | None = Field(default=None, max_length=16, index=True)  # AE
    procedure_code: str | None = Field(default=None, max_length=64)  # SH (Code Value)
    procedure_scheme: str | None = Field(default=None, max_length=64)  # SH (Designator)
    procedure_meaning: str | None = Field(default=None, max_length=64)  # LO (Code Meaning)
    study_uid: str = Field(max_length=64, unique=True)  # UI
