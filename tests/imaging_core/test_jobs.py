"""Job bookkeeping without images: broker hand-over, retries and lease fencing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session

from core.db import engine_for
from fhir.dates import now_utc
from imaging_core import jobs
from imaging_core.models import AnalysisJob


def _job(session: Session, **fields) -> AnalysisJob:
    now = now_utc()
    job = AnalysisJob(idempotency_key=f"study-{now.timestamp()}|v1", study_uid="1.2.3",
                      service_request_id="sr", procedure="CT-CAC", analyser_version="v1",
                      status="queued", created_at=now, updated_at=now, **fields)
    session.add(job)
    session.commit()
    return job


def _due(session, settings) -> list[int]:
    return [j.id for j in jobs.broker_due(session, settings)]


def test_broker_gets_new_retried_and_crashed_jobs_once(settings):
    with Session(engine_for(settings.database_url), expire_on_commit=False) as session:
        job = _job(session)
        assert _due(session, settings) == [job.id]          # never sent
        job.enqueued_at = now_utc()
        session.add(job)
        session.commit()
        assert _due(session, settings) == []                # sent, not yet lost
        claimed = jobs.claim(session, settings, "w1")
        assert claimed is not None and claimed.id == job.id
        assert _due(session, settings) == []                # running under a live lease
        claimed.leased_until = now_utc() - timedelta(seconds=1)
        session.add(claimed)
        session.commit()
        assert _due(session, settings) == [job.id]          # its worker died


def _claim(settings, worker: str) -> AnalysisJob:
    """A claim as a separate worker process makes it: in a session of its own."""
    with Session(engine_for(settings.database_url), expire_on_commit=False) as session:
        job = jobs.claim(session, settings, worker)
        assert job is not None
        return job


def test_a_worker_that_lost_its_lease_cannot_finish(settings):
    engine = engine_for(settings.database_url)
    with Session(engine, expire_on_commit=False) as session:
        _job(session)
    first = _claim(settings, "w1")
    with Session(engine) as session:
        row = session.get(AnalysisJob, first.id)
        row.leased_until = now_utc() - timedelta(seconds=1)  # w1 stalled past its lease
        session.add(row)
        session.commit()
    second = _claim(settings, "w2")
    assert second.attempts == 2
    with Session(engine) as session:
        with pytest.raises(jobs.LeaseLost):
            jobs.check_lease(session, first)
        assert jobs.check_lease(session, second).worker == "w2"


def test_warm_ups_run_at_worker_start_and_a_failing_one_is_logged_not_raised(
        monkeypatch, caplog):
    monkeypatch.setattr(jobs, "_ANALYSERS", {})
    monkeypatch.setattr(jobs, "_WARM_UPS", {})
    calls = []

    def broken() -> None:
        raise RuntimeError("no compiler")

    jobs.register_analyser("X-WARM", "v1", lambda s, j: "r", warm=lambda: calls.append(1))
    jobs.register_analyser("X-BROKEN", "v1", lambda s, j: "r", warm=broken)
    jobs.register_analyser("X-COLD", "v1", lambda s, j: "r")
    with caplog.at_level("WARNING", logger=jobs.log.name):
        jobs.warm_analysers()
    assert calls == [1]
    failed = [r for r in caplog.records if r.getMessage() == "analyser warm-up failed"]
    assert [r.procedure for r in failed] == ["X-BROKEN"]
