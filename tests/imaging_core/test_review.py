"""A radiologist's review of candidate lesions: $lesions and $review (issue 10 item 5).

Three calcified cylinders (tests/imaging_core/phantoms.py) on 0.5 mm pixels, 3 mm
slices; a small labeller of this test's own names each by its position, as the
chest pipeline's coronary labeller would:

- A, "LAD": r = 2 mm -> 49 pixels (12.25 mm^2), 350 HU (weight 3), w 3..12 mm, 4 slices:
  12.25 x 3 x 4 = 147;
- B, "RCA": r = 1.5 mm -> 29 pixels (7.25 mm^2), 160 HU with a 450 HU peak (weight 4),
  w 15..18 mm, 2 slices: 7.25 x 4 x 2 = 58;
- C, "bone": r = 2 mm at 450 HU (weight 4), w 21..24 mm, 2 slices: 12.25 x 4 x 2 = 98,
  never counted while it is bone.

Each expected score is ``phantoms.expected_agatston`` of a phantom holding that
cylinder alone (geometry), never the scorer's output. CAC-DRS A and N follow Hecht
2018: 205 -> A2 with LAD and RCA (N2). Jobs run in process; SQLite and PostgreSQL.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlmodel import Session, col, select

from core.db import engine_for
from core.settings import Settings
from imaging_core import calcium, jobs, results
from imaging_core.models import AnalysisJob, DicomInstance
from imaging_core.reports import build_pdf, build_seg, build_sr, conclusion_text
from imaging_core.volume import Volume, load_volume
from tests.imaging_core import phantoms
from tests.imaging_core.test_completion import analyse, placed, quick, reports, send  # noqa: F401
from tests.imaging_core.test_reports import (
    PDFTOTEXT,
    Case,
    _concept,
    _dciodvfy_errors,
    _items,
    _pdf_text,
    needs_dciodvfy,
)

Headers = Callable[..., dict[str, str]]
A = phantoms.Insert(u=10, v=10, radius=2.0, w0=3, w1=12, hu=350)
B = phantoms.Insert(u=22, v=20, radius=1.5, w0=15, w1=18, hu=160, peak=450)
C = phantoms.Insert(u=26, v=6, radius=2.0, w0=21, w1=24, hu=450)
LABELS = {A: "LAD", B: "RCA", C: "bone"}
PHANTOM = phantoms.Phantom(rows=64, cols=64, n_slices=12, inserts=(A, B, C))


def alone(insert: phantoms.Insert) -> float:
    """The Agatston score of one cylinder, from its geometry."""
    return phantoms.expected_agatston(replace(PHANTOM, inserts=(insert,)))


def labeller(volume: Volume, lesion_map: np.ndarray,
             lesions: Sequence[calcium.Lesion]) -> list[str]:
    """Each candidate's label: that of the cylinder nearest its centre (patient x, y)."""
    ox, oy, _ = PHANTOM.origin

    def nearest(lesion: calcium.Lesion) -> phantoms.Insert:
        u, v = lesion.centre_mm[0] - ox, lesion.centre_mm[1] - oy
        return min(LABELS, key=lambda i: (i.u - u) ** 2 + (i.v - v) ** 2)

    return [LABELS[nearest(lesion)] for lesion in lesions]


@pytest.fixture
def labelled(quick: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:  # noqa: F811
    """The analyser scores with this test's labeller instead of the chest pipeline."""
    monkeypatch.setattr(results, "score_volume", lambda volume, decisions: calcium.score(
        volume, labeller=labeller, decisions=decisions))
    return quick


@pytest.fixture
def unlabelled(quick: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:  # noqa: F811
    """The analyser scores the whole field of view without labels (no chest pipeline)."""
    monkeypatch.setattr(results, "score_volume", lambda volume, decisions: calcium.score(
        volume, decisions=decisions))
    return quick


@pytest.fixture
def report(labelled: Settings, client: FlaskClient, auth_headers: Headers) -> dict[str, Any]:
    """The preliminary report of the phantom, analysed."""
    order_id, accession = placed(client, auth_headers)
    send(labelled, phantoms.datasets(replace(PHANTOM, accession=accession)))
    assert len(analyse(labelled)) == 1
    [found] = reports(client, auth_headers, order_id)
    return found


# --- helpers reading what a user sees -------------------------------------------------

def observations(client: FlaskClient, auth_headers: Headers,
                 report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's Observations by measure code, per-artery ones as ``agatston-score@LAD``."""
    out = {}
    for ref in report["result"]:
        obs = client.get(f"/fhir/{ref['reference']}", headers=auth_headers()).get_json()
        code = next(c["code"] for c in obs["code"]["coding"] if c["system"].endswith("/measure"))
        site = [c["code"] for c in obs.get("bodySite", {}).get("coding", [])
                if c["system"].endswith("/coronary-vessel")]
        out[f"{code}@{site[0]}" if site else code] = obs
    return out


def scores(client: FlaskClient, auth_headers: Headers,
           report: dict[str, Any]) -> dict[str, Any]:
    """Total and per-artery Agatston and the CAC-DRS text of the report as it is now."""
    obs = observations(client, auth_headers, report)
    out: dict[str, Any] = {key.split("@")[-1] if "@" in key else "total":
                           o["valueQuantity"]["value"]
                           for key, o in obs.items() if key.startswith("agatston-score")}
    out["cac-drs"] = obs["cac-drs"]["valueCodeableConcept"]["text"]
    return out


def current(client: FlaskClient, auth_headers: Headers, report_id: str) -> dict[str, Any]:
    found = client.get(f"/fhir/DiagnosticReport/{report_id}", headers=auth_headers())
    return dict(found.get_json())


def parts(parameter: dict[str, Any]) -> dict[str, Any]:
    """A parameter's parts by name, each part's value."""
    return {p["name"]: next((v for k, v in p.items() if k.startswith("value")), p.get("part"))
            for p in parameter["part"]}


def lesions_by_label(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {parts(p)["label"]: parts(p) for p in answer["parameter"] if p["name"] == "lesion"}


def listing(client: FlaskClient, auth_headers: Headers, report_id: str) -> dict[str, Any]:
    found = client.get(f"/fhir/DiagnosticReport/{report_id}/$lesions",
                       headers=auth_headers("demo-radiology"))
    assert found.status_code == 200, found.get_json()
    return dict(found.get_json())


def change(lesion: str, action: str, label: str | None = None) -> dict[str, Any]:
    part = [{"name": "lesion", "valueString": lesion}, {"name": "action", "valueCode": action}]
    return {"name": "change", "part": part + ([{"name": "label", "valueCode": label}]
                                              if label else [])}


def post_review(client: FlaskClient, auth_headers: Headers, report_id: str, reviewer: str,
                *changes: dict[str, Any], client_id: str = "demo-radiology") -> Any:
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "reviewer", "valueReference": {"reference": reviewer}}, *changes]}
    return client.post(f"/fhir/DiagnosticReport/{report_id}/$review", json=body,
                       headers=auth_headers(client_id))


def run_queued(settings: Settings) -> None:
    """Run every queued job in process, as the worker does."""
    while jobs.run_job(settings, "test-worker") is not None:
        pass


def latest_sr(settings: Settings, modality: str = "SR") -> Dataset:
    """The newest SR (or SEG) the analysis stored with the study."""
    with Session(engine_for(settings.database_url)) as session:
        row = session.exec(select(DicomInstance).where(
            col(DicomInstance.source) == "derived", col(DicomInstance.modality) == modality)
            .order_by(col(DicomInstance.received_at).desc())).first()
    assert row is not None
    return dcmread(settings.var_dir / row.path)


def pdf_of(report: dict[str, Any]) -> str:
    return str(next(f["url"] for f in report["presentedForm"]
                    if f["contentType"] == "application/pdf"))


# SNOMED CT codes of the arteries, DICOM PS3.16 CID 3016 "Major Coronary Artery".
CID_3016 = {"3227004": "LM", "59438005": "LAD", "57396003": "LCX", "13647002": "RCA"}


def sr_artery_scores(sr: Dataset) -> dict[str, float]:
    """Per measurement group with a coronary finding site: its Calcium score (DCM 112058)."""
    out = {}
    for group in _items(sr):
        if group.ValueType != "CONTAINER" or _concept(group) != ("125007", "DCM"):
            continue
        children = list(group.get("ContentSequence", []))
        sites = [CID_3016.get(str(i.ConceptCodeSequence[0].CodeValue)) for i in children
                 if i.ValueType == "CODE" and _concept(i) == ("363698007", "SCT")]
        values = [float(i.MeasuredValueSequence[0].NumericValue) for i in _items(group)
                  if i.ValueType == "NUM" and _concept(i) == ("112058", "DCM")]
        if sites and sites[0]:
            out[sites[0]] = values[0]
    return out


# --- the report per artery --------------------------------------------------------------

def test_the_report_scores_each_artery_and_cac_drs_a_and_n(
        labelled: Settings, client: FlaskClient, auth_headers: Headers,
        report: dict[str, Any]) -> None:
    got = scores(client, auth_headers, report)
    assert got["total"] == pytest.approx(alone(A) + alone(B), abs=0.01)
    assert (got["LAD"], got["RCA"], got["LM"], got["LCX"]) == (
        pytest.approx(alone(A), abs=0.01), pytest.approx(alone(B), abs=0.01), 0, 0)
    assert got["cac-drs"] == "CAC-DRS A2/N2"
    obs = observations(client, auth_headers, report)
    assert "bodySite" not in obs["agatston-score"]
    drs = obs["cac-drs"]
    assert drs["valueCodeableConcept"]["coding"][0]["code"] == "A2"
    assert drs["valueCodeableConcept"]["coding"][0]["system"].endswith("/CodeSystem/cac-drs")
    [vessels] = drs["component"]
    assert vessels["code"]["coding"][0]["code"] == "cac-vessels"
    assert vessels["valueInteger"] == 2
    lad = obs["agatston-score@LAD"]["bodySite"]["coding"]
    assert {"system": "http://snomed.info/sct", "code": "59438005"}.items() <= lad[1].items()
    assert "left anterior descending" in report["conclusion"]
    assert "2 of the 4 coronary arteries" in report["conclusion"]
    assert sr_artery_scores(latest_sr(labelled)) == {
        "LM": 0, "LAD": pytest.approx(alone(A), abs=0.01),
        "LCX": 0, "RCA": pytest.approx(alone(B), abs=0.01)}


def test_calcium_not_attributed_to_arteries_is_unknown_per_artery_never_zero(
        unlabelled: Settings, client: FlaskClient, auth_headers: Headers) -> None:
    order_id, accession = placed(client, auth_headers)  # no labeller: all "unassigned"
    send(unlabelled, phantoms.datasets(replace(PHANTOM, accession=accession)))
    analyse(unlabelled)
    [found] = reports(client, auth_headers, order_id)
    obs = observations(client, auth_headers, found)
    assert obs["agatston-score"]["valueQuantity"]["value"] == pytest.approx(
        alone(A) + alone(B) + alone(C), abs=0.01)  # the whole field of view counts
    for artery in ("LM", "LAD", "LCX", "RCA"):
        artery_obs = obs[f"agatston-score@{artery}"]
        assert "valueQuantity" not in artery_obs
        assert artery_obs["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    drs = obs["cac-drs"]
    assert drs["valueCodeableConcept"]["text"] == "CAC-DRS A3"  # 303: A3, N unknown
    assert drs["component"][0]["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    assert sr_artery_scores(latest_sr(unlabelled)) == {}


def test_the_new_code_systems_are_published(client: FlaskClient, auth_headers: Headers) -> None:
    for name, codes in (("coronary-vessel", {"LM", "LAD", "LCX", "RCA"}),
                        ("cac-drs", {"A0", "A1", "A2", "A3"})):
        found = client.get(f"/fhir/CodeSystem/{name}", headers=auth_headers())
        assert found.status_code == 200
        assert {c["code"] for c in found.get_json()["concept"]} == codes


# --- listing and changing the lesions ---------------------------------------------------

def test_lesions_lists_every_candidate_with_its_place_and_label(
        client: FlaskClient, auth_headers: Headers, report: dict[str, Any]) -> None:
    found = lesions_by_label(listing(client, auth_headers, report["id"]))
    assert set(found) == {"LAD", "RCA", "bone"}
    lad = found["LAD"]
    assert (lad["first-slice"], lad["last-slice"]) == (1, 4)  # w = 3..12 mm at 3 mm
    ox, oy, oz = PHANTOM.origin
    assert (lad["centre-x-mm"], lad["centre-y-mm"]) == (
        pytest.approx(ox + A.u, abs=0.3), pytest.approx(oy + A.v, abs=0.3))
    assert lad["centre-z-mm"] == pytest.approx(oz + (A.w0 + A.w1) / 2, abs=0.01)
    assert lad["area-mm2"] == pytest.approx(12.25) and lad["peak-hu"] == 350
    assert lad["counted"] is True and found["bone"]["counted"] is False
    assert found["bone"]["agatston"] == pytest.approx(alone(C), abs=0.01)
    assert "reviewed-by" not in lad


def test_reject_and_relabel_change_score_report_and_sr_and_keep_the_history(
        labelled: Settings, client: FlaskClient, auth_headers: Headers,
        report: dict[str, Any], practitioner: Callable[[str], str]) -> None:
    first, second = practitioner("First"), practitioner("Second")
    ids = {label: lesion["id"] for label, lesion in
           lesions_by_label(listing(client, auth_headers, report["id"])).items()}

    rejected = post_review(client, auth_headers, report["id"], first,
                           change(ids["RCA"], "reject"))
    assert rejected.status_code == 200, rejected.get_json()
    summed = parts(next(p for p in rejected.get_json()["parameter"] if p["name"] == "score"))
    assert summed["agatston"] == pytest.approx(alone(A), abs=0.01)  # at once, before the job
    assert summed["cac-drs"] == "CAC-DRS A2/N1"
    assert any(p["name"] == "regeneration" for p in rejected.get_json()["parameter"])
    run_queued(labelled)
    after_first = current(client, auth_headers, report["id"])
    got = scores(client, auth_headers, after_first)
    assert (got["total"], got["RCA"], got["cac-drs"]) == (
        pytest.approx(alone(A), abs=0.01), 0, "CAC-DRS A2/N1")
    assert sr_artery_scores(latest_sr(labelled))["RCA"] == 0
    assert {str(s.SegmentLabel) for s in latest_sr(labelled, "SEG").SegmentSequence} == {
        "Calcium LAD"}
    assert pdf_of(after_first) != pdf_of(report)  # a new PDF

    relabelled = post_review(client, auth_headers, report["id"], second,
                             change(ids["bone"], "relabel", "LCX"))
    assert relabelled.status_code == 200, relabelled.get_json()
    run_queued(labelled)
    after_second = current(client, auth_headers, report["id"])
    got = scores(client, auth_headers, after_second)
    assert got["total"] == pytest.approx(alone(A) + alone(C), abs=0.01)
    assert got["LCX"] == pytest.approx(alone(C), abs=0.01)
    assert got["cac-drs"] == "CAC-DRS A2/N2"  # 147 + 98 = 245: A2 (100-299), LAD and LCX
    assert sr_artery_scores(latest_sr(labelled))["LCX"] == pytest.approx(alone(C), abs=0.01)

    # The first reviewer's change is still in force and in the history.
    answer = listing(client, auth_headers, report["id"])
    assert not [p for p in answer["parameter"] if p["name"] == "regeneration"]  # all done
    decisions = [parts(p) for p in answer["parameter"] if p["name"] == "decision"]
    assert [(d["action"], d["reviewer"]["reference"]) for d in decisions] == [
        ("reject", first), ("relabel", second)]
    assert lesions_by_label(answer)["RCA"]["reviewed-by"] == {"reference": first}
    history = client.get(f"/fhir/DiagnosticReport/{report['id']}/_history",
                         headers=auth_headers()).get_json()
    assert history["total"] == 3
    provenance = client.get(f"/fhir/Provenance?target=DiagnosticReport/{report['id']}",
                            headers=auth_headers()).get_json()
    authors = {e["resource"]["target"][0]["reference"].rsplit("/", 1)[-1]:
               [a["who"].get("reference") for a in e["resource"]["agent"][1:]]
               for e in provenance["entry"]}
    assert authors == {"1": [], "2": [first], "3": [first, second]}


def test_decisions_survive_a_re_analysis_with_more_images(
        labelled: Settings, client: FlaskClient, auth_headers: Headers,
        practitioner: Callable[[str], str]) -> None:
    order_id, accession = placed(client, auth_headers)
    slices = phantoms.datasets(replace(PHANTOM, accession=accession))
    send(labelled, slices[:10])  # C's slices (w 21, 24 mm) are 7 and 8; all three are in
    analyse(labelled)
    [report] = reports(client, auth_headers, order_id)
    ids = {label: lesion["id"] for label, lesion in
           lesions_by_label(listing(client, auth_headers, report["id"])).items()}
    assert post_review(client, auth_headers, report["id"], practitioner("Reader"),
                       change(ids["RCA"], "reject")).status_code == 200
    run_queued(labelled)
    send(labelled, slices[10:])  # two more slices, no calcium: the same lesions
    assert len(analyse(labelled)) == 1
    got = scores(client, auth_headers, current(client, auth_headers, report["id"]))
    assert (got["total"], got["RCA"]) == (pytest.approx(alone(A), abs=0.01), 0)


def test_a_failed_regeneration_is_shown_not_hidden(
        labelled: Settings, client: FlaskClient, auth_headers: Headers,
        report: dict[str, Any], practitioner: Callable[[str], str]) -> None:
    lad = lesions_by_label(listing(client, auth_headers, report["id"]))["LAD"]["id"]
    assert post_review(client, auth_headers, report["id"], practitioner("Reader"),
                       change(lad, "reject")).status_code == 200
    with Session(engine_for(labelled.database_url)) as session:
        job = session.exec(select(AnalysisJob).where(col(AnalysisJob.status) == "queued")).one()
        job.status = "failed"  # its attempts ran out
        session.add(job)
        session.commit()
    answer = listing(client, auth_headers, report["id"])
    [regeneration] = [parts(p) for p in answer["parameter"] if p["name"] == "regeneration"]
    assert regeneration["status"] == "failed"


# --- refusals ---------------------------------------------------------------------------

@pytest.fixture
def lesion_id(client: FlaskClient, auth_headers: Headers, report: dict[str, Any]) -> str:
    return str(lesions_by_label(listing(client, auth_headers, report["id"]))["LAD"]["id"])


@pytest.mark.parametrize("changes, status", [
    ([change("L999-999-999", "reject")], 422),  # no such lesion
    ([change("{lesion}", "relabel", "LXX")], 422),  # no such label
    ([change("{lesion}", "delete")], 400),  # no such action
    ([change("{lesion}", "relabel")], 400),  # a relabel without a label
    ([change("{lesion}", "accept", "bone")], 422),  # only an artery can count
    ([], 400),  # nothing to change
    ([{"name": "change", "part": [{"name": "lesion", "valueInteger": 3}]}], 400),
], ids=["lesion", "label", "action", "relabel-no-label", "accept-bone", "empty", "shape"])
def test_bad_changes_are_refused_with_an_operation_outcome(
        client: FlaskClient, auth_headers: Headers, report: dict[str, Any], lesion_id: str,
        practitioner: Callable[[str], str], changes: list[dict[str, Any]], status: int) -> None:
    changes = copy.deepcopy(changes)
    for item in changes:
        for part in item["part"]:
            if part.get("valueString") == "{lesion}":
                part["valueString"] = lesion_id
    answer = post_review(client, auth_headers, report["id"], practitioner("Reader"), *changes)
    assert answer.status_code == status, answer.get_json()
    assert answer.get_json()["resourceType"] == "OperationOutcome"
    assert listing(client, auth_headers, report["id"])["parameter"][0]["name"] == "score"
    assert not [p for p in listing(client, auth_headers, report["id"])["parameter"]
                if p["name"] == "decision"]


@pytest.mark.parametrize("reviewer", ["Practitioner/nobody", "Patient/1", ""])
def test_the_reviewer_must_be_a_practitioner_here(
        client: FlaskClient, auth_headers: Headers, report: dict[str, Any], lesion_id: str,
        reviewer: str) -> None:
    answer = post_review(client, auth_headers, report["id"], reviewer,
                         change(lesion_id, "reject"))
    assert answer.status_code in (400, 422), answer.get_json()
    assert answer.get_json()["resourceType"] == "OperationOutcome"


def test_no_token_and_a_gp_client_are_refused(
        client: FlaskClient, auth_headers: Headers, report: dict[str, Any], lesion_id: str,
        practitioner: Callable[[str], str]) -> None:
    reviewer = practitioner("Reader")
    assert post_review(client, auth_headers, report["id"], reviewer, change(lesion_id, "reject"),
                       client_id="demo-gp").status_code == 403
    assert client.get(f"/fhir/DiagnosticReport/{report['id']}/$lesions",
                      headers=auth_headers("demo-gp")).status_code == 403
    anonymous = client.get(f"/fhir/DiagnosticReport/{report['id']}/$lesions")
    assert anonymous.status_code == 401
    assert anonymous.get_json()["resourceType"] == "OperationOutcome"


def test_a_signed_off_report_is_refused_with_409(
        client: FlaskClient, auth_headers: Headers, report: dict[str, Any], lesion_id: str,
        practitioner: Callable[[str], str]) -> None:
    reader = practitioner("Reader")
    signed = client.put(f"/fhir/DiagnosticReport/{report['id']}",
                        json={**report, "status": "final",
                              "resultsInterpreter": [{"reference": reader}]},
                        headers=auth_headers("demo-radiology"))
    assert signed.status_code == 200
    answer = post_review(client, auth_headers, report["id"], reader,
                         change(lesion_id, "reject"))
    assert answer.status_code == 409
    assert answer.get_json()["resourceType"] == "OperationOutcome"


def test_the_review_is_audited_naming_the_reviewer(
        labelled: Settings, client: FlaskClient, auth_headers: Headers,
        report: dict[str, Any], lesion_id: str, practitioner: Callable[[str], str]) -> None:
    reviewer = practitioner("Reader")
    assert post_review(client, auth_headers, report["id"], reviewer,
                       change(lesion_id, "reject")).status_code == 200
    events = client.get(f"/fhir/AuditEvent?agent={reviewer}",
                        headers=auth_headers("demo-admin")).get_json()
    assert events["total"] == 1
    event = events["entry"][0]["resource"]
    assert {"reference": f"DiagnosticReport/{report['id']}"} in [e["what"] for e in
                                                                  event["entity"]]
    assert event["agent"][0]["altId"] == "demo-radiology"
    with Session(engine_for(labelled.database_url)) as session:
        queued = session.exec(select(AnalysisJob).where(
            col(AnalysisJob.status) == "queued")).all()
    assert len(queued) == 1 and queued[0].idempotency_key.endswith("review-1")


def test_a_report_without_candidates_is_not_found(
        client: FlaskClient, auth_headers: Headers) -> None:
    made = client.post("/fhir/DiagnosticReport", headers=auth_headers("demo-radiology"), json={
        "resourceType": "DiagnosticReport", "status": "preliminary", "code": {"text": "x"}})
    assert made.status_code == 201, made.get_json()
    answer = client.get(f"/fhir/DiagnosticReport/{made.get_json()['id']}/$lesions",
                        headers=auth_headers("demo-radiology"))
    assert answer.status_code == 404
    assert answer.get_json()["resourceType"] == "OperationOutcome"



# --- SEG and PDF per artery (pure builders, no database) ---------------------------------

@pytest.fixture(scope="module")
def labelled_case() -> Case:
    sources = phantoms.shuffled(phantoms.datasets(PHANTOM))
    volume = load_volume(sources)
    return Case(sources, volume, calcium.score(volume, labeller=labeller))


def test_seg_has_one_segment_per_artery_with_calcium(labelled_case: Case) -> None:
    seg = build_seg(labelled_case.sources, labelled_case.volume, labelled_case.result)
    assert seg is not None
    segments = {str(s.SegmentLabel): s for s in seg.SegmentSequence}
    assert set(segments) == {"Calcium LAD", "Calcium RCA"}  # bone never counts; LM, LCX clean
    regions = {label: str(s.AnatomicRegionSequence[0].CodeValue)
               for label, s in segments.items()}
    assert regions == {"Calcium LAD": "59438005", "Calcium RCA": "13647002"}  # CID 3016
    frames: dict[int, int] = {}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        number = int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        frames[number] = frames.get(number, 0) + 1
    by_label = {label: frames[int(s.SegmentNumber)] for label, s in segments.items()}
    assert by_label == {"Calcium LAD": len(phantoms.covered_slices(PHANTOM, A)),
                        "Calcium RCA": len(phantoms.covered_slices(PHANTOM, B))}


@needs_dciodvfy
def test_per_artery_sr_and_seg_pass_dciodvfy(labelled_case: Case, tmp_path: Path) -> None:
    seg = build_seg(labelled_case.sources, labelled_case.volume, labelled_case.result)
    sr = build_sr(labelled_case.sources, labelled_case.volume, labelled_case.result)
    assert seg is not None
    assert _dciodvfy_errors(seg, tmp_path / "seg.dcm") == []
    assert _dciodvfy_errors(sr, tmp_path / "sr.dcm") == []


@pytest.mark.skipif(PDFTOTEXT is None, reason="pdftotext (poppler-utils) not installed")
def test_pdf_has_a_table_per_artery_and_cac_drs_a_and_n(labelled_case: Case,
                                                       tmp_path: Path) -> None:
    result = labelled_case.result
    pdf = build_pdf(result, patient_name=None, accession=None, study_date=None,
                    key_images=[], conclusion=conclusion_text(result))
    text, _ = _pdf_text(pdf, tmp_path)
    assert "By coronary artery" in text and "A2/N2" in text
    path = tmp_path / "layout.pdf"
    path.write_bytes(pdf)
    lines = subprocess.run([str(PDFTOTEXT), "-layout", str(path), "-"], capture_output=True,
                           text=True, timeout=30, check=True).stdout.splitlines()
    rows = {artery: line.split(f"({artery})", 1)[1].split()[0] for line in lines
            for artery in ("LM", "LAD", "LCX", "RCA") if f"({artery})" in line
            and "Calcium in" not in line}
    assert rows == {"LM": "0", "LAD": str(round(alone(A))), "LCX": "0",
                    "RCA": str(round(alone(B)))}


def test_a_decision_whose_lesion_is_gone_is_named_and_the_others_applied(
        monkeypatch: pytest.MonkeyPatch, labelled_case: Case) -> None:
    monkeypatch.setattr(results, "score_volume", lambda volume, decisions: calcium.score(
        volume, labeller=labeller, decisions=decisions))
    lad = next(c.id for c in labelled_case.result.lesions if c.label == "LAD")
    analysis = results.analyse(labelled_case.sources, [
        calcium.Decision("L000-000-000", "reject", "Practitioner/a"),  # not in these images
        calcium.Decision(lad, "reject", "Practitioner/a")])
    assert analysis.result is not None
    assert analysis.result.agatston == pytest.approx(alone(B), abs=0.01)
    assert [d.lesion_id for d in analysis.decisions] == [lad]
    assert any(q.startswith("review-not-applied: 1") and "L000-000-000" in q
               for q in analysis.result.qa)
