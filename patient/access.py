"""Who may open a patient report link: the token, the date of birth, the session.

No Flask here: ``patient.views`` passes the request's store, address and cookie.

- **Finding a link** (``find``): the token's SHA-256 is looked up (one indexed
  query, whether or not it exists) and compared in constant time
  (``hmac.compare_digest``, against a fixed value when nothing was found), so an
  unknown, tampered, expired, revoked, superseded or locked link cost the same
  work and get the same neutral page (``patient.views``).
- **Wrong answers** lock a link after ``LINK_WRONG_LIMIT`` (kept on its row, so
  a restart does not reset it), and an address after ``ADDRESS_WRONG_LIMIT``
  wrong answers or unknown links across links within ``ADDRESS_WINDOW`` (rows of
  ``patient_link_failure``): that address then gets the neutral page until the
  window has passed. These limits are ScanPath's own choice (unverified against a
  published standard: NCSC and OWASP ASVS 2.2.1 ask for "anti-automation" and
  lockout without fixing numbers); 5 tries allow a few typing slips.
- **Sessions** (``start_session``): after the right answer, a random 256-bit id
  in the cookie; the row keeps its SHA-256 and the one link it opens. It ends
  after ``SESSION_IDLE`` without use, at the link's expiry, or at "close".
- **Audit** (``record_attempt``): every answer and every request on a link that is not
  available is an AuditEvent naming the DocumentReference (never the token) and
  the address.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date, datetime, timedelta

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from core.errors import Gone, NotFound
from fhir import audit
from fhir.dates import now_utc
from fhir.store import Store
from patient.links import CURRENT, _aware, is_open, token_hash
from patient.models import PatientLink, PatientLinkFailure, PatientLinkSession

LINK_WRONG_LIMIT = 5  # wrong dates of birth before a link locks (unverified: own choice)
ADDRESS_WRONG_LIMIT = 20  # wrong answers or unknown links per address and window
ADDRESS_WINDOW = timedelta(minutes=15)
SESSION_IDLE = timedelta(minutes=30)
_NOTHING = "0" * 64  # compared against when no row was found
# DICOM PS3.16 CID 400 (FHIR audit-event-type): DCM 110114 "User Authentication"; the
# patient proving who they are. Viewing the report afterwards: ISO 21089 "access".
AUTHENTICATION = {"system": "http://dicom.nema.org/resources/ontology/DCM",
                  "code": "110114", "display": "User Authentication"}
ACCESS = {"system": "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle",
          "code": "access", "display": "Access/View Record Lifecycle Event"}
AGENT = "patient-link"  # the AuditEvent agent: a person holding a link, not a client


def find(session: Session, token: str) -> PatientLink | None:
    """The link whose token is ``token``, whatever its state; None for no such link."""
    digest = token_hash(token)
    link = session.exec(select(PatientLink).where(
        col(PatientLink.token_hash) == digest)).first()
    same = hmac.compare_digest(link.token_hash if link else _NOTHING, digest)
    return link if link is not None and same else None


def available(store: Store, link: PatientLink | None) -> bool:
    """Whether ``link`` may be answered: open, and its DocumentReference still here
    and current (a client that deleted it, or changed it out of band, closes it)."""
    if link is None or not is_open(link):
        return False
    try:
        document = Store(store.session, store.settings).read(
            "DocumentReference", link.document_reference_id)
    except (NotFound, Gone):
        return False
    return document.get("status") == CURRENT


def address_blocked(session: Session, address: str) -> bool:
    """Whether ``address`` has reached the wrong-answer limit within the window."""
    since = now_utc() - ADDRESS_WINDOW
    count = session.exec(select(func.count()).select_from(PatientLinkFailure).where(
        col(PatientLinkFailure.address) == address[:64],
        col(PatientLinkFailure.at) > since)).one()
    return int(count) >= ADDRESS_WRONG_LIMIT


def count_failure(session: Session, address: str, link: PatientLink | None) -> None:
    """Count a wrong answer (or a request for an unknown link) from ``address``."""
    session.add(PatientLinkFailure(address=address[:64], link_id=link.id if link else None))


def wrong_answer(session: Session, link: PatientLink, address: str) -> None:
    """Count a wrong date of birth against ``link`` (locking it at the limit) and the
    address."""
    link.wrong_answers += 1
    if link.wrong_answers >= LINK_WRONG_LIMIT and link.locked_at is None:
        link.locked_at = now_utc()
    session.add(link)
    count_failure(session, address, link)


def answer_matches(expected: date, answer: date) -> bool:
    """Whether the answer is the birth date on record (compared in constant time)."""
    return hmac.compare_digest(expected.isoformat(), answer.isoformat())


def start_session(session: Session, link: PatientLink) -> str:
    """A new session for ``link``; the cookie value (only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    session.add(PatientLinkSession(token_hash=_hash(token), link_id=link.id or 0,
                                   expires_at=_session_end(link, now_utc())))
    return token


def session_opens(session: Session, cookie: str | None, link: PatientLink) -> bool:
    """Whether the session in ``cookie`` is alive and belongs to ``link`` (it is then
    kept alive for another ``SESSION_IDLE``)."""
    if not cookie:
        return False
    row = session.get(PatientLinkSession, _hash(cookie))
    now = now_utc()
    if row is None or row.link_id != link.id or _aware(row.expires_at) <= now:
        return False
    row.expires_at = _session_end(link, now)
    session.add(row)
    return True


def end_session(session: Session, cookie: str | None) -> None:
    """End the session in ``cookie`` (if any)."""
    if cookie:
        session.execute(delete(PatientLinkSession).where(
            col(PatientLinkSession.token_hash) == _hash(cookie)))


def _session_end(link: PatientLink, now: datetime) -> datetime:
    return min(now + SESSION_IDLE, _aware(link.expires_at))


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def record_attempt(store: Store, address: str | None, link: PatientLink | None, outcome: str,
          description: str, *, viewed: bool = False, bounded: bool = False) -> None:
    """The AuditEvent of one request on a link: ``description`` says what happened
    (never the token); ``bounded`` (an address past its limit) goes through the
    per-address bound on unnamed requests (``fhir.audit.record``)."""
    what = audit.Interaction("read" if viewed else "operation", "DocumentReference",
                             "anonymous" if bounded else AGENT, address,
                             entities=[f"DocumentReference/{link.document_reference_id}"]
                             if link else [],
                             event_type=ACCESS if viewed else AUTHENTICATION)
    audit.record(Store(store.session, store.settings), what, outcome, description)
