"""Tables of the order workflow."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
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
