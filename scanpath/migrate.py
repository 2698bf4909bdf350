"""Alembic migrations run from code: upgrade to head, and check we are there."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from core.db import normalise_url, prepare_sqlite_file
from core.settings import PROJECT_ROOT, Settings


def alembic_config(settings: Settings) -> Config:
    """Alembic configuration for the configured database."""
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url",
                           normalise_url(settings.database_url).replace("%", "%%"))
    return config


def upgrade(settings: Settings) -> None:
    """Migrate the database to the newest revision."""
    prepare_sqlite_file(settings.database_url)
    command.upgrade(alembic_config(settings), "head")


def at_head(engine: Engine, settings: Settings) -> bool:
    """Whether the database's revision is the newest one."""
    heads = set(ScriptDirectory.from_config(alembic_config(settings)).get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current == heads
