"""Operations: request ids, Prometheus metrics, ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import logging
import os
import time
import uuid

from flask import Blueprint, Flask, Response, g, jsonify, render_template, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import text

from auth.guard import require
from core.db import engine_for
from core.errors import FhirError
from core.logging import parameter_names
from core.web import app_settings, app_version
from scanpath import auditing
from scanpath.migrate import at_head

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__)

REQUESTS = Counter("scanpath_http_requests_total", "HTTP requests",
                   ["method", "endpoint", "status"])
LATENCY = Histogram("scanpath_http_request_seconds", "HTTP request latency",
                    ["method", "endpoint"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.register_blueprint(bp)


def _start() -> None:
    g.request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex
    g.started = time.perf_counter()


def _finish(response: Response) -> Response:
    endpoint = request.endpoint or "unmatched"
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
    LATENCY.labels(request.method, endpoint).observe(elapsed)
    response.headers["X-Request-ID"] = g.get("request_id", "")
    log.info("request", extra={"method": request.method, "path": request.path,
                               "params": parameter_names(request.query_string.decode(
                                   "latin-1")),
                               "status": response.status_code,
                               "ms": round(elapsed * 1000, 2)})
    return response


@bp.get("/")
def home() -> Response:
    """A page for a person: what is running, links to the API and discovery, version.

    It shows no patient data and needs no token; security headers as for the API.
    """
    settings = app_settings()
    base = settings.public_url
    services = [
        {"name": "FHIR R4 API (CapabilityStatement)", "url": f"{base}/fhir/metadata"},
        {"name": "SMART Backend Services discovery",
         "url": f"{base}/.well-known/smart-configuration"},
        {"name": "CDS Hooks discovery", "url": f"{base}/cds-services"},
        {"name": "DICOMweb (QIDO-RS, WADO-RS, STOW-RS)", "url": f"{base}/dicomweb/studies"},
        {"name": "DICOM listener (C-STORE, C-ECHO)",
         "where": f"{settings.host}:{settings.dicom_port}, AE title {settings.dicom_ae_title}"},
        {"name": "Staff web app (radiology)", "url": f"{base}/staff"},
        {"name": "Health and readiness", "url": f"{base}/readyz"},
    ]
    html = render_template("home.html", services=services, version=app_version(),
                           env=settings.env)
    # Its own stylesheet; the other security headers are core.web's, as on every answer.
    return Response(html, content_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy": "default-src 'none'; style-src 'self'; "
                                   "frame-ancestors 'none'"})


@bp.get("/static/home.css")
def home_css() -> Response:
    return Response(HOME_CSS, content_type="text/css; charset=utf-8")


HOME_CSS = """body{font-family:Arial,sans-serif;margin:2rem;max-width:60rem;color:#212b32}
table{border-collapse:collapse}td,th{padding:.4rem .8rem;border-bottom:1px solid #d8dde0;
text-align:left}a{color:#005eb8}"""


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    settings = app_settings()
    engine = engine_for(settings.database_url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        migrated = at_head(engine, settings)
    except Exception as exc:  # any failure means "not ready", never a 500
        log.warning("database not ready", extra={"error": str(exc)})
        return jsonify(status="unavailable", database="unreachable"), 503
    if not migrated:
        return jsonify(status="unavailable", database="ok", migrations="behind"), 503
    return jsonify(status="ok", database="ok", migrations="head"), 200


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics, for operators (a token allowed to search AuditEvents); every
    request, allowed or refused, is audited."""
    try:
        principal = require("AuditEvent", "search-type")
    except FhirError as refused:
        known = g.get("principal")  # set when the token was valid but its scope too narrow
        auditing.operator_access(known.client_id if known else "anonymous", refused.status)
        raise
    auditing.operator_access(principal.client_id, 200)
    registry = None
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry) if registry else generate_latest(),
                    content_type=CONTENT_TYPE_LATEST)
