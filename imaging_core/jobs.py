"""Durable analysis jobs: scheduling complete studies, claiming, running, recovering.

A study is complete once no instance has arrived for
``SCANPATH_STUDY_IDLE_SECONDS`` *and* every series that states its own size
has it all: Images in Acquisition (0020,1002), General Image module, PS3.3
C.7.6.1, counted per series and Acquisition Number (0020,0012). A study
short of its stated count waits for ``SCANPATH_STUDY_INCOMPLETE_SECONDS`` of
quiet instead (a sender that paused, or one that states a wrong count). The
quiet time counts only while this worker has been running, so a restart
never makes a resumed transfer look finished.

A study whose instances changed after its last job was queued (a resumed
transfer, a late image, a corrected copy) is stale and gets a new job: the
idempotency key is StudyInstanceUID, analyser version, the number of
received instances and a digest of their SOP Instance UIDs and content
hashes, so each instance set is analysed once per analyser version (the
microsoft/fhir-server SQL job queue pattern). Held studies
(``ReceivedStudy.hold_reason``) are never scheduled.

A worker claims a job with a lease; a job whose lease ran out (its worker
crashed) is claimed again, up to ``SCANPATH_JOB_MAX_ATTEMPTS``. The engine
that carries jobs only passes ids: the in-process :class:`Worker` thread by
default, Celery on Redis when ``SCANPATH_BROKER_URL`` is set.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.db import engine_for
from core.errors import FhirError
from core.polling import Poller
from core.settings import Settings
from fhir.dates import now_utc
from fhir.store import Store
from imaging_core import pacs
from imaging_core.models import AnalysisJob, DicomInstance, ReceivedStudy
from imaging_core.studies import refresh_complete_studies

log = logging.getLogger(__name__)


Runner = Callable[[Settings, AnalysisJob], str]
_ANALYSERS: dict[str, tuple[str, Runner]] = {}
_WARM_UPS: dict[str, Callable[[], None]] = {}


def register_analyser(procedure: str, version: str, runner: Runner,
                      warm: Callable[[], None] | None = None) -> None:
    """``runner(settings, job)`` analyses a study of ``procedure`` and returns the report id.

    ``warm()``, when given, does once per worker process what the first job would
    otherwise pay for (compiling code); :func:`warm_analysers` runs it.
    """
    _ANALYSERS[procedure] = (version, runner)
    if warm is not None:
        _WARM_UPS[procedure] = warm


def warm_analysers() -> None:
    """Run every registered analyser's warm-up; one that fails is logged (the first job
    then pays for it), never fatal."""
    for procedure, warm in _WARM_UPS.items():
        started = time.perf_counter()
        try:
            warm()
        except Exception as error:  # a warm-up is an optimisation: the job still runs
            log.warning("analyser warm-up failed",
                        extra={"procedure": procedure, "error": str(error)})
            continue
        log.info("analyser warmed", extra={"procedure": procedure,
                                           "seconds": round(time.perf_counter() - started, 2)})


def schedule(session: Session, settings: Settings, now: datetime | None = None,
             running_since: datetime | None = None) -> list[int]:
    """Create a job for every complete (or stale), matched, unheld study an analyser covers.

    ``running_since`` is when the caller started watching; nothing is judged
    quiet before the idle window has passed since then (a restart is not quiet).
    """
    now = now or now_utc()
    idle = timedelta(seconds=settings.study_idle_seconds)
    if running_since is not None and now - running_since < idle:
        return []
    newer_job = exists().where(col(AnalysisJob.study_uid) == col(ReceivedStudy.study_uid),
                               col(AnalysisJob.created_at) >= col(ReceivedStudy.last_received_at))
    waiting = session.exec(select(ReceivedStudy).where(
        col(ReceivedStudy.matched), col(ReceivedStudy.service_request_id).is_not(None),
        col(ReceivedStudy.hold_reason).is_(None),
        col(ReceivedStudy.last_received_at) <= now - idle, ~newer_job)).all()
    created = []
    for study in waiting:
        job = _new_job(session, settings, study, now) if _complete(session, settings, study,
                                                                      now) else None
        if job is not None:
            created.append(job)
    return created


def received(session: Session, study_uid: str) -> list[DicomInstance]:
    """The study's instances from outside (not the analysis' own SR and SEG)."""
    return list(session.exec(select(DicomInstance).where(
        col(DicomInstance.study_uid) == study_uid,
        col(DicomInstance.source) != "derived")).all())


def _complete(session: Session, settings: Settings, study: ReceivedStudy,
              now: datetime) -> bool:
    """Every series holds the images it says it has, or the longer quiet time has passed."""
    if study.last_received_at <= now - timedelta(seconds=settings.study_incomplete_seconds):
        return True
    counted: dict[tuple[str, int | None], list[DicomInstance]] = {}
    for row in received(session, study.study_uid):
        counted.setdefault((row.series_uid, row.acquisition_number), []).append(row)
    short = {key: len(rows) for key, rows in counted.items()
             if len(rows) < max(row.images_in_acquisition or 0 for row in rows)}
    if short:
        log.info("study quiet but short of its stated image count; waiting", extra={
            "study_uid": study.study_uid, "short": len(short)})
    return not short


def instance_set_key(rows: list[DicomInstance]) -> str:
    """``n{count}-{digest}``: the received instances' UIDs and content hashes, 16 hex digits."""
    digest = hashlib.sha256("\n".join(sorted(f"{row.sop_instance_uid}:{row.content_hash}"
                                              for row in rows)).encode()).hexdigest()
    return f"n{len(rows)}-{digest[:16]}"


def _new_job(session: Session, settings: Settings, study: ReceivedStudy,
             now: datetime) -> int | None:
    procedure = _procedure_of(session, settings, study.service_request_id or "")
    if procedure not in _ANALYSERS:
        return None
    version = _ANALYSERS[procedure][0]
    rows = received(session, study.study_uid)
    job = AnalysisJob(idempotency_key=f"{study.study_uid}|{version}|{instance_set_key(rows)}",
                      study_uid=study.study_uid, instance_count=len(rows),
                      service_request_id=study.service_request_id or "", procedure=procedure,
                      analyser_version=version, status="queued", created_at=now,
                      updated_at=now)
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        return None  # another scheduler created it first, or this set was analysed already
    log.info("analysis job queued", extra={"job_id": job.id, "study_uid": study.study_uid,
                                           "instances": len(rows)})
    return job.id


def requeue(session: Session, made_by: AnalysisJob, suffix: str,
            report_id: str | None = None) -> int:
    """A queued job analysing ``made_by``'s study again with the same analyser; its id.

    The idempotency key is the study's current instance set plus ``suffix`` (a
    review's ``review-{decision}``, a sign-off's ``reissue-...``), so each purpose
    runs once per image set. ``report_id`` names the report it is for, if known.
    """
    instances = received(session, made_by.study_uid)
    now = now_utc()
    job = AnalysisJob(
        idempotency_key=f"{made_by.study_uid}|{made_by.analyser_version}|"
                        f"{instance_set_key(instances)}|{suffix}",
        study_uid=made_by.study_uid, service_request_id=made_by.service_request_id,
        procedure=made_by.procedure, analyser_version=made_by.analyser_version,
        status="queued", instance_count=len(instances), created_at=now, updated_at=now,
        diagnostic_report_id=report_id)
    session.add(job)
    session.flush()
    return job.id or 0


def _procedure_of(session: Session, settings: Settings, order_id: str) -> str | None:
    """The catalogue key the order carries (``{base}/CodeSystem/procedure``)."""
    try:
        order = Store(session, settings).read("ServiceRequest", order_id)
    except FhirError:
        return None
    system = f"{settings.canonical_base}/CodeSystem/procedure"
    return next((c.get("code") for c in (order.get("code") or {}).get("coding", [])
                 if c.get("system") == system), None)


def claim(session: Session, settings: Settings, worker: str, job_id: int | None = None,
          now: datetime | None = None) -> AnalysisJob | None:
    """Take the next runnable job (or ``job_id``), leasing it to ``worker``."""
    now = now or now_utc()
    runnable = or_(col(AnalysisJob.status) == "queued",
                   and_(col(AnalysisJob.status) == "running",
                        col(AnalysisJob.leased_until) < now))
    query = select(AnalysisJob).where(runnable,
                                      col(AnalysisJob.attempts) < settings.job_max_attempts)
    if job_id is not None:
        query = query.where(col(AnalysisJob.id) == job_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    job = session.exec(query.order_by(col(AnalysisJob.id)).limit(1)).first()
    if job is None:
        return None
    job.status, job.attempts, job.worker = "running", job.attempts + 1, worker
    job.leased_until = now + timedelta(seconds=settings.job_lease_seconds)
    job.updated_at = now
    session.add(job)
    session.commit()
    return job


def run_job(settings: Settings, worker: str, job_id: int | None = None) -> AnalysisJob | None:
    """Claim one job, run its analyser and record the outcome; None when there was none."""
    engine = engine_for(settings.database_url)
    with Session(engine, expire_on_commit=False) as session:
        job = claim(session, settings, worker, job_id)
    if job is None:
        return None
    try:
        report_id = _ANALYSERS[job.procedure][1](settings, job)
    except LeaseLost:
        log.warning("lease lost during analysis", extra={"job_id": job.id})
        return job
    except Exception as error:  # a failed attempt is recorded, never lost
        log.exception("analysis failed", extra={"job_id": job.id})
        return _finish(settings, job, None, f"{type(error).__name__}: {error}")
    return _finish(settings, job, report_id, None)


class LeaseLost(RuntimeError):
    """Another worker took the job over after this one's lease ran out."""


def check_lease(session: Session, job: AnalysisJob) -> AnalysisJob:
    """The job's row, locked, if ``job``'s worker still holds it; else ``LeaseLost``.

    Called in the transaction that writes results, so a worker whose lease
    ran out can never publish beside the one that took over.
    """
    query = select(AnalysisJob).where(col(AnalysisJob.id) == job.id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = session.exec(query).one()
    if row.status != "running" or row.worker != job.worker or row.attempts != job.attempts:
        raise LeaseLost(f"job {job.id} now belongs to {row.worker} ({row.status})")
    return row


def _finish(settings: Settings, job: AnalysisJob, report_id: str | None,
            error: str | None) -> AnalysisJob:
    with Session(engine_for(settings.database_url), expire_on_commit=False) as session:
        try:
            row = check_lease(session, job)
        except LeaseLost:
            log.warning("job finished after losing its lease", extra={"job_id": job.id})
            return job
        if report_id is not None:
            row.status, row.diagnostic_report_id = "done", report_id
        else:
            exhausted = row.attempts >= settings.job_max_attempts
            row.status = "failed" if exhausted else "queued"
        row.error, row.leased_until, row.updated_at = error, None, now_utc()
        session.add(row)
        session.commit()
        return row


def fail_exhausted(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Mark crashed jobs that used up their attempts as failed, so someone looks."""
    now = now or now_utc()
    stale = session.exec(select(AnalysisJob).where(
        col(AnalysisJob.status) == "running", col(AnalysisJob.leased_until) < now,
        col(AnalysisJob.attempts) >= settings.job_max_attempts)).all()
    for job in stale:
        job.status, job.error, job.updated_at = "failed", "lease expired too often", now
        session.add(job)
    return len(stale)


def broker_due(session: Session, settings: Settings,
               now: datetime | None = None) -> list[AnalysisJob]:
    """Jobs to hand to the broker: never sent, retried, lost in transit, or crashed.

    A message is sent again only after a lease's length, so a busy queue is
    not flooded; ``claim`` makes any duplicate delivery a no-op.
    """
    now = now or now_utc()
    resend = or_(col(AnalysisJob.enqueued_at).is_(None),
                 col(AnalysisJob.enqueued_at) < now - timedelta(seconds=settings.job_lease_seconds),
                 col(AnalysisJob.enqueued_at) < col(AnalysisJob.updated_at))
    runnable = or_(col(AnalysisJob.status) == "queued",
                   and_(col(AnalysisJob.status) == "running",
                        col(AnalysisJob.leased_until) < now))
    return list(session.exec(select(AnalysisJob).where(
        runnable, resend, col(AnalysisJob.attempts) < settings.job_max_attempts)).all())


def worker_name() -> str:
    return f"{socket.gethostname()}:{threading.get_native_id()}"


class Worker(Poller):
    """Schedules complete studies and runs (or, with a broker, enqueues) their jobs."""

    def __init__(self, settings: Settings, enqueue: Callable[[int], None] | None = None) -> None:
        super().__init__("scanpath-analysis", settings.job_poll_seconds)
        self.settings = settings
        self.enqueue = enqueue
        self.started = now_utc()

    def run(self) -> None:
        warm_analysers()  # in this thread: the web and the listener start meanwhile
        super().run()

    def tick(self) -> None:
        """One round: schedule, run jobs here or hand their ids to the broker, then send
        the results due to PACS (``imaging_core.pacs``)."""
        with Session(engine_for(self.settings.database_url)) as session:
            cutoff = now_utc() - timedelta(seconds=self.settings.study_idle_seconds)
            refresh_complete_studies(Store(session, self.settings), cutoff)
            schedule(session, self.settings, running_since=self.started)
            fail_exhausted(session, self.settings)
            session.commit()
        if self.enqueue is not None:
            self._hand_to_broker(self.enqueue)
        else:
            while not self.stopping.is_set() and run_job(self.settings, worker_name()):
                pass
        pacs.deliver_due(self.settings)

    def _hand_to_broker(self, enqueue: Callable[[int], None]) -> None:
        with Session(engine_for(self.settings.database_url)) as session:
            for job in broker_due(session, self.settings):
                enqueue(job.id or 0)
                job.enqueued_at = now_utc()
                session.add(job)
            session.commit()
