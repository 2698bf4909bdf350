"""Tables behind client authentication: the client registry and used assertion ids."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC as the tables store it."""
    return datetime.now(UTC)


class Client(SQLModel, table=True):
    """A registered backend-services client and the public keys it signs with."""

    __tablename__ = "auth_client"
    client_id: str = Field(primary_key=True, max_length=128)
    name: str = Field(max_length=255)
    jwks: str = Field(sa_column=Column(Text, nullable=False))  # '{"keys": []}' with jwks_uri
    # Where the client publishes its keys (SMART Backend Services "JWKS URL"),
    # read when it signs with a kid ScanPath has not seen; None: keys in jwks.
    jwks_uri: str | None = Field(default=None, max_length=2048)
    scopes: str = Field(sa_column=Column(Text, nullable=False))
    active: bool = True
    # Counts changes to keys, scopes and state; a token carries the revision it
    # was issued under ("rev"), so replacing or disabling a client ends its tokens.
    revision: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    created_at: datetime = Field(default_factory=utcnow)


class UsedAssertion(SQLModel, table=True):
    """The ``jti`` of every accepted client assertion, kept until the assertion expires."""

    __tablename__ = "auth_used_jti"
    jti: str = Field(primary_key=True, max_length=255)
    client_id: str = Field(foreign_key="auth_client.client_id", max_length=128)
    expires_at: datetime = Field(index=True)


class StaffAccount(SQLModel, table=True):
    """A person of the radiology department who logs in to the staff web app (``/staff``)."""

    __tablename__ = "staff_account"
    username: str = Field(primary_key=True, max_length=64)
    display_name: str = Field(max_length=255)
    role: str = Field(max_length=32)  # radiographer, radiologist or admin (auth.staff.ROLES)
    password_hash: str = Field(max_length=255)  # argon2id, PHC string format
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    password_changed_at: datetime = Field(default_factory=utcnow)


class StaffSession(SQLModel, table=True):
    """A logged-in staff session; the cookie holds a random token, this row only its hash."""

    __tablename__ = "staff_session"
    token_hash: str = Field(primary_key=True, max_length=64)  # SHA-256, hex
    username: str = Field(foreign_key="staff_account.username", max_length=64, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    # Idle expiry, moved forward on every request; never past ``absolute_expires_at``.
    expires_at: datetime = Field(index=True)
    absolute_expires_at: datetime


class StaffLoginFailure(SQLModel, table=True):
    """One failed login for a username (known or not), counted for the lockout."""

    __tablename__ = "staff_login_failure"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, index=True)
    at: datetime = Field(default_factory=utcnow, index=True)
