"""Results back as FHIR for coronary CT angiography (``CTCA``): the analyser and its report.

For a complete ``CTCA`` study this loads the CT series, runs the CTCA
pipeline (``imaging_core.ctca.pipeline``), renders the coronary tree as a GLB
coloured by FFR-CT and a straightened view of each main vessel, builds the
PDF, the DICOM SR (TID 1500) and the Encapsulated PDF
(``imaging_core.ctca_reports``), stores the SR with the study, owes it and the
PDF to PACS, and writes in one transaction the Observations, the
``preliminary`` DiagnosticReport (``basedOn`` the order), its Provenance and
the order moved to ``analysed``. Writing, idempotency, sign-off re-issue and
PACS are ``imaging_core.results``' own functions, shared with calcium scoring.

The Observations (CONTRACT §5), codes from ``{base}/CodeSystem/measure``:

- one ``coronary-lesion`` per lesion of 25 % diameter stenosis or more, its
  ``bodySite`` the vessel and components ``vessel``, ``stenosis-pct``,
  ``from-ostium-mm``, ``lesion-length-mm``, ``reference-diameter-mm``,
  ``minimal-lumen-diameter-mm``, ``ffr-ct`` (just distal to the lesion) and,
  from 50 %, ``stent-diameter-mm``, ``stent-length-mm`` and
  ``stent-start-mm`` with a note that the stent is advice for a cardiologist;
- one ``ffr-ct`` per main vessel (its distal value), ``bodySite`` the vessel;
- one ``cad-rads``, coded from ``{base}/CodeSystem/cad-rads`` and DICOM CID 3020.

Unknown is never a number: a vessel that was not found, an FFR-CT that is
NaN or whose model failed, a CAD-RADS that could not be given and a study
that was not analysable all carry ``dataAbsentReason`` with the reason. A
study the software could not analyse is not CAD-RADS N (non-diagnostic): that
is a reader's judgement of the images, so its ``cad-rads`` is absent instead.

A re-analysis of a ``preliminary`` report writes the report's next version
with new Observations (lesions have no stable identity across analyses) and
marks the earlier ones ``entered-in-error``; a
signed-off report is never changed by the machine, only its PDF and SR are
issued again at sign-off (``imaging_core.signoff``), and any other new result
waits for a person (``imaging_core.holds``).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset
from sqlmodel import Session

from core.db import engine_for
from core.settings import Settings
from fhir.store import Store
from imaging_core import ctca_media, ctca_reports, jobs, results, signoff
from imaging_core import reports as reports
from imaging_core.ctca import cadrads, centrelines, pipeline
from imaging_core.ctca.tree import VESSELS, CtcaResult, Lesion
from imaging_core.ctca_reports import (
    STENT_FROM_PCT,
    ffr_after,
    reported_lesions,
    stent_for,
    vessel_ffr,
)
from imaging_core.errors import ImagingError
from imaging_core.holds import hold_for_person
from imaging_core.keyimages import KeyImage
from imaging_core.results import _absent, _binary, _Context, _measure_concept, _observation
from imaging_core.terminology import cad_rads_concept, vessel_concept
from imaging_core.volume import Volume, load_volumes

log = logging.getLogger(__name__)

PROCEDURE = "CTCA"
ANALYSER_VERSION = ctca_reports.VERSION
STENT_NOTE = ("The stent diameter, length and position are a suggestion from the CT "
              "for the treating cardiologist, not a decision: sizing is confirmed at "
              "angiography.")


@dataclass
class CtcaAnalysis:
    """Everything a CTCA analysis produced, before it is written."""

    result: CtcaResult
    conclusion: str
    volume: Volume | None = None
    effective: str | None = None  # when the images were taken (results.Analysis)
    glb: bytes | None = None
    images: list[KeyImage] = field(default_factory=list)
    pdf: bytes | None = None
    derived: list[Dataset] = field(default_factory=list)
    document: Dataset | None = None
    pdf_title: str = ctca_reports.PDF_TITLE


def register() -> None:
    """The CTCA analyser, its skan code compiled at worker start (``centrelines.warm``)."""
    jobs.register_analyser(PROCEDURE, ANALYSER_VERSION, run_ctca, warm=centrelines.warm)


def run_ctca(settings: Settings, job: jobs.AnalysisJob) -> str:
    """Analyse the job's study and publish the results; the report id."""
    with Session(engine_for(settings.database_url)) as session:
        sources = results._datasets(session, settings, job.study_uid)
        signature = signoff.signature_for(session, settings, job)
    analysis = analyse(sources, signature)
    with Session(engine_for(settings.database_url), expire_on_commit=False) as session:
        jobs.check_lease(session, job)
        report_id = publish(Store(session, settings), job, analysis)
        session.commit()
    return report_id


def analyse(sources: list[Dataset],
            signature: reports.Signature | None = None) -> CtcaAnalysis:
    """Load the largest CT series, run the pipeline and render every output.

    A study that cannot be read is "not analysable" with the loader's reason.
    """
    try:
        volume: Volume | None = max(load_volumes(sources), key=lambda v: v.shape[0])
    except (ImagingError, ValueError) as error:
        volume = None
        result = CtcaResult(False, reason=f"the images could not be read: {error}")
    if volume is not None:
        result = pipeline.analyse(volume)
    analysis = CtcaAnalysis(result, ctca_reports.conclusion_text(result), volume,
                            results._effective(sources))
    return render(analysis, sources, signature)


def render(analysis: CtcaAnalysis, sources: list[Dataset],
           signature: reports.Signature | None = None) -> CtcaAnalysis:
    """The GLB, straightened views, PDF, SR and Encapsulated PDF of ``analysis``."""
    result, volume = analysis.result, analysis.volume
    if result.analysable and volume is not None:
        analysis.glb = ctca_media.tree_glb(result)
        analysis.images = ctca_media.straightened_images(volume, result)
    analysis.pdf = ctca_reports.build_pdf(
        result, patient_name=results._first(sources, "PatientName"),
        accession=results._first(sources, "AccessionNumber"),
        study_date=results._first(sources, "StudyDate"), images=analysis.images,
        conclusion=analysis.conclusion, signature=signature)
    if volume is None:
        return analysis  # no series to put an SR or a document in
    series = [s for s in sources if s.SeriesInstanceUID == volume.series_uid]
    analysis.derived = [ctca_reports.build_sr(series, volume, result, analysis.conclusion,
                                              signature=signature)]
    analysis.document = reports.build_encapsulated_pdf(
        series, analysis.pdf, signature=signature, title=ctca_reports.PDF_TITLE)
    return analysis


def publish(store: Store, job: jobs.AnalysisJob, analysis: CtcaAnalysis) -> str:
    """Write the results of ``analysis`` for ``job``; the DiagnosticReport id."""
    key = results.job_key(store, job)
    done = results.published(store, key)
    if done is not None:
        return done
    order = store.read("ServiceRequest", job.service_request_id)
    earlier = results._order_report(store, order["id"], key["system"])
    if earlier is not None and earlier["status"] in results.SIGNED_OFF:
        if signoff.is_reissue(job):
            return results._reissue(store, job, analysis, earlier)
        return _hold_result(store, job, order, earlier, analysis)
    ctx = results.store_derived(store, job, order, analysis)
    if earlier is not None:
        analysis.conclusion = (f"Re-analysed: {results._more_images(store, job, earlier)}. "
                               + analysis.conclusion)
        _withdraw(ctx, earlier)
    content = results.ReportContent(
        "CT coronary angiography", observations(ctx, analysis.result), analysis.conclusion,
        _attachments(ctx, analysis), analysis.images)
    report = results.write_report(ctx, key, content, earlier)
    results._owe_to_pacs(store, str(report["id"]), job, analysis)
    results.write_provenance(ctx, report, ANALYSER_VERSION, _parameters(analysis.result))
    return results.order_analysed(ctx, report)


def _withdraw(ctx: _Context, report: dict[str, Any]) -> None:
    """The earlier analysis' Observations marked ``entered-in-error`` (R4: withdrawn), so
    a search by order never returns them beside the new ones."""
    for ref in report.get("result", []):
        observation = ctx.store.read("Observation", ref["reference"].split("/", 1)[1])
        current = {k: v for k, v in observation.items() if k != "meta"}
        ctx.amend(str(observation["id"]), {**current, "status": "entered-in-error"})


def _hold_result(store: Store, job: jobs.AnalysisJob, order: dict[str, Any],
                 report: dict[str, Any], analysis: CtcaAnalysis) -> str:
    """A signed-off report stays as it is; the new result waits for a person."""
    why = results._more_images(store, job, report)
    output = [{"type": {"text": "conclusion"}, "valueString": analysis.conclusion},
              {"type": {"text": "analysis-job"}, "valueString": job.idempotency_key}]
    hold_for_person(store, order, f"DiagnosticReport/{report['id']}", "result-after-sign-off",
                    f"Re-analysed after sign-off: {why}. The signed report is unchanged; "
                    "a radiologist decides whether to amend it", output)
    return str(report["id"])


def _parameters(result: CtcaResult) -> dict[str, str]:
    """The Provenance's record of what the analysis measured and how long each step took."""
    assumptions = result.ffr.assumptions if result.ffr is not None else {}
    recorded = {"qa": json.dumps(result.qa), "timings-s": json.dumps(result.timings_s),
                "failed-steps": json.dumps(result.failed),
                "ffr-assumptions": json.dumps(assumptions)}
    return {**recorded, "not-analysable": result.reason} if result.reason else recorded


def _attachments(ctx: _Context, analysis: CtcaAnalysis) -> list[dict[str, Any]]:
    forms = []
    if analysis.pdf:
        forms.append({"contentType": "application/pdf", "title": analysis.pdf_title,
                      "url": _binary(ctx, "application/pdf", analysis.pdf)})
    if analysis.glb:
        forms.append({"contentType": "model/gltf-binary", "title": ctca_media.GLB_TITLE,
                      "url": _binary(ctx, "model/gltf-binary", analysis.glb)})
    return forms


# --- Observations -------------------------------------------------------------------

def observations(ctx: _Context, result: CtcaResult) -> list[dict[str, Any]]:
    """The lesion, per-vessel FFR-CT and CAD-RADS Observations, written; in that order."""
    if not result.analysable:
        why = f"Not analysable: {result.reason or 'no reason recorded'}"
        values = [("ffr-ct", {"bodySite": vessel_concept(ctx.base, vessel),
                              **_absent("not-performed", why)}) for vessel in VESSELS]
        values.append(("cad-rads", _absent("not-performed", why)))
    else:
        values = [("coronary-lesion", _lesion_value(ctx, result, lesion))
                  for lesion in reported_lesions(result)]
        values += [("ffr-ct", _vessel_ffr(ctx, result, vessel)) for vessel in VESSELS]
        values.append(("cad-rads", _cad_rads_value(ctx, result)))
    return [ctx.create(_observation(ctx, code, value)) for code, value in values]


def _lesion_value(ctx: _Context, result: CtcaResult, lesion: Lesion) -> dict[str, Any]:
    components = [
        {"code": _measure_concept(ctx, "vessel"),
         "valueCodeableConcept": vessel_concept(ctx.base, lesion.vessel)},
        _number(ctx, "stenosis-pct", lesion.stenosis_pct, "%", "%"),
        _number(ctx, "from-ostium-mm", lesion.centre_mm, "mm", "mm"),
        _number(ctx, "lesion-length-mm", lesion.length_mm, "mm", "mm"),
        _number(ctx, "reference-diameter-mm", lesion.reference_diameter_mm, "mm", "mm"),
        _number(ctx, "minimal-lumen-diameter-mm", lesion.minimal_lumen_diameter_mm, "mm",
                "mm"),
        _ffr_component(ctx, result, lesion),
    ]
    value: dict[str, Any] = {"bodySite": vessel_concept(ctx.base, lesion.vessel),
                             "component": components}
    if lesion.stenosis_pct >= STENT_FROM_PCT:
        components += _stent_components(ctx, result, lesion)
        value["note"] = [{"text": STENT_NOTE}]
    return value


def _number(ctx: _Context, code: str, value: float | None, unit: str,
            ucum: str) -> dict[str, Any]:
    """A component holding ``value`` in UCUM ``ucum``, or NaN/None as not-a-number."""
    if value is None or not math.isfinite(value):
        return {"code": _measure_concept(ctx, code),
                **_absent("not-a-number", "The analysis gave no finite value")}
    return {"code": _measure_concept(ctx, code), "valueQuantity": {
        "value": round(float(value), 2), "unit": unit,
        "system": results.UCUM, "code": ucum}}


def _ffr_component(ctx: _Context, result: CtcaResult, lesion: Lesion) -> dict[str, Any]:
    value = ffr_after(result, lesion)
    if value is None and result.ffr is None:
        return {"code": _measure_concept(ctx, "ffr-ct"), **_absent("error", _no_ffr(result))}
    return _number(ctx, "ffr-ct", value, "ratio", "{ratio}")  # None here: NaN


def _no_ffr(result: CtcaResult) -> str:
    return result.failed.get("ffr-ct", "FFR-CT was not estimated for this segment")


def _stent_components(ctx: _Context, result: CtcaResult,
                      lesion: Lesion) -> list[dict[str, Any]]:
    stent = stent_for(result, lesion)
    if stent is None:
        why = result.failed.get("stents", "No stent size in the catalogue fits this lesion")
        return [{"code": _measure_concept(ctx, code), **_absent("unknown", why)}
                for code in ("stent-diameter-mm", "stent-length-mm", "stent-start-mm")]
    return [_number(ctx, "stent-diameter-mm", stent.diameter_mm, "mm", "mm"),
            _number(ctx, "stent-length-mm", stent.length_mm, "mm", "mm"),
            _number(ctx, "stent-start-mm", stent.start_mm, "mm", "mm")]


def _vessel_ffr(ctx: _Context, result: CtcaResult, vessel: str) -> dict[str, Any]:
    site = {"bodySite": vessel_concept(ctx.base, vessel)}
    value = vessel_ffr(result, vessel)
    if value is not None:
        return {**site, "valueQuantity": {"value": round(value, 2), "unit": "ratio",
                                          "system": results.UCUM, "code": "{ratio}"}}
    if result.tree is None or vessel in result.tree.missing \
            or vessel not in result.tree.segments:
        return {**site, **_absent("not-performed", f"{vessel} was not found in the images: "
                                                   "not assessed")}
    if result.ffr is None:
        return {**site, **_absent("error", _no_ffr(result))}
    return {**site, **_absent("not-a-number", "The FFR-CT model gave no number here")}


def _cad_rads_value(ctx: _Context, result: CtcaResult) -> dict[str, Any]:
    if result.cad_rads is None:
        why = result.failed.get("cad-rads", "CAD-RADS could not be given")
        return _absent("error", why)
    value: dict[str, Any] = {"valueCodeableConcept": cad_rads_concept(ctx.base,
                                                                    result.cad_rads)}
    notes = [*_not_assessed_note(result), *cadrads.near_bounds(result.lesions)]
    return {**value, **({"note": [{"text": text} for text in notes]} if notes else {})}


def _not_assessed_note(result: CtcaResult) -> list[str]:
    """The arteries not assessed and why (CAD-RADS N or the /N modifier), as a note."""
    tree = result.tree
    unassessed = cadrads.not_assessed(result.lesions, tree) if tree is not None else []
    if tree is None or not unassessed:
        return []
    why = [f"{v} ({'not found in the images' if v in tree.missing else 'not measured'})"
           for v in unassessed]
    return [f"Not assessed: {', '.join(why)}; obstructive disease there cannot be excluded "
            "(CAD-RADS 2.0 N, Cury 2022)."]
