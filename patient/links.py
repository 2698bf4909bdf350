"""Patient report links: made at sign-off, superseded by amendments, revoked (CONTRACT §7).

**When.** A DiagnosticReport written as ``final`` (sign-off), or as a new
``amended``/``corrected`` version (an amendment), gets a link: the after-write
hook runs in the transaction of the report's write, so staff sign-off
(``imaging_core.staffviews``) and a RIS's PUT or PATCH both make one, and a
refused sign-off makes none. The imaging core's own re-issue of a signed report
(new PDF, same content; ``referral.orders.workflow_write``) makes none. A
patient whose ``birthDate`` is not a full date gets no link (the second factor
could never be checked); this is logged as a warning.

**What.** A DocumentReference (``status`` current, ``type`` LOINC 18748-4,
``subject`` the patient, ``context.related`` the DiagnosticReport version,
``context.period`` until expiry, ``content[0].attachment`` the page) and a
``patient_link`` row. An amendment supersedes the earlier link: its row and its
DocumentReference become ``superseded`` and the link shows the neutral "not
available" page (never the old version: a patient must not read a report the
radiologist has corrected); the new DocumentReference ``relatesTo`` replaces it.

**The token and where its URL lives.** ``token = base64url(HMAC-SHA256(secret
key, "patient-link:" + salt))`` with a 256-bit per-link ``salt`` from
``secrets``. The database keeps the salt and ``SHA-256(token)``, never the token,
and the stored DocumentReference has no ``attachment.url``: the URL
``{public_url}/r/{token}`` is computed again for each client read, vread,
history and search (``fhir.store.register_read_transform``), and only while the
link is current and unexpired. A copy of the database alone does not give the
tokens (the secret key is not in it; SHA-256 does not run backwards); the
database with the secret key does, as it must for the GP system to be shown the
URL (CONTRACT §7).

**Revoking.** A client may change a link's DocumentReference only by setting
``status`` to ``entered-in-error`` (PUT or PATCH; anything else is 422, another
status 409); staff revoke through ``revoke``. Either way the link shows the
neutral page from then on. A revocation holds for the report's later versions too:
an amendment after it makes no new link (whoever revoked it, e.g. a GP who wants to
give the result in person, decided the patient should not read it from a link).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from core.errors import Conflict, Gone, NotFound, Unprocessable
from core.settings import Settings
from fhir.dates import instant, now_utc
from fhir.store import (
    Store,
    register_after_write_hook,
    register_read_transform,
    register_write_hook,
)
from imaging_core.review import SIGNED_OFF
from patient.models import PatientLink
from referral import orders

log = logging.getLogger(__name__)

CURRENT, SUPERSEDED, REVOKED = "current", "superseded", "revoked"
ENTERED_IN_ERROR = "entered-in-error"  # R4 document-reference-status: the revoking status
# LOINC 18748-4 "Diagnostic imaging study" (LOINC Document Ontology: kind of document
# "Study report", setting "Radiology"): what the link leads to.
DOCUMENT_TYPE = {"coding": [{"system": "http://loinc.org", "code": "18748-4",
                             "display": "Diagnostic imaging study"}],
                 "text": "Link for the patient to read their scan result"}
PAGE_TITLE = "Your scan result"


def register() -> None:
    """Make links at sign-off and amendment; guard and show their DocumentReferences."""
    register_after_write_hook("DiagnosticReport", on_report_written)
    register_write_hook("DocumentReference", on_link_write)
    register_read_transform("DocumentReference", with_url)


def make_token(settings: Settings, salt: str) -> str:
    """The link token for ``salt`` (hex): 43 base64url characters (256 bits)."""
    mac = hmac.new(settings.secret_key.encode(), b"patient-link:" + bytes.fromhex(salt),
                   hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def token_hash(token: str) -> str:
    """SHA-256 of ``token``, hex: what ``patient_link.token_hash`` holds."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def link_url(settings: Settings, link: PatientLink) -> str:
    """``{public_url}/r/{token}``."""
    return f"{settings.public_url}/r/{make_token(settings, link.salt)}"


def is_live(link: PatientLink, now: datetime | None = None) -> bool:
    """Whether ``link`` is current (not superseded or revoked) and unexpired."""
    return link.status == CURRENT and _aware(link.expires_at) > (now or now_utc())


def is_open(link: PatientLink, now: datetime | None = None) -> bool:
    """Whether ``link`` may be answered: live and not locked (its DocumentReference
    is checked by ``patient.access``)."""
    return is_live(link, now) and link.locked_at is None


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes: they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def on_report_written(store: Store, stored: dict[str, Any],
                      previous: dict[str, Any] | None) -> None:
    """After a DiagnosticReport write: a link when it was signed off or amended."""
    if not _newly_signed(stored, previous) or \
            orders.is_workflow_write(store, f"DiagnosticReport/{stored['id']}"):
        return
    if was_revoked(store.session, str(stored["id"])):
        log.warning("no patient link: the report's last link was revoked",
                    extra={"diagnostic_report_id": stored["id"]})
        return
    create_link(store, stored)


def was_revoked(session: Session, report_id: str) -> bool:
    """Whether the report's latest link was revoked: an amendment then makes no new one."""
    latest = session.exec(select(PatientLink).where(
        col(PatientLink.diagnostic_report_id) == report_id)
        .order_by(col(PatientLink.created_at).desc())).first()
    return latest is not None and latest.status == REVOKED


def _newly_signed(stored: dict[str, Any], previous: dict[str, Any] | None) -> bool:
    if stored.get("status") not in SIGNED_OFF:
        return False
    if previous is None or previous.get("status") not in SIGNED_OFF:
        return True
    return _content(stored) != _content(previous)


def _content(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in ("meta", "status", "issued")}


def create_link(store: Store, report: dict[str, Any]) -> PatientLink | None:
    """The link for this version of ``report`` (earlier ones superseded); None, and a
    warning, when the report names no Patient with a full birth date."""
    patient_id = _patient_id(report)
    if patient_id is None or birth_date(store, patient_id) is None:
        log.warning("no patient link: the report's patient has no full birth date",
                    extra={"diagnostic_report_id": report["id"]})
        return None
    server = Store(store.session, store.settings)  # the server's own write, not the client's
    earlier = _supersede(server, str(report["id"]))
    now = now_utc()
    link = PatientLink(document_reference_id=str(uuid.uuid4()),
                       diagnostic_report_id=str(report["id"]),
                       report_version=str(report["meta"]["versionId"]), patient_id=patient_id,
                       salt=secrets.token_bytes(32).hex(), token_hash="", created_at=now,
                       expires_at=now + timedelta(days=store.settings.patient_link_days))
    link.token_hash = token_hash(make_token(store.settings, link.salt))
    server.create("DocumentReference", _document(link, earlier),
                  resource_id=link.document_reference_id)
    store.session.add(link)
    store.session.flush()
    deliver(link)
    return link


def _patient_id(report: dict[str, Any]) -> str | None:
    reference = str((report.get("subject") or {}).get("reference", ""))
    return reference.removeprefix("Patient/") if reference.startswith("Patient/") else None


def birth_date(store: Store, patient_id: str) -> date | None:
    """The Patient's ``birthDate`` when it is a full date; None when it is partial,
    missing, or the Patient is gone (then no answer can be checked)."""
    try:
        text = Store(store.session, store.settings).read("Patient", patient_id).get("birthDate")
        return date.fromisoformat(text) if isinstance(text, str) and len(text) == 10 else None
    except (NotFound, Gone, ValueError):
        return None


def _supersede(server: Store, report_id: str) -> list[str]:
    """Mark the report's current links superseded (rows and DocumentReferences); their
    DocumentReference ids."""
    earlier = server.session.exec(select(PatientLink).where(
        col(PatientLink.diagnostic_report_id) == report_id,
        col(PatientLink.status) == CURRENT)).all()
    for link in earlier:
        link.status = SUPERSEDED
        _set_document_status(server, link, SUPERSEDED)
    return [link.document_reference_id for link in earlier]


def _set_document_status(server: Store, link: PatientLink, status: str) -> None:
    document = server.read("DocumentReference", link.document_reference_id)
    if document.get("status") != status:
        document = {k: v for k, v in document.items() if k != "meta"}
        server.update("DocumentReference", link.document_reference_id,
                      {**document, "status": status})


def _document(link: PatientLink, replaces: list[str]) -> dict[str, Any]:
    """The DocumentReference of ``link`` as stored (no URL: ``with_url`` adds it)."""
    until = link.expires_at.strftime("%d %B %Y").lstrip("0")
    document: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": CURRENT, "type": DOCUMENT_TYPE,
        "subject": {"reference": f"Patient/{link.patient_id}"},
        "date": instant(link.created_at),
        "description": ("A private link for the patient to read their scan result in plain "
                        f"English. It asks for their date of birth and works until {until}."),
        "content": [{"attachment": {"contentType": "text/html", "language": "en-GB",
                                    "title": PAGE_TITLE}}],
        "context": {"period": {"start": instant(link.created_at),
                               "end": instant(link.expires_at)},
                    "related": [{"reference": f"DiagnosticReport/{link.diagnostic_report_id}"
                                 f"/_history/{link.report_version}"}]}}
    if replaces:
        document["relatesTo"] = [{"code": "replaces",
                                  "target": {"reference": f"DocumentReference/{ref}"}}
                                 for ref in replaces]
    return document


def deliver(link: PatientLink) -> None:
    """Make ``link`` known to whoever passes it to the patient.

    Today that is only the GP system, which finds the DocumentReference by FHIR search
    (README "Patient report links"); there is no SMS or e-mail gateway. Logged
    without the token.
    """
    log.info("patient report link available to the GP system", extra={
        "document_reference_id": link.document_reference_id,
        "diagnostic_report_id": link.diagnostic_report_id})


def link_of_document(session: Session, document_id: str) -> PatientLink | None:
    """The link whose DocumentReference is ``document_id``, if it is one."""
    return session.exec(select(PatientLink).where(
        col(PatientLink.document_reference_id) == document_id)).first()


def on_link_write(store: Store, resource: dict[str, Any],
                  previous: dict[str, Any] | None) -> None:
    """A client's write of a link's DocumentReference: a revocation or nothing.

    Raises
    ------
    Unprocessable (422)
        Any change but ``status`` (the URL a client was shown may be sent back).
    Conflict (409)
        A status other than ``entered-in-error``, or un-revoking.
    """
    link = link_of_document(store.session, str(resource["id"])) if previous else None
    if link is None:
        return
    _drop_url(resource)
    if store.actor is None or previous is None:
        return
    if _editable(resource) != _editable(previous):
        raise Unprocessable(f"DocumentReference/{resource['id']} is a patient report link: "
                            "only its status may change, to entered-in-error (revoking it)",
                            ["DocumentReference"])
    after = resource.get("status")
    if after == previous.get("status"):
        return
    if after != ENTERED_IN_ERROR:
        raise Conflict(f"DocumentReference/{resource['id']} is a patient report link: it "
                       f"can only be revoked (status entered-in-error), not made {after}",
                       ["DocumentReference.status"])
    mark_revoked(link, f"client {store.actor}", "entered-in-error by the client")


def _drop_url(resource: dict[str, Any]) -> None:
    """Take the computed URL out before storing (it holds the token)."""
    for content in resource.get("content", []) or []:
        if isinstance(content, dict) and isinstance(content.get("attachment"), dict):
            content["attachment"].pop("url", None)


def _editable(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("meta", "status", "id")}


def mark_revoked(link: PatientLink, by: str, reason: str) -> None:
    """Record on the row that ``link`` is revoked (its DocumentReference is the caller's)."""
    link.status, link.revoked_at = REVOKED, now_utc()
    link.revoked_by, link.revoked_reason = by[:128], reason[:500]
    log.info("patient report link revoked", extra={
        "document_reference_id": link.document_reference_id, "by": link.revoked_by})


def revoke(store: Store, link: PatientLink, by: str, reason: str) -> None:
    """Revoke ``link`` (staff): its DocumentReference becomes entered-in-error."""
    mark_revoked(link, by, reason)
    _set_document_status(Store(store.session, store.settings), link, ENTERED_IN_ERROR)
    store.session.add(link)


def current_link(session: Session, report_id: str) -> PatientLink | None:
    """The report's current link, if it has one."""
    return session.exec(select(PatientLink).where(
        col(PatientLink.diagnostic_report_id) == report_id,
        col(PatientLink.status) == CURRENT)).first()


def with_url(store: Store, document: dict[str, Any]) -> dict[str, Any]:
    """A link's DocumentReference as a client is shown it: with the URL while the
    link is current and unexpired (``register_read_transform``)."""
    link = link_of_document(store.session, str(document.get("id")))
    contents = document.get("content") or []
    if link is None or not is_live(link) or document.get("status") != CURRENT or not contents:
        return document
    first = contents[0]
    attachment = {**first.get("attachment", {}), "url": link_url(store.settings, link)}
    return {**document, "content": [{**first, "attachment": attachment}, *contents[1:]]}
