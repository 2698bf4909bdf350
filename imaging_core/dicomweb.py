"""DICOMweb Studies Service: STOW-RS store and WADO-RS retrieve (DICOM PS3.18 §10).

- ``POST /dicomweb/studies[/{study}]`` takes ``multipart/related;
  type="application/dicom"`` (PS3.18 §10.5). Each part is stored on its own
  through :func:`imaging_core.storage.receive`, as a C-STORE would be; the
  answer is a Store Instances Response Module (PS3.18 Annex I) as
  ``application/dicom+json``: 200 when all parts were stored, 202 when some
  were, 409 when none was (PS3.18 Table 10.5.3-1). Each failure is an item
  of the response's FailedSOPSequence with its FailureReason (PS3.18 §10.5.3,
  Table I.2-1); one HTTP ``Warning: 299`` header sums them up (how many, and
  the first reason in words) and one log line records the request. A body
  of more than ``SCANPATH_DICOMWEB_MAX_PARTS`` parts (default 10,000) is
  refused whole with 413 before any part is stored.
- ``GET /dicomweb/studies/{study}[/series/{series}[/instances/{sop}]]``
  returns the stored files as ``multipart/related; type="application/dicom"``
  (PS3.18 §10.4), or one instance as bare ``application/dicom`` when asked
  for, each part naming its transfer syntax. Without a ``transfer-syntax``
  parameter the default of ``application/dicom``, Explicit VR Little Endian,
  is served, decompressing or re-encoding what was stored (PS3.18 §8.7.3.5.2);
  ``transfer-syntax=*`` serves the files exactly as received. Any other
  transfer syntax than these is 406.
- ``.../metadata`` returns the instances' attributes as DICOM JSON
  (PS3.18 Annex F), Pixel Data as a BulkDataURI to the instance's frames.
- ``.../instances/{sop}/rendered`` and ``.../frames/{n}/rendered`` return a
  PNG or JPEG for display (window, viewport); ``.../frames/{list}`` returns
  native frames as ``multipart/related; type="application/octet-stream"``
  (``imaging_core.rendering``).
- QIDO-RS searches are in ``imaging_core.qido``, on the same blueprint.

Reads (WADO-RS, QIDO-RS, rendered, frames) take a bearer token allowing ImagingStudy
read, or, with no Authorization header, a logged-in staff session cookie
(``auth.staff.staff_session_user``): the staff viewer (``imaging_core.staffviewer``)
reads from the same origin. Both are audited alike, the staff user as ``staff:NAME``.

Errors in the request itself (no token, wrong scope, wrong media type, a
multipart body that cannot be split, nothing found) take the application's
single error path, so their body is an OperationOutcome explaining them.
"""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, g, request
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from werkzeug.http import parse_list_header

from auth.guard import require
from auth.staff import staff_session_user
from core.errors import (
    BadRequest,
    FhirError,
    Gone,
    NotAcceptable,
    NotFound,
    UnsupportedMediaType,
)
from core.params import whole_number
from core.web import app_settings, db
from fhir import audit
from fhir.store import Store
from imaging_core import rendering
from imaging_core.errors import MalformedInstance, ProcessingFailure, StorageError
from imaging_core.models import DicomInstance
from imaging_core.storage import StoredInstance, receive
from imaging_core.studies import instances

log = logging.getLogger(__name__)

bp = Blueprint("dicomweb", __name__, url_prefix="/dicomweb")

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
MULTIPART = "multipart/related"
OCTETS = "application/octet-stream"
PIXEL_DATA = "7FE00010"
_CRLF = b"\r\n"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def require_read() -> None:
    """Allow a read: a bearer token whose scopes allow reading ImagingStudy, or, when the
    request carries no Authorization header, a logged-in staff session (the staff
    viewer reads DICOMweb from the same origin with its session cookie). Neither: 401."""
    if "Authorization" not in request.headers and staff_session_user() is not None:
        return
    require("ImagingStudy", "read")


def _requester() -> str:
    """Who the AuditEvent names: the token's client, else the staff user, else anonymous."""
    principal = g.get("principal")
    if principal:
        return str(principal.client_id)
    staff = g.get("staff_user")  # set by staff_session_user() when require_read() asked
    return f"staff:{staff.username}" if staff else "anonymous"


@bp.after_request
def _audit(response: Response) -> Response:
    """One AuditEvent per DICOMweb request, success or not, after its own commits."""
    what = audit.Interaction("create" if request.method == "POST" else "read", "ImagingStudy",
                             _requester(), request.remote_addr, query=request.path)
    ok = response.status_code < 400
    session = db()
    session.rollback()
    audit.record(Store(session, app_settings()), what,
                 audit.OUTCOME_SUCCESS if ok else audit.OUTCOME_MINOR,
                 None if ok else f"HTTP {response.status_code}")
    session.commit()
    return response


# --- STOW-RS -------------------------------------------------------------------------

@dataclass(frozen=True)
class PartResult:
    """One part's fate: stored, or refused with a DICOM Failure Reason."""

    stored: StoredInstance | None = None
    error: StorageError | None = None


class TooManyParts(FhirError):
    """A STOW-RS body of more parts than ``SCANPATH_DICOMWEB_MAX_PARTS``."""

    status, code = 413, "too-costly"


@bp.post("/studies")
@bp.post("/studies/<study>")
def store(study: str | None = None) -> Response:
    """Store every part; answer with what was stored and what was not (PS3.18 §10.5)."""
    require("ImagingStudy", "create")
    boundary = _stow_boundary(request.headers.get("Content-Type", ""))
    settings = app_settings()
    request.max_content_length = settings.dicomweb_max_body_bytes
    body = request.get_data(cache=False)
    spans = part_spans(body, boundary, settings.dicomweb_max_parts)
    results = [_store_part(body, span, study) for span in spans]
    if not results:
        raise BadRequest("The multipart body holds no parts")
    _log_summary(results)
    return _store_response(results, study)


def _log_summary(results: list[PartResult]) -> None:
    """One line per request: how many parts were stored and refused, by DICOM status."""
    refused: dict[str, int] = {}
    for result in results:
        if result.error is not None:
            status = f"{result.error.status:04X}"
            refused[status] = refused.get(status, 0) + 1
    stored = sum(1 for result in results if result.stored is not None)
    (log.warning if refused else log.info)("STOW-RS request", extra={
        "parts": len(results), "stored": stored, "refused": refused})


def _stow_boundary(content_type: str) -> bytes:
    """The boundary of a ``multipart/related; type="application/dicom"`` body.

    Media types and their parameter values compare case-insensitively, quoted
    or not (RFC 7231 §3.1.1.1), as older clients send them.
    """
    mimetype, params = media_type(content_type)
    if mimetype != MULTIPART or params.get("type", DICOM).lower() != DICOM:
        raise UnsupportedMediaType(
            f"Content-Type {content_type or '(none)'} is not accepted; send "
            f'{MULTIPART}; type="{DICOM}" (PS3.18 §10.5.1)')
    boundary = params.get("boundary")
    if not boundary:
        raise BadRequest("The multipart Content-Type has no boundary parameter (RFC 2046 §5.1)")
    return str(boundary).encode("latin-1")


_PARAMETER = re.compile(r';\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def media_type(header: str) -> tuple[str, dict[str, str]]:
    """A Content-Type's media type (lower case) and parameters (names lower case).

    Lenient where clients are: a parameter value may be unquoted even when it
    holds a "/" (``type=application/dicom``), which RFC 7231's token grammar,
    and so werkzeug's and the email package's parsers, do not allow.
    """
    mimetype, _, rest = header.partition(";")
    params = {name.lower(): value.strip().strip('"').replace('\\"', '"')
              for name, value in _PARAMETER.findall(";" + rest)}
    return mimetype.strip().lower(), params


@dataclass(frozen=True)
class Span:
    """Where one body part lies in the request body."""

    headers: dict[str, str]
    start: int
    end: int


def part_spans(body: bytes, boundary: bytes, limit: int | None = None) -> list[Span]:
    """Locate every part of a multipart body (RFC 2046 §5.1.1), binary-safe.

    The whole structure is checked before any part is stored, so a body that
    cannot be split, or holds more than ``limit`` parts (``TooManyParts``),
    stores nothing.
    """
    delimiter = _CRLF + b"--" + boundary
    position = _after_first_delimiter(body, boundary)
    spans = []
    while not body.startswith(b"--", position):  # "--" after a delimiter closes the body
        line_end = body.find(_CRLF, position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise BadRequest("Malformed multipart body: text after a boundary delimiter")
        end = body.find(delimiter, line_end)
        if end < 0:
            raise BadRequest("Malformed multipart body: no closing boundary delimiter")
        spans.append(_span(body, line_end + 2, end))
        if limit is not None and len(spans) > limit:
            raise TooManyParts(f"The multipart body holds more than {limit} parts; send at "
                               "most that many per request (SCANPATH_DICOMWEB_MAX_PARTS)")
        position = end + len(delimiter)
    return spans


def _after_first_delimiter(body: bytes, boundary: bytes) -> int:
    opening = b"--" + boundary
    if body.startswith(opening):
        return len(opening)
    found = body.find(_CRLF + opening)
    if found < 0:
        raise BadRequest("Malformed multipart body: the boundary never occurs")
    return found + len(_CRLF + opening)


def _span(body: bytes, start: int, end: int) -> Span:
    if body.startswith(_CRLF, start):  # a part without headers
        return Span({}, start + 2, end)
    header_end = body.find(_CRLF + _CRLF, start, end)
    if header_end < 0:
        raise BadRequest("Malformed multipart body: a part's headers never end")
    lines = body[start:header_end].decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines)}
    return Span(headers, header_end + 4, end)


def _store_part(body: bytes, span: Span, study: str | None) -> PartResult:
    mimetype, _ = media_type(span.headers.get("content-type", DICOM))
    try:
        if mimetype != DICOM:
            raise MalformedInstance(f"A part of type {mimetype}, not {DICOM}")
        return PartResult(stored=receive(app_settings(), body[span.start:span.end], "stow",
                                         study_uid=study))
    except StorageError as error:  # summed up in the request's one log line
        return PartResult(error=error)
    except Exception:  # parts already stored stay stored; this one is reported as failed
        log.exception("STOW-RS part failed")
        return PartResult(error=ProcessingFailure("Processing failure; see the ScanPath log"))


def _store_response(results: list[PartResult], study: str | None) -> Response:
    stored = [r.stored for r in results if r.stored is not None]
    failed = [r.error for r in results if r.error is not None]
    studies = {s.study_uid for s in stored} | ({study} if study else set())
    module = Dataset()  # Store Instances Response Module, PS3.18 Table I.1-1
    module.RetrieveURL = _url(studies.pop()) if len(studies) == 1 else ""
    if stored:
        module.ReferencedSOPSequence = [_referenced(s) for s in stored]
    if failed:
        module.FailedSOPSequence = [_failed(e) for e in failed]
    status = 200 if not failed else 202 if stored else 409
    response = Response(json.dumps(module.to_json_dict()), status=status,
                        content_type=DICOM_JSON)
    if failed:  # one header whatever the count; each failure is in the body
        response.headers["Warning"] = _warning(
            f"{len(failed)} of {len(results)} instances were not stored; FailedSOPSequence "
            f"(0008,1198) gives each one's FailureReason. First: {failed[0]}")
    return response


def _referenced(stored: StoredInstance) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = stored.sop_class_uid
    item.ReferencedSOPInstanceUID = stored.sop_instance_uid
    item.RetrieveURL = _url(stored.study_uid, stored.series_uid, stored.sop_instance_uid)
    return item


def _failed(error: StorageError) -> Dataset:
    # The UIDs are Type 1, but a part that is not DICOM has none to give.
    item = Dataset()
    if error.sop_class_uid:
        item.ReferencedSOPClassUID = error.sop_class_uid
    if error.sop_instance_uid:
        item.ReferencedSOPInstanceUID = error.sop_instance_uid
    item.FailureReason = error.status
    return item


def _warning(text: str) -> str:
    """An RFC 7234 §5.5 warning (code 299, "miscellaneous persistent warning")."""
    quoted = " ".join(text.split()).encode("ascii", "replace").decode()
    quoted = quoted.replace("\\", "/").replace('"', "'")
    return f'299 ScanPath "{quoted}"'


def _url(study: str, series: str | None = None, sop: str | None = None) -> str:
    url = f"{app_settings().public_url}/dicomweb/studies/{study}"
    if series:
        url += f"/series/{series}"
    if sop:
        url += f"/instances/{sop}"
    return url


# --- WADO-RS -------------------------------------------------------------------------

@bp.get("/studies/<study>")
@bp.get("/studies/<study>/series/<series>")
@bp.get("/studies/<study>/series/<series>/instances/<sop>")
def retrieve(study: str, series: str | None = None, sop: str | None = None) -> Response:
    """The instances in the transfer syntax asked for (PS3.18 §10.4, §8.7.3.5.2)."""
    require_read()
    rows = _found(study, series, sop)
    media, syntax = _representation(rows, single=sop is not None)
    if media == DICOM:
        data, used = _encoded(_path(rows[0]), rows[0].transfer_syntax, syntax)
        return Response(data, content_type=f"{DICOM}; transfer-syntax={used}")
    return _multipart(rows, syntax)


@bp.get("/studies/<study>/metadata")
@bp.get("/studies/<study>/series/<series>/metadata")
@bp.get("/studies/<study>/series/<series>/instances/<sop>/metadata")
def metadata(study: str, series: str | None = None, sop: str | None = None) -> Response:
    """The instances' attributes as DICOM JSON, Pixel Data left out (PS3.18 §10.4.1.1.2)."""
    require_read()
    accepted = request.accept_mimetypes
    if accepted.provided and not (accepted[DICOM_JSON] or accepted["application/json"]):
        raise NotAcceptable(f"Metadata is served as {DICOM_JSON}")
    rows = _found(study, series, sop)
    body = [_metadata(row) for row in rows]
    return Response(json.dumps(body), content_type=DICOM_JSON)


def _metadata(row: DicomInstance) -> dict[str, Any]:
    """The header as DICOM JSON; Pixel Data as a BulkDataURI to its frames (PS3.18 F.2.6)."""
    ds = dcmread(_path(row), stop_before_pixels=True)
    body: dict[str, Any] = ds.to_json_dict()
    if "Rows" in ds:  # an image: its Pixel Data can be fetched frame by frame
        numbers = ",".join(str(n) for n in range(1, (row.number_of_frames or 1) + 1))
        url = _url(row.study_uid, row.series_uid, row.sop_instance_uid)
        body[PIXEL_DATA] = {"vr": "OW" if int(ds.get("BitsAllocated", 16)) > 8 else "OB",
                            "BulkDataURI": f"{url}/frames/{numbers}"}
    return body


@bp.get("/studies/<study>/series/<series>/instances/<sop>/rendered")
@bp.get("/studies/<study>/series/<series>/instances/<sop>/frames/<int:frame>/rendered")
def rendered(study: str, series: str, sop: str, frame: int = 1) -> Response:
    """One frame as PNG or JPEG, windowed and scaled for display (PS3.18 §10.4.1.1.3)."""
    require_read()
    media = _image_type()
    window = rendering.parse_window(request.args.get("window"))
    viewport = rendering.parse_viewport(request.args.get("viewport"))
    quality = rendering.parse_quality(request.args.get("quality"))
    ds = dcmread(_path(_found(study, series, sop)[0]))
    image = rendering.rendered(ds, frame, media, window, viewport, quality)
    return Response(image, content_type=media)


def _image_type() -> str:
    """image/png unless the Accept header prefers image/jpeg (both are served)."""
    accepted = request.accept_mimetypes
    if not accepted.provided:
        return "image/png"
    best = accepted.best_match(list(rendering.FORMATS))
    if best is None:
        raise NotAcceptable("Rendered images are served as image/png or image/jpeg")
    return best


@bp.get("/studies/<study>/series/<series>/instances/<sop>/frames/<frames>")
def frames(study: str, series: str, sop: str, frames: str) -> Response:
    """Frames in their native encoding, as multipart/related application/octet-stream
    (PS3.18 §10.4.1.1.4); also the target of Pixel Data's BulkDataURI."""
    require_read()
    if not _accepts_octets(request.headers.get("Accept", "")):
        raise NotAcceptable(f'Frames are served as {MULTIPART}; type="{OCTETS}"')
    ds = dcmread(_path(_found(study, series, sop)[0]))
    numbers = _frame_numbers(frames, rendering.frame_count(ds))
    boundary = uuid.uuid4().hex
    body = b"".join(f"--{boundary}\r\nContent-Type: {OCTETS}\r\n\r\n".encode() + data
                    + _CRLF for data in rendering.frame_bytes(ds, numbers))
    return Response(body + f"--{boundary}--\r\n".encode(),
                    content_type=f'{MULTIPART}; type="{OCTETS}"; boundary={boundary}')


def _accepts_octets(header: str) -> bool:
    """Whether an Accept header allows multipart/related octet-stream frames (any
    transfer-syntax parameter is read as "as native frames")."""
    if not header.strip():
        return True
    for item in parse_list_header(header):
        mimetype, params = media_type(item)
        if mimetype in ("*/*", "multipart/*", OCTETS) or (
                mimetype == MULTIPART and
                params.get("type", OCTETS).lower() in (OCTETS, "*/*", "application/*")):
            return True
    return False


def _frame_numbers(value: str, count: int) -> list[int]:
    """``frames/1,3``: distinct frame numbers from 1 to the instance's ``count``
    (PS3.18 §9.5.1.2.1), so one answer is never larger than the instance; 400 for
    anything else."""
    numbers = [whole_number(part, "frames", count + 1, minimum=1) for part in value.split(",")]
    if max(numbers) > count or len(set(numbers)) != len(numbers):
        raise BadRequest(f"frames takes distinct frame numbers from 1 to {count}, not "
                         f"'{value[:60]}'", ["frames"])
    return numbers


def _found(study: str, series: str | None, sop: str | None) -> list[DicomInstance]:
    rows = instances(db(), study, series, sop)
    if not rows:
        raise NotFound("No stored instance matches " + request.path.removeprefix("/dicomweb/"))
    missing = [row.sop_instance_uid for row in rows if not _path(row).is_file()]
    if missing:  # indexed but gone from disk: an operator removed files
        log.error("stored instance files are missing", extra={"sop_instance_uids": missing})
        raise Gone(f"{len(missing)} instance file(s) are no longer available")
    return rows


def _representation(rows: list[DicomInstance], single: bool) -> tuple[str, str]:
    """The first media type and transfer syntax the Accept header allows that can be
    served: as stored (``*``), or Explicit VR Little Endian, the default."""
    ranges = [media_type(v) for v in parse_list_header(request.headers.get("Accept", ""))]
    for mimetype, params in ranges or [("*/*", {})]:
        syntax = str(params.get("transfer-syntax") or ExplicitVRLittleEndian)
        if syntax != "*" and syntax != ExplicitVRLittleEndian and \
                not all(row.transfer_syntax == syntax for row in rows):
            continue
        if mimetype in ("*/*", "multipart/*") or (
                mimetype == MULTIPART and str(params.get("type", DICOM)).lower() == DICOM):
            return MULTIPART, syntax
        if mimetype == DICOM and single:
            return DICOM, syntax
    raise NotAcceptable(f'Served as {MULTIPART}; type="{DICOM}" (or {DICOM} for one '
                        f"instance), in Explicit VR Little Endian ({ExplicitVRLittleEndian}, "
                        "the default) or as received (transfer-syntax=*)")


def _encoded(path: Path, stored: str, wanted: str) -> tuple[bytes, str]:
    """The file's bytes in ``wanted`` (``*``: as stored), and the syntax they are in.

    Explicit VR Little Endian is made by decompressing (pydicom's pixel
    handlers: RLE, JPEG, JPEG-LS, JPEG 2000) or by re-encoding an implicit-VR
    or big-endian file; the dataset is otherwise untouched.
    """
    if wanted == "*" or stored == wanted:
        return path.read_bytes(), stored
    ds = dcmread(path)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress()
    else:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue(), ExplicitVRLittleEndian


def _multipart(rows: list[DicomInstance], syntax: str) -> Response:
    boundary = uuid.uuid4().hex
    parts = [(_path(row), row.transfer_syntax) for row in rows]  # read before the session ends

    def body() -> Iterator[bytes]:  # one file in memory at a time
        for path, stored in parts:
            data, used = _encoded(path, stored, syntax)
            yield (f"--{boundary}\r\nContent-Type: {DICOM}; transfer-syntax={used}"
                   "\r\n\r\n").encode()
            yield data
            yield _CRLF
        yield f"--{boundary}--\r\n".encode()

    return Response(body(), content_type=f'{MULTIPART}; type="{DICOM}"; boundary={boundary}')


def _path(row: DicomInstance) -> Path:
    return app_settings().var_dir / row.path


# QIDO-RS adds its routes to the same blueprint (and so the same audit).
from imaging_core import qido  # noqa: E402,F401
