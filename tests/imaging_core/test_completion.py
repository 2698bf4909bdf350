"""When a study is complete, and what later images do to its result (issue 9, items 1 and 2).

Instances go in through ``storage.receive`` (the one path C-STORE and STOW-RS
share) and jobs run in process. Expected scores come from the thorax phantom's
geometry (tests/imaging_core/thorax.py), never from the code under test.
SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from flask.testing import FlaskClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlmodel import Session

from core.db import engine_for
from core.settings import Settings
from imaging_core import jobs, results
from imaging_core.models import AnalysisJob, ReceivedStudy
from imaging_core.storage import receive
from tests.imaging_core import phantoms
from tests.imaging_core.conftest import accession_of, cac_order, encoded, rows
from tests.imaging_core.thorax import build, scan_changed, thorax_42
from tests.imaging_core.thorax import datasets as thorax_datasets
from tests.referral.moves import audit_descriptions, state, task_of

Headers = Callable[..., dict[str, str]]
# Studies whose score does not matter: a small cylinder phantom (no chest, so "not scorable").
PHANTOM = phantoms.Phantom(rows=64, cols=64, n_slices=12, inserts=(
    phantoms.Insert(u=16, v=16, radius=3.0, w0=24.0, w1=30.0, hu=450),))
# Studies that are scored: a whole thorax (tests/imaging_core/thorax.py), its expected
# score the coronary plaques' geometric truth. Its lower half cuts the heart at the top,
# which the image QA refuses: the first result of a half-sent series is "not scorable".
HALF = 32


@pytest.fixture
def quick(settings: Settings) -> Settings:
    """Settings with a short idle window, and the calcium analyser registered."""
    results.register()
    return settings.model_copy(update={"study_idle_seconds": 0.2})


def placed(client: FlaskClient, auth_headers: Headers) -> tuple[str, str]:
    """A CT calcium-scoring order; its id and accession number."""
    order = cac_order(client, auth_headers)
    return order["id"], accession_of(order)


def series(accession: str, **changes: Any) -> list[Dataset]:
    return phantoms.datasets(replace(PHANTOM, accession=accession, study_uid=generate_uid(),
                                     **changes))


def chest_series(accession: str) -> tuple[list[Dataset], float]:
    """A thorax series of a study of its own, and its expected Agatston score (geometry)."""
    image = build(scan_changed(thorax_42(), accession=accession, study_uid=generate_uid()))
    return thorax_datasets(image), image.truth().agatston


def send(settings: Settings, instances: list[Dataset]) -> None:
    for ds in instances:
        receive(settings, encoded(ds), "c-store")


def schedule(settings: Settings, **kwargs: Any) -> list[int]:
    time.sleep(settings.study_idle_seconds * 1.5)  # let the study fall quiet
    with Session(engine_for(settings.database_url)) as session:
        created = jobs.schedule(session, settings, **kwargs)
        session.commit()
    return created


def analyse(settings: Settings) -> list[int]:
    """Schedule and run every due job; the ids of the jobs run."""
    created = schedule(settings)
    for job_id in created:
        assert jobs.run_job(settings, "test-worker", job_id) is not None
    return created


def reports(client: FlaskClient, auth_headers: Headers, order_id: str) -> list[dict[str, Any]]:
    found = client.get(f"/fhir/DiagnosticReport?based-on=ServiceRequest/{order_id}",
                       headers=auth_headers("demo-radiology")).get_json()
    return [entry["resource"] for entry in found.get("entry", [])]


def total_score(client: FlaskClient, auth_headers: Headers, report: dict[str, Any]) -> float:
    for ref in report["result"]:
        obs = client.get(f"/fhir/{ref['reference']}", headers=auth_headers()).get_json()
        codes = {c["code"] for c in obs["code"]["coding"]}
        if "agatston-score" in codes and "bodySite" not in obs:
            return float(obs["valueQuantity"]["value"])
    raise AssertionError("no total agatston-score")


def reconcile_tasks(client: FlaskClient, auth_headers: Headers, focus: str) -> list[dict]:
    found = client.get(f"/fhir/Task?focus={focus}", headers=auth_headers("demo-radiology"))
    assert found.status_code == 200
    return [e["resource"] for e in found.get_json().get("entry", [])
            if any(c["code"] == "reconcile" for c in e["resource"]["businessStatus"]["coding"])]


def audited(client: FlaskClient, auth_headers: Headers, reference: str) -> bool:
    found = client.get(f"/fhir/AuditEvent?entity={reference}", headers=auth_headers("demo-admin"))
    return found.status_code == 200 and found.get_json()["total"] >= 1


# --- item 1: part of a study analysed -------------------------------------------------

def test_images_after_an_analysis_amend_the_preliminary_report(
        quick: Settings, client: FlaskClient, auth_headers: Headers) -> None:
    order_id, accession = placed(client, auth_headers)
    slices, expected = chest_series(accession)
    send(quick, slices[:HALF])  # the sender pauses after half the series
    assert len(analyse(quick)) == 1
    [first] = reports(client, auth_headers, order_id)
    assert first["conclusion"].startswith("The scan could not be scored")  # half a heart
    for ref in first["result"]:  # "not scored" is coded, never an empty result
        observation = client.get(f"/fhir/{ref['reference']}",
                                 headers=auth_headers("demo-admin")).get_json()
        assert observation["dataAbsentReason"]["coding"][0]["code"] == "not-performed"
        assert "field of view cuts the heart" in observation["dataAbsentReason"]["text"]
    assert len(first["result"]) == 2

    send(quick, slices[HALF:])  # ... and resumes with all of it
    assert len(analyse(quick)) == 1
    [report] = reports(client, auth_headers, order_id)  # still one report: a new version
    assert report["id"] == first["id"] and report["meta"]["versionId"] != \
        first["meta"]["versionId"]
    assert report["status"] == "preliminary"
    assert report["conclusion"].startswith(f"Re-analysed: {HALF} more images arrived")
    assert total_score(client, auth_headers, report) == pytest.approx(expected, rel=0.02)
    assert expected > 0


def test_the_same_instance_set_is_analysed_once(quick: Settings, client: FlaskClient,
                                                auth_headers: Headers) -> None:
    _, accession = placed(client, auth_headers)
    slices = series(accession)
    send(quick, slices)
    assert len(analyse(quick)) == 1
    send(quick, slices)  # the same bytes again: nothing new
    assert analyse(quick) == []
    assert len(rows(quick, AnalysisJob)) == 1


def test_a_signed_off_report_is_not_changed_and_the_new_result_is_held(
        quick: Settings, client: FlaskClient, auth_headers: Headers,
        practitioner: Callable[[str], str]) -> None:
    order_id, accession = placed(client, auth_headers)
    slices, expected = chest_series(accession)
    send(quick, slices[:HALF])
    analyse(quick)
    [report] = reports(client, auth_headers, order_id)
    signed = client.put(f"/fhir/DiagnosticReport/{report['id']}",
                        json={**report, "status": "final",
                              "resultsInterpreter": [{"reference": practitioner("Jones")}]},
                        headers=auth_headers("demo-radiology"))
    assert signed.status_code == 200, signed.get_json()
    signed_version = signed.get_json()["meta"]["versionId"]

    send(quick, slices[HALF:])
    assert len(analyse(quick)) == 1
    [after] = reports(client, auth_headers, order_id)
    assert (after["status"], after["meta"]["versionId"]) == ("final", signed_version)
    assert (after["result"], after["conclusion"]) == (report["result"], report["conclusion"])
    [task] = reconcile_tasks(client, auth_headers, f"DiagnosticReport/{report['id']}")
    assert task["status"] == "requested"
    assert f"{HALF} more images arrived" in task["description"]
    held = {o["type"]["text"]: o for o in task["output"]}
    assert held["agatston-score"]["valueDecimal"] == pytest.approx(expected, rel=0.02)
    assert audited(client, auth_headers, f"Task/{task['id']}")


def test_a_series_short_of_its_stated_image_count_is_not_analysed(
        quick: Settings, client: FlaskClient, auth_headers: Headers) -> None:
    _, accession = placed(client, auth_headers)
    slices = series(accession)
    for ds in slices:  # Images in Acquisition (0020,1002), PS3.3 C.7.6.1
        ds.ImagesInAcquisition, ds.AcquisitionNumber = len(slices), 1
    send(quick, slices[:6])
    assert schedule(quick) == []  # quiet, but 6 of the 12 the scanner announced
    send(quick, slices[6:])
    assert len(schedule(quick)) == 1


def test_a_study_short_of_its_count_is_analysed_after_the_longer_quiet_time(
        quick: Settings, client: FlaskClient, auth_headers: Headers) -> None:
    patient_settings = quick.model_copy(update={"study_incomplete_seconds": 0.3})
    _, accession = placed(client, auth_headers)
    slices = series(accession)
    for ds in slices:
        ds.ImagesInAcquisition = 20  # a sender that states a wrong count
    send(patient_settings, slices)
    time.sleep(0.3)
    assert len(schedule(patient_settings)) == 1  # not held back for ever


def test_a_restart_is_not_quiet_time(quick: Settings, client: FlaskClient,
                                     auth_headers: Headers) -> None:
    _, accession = placed(client, auth_headers)
    send(quick, series(accession)[:6])
    time.sleep(quick.study_idle_seconds * 1.5)  # the service was down longer than the window
    worker = jobs.Worker(quick)  # ... and has just started again
    with Session(engine_for(quick.database_url)) as session:
        assert jobs.schedule(session, quick, running_since=worker.started) == []


def test_an_analysed_order_has_one_task_moved_by_the_imaging_core(
        quick: Settings, client: FlaskClient, auth_headers: Headers) -> None:
    """Issue 11 item 1: the images and the analysis move the order's one Task."""
    order_id, accession = placed(client, auth_headers)
    send(quick, series(accession))
    analyse(quick)
    task = task_of(client, auth_headers, order_id)  # exactly one
    assert (state(task), task["status"]) == ("analysed", "in-progress")
    described = audit_descriptions(client, auth_headers, task["id"])
    for before, after in [("received", "in-progress"), ("in-progress", "analysed")]:
        assert any(f"moved from {before} to {after} by imaging" in d for d in described)


# --- item 2: a second study on one order ----------------------------------------------

def test_a_second_study_for_an_order_is_held_not_analysed(
        quick: Settings, client: FlaskClient, auth_headers: Headers) -> None:
    order_id, accession = placed(client, auth_headers)
    first = series(accession)
    send(quick, first)
    analyse(quick)
    second = series(accession)[:1]  # one slice under a new StudyInstanceUID, same accession
    third = series(accession)[:1]
    send(quick, second + third)
    late = series(accession, name="late")[:1]  # a late instance of the first study
    for ds in late:
        ds.StudyInstanceUID = first[0].StudyInstanceUID
    send(quick, late)
    ran = analyse(quick)

    [report] = reports(client, auth_headers, order_id)  # one order, one current result
    assert [job.study_uid for job in rows(quick, AnalysisJob) if job.id in ran] == \
        [first[0].StudyInstanceUID]  # the late instance re-analyses the first study only
    held = {s.study_uid: s for s in rows(quick, ReceivedStudy)}
    assert held[first[0].StudyInstanceUID].hold_reason is None
    for other in (second, third):
        study = held[other[0].StudyInstanceUID]
        assert study.hold_reason == "second-study"
        [task] = reconcile_tasks(client, auth_headers, f"ImagingStudy/{study.imaging_study_id}")
        assert task["basedOn"] == [{"reference": f"ServiceRequest/{order_id}"}]
        assert audited(client, auth_headers, f"Task/{task['id']}")
    assert report["imagingStudy"] == [
        {"reference": f"ImagingStudy/{held[first[0].StudyInstanceUID].imaging_study_id}"}]


def test_a_study_split_across_two_uids_analyses_only_the_first(
        quick: Settings, client: FlaskClient, auth_headers: Headers) -> None:
    order_id, accession = placed(client, auth_headers)
    one, two = series(accession), series(accession, name="split")
    interleaved = [ds for pair in zip(one[:6], two[:6], strict=True) for ds in pair]
    send(quick, interleaved)
    analyse(quick)
    studies = {s.study_uid: s.hold_reason for s in rows(quick, ReceivedStudy)}
    assert studies == {one[0].StudyInstanceUID: None, two[0].StudyInstanceUID: "second-study"}
    assert len(reports(client, auth_headers, order_id)) == 1
