"""Tables behind the resource store: current versions, history and search indexes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Table, Text
from sqlmodel import Field, SQLModel


class ResourceRow(SQLModel, table=True):
    """The current version of each resource, as FHIR JSON."""

    __tablename__ = "resource"
    resource_type: str = Field(primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=64)
    version_id: int
    last_updated: datetime = Field(index=True)
    content: str = Field(sa_column=Column(Text, nullable=False))


class ResourceVersion(SQLModel, table=True):
    """Every version ever written; never updated in place."""

    __tablename__ = "resource_version"
    resource_type: str = Field(primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=64)
    version_id: int = Field(primary_key=True)
    last_updated: datetime
    method: str = Field(max_length=8)
    content: str = Field(sa_column=Column(Text, nullable=False))


class TokenIndex(SQLModel, table=True):
    __tablename__ = "search_token"
    __table_args__ = (Index("ix_search_token_lookup", "resource_type", "param", "code"),)
    pk: int | None = Field(default=None, primary_key=True)
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(max_length=64, index=True)
    param: str = Field(max_length=64)
    system: str | None = Field(default=None, max_length=255)
    code: str = Field(max_length=255)


class ReferenceIndex(SQLModel, table=True):
    __tablename__ = "search_reference"
    __table_args__ = (
        Index("ix_search_reference_lookup", "resource_type", "param", "target_type", "target_id"),
        Index("ix_search_reference_target", "target_type", "target_id"),
    )
    pk: int | None = Field(default=None, primary_key=True)
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(max_length=64, index=True)
    param: str = Field(max_length=64)
    target_type: str = Field(max_length=64)
    target_id: str = Field(max_length=64)


class DateIndex(SQLModel, table=True):
    """A date search value as the half-open UTC range ``[low, high)``."""

    __tablename__ = "search_date"
    __table_args__ = (Index("ix_search_date_lookup", "resource_type", "param", "low"),)
    pk: int | None = Field(default=None, primary_key=True)
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(max_length=64, index=True)
    param: str = Field(max_length=64)
    low: datetime
    high: datetime


class StringIndex(SQLModel, table=True):
    """A string search value, lower-cased for the default starts-with match."""

    __tablename__ = "search_string"
    __table_args__ = (Index("ix_search_string_lookup", "resource_type", "param", "value"),)
    pk: int | None = Field(default=None, primary_key=True)
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(max_length=64, index=True)
    param: str = Field(max_length=64)
    value: str = Field(max_length=255)


INDEX_TABLES: tuple[type[SQLModel], ...] = (TokenIndex, ReferenceIndex, DateIndex, StringIndex)


def table_of(model: Any) -> Table:
    """The Core table behind a model, for typed column expressions."""
    table: Table = model.__table__
    return table
