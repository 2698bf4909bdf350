"""Helpers shared by every blueprint: FHIR JSON responses and the one error path."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Flask, Response, current_app, g, request
from sqlmodel import Session
from werkzeug.exceptions import HTTPException

from core import fhirjson
from core.db import engine_for
from core.errors import BadRequest, FhirError, Issue, operation_outcome
from core.settings import Settings

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
_HTTP_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found",
               405: "not-supported", 406: "not-supported", 409: "conflict",
               412: "conflict", 413: "too-costly", 415: "not-supported", 429: "throttled"}


def fhir_response(body: dict[str, Any] | None, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """A FHIR JSON response (an empty body when ``body`` is None)."""
    text = "" if body is None else fhirjson.dumps(body)
    return Response(text, status=status, headers=headers or {}, content_type=FHIR_JSON)


def app_version() -> str:
    """The installed ScanPath version (``0+unknown`` when run from an uninstalled tree)."""
    try:
        return version("scanpath")
    except PackageNotFoundError:
        return "0+unknown"


def app_settings() -> Settings:
    """The settings of the running application."""
    settings: Settings = current_app.config["SCANPATH"]
    return settings


def db() -> Session:
    """The request's database session, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = Session(engine_for(app_settings().database_url), expire_on_commit=False)
    session: Session = g.db
    return session


def _close_db(_error: BaseException | None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()


def init_app(app: Flask) -> None:
    """Per-request sessions and the one error path."""
    app.teardown_appcontext(_close_db)
    app.before_request(_refuse_control_characters)
    register_error_handlers(app)


def _refuse_control_characters() -> None:
    """A URL with NUL or another control character is a 400 on every route, before any
    of it reaches a query (PostgreSQL cannot even compare text with NUL)."""
    for text in (request.path, *request.args.keys(), *request.args.values()):
        if fhirjson.CONTROL.search(text):
            raise BadRequest("The URL holds a control character (below U+0020)")


def register_error_handlers(app: Flask) -> None:
    """Every error, expected or not, leaves as an OperationOutcome."""
    app.register_error_handler(FhirError, _fhir_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(RecursionError, _too_deep)
    app.register_error_handler(Exception, _unexpected_error)


def _fhir_error(error: FhirError) -> Response:
    return fhir_response(error.outcome(), error.status, error.headers)


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    issue = Issue(error.description or error.name, _HTTP_CODES.get(status, "exception"))
    headers = dict(error.get_headers()) if status == 405 else {}
    headers.pop("Content-Type", None)
    return fhir_response(operation_outcome([issue]), status, headers)


def _too_deep(_error: RecursionError) -> Response:
    """JSON nested past Python's recursion limit is bad input, not a server fault."""
    issue = Issue("The body is nested too deeply to process", "structure")
    return fhir_response(operation_outcome([issue]), 400)


def _unexpected_error(error: Exception) -> Response:
    log.exception("unhandled error")
    issue = Issue("An internal error occurred; it has been logged", "exception", "fatal")
    return fhir_response(operation_outcome([issue]), 500)
