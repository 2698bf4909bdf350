"""Tables behind patient report links: the links, their sessions, and wrong answers.

No table holds a link's token or a session id in clear: ``patient_link`` keeps the
per-link random salt the token is derived from with the server's secret
(``patient.links``) and the SHA-256 of the token; ``patient_link_session`` keeps the
SHA-256 of the session id in the cookie.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from auth.models import utcnow


class PatientLink(SQLModel, table=True):
    """One patient report link: a DocumentReference tied to one DiagnosticReport version.

    ``status``: ``current``, ``superseded`` (a later version of the report has its
    own link) or ``revoked`` (entered-in-error, by a GP system or staff).
    """

    __tablename__ = "patient_link"
    id: int | None = Field(default=None, primary_key=True)
    document_reference_id: str = Field(max_length=64, unique=True, index=True)
    diagnostic_report_id: str = Field(max_length=64, index=True)
    report_version: str = Field(max_length=16)
    patient_id: str = Field(max_length=64)
    salt: str = Field(max_length=64)  # 32 random bytes, hex (``secrets``)
    token_hash: str = Field(max_length=64, unique=True, index=True)  # SHA-256 of the token, hex
    status: str = Field(default="current", max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    wrong_answers: int = Field(default=0)
    locked_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = Field(default=None, max_length=128)
    revoked_reason: str | None = Field(default=None, max_length=500)


class PatientLinkSession(SQLModel, table=True):
    """A patient's session after the right date of birth, bound to one link."""

    __tablename__ = "patient_link_session"
    token_hash: str = Field(primary_key=True, max_length=64)  # SHA-256 of the cookie, hex
    link_id: int = Field(foreign_key="patient_link.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)


class PatientLinkFailure(SQLModel, table=True):
    """One wrong answer (or unknown link) from a client address, for the address limit."""

    __tablename__ = "patient_link_failure"
    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(max_length=64, index=True)
    link_id: int | None = Field(default=None, foreign_key="patient_link.id")
    at: datetime = Field(default_factory=utcnow, index=True)
