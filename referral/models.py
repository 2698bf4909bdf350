"""Tables of the order workflow."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class Accession(SQLModel, table=True):
    """One accession number per ServiceRequest; the row id is the number's counter."""

    __tablename__ = "accession"
    id: int | None = Field(default=None, primary_key=True)
    value: str | None = Field(default=None, unique=True, max_length=16)
    service_request_id: str = Field(unique=True, max_length=64)
