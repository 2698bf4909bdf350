"""No patient data in logs: query values, SQL bound values and exception messages."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from core.db import build_engine
from core.logging import RedactQueryFilter, WithheldMessageFormatter

NHS_NUMBER = "9434765919"


def _capturing_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    """A logger writing through ScanPath's formatter and filter into a string."""
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(WithheldMessageFormatter("%(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactQueryFilter())
    logger = logging.getLogger(name)
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    return logger, sink


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_failing_sql_statement_logs_no_bound_value(backend: str, tmp_path: Path,
                                                     request: pytest.FixtureRequest):
    url = f"sqlite:///{tmp_path / 'x.db'}" if backend == "sqlite" \
        else request.getfixturevalue("postgres_url")
    engine = build_engine(url)
    logger, sink = _capturing_logger("test.sql")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT * FROM no_such_table WHERE nhs = :nhs"),
                               {"nhs": NHS_NUMBER})
    except SQLAlchemyError as error:
        assert NHS_NUMBER not in str(error)
        logger.exception("query failed")
    finally:
        engine.dispose()

    assert "no_such_table" in sink.getvalue()  # the statement is there, its value is not
    assert NHS_NUMBER not in sink.getvalue()


def test_a_traceback_keeps_the_exception_type_but_not_its_message():
    logger, sink = _capturing_logger("test.traceback")
    try:
        try:
            int(f"{NHS_NUMBER}x")
        except ValueError as error:
            raise KeyError(f"patient {NHS_NUMBER}") from error
    except KeyError:
        logger.exception("unhandled error")

    logged = sink.getvalue()
    assert "ValueError" in logged and "KeyError" in logged and "unhandled error" in logged
    assert NHS_NUMBER not in logged


def test_a_logged_url_keeps_its_parameter_names_only():
    logger, sink = _capturing_logger("test.url")
    logger.info("Error handling request GET /fhir/Patient?identifier=%s&family=Smith",
                NHS_NUMBER)

    assert "/fhir/Patient?identifier&family" in sink.getvalue()
    assert NHS_NUMBER not in sink.getvalue() and "Smith" not in sink.getvalue()
