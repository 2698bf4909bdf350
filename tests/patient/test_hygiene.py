"""Patient links leave no token behind: not in logs, access logs or AuditEvents, and the
tables match migration 0018."""

from __future__ import annotations

import datetime
import json
import logging
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask.testing import FlaskClient
from sqlmodel import Session, SQLModel, select

import patient.models  # noqa: F401  (the tables compared below)
from core.db import engine_for
from core.logging import RedactQueryFilter, WithheldMessageFormatter
from core.settings import Settings
from fhir.models import ResourceRow
from scanpath.gunicorn_conf import RedactingLogger
from scanpath.migrate import alembic_config, upgrade
from tests.patient.conftest import BORN, SignedLink, answer

LINK_TABLES = {"patient_link", "patient_link_session", "patient_link_failure"}


def test_the_token_is_in_no_log_line_and_no_audit_event(
        client: FlaskClient, signed_link: SignedLink, settings: Settings,
        caplog: pytest.LogCaptureFixture) -> None:
    handler_filter = RedactQueryFilter()
    caplog.handler.addFilter(handler_filter)  # as every ScanPath handler has it
    caplog.set_level(logging.DEBUG)
    logging.getLogger("werkzeug").info('127.0.0.1 - - "GET %s HTTP/1.1" 200 -', signed_link.path)
    answer(client, signed_link, "1900-01-01")
    answer(client, signed_link, BORN)
    client.get(signed_link.path)
    client.get(signed_link.path + "x")
    formatter = WithheldMessageFormatter()  # the JSON lines, structured fields included
    lines = [handler_filter.filter(r) and formatter.format(r) for r in caplog.records]
    assert any('"path": "/r/[token]' in line for line in lines)  # scanpath.ops' request line
    assert any("/r/[token]" in line for line in lines if "werkzeug" in line or "GET" in line)
    assert not [line for line in lines if signed_link.token in line]
    with Session(engine_for(settings.database_url)) as session:
        events = session.exec(select(ResourceRow.content).where(
            ResourceRow.resource_type == "AuditEvent")).all()
    patient_events = [e for e in events if "patient-link" in e]
    assert len(patient_events) >= 4  # wrong, right, viewed, unknown
    assert not [e for e in events if signed_link.token in e]
    outcomes = {json.loads(e)["outcome"] for e in patient_events}
    assert outcomes == {"0", "4"}  # success and minor failure (R4 audit-event-outcome)


def test_gunicorn_access_log_masks_the_token() -> None:
    token = "Ab3_-xYz" * 5
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/r/{token}/report.pdf",
               "RAW_URI": f"/r/{token}/report.pdf",
               "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_REFERER": f"https://scanpath.example/r/{token}", "REMOTE_ADDR": "192.0.2.1"}
    logger = RedactingLogger(SimpleNamespace(  # gunicorn's Config, as far as it is read
        errorlog="-", loglevel="info", accesslog=None, access_log_format="", syslog=False,
        logconfig=None, logconfig_dict={}, logconfig_json=None, capture_output=False,
        disable_redirect_access_to_syslog=False, user=0, group=0, umask=0,
        syslog_addr=None, syslog_facility="user", syslog_prefix=None,
        enable_stdio_inheritance=False))
    response = SimpleNamespace(status="200 OK", headers=[], sent=10, response_length=10)
    request = SimpleNamespace(headers=[], method="GET")
    atoms = logger.atoms(response, request, environ, datetime.timedelta(seconds=0.01))
    assert atoms["r"] == "GET /r/[token]/report.pdf HTTP/1.1"
    assert atoms["U"] == "/r/[token]/report.pdf"
    assert not [name for name, value in atoms.items() if token in str(value)]


def test_migration_0018_matches_the_models(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    settings = Settings(database_url=url, var_dir=tmp_path, env="test")
    upgrade(settings)
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    assert [d for d in diff if any(t in repr(d) for t in LINK_TABLES)] == []
    command.downgrade(alembic_config(settings), "0017")
    assert not LINK_TABLES & set(sa.inspect(sa.create_engine(url)).get_table_names())
