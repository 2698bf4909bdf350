"""Celery on Redis as the engine for analysis jobs and notification deliveries
(``SCANPATH_BROKER_URL``).

Messages carry only the job id; the job's state stays in ``analysis_job`` (a
notification's in ``notification``).
``acks_late`` with ``reject_on_worker_lost`` redelivers a job whose worker
died, and a prefetch of one keeps long analyses from queueing behind each
other (Celery docs, "Optimizing: prefetch limits"). Run a worker with
``celery -A imaging_core.tasks worker``.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_init

import core  # noqa: F401  (first: makes the project's ``fhir`` package resolvable)
from core.settings import Settings, get_settings

TASK = "scanpath.analyse_study"
NOTIFY_TASK = "scanpath.deliver_notification"


def make_celery(settings: Settings) -> Celery:
    app = Celery("scanpath", broker=settings.broker_url or "memory://")
    app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True,
                    worker_prefetch_multiplier=1, task_ignore_result=True,
                    broker_connection_retry_on_startup=True)
    return app


app = make_celery(get_settings())


@worker_init.connect  # type: ignore[misc]
def warm_worker(**_: object) -> None:
    """The analysers' warm-ups (compiled code), once in the worker's main process: the
    pool's processes are forked from it after this signal and start warm (Celery docs,
    "Signals": worker_init is sent before the worker is started)."""
    from imaging_core.jobs import warm_analysers
    from imaging_core.results import register as register_analysers

    register_analysers()
    warm_analysers()


@app.task(name=TASK)  # type: ignore[misc]
def analyse_study(job_id: int) -> None:
    from imaging_core.jobs import run_job, worker_name
    from imaging_core.results import register as register_analysers
    from referral import register_hooks

    register_analysers()
    register_hooks()  # a report written here notifies its subscribers
    run_job(get_settings(), f"celery:{worker_name()}", job_id)


def enqueue(job_id: int) -> None:
    """Hand a job id to the broker."""
    app.send_task(TASK, args=[job_id])


@app.task(name=NOTIFY_TASK)  # type: ignore[misc]
def deliver_notification(notification_id: int) -> None:
    from imaging_core.jobs import worker_name
    from referral.notify import deliver

    deliver(get_settings(), f"celery:{worker_name()}", notification_id)


def enqueue_notification(notification_id: int) -> None:
    """Hand a notification id to the broker (``referral.notify``)."""
    app.send_task(NOTIFY_TASK, args=[notification_id])
