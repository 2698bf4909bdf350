"""The files a patient's report page links: key images, the 3D model, its still, the PDF.

Each function reads one signed report version (``vread``) and returns only what that
version attaches: key images through ``media`` (Media, then its Binary), the GLB and the
PDF through ``presentedForm`` (Binary). A Media of another subject, or a Binary whose
``securityContext`` is not the report's order, is never returned (None, as missing).

The PDF: at sign-off the imaging core issues the PDF again (FINAL, who signed) as the
next version of the report, changing only ``presentedForm`` (``imaging_core.results``
``_reissue``). So the signed version's own PDF is the one the versions after it with the
same content introduced; until that reissue has run there is none (None), never the
PRELIMINARY one.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from core.errors import FhirError
from fhir.store import Store
from imaging_core.errors import MeshError
from imaging_core.mesh import read_glb
from imaging_core.review import SIGNED_OFF
from patient.still import render_still

log = logging.getLogger(__name__)

PNG, GLB, PDF = "image/png", "model/gltf-binary", "application/pdf"


def key_image(store: Store, report_id: str, version: str, n: int) -> bytes | None:
    """The report version's ``n``-th key image (from 1) as PNG bytes; None if it has none."""
    report = _signed(store, report_id, version)
    media = (report or {}).get("media", [])
    if report is None or not 1 <= n <= len(media):
        return None
    ref = str(media[n - 1].get("link", {}).get("reference", ""))
    item = _read(store, "Media", ref.removeprefix("Media/")) if ref.startswith("Media/") else None
    if item is None or item.get("subject") != report.get("subject"):
        return None
    content = item.get("content", {})
    return _binary(store, report, str(content.get("url", "")), PNG) \
        if content.get("contentType") == PNG else None


def model_glb(store: Store, report_id: str, version: str) -> bytes | None:
    """The report version's 3D model (GLB bytes); None if it has none."""
    report = _signed(store, report_id, version)
    return _form(store, report, GLB) if report is not None else None


def model_still(store: Store, report_id: str, version: str) -> bytes | None:
    """A PNG of the 3D model seen from the front (``patient.still``); None without a model
    or when the model cannot be read."""
    glb = model_glb(store, report_id, version)
    if glb is None:
        return None
    try:
        return render_still(read_glb(glb))
    except MeshError as error:
        log.warning("patient page: 3D model unreadable", extra={"error": str(error)})
        return None


def report_pdf(store: Store, report_id: str, version: str) -> bytes | None:
    """The PDF issued for this signed version (module docstring); None until it exists."""
    report = _signed(store, report_id, version)
    if report is None:
        return None
    issued = _issued_for(store, report_id, report)
    return _form(store, issued, PDF) if issued is not None else None


# --- reading ------------------------------------------------------------------------------

def _signed(store: Store, report_id: str, version: str) -> dict[str, Any] | None:
    try:
        report = store.vread("DiagnosticReport", report_id, version)
    except FhirError:
        return None
    return report if report.get("status") in SIGNED_OFF else None


def _read(store: Store, resource_type: str, ident: str) -> dict[str, Any] | None:
    try:
        return store.read(resource_type, ident)
    except FhirError:
        return None


def _form(store: Store, report: dict[str, Any], content_type: str) -> bytes | None:
    url = next((str(f.get("url", "")) for f in report.get("presentedForm", [])
                if f.get("contentType") == content_type), None)
    return _binary(store, report, url, content_type) if url else None


def _binary(store: Store, report: dict[str, Any], url: str,
            content_type: str) -> bytes | None:
    """The Binary's bytes, if it is the report's order's and of ``content_type``."""
    binary = _read(store, "Binary", url.removeprefix("Binary/")) \
        if url.startswith("Binary/") else None
    orders = {str(r.get("reference")) for r in report.get("basedOn", [])}
    if binary is None or binary.get("contentType") != content_type or \
            binary.get("securityContext", {}).get("reference") not in orders:
        return None
    try:
        return base64.b64decode(binary.get("data", ""), validate=True) or None
    except (binascii.Error, ValueError):
        return None


def _content(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in ("meta", "presentedForm")}


def _pdf_url(report: dict[str, Any]) -> str | None:
    return next((str(f.get("url")) for f in report.get("presentedForm", [])
                 if f.get("contentType") == PDF), None)


def _issued_for(store: Store, report_id: str,
                signed: dict[str, Any]) -> dict[str, Any] | None:
    """The latest version after ``signed`` with its content that brought a new PDF."""
    newer = sorted((r for _, r in store.history("DiagnosticReport", report_id)
                    if int(r["meta"]["versionId"]) > int(signed["meta"]["versionId"])),
                   key=lambda r: int(r["meta"]["versionId"]))
    found, previous = None, signed
    for version in newer:
        if _content(version) != _content(signed):
            break
        if _pdf_url(version) != _pdf_url(previous):
            found = version
        previous = version
    return found
