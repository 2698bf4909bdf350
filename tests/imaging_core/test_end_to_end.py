"""Order to report: a CT-CAC order, a phantom sent with dcmtk's storescu, the report back.

Expected scores come from the phantom's geometry (tests/imaging_core/phantoms.py),
not from the code under test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
import redis
from sqlmodel import Session, select

from core.db import engine_for
from core.settings import PROJECT_ROOT, Settings
from fhir.dates import now_utc
from imaging_core import jobs, results
from imaging_core.scp import start_scp, stop_scp
from imaging_core.tasks import TASK, make_celery
from tests.conftest import free_port
from tests.imaging_core import phantoms
from tests.imaging_core.conftest import accession_of, cac_order

STORESCU = shutil.which("storescu")
pytestmark = pytest.mark.skipif(STORESCU is None and os.environ.get("CI") != "true",
                                reason="dcmtk storescu not installed (make system-deps)")
# Two calcified discs: radius 3 mm at 450 HU over 2 slices (weight 4), and radius
# 2 mm at 250 HU over 1 slice (weight 2), Agatston 1990 weights.
PHANTOM = phantoms.Phantom(rows=64, cols=64, n_slices=8, inserts=(
    phantoms.Insert(u=10, v=10, radius=3.0, w0=3.0, w1=6.0, hu=450),
    phantoms.Insert(u=22, v=22, radius=2.0, w0=12.0, w1=12.0, hu=250)))




@pytest.fixture
def imaging_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"dicom_port": free_port(), "study_idle_seconds": 0.5,
                                       "job_poll_seconds": 0.2})


@pytest.fixture
def listener(imaging_settings: Settings) -> Iterator[Settings]:
    results.register()
    server = start_scp(imaging_settings)
    yield imaging_settings
    stop_scp(server)


def _send(settings: Settings, accession: str, tmp_path) -> None:
    series = phantoms.datasets(replace(PHANTOM, accession=accession))
    files = phantoms.write(series, tmp_path)
    done = subprocess.run([STORESCU or "storescu", "-aec", settings.dicom_ae_title, "127.0.0.1",
                           str(settings.dicom_port), *map(str, files)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def _report(client, auth_headers, order_id: str, seconds: float = 90) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = client.get(f"/fhir/DiagnosticReport?based-on=ServiceRequest/{order_id}",
                           headers=auth_headers()).get_json()
        if found["total"]:
            return found
        time.sleep(0.3)
    raise AssertionError("no DiagnosticReport in time")


def _values(client, auth_headers, report: dict) -> dict:
    values = {}
    for ref in report["result"]:
        obs = client.get(f"/fhir/{ref['reference']}", headers=auth_headers()).get_json()
        if "bodySite" in obs:
            continue  # an artery's share; the totals have none
        code = next(c["code"] for c in obs["code"]["coding"] if c["system"].endswith("/measure"))
        values[code] = obs.get("valueQuantity", {}).get("value", obs.get("valueInteger",
                                                                          obs.get("valueCodeableConcept")))
    return values


def test_order_images_report(client, auth_headers, listener, tmp_path):
    order = cac_order(client, auth_headers)
    worker = jobs.Worker(listener)
    worker.start()
    try:
        _send(listener, accession_of(order), tmp_path)
        found = _report(client, auth_headers, order["id"])
    finally:
        worker.stop()
        worker.join(timeout=30)
    report = found["entry"][0]["resource"]
    assert found["total"] == 1 and report["status"] == "preliminary"
    assert report["basedOn"] == [{"reference": f"ServiceRequest/{order['id']}"}]
    expected = phantoms.expected_agatston(PHANTOM)
    values = _values(client, auth_headers, report)
    assert values["agatston-score"] == pytest.approx(expected, abs=0.01)
    assert values["cac-drs"]["coding"][0]["code"] == f"A{_drs(expected)}"
    assert values["cac-volume-mm3"] == pytest.approx(phantoms.expected_volume_mm3(PHANTOM),
                                                     abs=0.01)
    assert {f["contentType"] for f in report["presentedForm"]} == {"application/pdf",
                                                                    "model/gltf-binary"}
    assert report["imagingStudy"] and report["media"]
    transfers = client.get("/fhir/AuditEvent?type=http://dicom.nema.org/resources/ontology/DCM"
                           "|110104", headers=auth_headers("demo-admin")).get_json()
    assert transfers["total"] == 1  # one association, audited once


def _drs(agatston: float) -> int:
    """CAC-DRS from the Agatston score (Hecht et al. 2018): 0, 1-99, 100-299, >= 300."""
    return 0 if agatston == 0 else 1 if agatston < 100 else 2 if agatston < 300 else 3


def test_a_crashed_job_is_picked_up_again_and_never_reports_twice(client, auth_headers, listener,
                                                                   tmp_path):
    order = cac_order(client, auth_headers)
    _send(listener, accession_of(order), tmp_path)
    engine = engine_for(listener.database_url)
    time.sleep(listener.study_idle_seconds + 0.1)
    with Session(engine) as session:
        assert jobs.schedule(session, listener)
        session.commit()
        job = session.exec(select(jobs.AnalysisJob)).one()
        # A worker took the job and died: running, lease in the past.
        job.status, job.attempts, job.leased_until = "running", 1, now_utc() - timedelta(seconds=1)
        session.add(job)
        session.commit()
    assert jobs.run_job(listener, "second-worker").status == "done"
    with Session(engine) as session:
        job = session.exec(select(jobs.AnalysisJob)).one()
        job.status = "queued"  # run it once more
        session.add(job)
        session.commit()
    assert jobs.run_job(listener, "third-worker").status == "done"
    found = _report(client, auth_headers, order["id"])
    assert found["total"] == 1


def _redis_url() -> str:
    return os.environ.get("SCANPATH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def test_celery_on_redis_runs_the_job(client, auth_headers, listener, tmp_path):
    url = _redis_url()
    try:
        redis.Redis.from_url(url, socket_timeout=2).flushdb()  # a test-only database
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required under CI=true: {exc}")
        pytest.skip(f"Redis not reachable at {url}: {exc}")
    settings = listener.model_copy(update={"broker_url": url})
    env = {**os.environ, "SCANPATH_DATABASE_URL": settings.database_url,
           "SCANPATH_BROKER_URL": url, "SCANPATH_VAR_DIR": str(settings.var_dir),
           "SCANPATH_SECRET_KEY": settings.secret_key}
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "imaging_core.tasks",
                               "worker", "--pool", "solo", "--concurrency", "1",
                               "--loglevel", "WARNING", "-Q", "celery"],
                              cwd=PROJECT_ROOT, env=env)
    celery = make_celery(settings)
    scheduler = jobs.Worker(settings, lambda job_id: celery.send_task(TASK, args=[job_id]))
    try:
        order = cac_order(client, auth_headers)
        # Scheduling starts once the study is sent: the Celery worker's start-up can slow
        # storescu past the short idle window, and a study analysed early is analysed again.
        _send(settings, accession_of(order), tmp_path)
        scheduler.start()
        found = _report(client, auth_headers, order["id"], seconds=120)
    finally:
        scheduler.stop()
        worker.terminate()
        worker.wait(timeout=30)
    with Session(engine_for(settings.database_url)) as session:
        job = session.exec(select(jobs.AnalysisJob)).one()
        assert job.worker and job.worker.startswith("celery:")
    assert found["total"] == 1
