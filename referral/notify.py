"""Delivering the notification outbox: claiming, sending, backing off, giving up.

Each :class:`referral.models.Notification` is sent until the endpoint answers
2xx (at least once: a worker that dies after sending, before recording it,
sends it again once its lease runs out). Rows of one Subscription and one
resource go out in the order they were written: a row waits while an earlier
one for the same resource is still queued. A failed attempt is retried after
an exponential backoff (:data:`BACKOFF_FIRST_SECONDS` doubling up to
:data:`BACKOFF_MAX_SECONDS`, ScanPath's choice: a GP system back after an
hour's outage hears within ten minutes); a row still failing
``SCANPATH_NOTIFY_GIVE_UP_HOURS`` after the change is marked ``dead``, kept,
and listed by ``scanpath notifications --dead``.

While its endpoint fails, the Subscription's ``status`` is ``error`` and its
``error`` says why (R4 Subscription.status and .error); the next success
sets it ``active`` again.

With ``SCANPATH_NOTIFY_HMAC_SECRET`` set each request carries
``X-ScanPath-Signature: sha256=<hex>``, the HMAC-SHA256 (RFC 2104, Python's
``hmac``) of the exact body bytes (empty for a ping) under that secret.

The engine follows :mod:`imaging_core.jobs`: the in-process
:class:`NotificationWorker` thread by default, or, with a broker, the thread
hands due ids to Celery and ``deliver(id)`` runs there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import requests
from sqlalchemy import ColumnElement, and_, exists, or_
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from core.db import engine_for
from core.errors import Conflict, FhirError, NotFound
from core.polling import Poller
from core.settings import Settings
from fhir.dates import instant, now_utc
from fhir.store import Store
from referral.models import Notification

log = logging.getLogger(__name__)

BACKOFF_FIRST_SECONDS = 15.0
BACKOFF_MAX_SECONDS = 600.0
SIGNATURE_HEADER = "X-ScanPath-Signature"
_EARLIER = aliased(Notification)


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failure: 15 s, 30 s, 60 s ... at most 10 min."""
    return timedelta(seconds=min(BACKOFF_FIRST_SECONDS * 2 ** (attempts - 1),
                                 BACKOFF_MAX_SECONDS))


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``body`` under ``secret`` (UTF-8)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _due(now: datetime) -> ColumnElement[bool]:
    """Queued, due, unleased, and with no earlier queued row for the same resource."""
    earlier = exists().where(
        col(_EARLIER.subscription_id) == col(Notification.subscription_id),
        col(_EARLIER.resource_type) == col(Notification.resource_type),
        col(_EARLIER.resource_id) == col(Notification.resource_id),
        col(_EARLIER.id) < col(Notification.id), col(_EARLIER.status) == "queued")
    return and_(col(Notification.status) == "queued", col(Notification.next_attempt_at) <= now,
                or_(col(Notification.leased_until).is_(None),
                    col(Notification.leased_until) < now), ~earlier)


def claim(session: Session, settings: Settings, worker: str,
          notification_id: int | None = None, now: datetime | None = None
          ) -> Notification | None:
    """Lease the next due notification (or ``notification_id`` if due) to ``worker``."""
    now = now or now_utc()
    query = select(Notification).where(_due(now))
    if notification_id is not None:
        query = query.where(col(Notification.id) == notification_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Notification)
    row = session.exec(query.order_by(col(Notification.id)).limit(1)).first()
    if row is None:
        return None
    row.attempts, row.worker, row.updated_at = row.attempts + 1, worker, now
    row.leased_until = now + timedelta(seconds=2 * settings.notify_timeout_seconds)
    session.add(row)
    session.commit()
    return row


def send(settings: Settings, row: Notification) -> str | None:
    """POST or PUT the notification; None on a 2xx answer, else why it failed."""
    body = (row.body or "").encode()
    headers = dict(json.loads(row.headers))
    if row.body is not None:
        headers["Content-Type"] = "application/fhir+json"
    if settings.notify_hmac_secret:
        headers[SIGNATURE_HEADER] = signature(settings.notify_hmac_secret, body)
    try:
        answer = requests.request(row.method, row.endpoint, data=body, headers=headers,
                                  timeout=settings.notify_timeout_seconds,
                                  allow_redirects=False)
    except requests.RequestException as error:
        return f"{type(error).__name__} reaching the endpoint"
    return None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code} " \
        "from the endpoint"


def deliver(settings: Settings, worker: str, notification_id: int | None = None,
            now: datetime | None = None) -> Notification | None:
    """Claim one due notification, send it and record the outcome; None if none was due."""
    with Session(engine_for(settings.database_url), expire_on_commit=False) as session:
        row = claim(session, settings, worker, notification_id, now)
    if row is None:
        return None
    return _record(settings, row, send(settings, row), now or now_utc())


def deliver_due(settings: Settings, worker: str, now: datetime | None = None) -> int:
    """Deliver every notification due at ``now``; the number of attempts made."""
    made = 0
    while deliver(settings, worker, now=now) is not None:
        made += 1
    return made


def _record(settings: Settings, sent: Notification, error: str | None,
            now: datetime) -> Notification:
    with Session(engine_for(settings.database_url), expire_on_commit=False) as session:
        row = session.get(Notification, sent.id)
        if row is None or row.status != "queued" or row.attempts != sent.attempts:
            return sent  # another worker took it over after this one's lease ran out
        give_up = row.created_at + timedelta(hours=settings.notify_give_up_hours)
        if error is None:
            row.status, row.delivered_at = "delivered", now
        elif now >= give_up:
            row.status = "dead"
            log.error("notification dead", extra={"notification_id": row.id,
                                                  "subscription_id": row.subscription_id})
        else:
            row.next_attempt_at = now + backoff(row.attempts)
        row.last_error, row.leased_until, row.updated_at = error, None, now
        session.add(row)
        _subscription_status(Store(session, settings), row.subscription_id, error, now)
        session.commit()
        return row


def _subscription_status(store: Store, subscription_id: str, error: str | None,
                         now: datetime) -> None:
    """``error`` with the reason after a failure, ``active`` again after a success."""
    try:
        subscription = store.read("Subscription", subscription_id)
    except FhirError:
        return  # deleted since: its queued notifications are still delivered
    status = subscription.get("status")
    if status not in ("active", "error"):
        return
    # A new version only when the state or the reason changes, not on every retry.
    if (status == "active" and error is None) or \
            (status == "error" and error and str(subscription.get("error")).startswith(error)):
        return
    wanted = {"status": "error", "error": f"{error} (since {instant(now)})"} if error else \
        {"status": "active"}
    updated = {k: v for k, v in subscription.items() if k not in ("error", "meta")}
    try:
        store.update("Subscription", subscription_id, {**updated, **wanted})
    except FhirError:
        log.exception("subscription status not updated",
                      extra={"subscription_id": subscription_id})


def listed(session: Session, status: str | None = None) -> list[Notification]:
    """Notifications, oldest first, optionally only those in ``status`` (e.g. ``dead``)."""
    query = select(Notification)
    if status is not None:
        query = query.where(col(Notification.status) == status)
    return list(session.exec(query.order_by(col(Notification.id))).all())


def retry(session: Session, notification_id: int, now: datetime | None = None) -> Notification:
    """Queue a ``dead`` notification for one more attempt now (a person asked); the row.
    The caller commits. A failure kills it again at once (its give-up time has passed).

    Raises
    ------
    NotFound
        When no such notification exists.
    Conflict
        When it is not dead (queued ones are tried anyway, delivered ones are done).
    """
    row = session.get(Notification, notification_id)
    if row is None:
        raise NotFound(f"Notification {notification_id} is not known")
    if row.status != "dead":
        raise Conflict(f"Notification {notification_id} is {row.status}, not dead: "
                       "only a dead one is retried")
    now = now or now_utc()
    row.status, row.next_attempt_at, row.leased_until, row.updated_at = "queued", now, None, now
    session.add(row)
    log.info("dead notification queued again", extra={"notification_id": notification_id})
    return row


def broker_due(session: Session, settings: Settings,
               now: datetime | None = None) -> list[Notification]:
    """Due notifications not handed to the broker within a lease's length."""
    now = now or now_utc()
    lease = timedelta(seconds=2 * settings.notify_timeout_seconds)
    resend = or_(col(Notification.enqueued_at).is_(None),
                 col(Notification.enqueued_at) < now - lease)
    return list(session.exec(select(Notification).where(_due(now), resend)).all())


class NotificationWorker(Poller):
    """Delivers due notifications here, or hands their ids to the broker."""

    def __init__(self, settings: Settings, worker: str,
                 enqueue: Callable[[int], None] | None = None) -> None:
        super().__init__("scanpath-notify", settings.job_poll_seconds)
        self.settings, self.worker, self.enqueue = settings, worker, enqueue

    def tick(self) -> None:
        """One round: deliver what is due, or hand it to the broker."""
        if self.enqueue is None:
            deliver_due(self.settings, self.worker)
            return
        with Session(engine_for(self.settings.database_url)) as session:
            for row in broker_due(session, self.settings):
                self.enqueue(row.id or 0)
                row.enqueued_at = now_utc()
                session.add(row)
            session.commit()
