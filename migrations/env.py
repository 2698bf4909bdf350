"""Alembic environment: migrates ``SQLModel.metadata`` of every package's tables."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool
from sqlmodel import SQLModel, create_engine

import auth.models  # noqa: F401
import core  # noqa: F401  (first: makes the project's ``fhir`` package resolvable)
import fhir.models  # noqa: F401
import imaging_core.models  # noqa: F401
import patient.models  # noqa: F401
import referral.models  # noqa: F401
import rules.models  # noqa: F401

target_metadata = SQLModel.metadata


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
