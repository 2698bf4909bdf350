"""The process's single database engine and session helpers (SQLModel).

SQLite (the default, under ``var/``) and PostgreSQL run the same code; only
``SCANPATH_DATABASE_URL`` changes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from core.settings import get_settings


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def prepare_sqlite_file(url: str) -> None:
    """Create the folder of a SQLite database file (``var/`` on a fresh checkout) and the
    file itself, empty and mode 0600: it holds patient data, and SQLite gives its WAL and
    shared-memory files the database file's mode."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return
    path = Path(str(parsed.database))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def build_engine(url: str) -> Engine:
    """An engine for ``url``, with SQLite tuned for concurrent web workers.

    ``hide_parameters``: errors and SQL echo never show bound values (patient data).
    A new SQLite file is created mode 0600 (``prepare_sqlite_file``).
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        prepare_sqlite_file(url)
        engine = create_engine(url, hide_parameters=True,
                               connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    # No server-side prepared statements: after five runs psycopg prepares a query
    # and PostgreSQL may switch to a generic plan that ignores the search index
    # (71-78 ms instead of ~2 ms per history search, docs/benchmarks.md).
    return create_engine(url, hide_parameters=True, pool_pre_ping=True, pool_size=5,
                         max_overflow=10,
                         connect_args={"prepare_threshold": None})


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the single writer. FULL syncs the WAL at
    # every commit, so an accepted order or a stored image (answered "success"
    # only after its commit) also survives power loss, not just a process crash
    # (https://sqlite.org/pragma.html#pragma_synchronous).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # Transactions are begun explicitly below, not by the sqlite3 module.
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(connection: Any) -> None:
    # Every request writes (at least its AuditEvent). Taking the write lock at
    # BEGIN avoids the deadlock of two readers upgrading at once, which
    # busy_timeout cannot resolve (https://sqlite.org/lang_transaction.html).
    connection.exec_driver_sql("BEGIN IMMEDIATE")


@cache
def engine_for(url: str) -> Engine:
    """One engine per database URL per process."""
    return build_engine(url)


def get_engine() -> Engine:
    """The engine for the configured database."""
    return engine_for(get_settings().database_url)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session committed on success and rolled back on any error (for jobs and CLI)."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
