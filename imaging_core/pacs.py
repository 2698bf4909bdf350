"""Results to PACS: every report's SR, SEG and Encapsulated PDF, by C-STORE, through an outbox.

CONTRACT §6 "Results to PACS". Each destination in ``SCANPATH_DICOM_DESTINATIONS``
(``AE@host:port``) receives the DICOM objects of a report's newest analysis.

- **Outbox.** :func:`record_results` keeps the objects (``result_object``) and
  :func:`queue_results_to_pacs` owes each of them to each destination
  (``pacs_delivery``), in the caller's transaction: the one that publishes or
  amends the report. Nothing is sent from inside that transaction, and a
  restart loses nothing, because the outbox is in the database.
- **Delivery.** :func:`deliver_due` claims due rows, opens one association per
  destination with pynetdicom as Storage SCU (PS3.4 Annex B), sends each
  object, and records the outcome. The analysis worker's tick
  (``imaging_core.jobs.Worker``) calls it, with Celery or without.
- **Retries.** A destination that cannot be reached, aborts, rejects the
  association transiently (A-ASSOCIATE-RJ result 2, PS3.8 9.3.4) or answers a
  status that may pass (Refused: Out of Resources 0xA7xx, Resource limitation
  0x0213, Processing failure 0x0110, any other unknown failure) is tried again
  after ``SCANPATH_PACS_RETRY_BASE_SECONDS``, doubling each time up to
  ``SCANPATH_PACS_RETRY_MAX_SECONDS``, until ``SCANPATH_PACS_MAX_ATTEMPTS``.
- **Refusals.** A status that says the object will never be taken is final and
  the row becomes ``failed`` with the status and its meaning (PS3.4 B.2.3 and
  PS3.7 Annex C): Error: Data Set does not match SOP Class (0xA9xx), Error:
  Cannot understand (0xCxxx), SOP Class not supported (0x0122), Not authorized
  (0x0124), Invalid SOP Instance (0x0117), Unrecognized operation (0x0211),
  Mistyped argument (0x0212); so is a presentation context the peer refuses
  and a permanent association rejection (A-ASSOCIATE-RJ result 1: an unknown
  calling or called AE title). Warnings (0x0001, 0xBxxx: coerced, elements
  discarded, does not match SOP Class) count as sent, the warning kept in
  ``last_error``.

Nothing is dropped silently: every attempt, the last status and error stay on
the row, and a row that gives up is ``failed`` and logged as an error.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    Comprehensive3DSRStorage,
    ComprehensiveSRStorage,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SegmentationStorage,
)
from pynetdicom import AE
from pynetdicom.association import Association
from sqlalchemy import func
from sqlmodel import Session, col, select

from core.db import engine_for
from core.settings import DicomDestination, Settings, get_settings, parse_destination
from fhir.dates import now_utc
from imaging_core.models import PacsDelivery, ResultObject
from imaging_core.storage import part10_bytes, write_durably

log = logging.getLogger(__name__)

KINDS: dict[str, str] = {Comprehensive3DSRStorage: "sr", ComprehensiveSRStorage: "sr",
                         SegmentationStorage: "seg", EncapsulatedPDFStorage: "pdf"}
# Failure statuses that no retry can turn into a success (PS3.4 B.2.3, PS3.7 Annex C).
PERMANENT_STATUSES = {0x0117: "Invalid SOP Instance", 0x0122: "SOP Class not supported",
                      0x0124: "Refused: not authorized", 0x0211: "Unrecognized operation",
                      0x0212: "Mistyped argument"}
PERMANENT_RANGES = ((0xA900, 0xA9FF, "Error: Data Set does not match SOP Class"),
                    (0xC000, 0xCFFF, "Error: Cannot understand"))
WARNING_STATUSES = (0x0001, 0xB000, 0xB006, 0xB007)  # PS3.4 B.2.3, PS3.7 C.3
REJECTED_PERMANENT = 1  # A-ASSOCIATE-RJ Result (PS3.8 9.3.4)
CLAIM_BATCH = 200  # rows one tick takes; more wait for the next tick

Verdict = Literal["sent", "retry", "failed"]


@dataclass(frozen=True)
class Outcome:
    """What became of one C-STORE: sent, to be retried, or failed for good."""

    verdict: Verdict
    status: int | None = None  # the DIMSE status, when the peer answered
    error: str | None = None


def record_results(session: Session, settings: Settings, report_id: str, job_id: int,
                   datasets: Sequence[Dataset]) -> list[ResultObject]:
    """Keep ``datasets`` (SR, SEG, Encapsulated PDF) as report ``report_id``'s newest set.

    Each is written as a content-addressed Part 10 file under the var
    directory (an SR or SEG already stored with the study is the same file).
    The caller commits. Raises ValueError for an object of another SOP Class.
    """
    now, kept = now_utc(), []
    for ds in datasets:
        kind = KINDS.get(str(ds.SOPClassUID))
        if kind is None:
            raise ValueError(f"SOP Class {ds.SOPClassUID} is not a result sent to PACS")
        data = part10_bytes(ds)
        path = write_durably(settings.var_dir, hashlib.sha256(data).hexdigest(), data)
        row = ResultObject(diagnostic_report_id=report_id, job_id=job_id, kind=kind,
                           sop_class_uid=str(ds.SOPClassUID),
                           sop_instance_uid=str(ds.SOPInstanceUID), path=path, created_at=now)
        session.add(row)
        kept.append(row)
    session.flush()
    return kept


def latest_objects(session: Session, report_id: str) -> list[ResultObject]:
    """The objects of the report's newest analysis (its highest job id); [] when none."""
    newest = session.exec(select(func.max(ResultObject.job_id)).where(
        col(ResultObject.diagnostic_report_id) == report_id)).one()
    if newest is None:
        return []
    return list(session.exec(select(ResultObject).where(
        col(ResultObject.diagnostic_report_id) == report_id,
        col(ResultObject.job_id) == newest).order_by(col(ResultObject.id))).all())


def queue_results_to_pacs(session: Session, report_id: str,
                          settings: Settings | None = None) -> list[PacsDelivery]:
    """Owe the report's newest SR, SEG and PDF to every configured destination.

    Call it in the transaction that publishes, amends or signs off the report
    (the caller commits); ``settings`` defaults to the process's. An object
    already pending or sent to a destination is not queued again; one that
    failed there is (a sign-off is a new chance). Returns the new outbox rows,
    none when no destination is configured or the report has no objects.
    """
    settings = settings or get_settings()
    now, queued = now_utc(), []
    for obj in latest_objects(session, report_id):
        for destination in map(str, settings.dicom_destinations):
            if _owed(session, obj, destination):
                continue
            row = PacsDelivery(result_object_id=obj.id or 0, diagnostic_report_id=report_id,
                               destination=destination, status="pending", next_attempt_at=now,
                               created_at=now, updated_at=now)
            session.add(row)
            queued.append(row)
    session.flush()
    return queued


def _owed(session: Session, obj: ResultObject, destination: str) -> bool:
    return session.exec(select(PacsDelivery.id).where(
        col(PacsDelivery.result_object_id) == obj.id,
        col(PacsDelivery.destination) == destination,
        col(PacsDelivery.status).in_(("pending", "sent")))).first() is not None


def backoff(settings: Settings, attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed try: base x 2^(attempts-1), capped."""
    seconds = settings.pacs_retry_base_seconds * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.pacs_retry_max_seconds))


def deliver_due(settings: Settings, now: datetime | None = None) -> list[PacsDelivery]:
    """Send every pending delivery due at ``now``; the rows tried, as recorded.

    One association per destination. A claimed row is not due again until
    its lease (four network timeouts) has passed, so a worker that dies while
    sending leaves it to be tried again, never lost.
    """
    now = now or now_utc()
    engine = engine_for(settings.database_url)
    with Session(engine, expire_on_commit=False) as session:
        claimed = _claim(session, settings, now)
    if not claimed:
        return []
    by_destination: dict[str, list[tuple[PacsDelivery, ResultObject]]] = {}
    for pair in claimed:
        by_destination.setdefault(pair[0].destination, []).append(pair)
    outcomes: dict[int, Outcome] = {}
    for destination, pairs in by_destination.items():
        outcomes.update(_send(settings, destination, pairs))
    with Session(engine, expire_on_commit=False) as session:
        recorded = [_record(session, settings, row.id or 0, outcomes[row.id or 0], now)
                    for row, _ in claimed]
        session.commit()
    return recorded


def _claim(session: Session, settings: Settings,
           now: datetime) -> list[tuple[PacsDelivery, ResultObject]]:
    query = select(PacsDelivery, ResultObject).join(
        ResultObject, col(ResultObject.id) == col(PacsDelivery.result_object_id)).where(
        col(PacsDelivery.status) == "pending", col(PacsDelivery.next_attempt_at) <= now
    ).order_by(col(PacsDelivery.id)).limit(CLAIM_BATCH)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=PacsDelivery)
    pairs = list(session.exec(query).all())
    lease = timedelta(seconds=4 * settings.pacs_timeout_seconds)
    for row, _ in pairs:
        row.attempts, row.next_attempt_at, row.updated_at = row.attempts + 1, now + lease, now
        session.add(row)
    session.commit()
    return [(row, obj) for row, obj in pairs]


def _record(session: Session, settings: Settings, row_id: int, outcome: Outcome,
            now: datetime) -> PacsDelivery:
    row = session.get_one(PacsDelivery, row_id)
    row.last_status, row.last_error, row.updated_at = outcome.status, outcome.error, now
    verdict = outcome.verdict
    if verdict == "retry" and row.attempts >= settings.pacs_max_attempts:
        verdict, row.last_error = "failed", f"gave up after {row.attempts} attempts: " \
            f"{outcome.error}"
    if verdict == "sent":
        row.status, row.sent_at = "sent", now
    elif verdict == "failed":
        row.status = "failed"
        log.error("result not delivered to PACS", extra={
            "delivery_id": row_id, "destination": row.destination, "error": row.last_error})
    else:
        row.next_attempt_at = now + backoff(settings, row.attempts)
        log.warning("PACS delivery failed; will retry", extra={
            "delivery_id": row_id, "destination": row.destination, "error": outcome.error,
            "next_attempt_at": row.next_attempt_at.isoformat()})
    session.add(row)
    return row


def _send(settings: Settings, destination: str,
          pairs: list[tuple[PacsDelivery, ResultObject]]) -> dict[int, Outcome]:
    """C-STORE each object to ``destination`` over one association; an outcome per row id."""
    outcomes: dict[int, Outcome] = {}
    datasets: dict[int, Dataset] = {}
    for row, obj in pairs:
        try:
            datasets[row.id or 0] = dcmread(settings.var_dir / obj.path)
        except (OSError, InvalidDicomError) as error:  # gone or damaged: no retry mends it
            outcomes[row.id or 0] = Outcome("failed", None, f"result file unreadable: {error}")
    if not datasets:
        return outcomes
    peer = parse_destination(destination)
    assoc = _associate(settings, peer, list(datasets.values()))
    if not assoc.is_established:
        refused = _not_associated(assoc, peer)
        return outcomes | dict.fromkeys(datasets, refused)
    try:
        for row_id, ds in datasets.items():
            outcomes[row_id] = _store(assoc, ds, peer)
    finally:
        if assoc.is_established:
            assoc.release()
    return outcomes


def _associate(settings: Settings, peer: DicomDestination,
               datasets: list[Dataset]) -> Association:
    ae = AE(ae_title=settings.dicom_ae_title)
    timeout = settings.pacs_timeout_seconds
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    syntaxes = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    for ds in datasets:
        own = ds.file_meta.TransferSyntaxUID
        ae.add_requested_context(ds.SOPClassUID, [own] + [s for s in syntaxes if s != own])
    return ae.associate(peer.host, peer.port, ae_title=peer.ae_title)


def _not_associated(assoc: Association, peer: DicomDestination) -> Outcome:
    """A permanent rejection fails the rows; anything else (down, transient) retries them."""
    if assoc.is_rejected:
        answer = assoc.acceptor.primitive
        result = getattr(answer, "result", None)
        why = f"association rejected by {peer} ({getattr(answer, 'result_str', '?')}: " \
              f"{getattr(answer, 'reason_str', '?')})"
        return Outcome("failed" if result == REJECTED_PERMANENT else "retry", None, why)
    return Outcome("retry", None, f"no association with {peer}: unreachable, timed out or "
                   "aborted")


def _store(assoc: Association, ds: Dataset, peer: DicomDestination) -> Outcome:
    if not assoc.is_established:
        return Outcome("retry", None, f"association with {peer} ended before this object")
    try:
        status = assoc.send_c_store(ds)
    except ValueError as error:  # no accepted presentation context for its SOP Class
        return Outcome("failed", None, f"{peer} does not accept {ds.SOPClassUID.name}: {error}")
    if "Status" not in status:
        return Outcome("retry", None, f"no C-STORE response from {peer} (aborted or timed out)")
    return classify(int(status.Status))


def classify(code: int) -> Outcome:
    """The verdict on a C-STORE response status (PS3.4 B.2.3, PS3.7 Annex C)."""
    if code == 0x0000:
        return Outcome("sent", code)
    if code in WARNING_STATUSES or 0xB000 <= code <= 0xBFFF:
        return Outcome("sent", code, f"stored with warning 0x{code:04X}")
    meaning = PERMANENT_STATUSES.get(code) or next(
        (text for low, high, text in PERMANENT_RANGES if low <= code <= high), None)
    if meaning is not None:
        return Outcome("failed", code, f"refused: 0x{code:04X} {meaning}")
    return Outcome("retry", code, f"failed: 0x{code:04X}")
