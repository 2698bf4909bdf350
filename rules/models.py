"""Tables of the decision service: rule-pack versions and CDS Hooks feedback."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel


class RulePackVersion(SQLModel, table=True):
    """Every pack version ever installed, kept so old decisions can be replayed."""

    __tablename__ = "rule_pack_version"
    version: str = Field(primary_key=True, max_length=32)
    pack_id: str = Field(max_length=64, index=True)
    installed_at: datetime
    source: str = Field(sa_column=Column(Text, nullable=False))


class CdsFeedback(SQLModel, table=True):
    """What the clinician did with a card (CDS Hooks 2.0 feedback)."""

    __tablename__ = "cds_feedback"
    id: int | None = Field(default=None, primary_key=True)
    service_id: str = Field(max_length=64)
    card: str = Field(max_length=64, index=True)
    outcome: str = Field(max_length=16)  # accepted | overridden
    accepted_suggestions: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    override_reason: str | None = Field(default=None, max_length=128)
    comment: str | None = Field(default=None, sa_column=Column(Text))
    outcome_timestamp: datetime
    client_id: str = Field(max_length=128)
    received_at: datetime
