"""Helpers shared by every blueprint: FHIR JSON responses and the one error path."""

from __future__ import annotations

import io
import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Flask, Request, Response, current_app, g, render_template, request
from sqlmodel import Session
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.utils import cached_property

from core import fhirjson
from core.db import engine_for
from core.errors import BadRequest, FhirError, Issue, operation_outcome
from core.settings import Settings

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
# FHIR issue-type for each HTTP error status (http://hl7.org/fhir/R4/valueset-issue-type.html).
HTTP_ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found",
                    405: "not-supported", 406: "not-supported", 409: "conflict",
                    412: "conflict", 413: "too-costly", 414: "too-long", 415: "not-supported",
                    417: "invalid", 429: "throttled", 431: "too-long", 501: "not-supported"}
# On every response (OWASP ASVS 14.4). A page that loads its own styles or scripts
# sets its own Content-Security-Policy, which keeps frame-ancestors 'none'.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff",
                    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
                    "Referrer-Policy": "no-referrer"}
HSTS = "max-age=31536000; includeSubDomains"
# The staff web app (/staff) loads its own scripts, styles and images, never inline
# ones (issue 12); allow_wasm_eval() adds 'wasm-unsafe-eval' for a page that needs it.
STAFF_PREFIX = "/staff"
STAFF_CSP = ("default-src 'self'; script-src 'self'{wasm}; style-src 'self'{style}; "
             "img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; "
             "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
# The patient report pages (/r/{token}, issue 13): the same rules as the staff pages,
# their own policy so that each may change alone; allow_wasm_eval() as for staff, and
# allow_model_viewer() for a page that shows the 3D model.
PATIENT_PREFIX = "/r/"
PATIENT_CSP = ("default-src 'self'; script-src 'self'{wasm}; style-src 'self'{style}; "
               "img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; "
               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
# <model-viewer>'s own shadow-root stylesheet is a <style> element in its template
# (@google/model-viewer 4.4.0, package-lock.json): allowed by the SHA-256 of its text
# (CSP Level 3 §2.3.1 hash-source; https://www.w3.org/TR/CSP3/#grammardef-hash-source),
# never by 'unsafe-inline'. Refused, the model's canvas is unstyled and draws over the
# text below it. Another model-viewer version has another hash: Chromium then names it
# in the refusal, which tests/patient/test_browser.py fails on.
MODEL_VIEWER_STYLE = "'sha256-PXtZZkJMMyc18o/DN1ZEFOJ2qEGq95IQbVaJFMOXOb0='"
# The endpoints whose answers hold no patient data and are public (discovery, the home
# page, health): only these may be cached. Every other answer is Cache-Control: no-store.
PUBLIC_ENDPOINTS = frozenset({"ops.home", "ops.home_css", "ops.healthz", "ops.readyz", "static",
                              "auth.smart_configuration", "fhir.metadata", "cds.discovery"})
CORS_METHODS = "GET, POST, PUT, PATCH, DELETE"
CORS_HEADERS = "Authorization, Content-Type, Accept, If-Match, If-None-Exist, Prefer"


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


class BoundedRequest(Request):
    """A request whose body, however it is framed, is refused past the size limit.

    With ``Content-Length`` Werkzeug refuses an oversized body (413). A chunked body
    (``Transfer-Encoding: chunked``) has no length, and Werkzeug then reads only up to
    ``max_content_length`` and silently drops the rest, so a truncated resource could be
    stored. Here such a body is read whole, up to one byte past the limit, and refused
    with ``RequestEntityTooLarge`` (413, through the one error path) when it goes past;
    a malformed or cut-short chunked body is a 400 (``BadRequest``).
    """

    @cached_property
    def stream(self) -> Any:  # the parent's type: a binary stream
        limit = self.max_content_length
        if self.content_length is not None or limit is None \
                or "wsgi.input_terminated" not in self.environ:
            return super().stream
        try:
            body = _read_at_most(self.environ["wsgi.input"], limit + 1)
        # The server's own errors for a bad framing (gunicorn: InvalidChunkSize, NoMoreData,
        # ChunkMissingTerminator; other servers their own): reading the body fails only on
        # what the client sent, so every such failure is the client's 400.
        except Exception as error:  # noqa: BLE001
            raise BadRequest("The chunked request body is malformed or was cut short: "
                             f"{type(error).__name__}") from error
        if len(body) > limit:
            raise RequestEntityTooLarge(f"The request body is larger than {limit} bytes")
        return io.BytesIO(body)


def _read_at_most(raw: Any, size: int) -> bytes:
    """Up to ``size`` bytes of the WSGI input stream ``raw``, fewer only at its end."""
    parts: list[bytes] = []
    wanted = size
    while wanted > 0:
        chunk = raw.read(min(wanted, 64 * 1024))
        if not chunk:
            break
        parts.append(chunk)
        wanted -= len(chunk)
    return b"".join(parts)


def init_app(app: Flask) -> None:
    """Per-request sessions, bounded request bodies and the one error path."""
    app.request_class = BoundedRequest
    app.teardown_appcontext(_close_db)
    app.before_request(_refuse_control_characters)
    app.after_request(_security_headers)
    app.after_request(_cors)
    register_error_handlers(app)


def is_staff_request() -> bool:
    """Whether the request is for the staff web app (HTML pages, session cookie)."""
    return request.path == STAFF_PREFIX or request.path.startswith(STAFF_PREFIX + "/")


def is_patient_request() -> bool:
    """Whether the request is for a patient report link's pages (``/r/...``)."""
    return request.path.startswith(PATIENT_PREFIX)


def allow_wasm_eval() -> None:
    """Let this staff or patient page compile WebAssembly (CSP 'wasm-unsafe-eval'),
    e.g. the viewer or the 3D model."""
    g.csp_wasm = True


def allow_model_viewer() -> None:
    """Let this page (staff viewer or patient report) show <model-viewer>: its WebAssembly
    decoders and its own stylesheet (MODEL_VIEWER_STYLE)."""
    g.csp_wasm = g.csp_model_viewer = True


def staff_csp() -> str:
    """The Content-Security-Policy of this staff page."""
    return _page_csp(STAFF_CSP)


def patient_csp() -> str:
    """The Content-Security-Policy of this patient page."""
    return _page_csp(PATIENT_CSP)


def _page_csp(policy: str) -> str:
    """``policy`` with what this page was allowed (allow_wasm_eval, allow_model_viewer)."""
    return policy.format(wasm=" 'wasm-unsafe-eval'" if g.get("csp_wasm") else "",
                         style=f" {MODEL_VIEWER_STYLE}" if g.get("csp_model_viewer") else "")


def _security_headers(response: Response) -> Response:
    """The headers of SECURITY_HEADERS (the staff CSP under /staff); HSTS over TLS;
    no-store unless public."""
    if is_staff_request():
        response.headers.setdefault("Content-Security-Policy", staff_csp())
    if is_patient_request():  # a private page: never indexed, never referred on
        response.headers.setdefault("Content-Security-Policy", patient_csp())
        response.headers["X-Robots-Tag"] = "noindex, nofollow"
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure or app_settings().public_url.startswith("https://"):
        response.headers["Strict-Transport-Security"] = HSTS
    if request.endpoint not in PUBLIC_ENDPOINTS:
        response.headers["Cache-Control"] = "no-store"
    return response


def _cors(response: Response) -> Response:
    """CORS for the origins in SCANPATH_CORS_ORIGINS only; none configured, no
    Access-Control-* header at all, so browsers keep other sites' pages out."""
    origin = request.headers.get("Origin")
    if origin is None or origin.rstrip("/") not in app_settings().cors_origins:
        return response
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = "Location, ETag, Content-Location"
    response.headers.add("Vary", "Origin")
    if request.method == "OPTIONS":  # a preflight
        response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
    return response


def _refuse_control_characters() -> None:
    """A URL with NUL or another control character is a 400 on every route, before any
    of it reaches a query (PostgreSQL cannot even compare text with NUL)."""
    for text in (request.path, *request.args.keys(), *request.args.values()):
        if fhirjson.CONTROL.search(text):
            raise BadRequest("The URL holds a control character (below U+0020)")


def register_error_handlers(app: Flask) -> None:
    """Every error, expected or not, leaves as an OperationOutcome (an HTML page
    under /staff: ``error_response`` decides)."""
    app.register_error_handler(FhirError, _fhir_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(RecursionError, _too_deep)
    app.register_error_handler(Exception, _unexpected_error)


def error_response(issues: list[Issue], status: int,
                   headers: dict[str, str] | None = None) -> Response:
    """The one place an error's representation is chosen: an HTML page for the staff
    web app, an OperationOutcome for everything else; under /r/ the patient pages'
    own (``_patient_error``)."""
    if is_patient_request():
        return _patient_error(status)
    if is_staff_request():
        try:
            html = render_template("staff/error.html", status=status,
                                   messages=[issue.diagnostics for issue in issues])
        except Exception:  # the error page itself failed: still a page, never a traceback
            log.exception("staff error page failed")
            html = f"<!doctype html><title>Error {status}</title><p>Error {status}</p>"
        return Response(html, status=status, headers=headers or {},
                        content_type="text/html; charset=utf-8")
    return fhir_response(operation_outcome(issues), status, headers)


def _patient_error(status: int) -> Response:
    """A patient page's error: a form sent without its CSRF token (or otherwise bad)
    asks to try again (400); anything else, a server fault included, is the neutral
    "not available" page with 404 (its body the same as for an unknown link), so
    nothing about the link or the fault shows. Faults are logged by their handler."""
    template, status = ("patient/try_again.html", 400) if status == 400 else \
        ("patient/not_available.html", 404)
    try:
        html = render_template(template)
    except Exception:  # the page itself failed: still a page, never a traceback
        log.exception("patient error page failed")
        html = "<!doctype html><title>Not available</title><p>This page is not available.</p>"
    return Response(html, status=status, content_type="text/html; charset=utf-8")


def _fhir_error(error: FhirError) -> Response:
    return error_response(error.issues, error.status, error.headers)


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    issue = Issue(error.description or error.name, HTTP_ISSUE_CODES.get(status, "exception"))
    headers = dict(error.get_headers()) if status == 405 else {}
    headers.pop("Content-Type", None)
    return error_response([issue], status, headers)


def _too_deep(_error: RecursionError) -> Response:
    """JSON nested past Python's recursion limit is bad input, not a server fault."""
    return error_response([Issue("The body is nested too deeply to process", "structure")], 400)


def _unexpected_error(error: Exception) -> Response:
    log.exception("unhandled error")
    issue = Issue("An internal error occurred; it has been logged", "exception", "fatal")
    return error_response([issue], 500)
