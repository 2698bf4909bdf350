"""The CTCA DiagnosticReport on hand-made results: every Observation, code, unit and absence.

The results are built in ``handmade.py`` from simple geometry (a 60 % LAD
lesion, a 30 % LCX lesion, a 20 % one that must not be reported, the RCA not
found); the expected values below are those inputs and CAD-RADS 2.0 (Cury
2022), never the code's own output. Resources are read back through the FHIR
API and checked with the suite's independent R4 validator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from sqlmodel import Session

from core.db import engine_for
from core.settings import Settings
from fhir.dates import now_utc
from fhir.store import Store
from imaging_core import ctca_results
from imaging_core.ctca.tree import CtcaResult, Ffr
from imaging_core.ctca_reports import conclusion_text
from imaging_core.models import AnalysisJob
from tests.fhir_validator import R4Validator
from tests.imaging_core.conftest import Order
from tests.imaging_core.ctca import handmade

Headers = Callable[..., dict[str, str]]
UCUM = "http://unitsofmeasure.org"
DCM = "http://dicom.nema.org/resources/ontology/DCM"


@pytest.fixture(scope="module")
def case() -> tuple[list[Any], Any, CtcaResult]:
    sources = handmade.sources()
    volume = handmade.volume(sources)
    return sources, volume, handmade.result(volume)


def _publish(settings: Settings, order: Order, result: CtcaResult, sources: list[Any],
             volume: Any, run: int = 1) -> str:
    analysis = ctca_results.CtcaAnalysis(result, conclusion_text(result), volume)
    analysis = ctca_results.render(analysis, sources)
    with Session(engine_for(settings.database_url), expire_on_commit=False) as session:
        job = AnalysisJob(idempotency_key=f"{volume.study_uid}|test|{order.id}|{run}",
                          study_uid=volume.study_uid, service_request_id=order.id,
                          procedure="CTCA", analyser_version=ctca_results.ANALYSER_VERSION,
                          status="running", created_at=now_utc(), updated_at=now_utc())
        session.add(job)
        session.flush()
        report_id = ctca_results.publish(Store(session, settings), job, analysis)
        session.commit()
    return report_id


def _read(client: FlaskClient, headers: Headers, reference: str,
          validator: R4Validator) -> dict[str, Any]:
    response = client.get(f"/fhir/{reference}", headers=headers())
    assert response.status_code == 200, response.get_json()
    body = dict(response.get_json())
    validator.assert_valid(body)
    return body


def _code(concept: dict[str, Any], system_end: str) -> str | None:
    return next((c["code"] for c in concept.get("coding", [])
                 if c["system"].endswith(system_end)), None)


def _observations(client: FlaskClient, headers: Headers, report: dict[str, Any],
                  validator: R4Validator) -> list[dict[str, Any]]:
    return [_read(client, headers, ref["reference"], validator) for ref in report["result"]]


def _components(observation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {_code(c["code"], "/CodeSystem/measure") or "": c for c in observation["component"]}


def _by_measure(observations: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    return [o for o in observations if _code(o["code"], "/CodeSystem/measure") == code]


def _report(client: FlaskClient, headers: Headers, order: Order, report_id: str,
            validator: R4Validator) -> dict[str, Any]:
    report = _read(client, headers, f"DiagnosticReport/{report_id}", validator)
    assert report["status"] == "preliminary"
    assert report["basedOn"] == [{"reference": f"ServiceRequest/{order.id}"}]
    return report


def _analysed(client: FlaskClient, headers: Headers, settings: Settings, made: Order,
              validator: R4Validator, case: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The hand-made case published for ``made``: the report and its Observations."""
    sources, volume, result = case
    report = _report(client, headers, made, _publish(settings, made, result, sources, volume),
                     validator)
    return report, _observations(client, headers, report, validator)


def test_each_lesion_of_25_percent_or_more_is_an_observation_with_every_component(
        client: FlaskClient, auth_headers: Headers, settings: Settings,
        order: Callable[[], Order], r4_validator: R4Validator, case: Any) -> None:
    report, observations = _analysed(client, auth_headers, settings, order(),
                                     r4_validator, case)
    lesions = _by_measure(observations, "coronary-lesion")
    assert len(lesions) == 2  # 60 % LAD and 30 % LCX; the 20 % one is below 25 %
    lad = next(o for o in lesions if _code(o["bodySite"], "/coronary-vessel") == "LAD")
    parts = _components(lad)
    assert _code(parts["vessel"]["valueCodeableConcept"], "/coronary-vessel") == "LAD"
    assert _code(parts["vessel"]["valueCodeableConcept"], "snomed.info/sct") == "59438005"
    expected = {"stenosis-pct": (60.0, "%"), "from-ostium-mm": (9.5, "mm"),
                "lesion-length-mm": (3.0, "mm"), "reference-diameter-mm": (3.0, "mm"),
                "minimal-lumen-diameter-mm": (1.2, "mm"),
                "ffr-ct": (handmade.FFR_AFTER_LAD_LESION, "{ratio}"),
                "stent-diameter-mm": (3.0, "mm"), "stent-length-mm": (12.0, "mm"),
                "stent-start-mm": (3.5, "mm")}
    for code, (value, unit) in expected.items():
        quantity = parts[code]["valueQuantity"]
        assert (quantity["value"], quantity["system"], quantity["code"]) == \
            (pytest.approx(value), UCUM, unit), code
    assert "cardiologist" in lad["note"][0]["text"]
    assert _code(parts["stenosis-pct"]["code"], "snomed.info/sct") == "408715008"
    lcx = next(o for o in lesions if o is not lad)
    assert "stent-diameter-mm" not in _components(lcx)  # 30 %: no stent below 50 %


def test_ffr_per_vessel_and_cad_rads(client: FlaskClient, auth_headers: Headers,
                                     settings: Settings, order: Callable[[], Order],
                                     r4_validator: R4Validator, case: Any) -> None:
    report, observations = _analysed(client, auth_headers, settings, order(),
                                     r4_validator, case)
    ffr = {_code(o["bodySite"], "/coronary-vessel"): o for o in
           _by_measure(observations, "ffr-ct")}
    assert set(ffr) == {"LM", "LAD", "LCX", "RCA"}
    assert ffr["LAD"]["valueQuantity"]["value"] == pytest.approx(handmade.LAD_DISTAL)
    assert ffr["LCX"]["valueQuantity"]["value"] == pytest.approx(handmade.LCX_DISTAL)
    assert ffr["LM"]["valueQuantity"]["value"] == pytest.approx(handmade.LM_DISTAL)
    assert "valueQuantity" not in ffr["RCA"]  # not found: not assessed, never a number
    assert _code(ffr["RCA"]["dataAbsentReason"], "data-absent-reason") == "not-performed"
    (cad_rads,) = _by_measure(observations, "cad-rads")
    concept = cad_rads["valueCodeableConcept"]
    assert (_code(concept, "/CodeSystem/cad-rads"), _code(concept, "/DCM")) == ("3", "130726")
    # the LCX's lumen is NaN and the RCA was not found: the category names both and why
    assert [n["text"] for n in cad_rads["note"]] == [
        "Not assessed: LCX (not measured), RCA (not found in the images); obstructive "
        "disease there cannot be excluded (CAD-RADS 2.0 N, Cury 2022)."]
    assert "RCA" in report["conclusion"] and "not assessed" in report["conclusion"]
    forms = {f["contentType"] for f in report["presentedForm"]}
    assert forms == {"application/pdf", "model/gltf-binary"}
    media = [_read(client, auth_headers, m["link"]["reference"], r4_validator)
             for m in report["media"]]
    assert [m["content"]["contentType"] for m in media] == ["image/png", "image/png"]


def test_cad_rads_n_is_coded(client: FlaskClient, auth_headers: Headers, settings: Settings,
                             order: Callable[[], Order], r4_validator: R4Validator,
                             case: Any) -> None:
    sources, volume, result = case
    made = order()
    report_id = _publish(settings, made, replace(result, cad_rads="N"), sources, volume)
    report = _report(client, auth_headers, made, report_id, r4_validator)
    (cad_rads,) = _by_measure(_observations(client, auth_headers, report, r4_validator),
                              "cad-rads")
    concept = cad_rads["valueCodeableConcept"]
    # CAD-RADS 2.0 N: non-diagnostic study; DICOM CID 3020 DCM 130731.
    assert (_code(concept, "/CodeSystem/cad-rads"), _code(concept, "/DCM")) == ("N", "130731")


def test_nan_ffr_and_a_failed_model_are_absent_never_numbers(
        client: FlaskClient, auth_headers: Headers, settings: Settings,
        order: Callable[[], Order], r4_validator: R4Validator, case: Any) -> None:
    sources, volume, result = case
    assert result.ffr is not None
    nan_lcx = Ffr({**result.ffr.along, "LCX": np.full_like(result.ffr.along["LCX"], np.nan)})
    made = order()
    report = _report(client, auth_headers, made, _publish(
        settings, made, replace(result, ffr=nan_lcx), sources, volume), r4_validator)
    observations = _observations(client, auth_headers, report, r4_validator)
    lcx = next(o for o in _by_measure(observations, "ffr-ct")
               if _code(o["bodySite"], "/coronary-vessel") == "LCX")
    assert "valueQuantity" not in lcx
    assert _code(lcx["dataAbsentReason"], "data-absent-reason") == "not-a-number"

    failed = replace(result, ffr=None, failed={"ffr-ct": "ffr-ct failed: ValueError: boom"})
    other = order()
    report = _report(client, auth_headers, other,
                     _publish(settings, other, failed, sources, volume), r4_validator)
    observations = _observations(client, auth_headers, report, r4_validator)
    assert all("valueQuantity" not in o for o in _by_measure(observations, "ffr-ct"))
    lad = next(o for o in _by_measure(observations, "coronary-lesion")
               if _code(o["bodySite"], "/coronary-vessel") == "LAD")
    assert _code(_components(lad)["ffr-ct"]["dataAbsentReason"], "data-absent-reason") \
        == "error"
    assert "boom" in report["conclusion"]


def test_not_analysable_gives_the_reason_and_absent_observations(
        client: FlaskClient, auth_headers: Headers, settings: Settings,
        order: Callable[[], Order], r4_validator: R4Validator, case: Any) -> None:
    sources, volume, _ = case
    refused = CtcaResult(False, reason="no contrast in the aortic root (45 HU)")
    made = order()
    report = _report(client, auth_headers, made,
                     _publish(settings, made, refused, sources, volume), r4_validator)
    assert "no contrast in the aortic root (45 HU)" in report["conclusion"]
    observations = _observations(client, auth_headers, report, r4_validator)
    assert not _by_measure(observations, "coronary-lesion")
    assert len(_by_measure(observations, "ffr-ct")) == 4
    for observation in observations:
        assert "valueQuantity" not in observation
        assert "valueCodeableConcept" not in observation  # not CAD-RADS N: never read
        assert _code(observation["dataAbsentReason"], "data-absent-reason") == "not-performed"
        assert "no contrast" in observation["dataAbsentReason"]["text"]
    assert "media" not in report


def test_the_cad_rads_code_system_is_published(client: FlaskClient,
                                               auth_headers: Headers) -> None:
    found = client.get("/fhir/CodeSystem/cad-rads", headers=auth_headers()).get_json()
    assert [c["code"] for c in found["concept"]] == ["0", "1", "2", "3", "4A", "4B", "5", "N"]
    measures = client.get("/fhir/CodeSystem/measure", headers=auth_headers()).get_json()
    codes = {c["code"] for c in measures["concept"]}
    assert {"coronary-lesion", "stenosis-pct", "ffr-ct", "stent-length-mm",
            "cad-rads"} <= codes


def test_a_re_analysis_withdraws_the_earlier_observations(
        client: FlaskClient, auth_headers: Headers, settings: Settings,
        order: Callable[[], Order], r4_validator: R4Validator, case: Any) -> None:
    sources, volume, result = case
    made = order()
    first = _report(client, auth_headers, made,
                    _publish(settings, made, result, sources, volume), r4_validator)
    again = _publish(settings, made, replace(result, cad_rads="4A"), sources, volume, run=2)
    assert again == first["id"]  # one report per order, its next version
    second = _report(client, auth_headers, made, again, r4_validator)
    assert second["conclusion"].startswith("Re-analysed")
    old = _observations(client, auth_headers, first, r4_validator)
    assert {o["status"] for o in old} == {"entered-in-error"}
    new = _observations(client, auth_headers, second, r4_validator)
    assert {o["status"] for o in new} == {"preliminary"}
    (cad_rads,) = _by_measure(new, "cad-rads")
    assert _code(cad_rads["valueCodeableConcept"], "/CodeSystem/cad-rads") == "4A"
