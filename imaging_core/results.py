"""Results back as FHIR: the calcium-scoring analyser and what it publishes.

For a complete ``CT-CAC`` study this loads the CT series, scores it, builds
the 3D model (GLB), key images, a PDF, a DICOM Comprehensive 3D SR (TID 1500)
and a SEG, stores the SR and SEG with the study, and writes in one
transaction: Binary and Media resources, the measure Observations, the
``preliminary`` DiagnosticReport (``basedOn`` the order), its Provenance
(analyser version and parameters) and the order moved to ``analysed`` by the
order workflow (``referral.orders``).
The report carries the job's idempotency key as an identifier and is created
conditionally, so running a job again never makes a second report.

The Observations (CONTRACT §5): the total ``agatston-score`` without
``bodySite``, one ``agatston-score`` per coronary artery with it (unknown, via
``dataAbsentReason``, when calcium is not attributed to arteries), volume,
mass, lesion count, and ``cac-drs`` (A coded, N as the ``cac-vessels``
component). A radiologist's decisions (``imaging_core.review``) are applied
by every analysis of the order; a job queued by a review writes the report's
next version without the "Re-analysed" preamble, and its Provenance names the
reviewers.

An order has one report. When its study is analysed again (more instances
arrived after the first analysis, shared/CONTRACT.md §5), a ``preliminary``
report is amended in place: a new version of the same DiagnosticReport and
of its Observations, whose conclusion says why. A report a radiologist has
signed off (``final``, ``amended``, ``corrected``) is never touched by the
machine: the new result is held for a person as a reconcile Task
(``imaging_core.holds``) that names the report and carries the new score.
The one exception is the ``reissue`` job a sign-off or amendment queues
(``imaging_core.signoff``): it scores the same images again only to issue the
PDF, SR and SEG anew as the signed version says (FINAL, who signed), and
changes nothing else of the report.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pydicom
from pydicom import Dataset
from sqlmodel import Session, col, select

from core.db import engine_for
from core.settings import Settings
from fhir.dates import instant, now_utc
from fhir.search import run_search
from fhir.store import Store, spec_for
from imaging_core import calcium, jobs, pacs, review, signoff
from imaging_core import reports as reports
from imaging_core.chest import score_chest
from imaging_core.errors import ImagingError
from imaging_core.holds import hold_for_person
from imaging_core.keyimages import KeyImage, key_images
from imaging_core.mesh import calcium_mesh, context_mesh, to_glb
from imaging_core.models import DicomInstance, ReceivedStudy
from imaging_core.storage import store_instance, study_started
from imaging_core.terminology import CAC_DRS_CATEGORIES, MEASURES, code_in, vessel_concept
from imaging_core.volume import Volume, load_volumes
from referral import orders

log = logging.getLogger(__name__)

UCUM = "http://unitsofmeasure.org"
IMAGE_MODALITIES = {"CT"}
@dataclass
class Analysis:
    """Everything an analysis produced, before it is written."""

    volume: Volume | None
    result: calcium.CalciumResult | None
    conclusion: str
    failure: str | None = None
    # When the images were taken (StudyDate/StudyTime as a FHIR dateTime), None if the
    # header does not say: the report's and Observations' effective time, never the
    # time of the analysis.
    effective: str | None = None
    glb: bytes | None = None
    images: list[KeyImage] = field(default_factory=list)
    pdf: bytes | None = None
    derived: list[Dataset] = field(default_factory=list)
    # The PDF as a DICOM Encapsulated PDF, for PACS (imaging_core.pacs).
    document: Dataset | None = None
    # A radiologist's decisions applied, and the id of the last one (0: none).
    decisions: list[calcium.Decision] = field(default_factory=list)
    applied_through: int = 0
    pdf_title: str = "Calcium score report"


class Outputs(Protocol):
    """What any analyser hands to PACS and re-issues at sign-off (calcium, CTCA)."""

    pdf: bytes | None
    pdf_title: str
    derived: list[Dataset]
    document: Dataset | None
    effective: str | None


def register() -> None:
    """Every analyser: calcium scoring here, CTCA in ``imaging_core.ctca_results``."""
    from imaging_core.ctca_results import register as register_ctca  # builds on this module

    jobs.register_analyser("CT-CAC", calcium.ANALYSER_VERSION, run_calcium)
    register_ctca()


def run_calcium(settings: Settings, job: jobs.AnalysisJob) -> str:
    """Analyse the job's study and publish the results; the report id."""
    with Session(engine_for(settings.database_url)) as session:
        sources = _datasets(session, settings, job.study_uid)
        decided = review.decisions_for(session, job.service_request_id)
        signature = signoff.signature_for(session, settings, job)
    analysis = analyse(sources, review.as_decisions(decided), signature)
    analysis.applied_through = max((d.id or 0 for d in decided), default=0)
    with Session(engine_for(settings.database_url), expire_on_commit=False) as session:
        jobs.check_lease(session, job)
        report_id = publish(Store(session, settings), job, analysis)
        session.commit()
    return report_id


def _datasets(session: Session, settings: Settings, study_uid: str) -> list[Dataset]:
    rows = session.exec(select(DicomInstance).where(
        col(DicomInstance.study_uid) == study_uid,
        col(DicomInstance.modality).in_(IMAGE_MODALITIES))).all()
    return [pydicom.dcmread(settings.var_dir / row.path) for row in rows]


def analyse(sources: list[Dataset], decisions: Sequence[calcium.Decision] = (),
            signature: reports.Signature | None = None) -> Analysis:
    """Load, score (with a radiologist's ``decisions``, in order) and render.

    Scoring is :func:`score_volume`, the chest pipeline: anatomy, image QA,
    coronary candidates labelled by artery. A study that cannot be read gives
    a failure to report; a heart that cannot be found, a result that is not
    scorable with that reason. With ``signature`` (a signed-off report issued
    again) the PDF, SR, SEG and Encapsulated PDF say FINAL and who signed, not
    PRELIMINARY.
    """
    try:
        volume = max(load_volumes(sources), key=lambda v: v.shape[0])
    except (ImagingError, ValueError) as error:
        return Analysis(None, None, f"The images could not be analysed: {error}. "
                        "A radiologist will review them.", failure=str(error),
                        effective=_effective(sources))
    result, applied = _score(volume, decisions)
    analysis = Analysis(volume, result, reports.conclusion_text(result) + _reviewed(applied),
                        decisions=applied, effective=_effective(sources))
    if result.scorable and result.weight_map is not None:
        analysis.glb = to_glb([calcium_mesh(volume, result.weight_map),
                               context_mesh(volume, result.weight_map)])
        analysis.images = key_images(volume, result.weight_map)
    analysis.pdf = reports.build_pdf(result, patient_name=_first(sources, "PatientName"),
                                     accession=volume.accession_number,
                                     study_date=_first(sources, "StudyDate"),
                                     key_images=[k.png for k in analysis.images],
                                     conclusion=analysis.conclusion, signature=signature)
    series = [s for s in sources if s.SeriesInstanceUID == volume.series_uid]
    analysis.derived = [reports.build_sr(series, volume, result, signature=signature)]
    seg = reports.build_seg(series, volume, result, signature=signature) \
        if result.scorable else None
    analysis.derived += [seg] if seg is not None else []
    analysis.document = reports.build_encapsulated_pdf(series, analysis.pdf,
                                                       signature=signature)
    return analysis


def _effective(sources: list[Dataset]) -> str | None:
    return next((when for when in map(study_started, sources) if when), None)


def score_volume(volume: Volume, decisions: Sequence[calcium.Decision]) -> calcium.CalciumResult:
    """The one scorer the analyser calls: the chest pipeline (:func:`chest.score_chest`).

    Raises ValueError, as ``calcium.score`` does, for a decision naming an
    unknown lesion or label.
    """
    return score_chest(volume, decisions=decisions)


def _score(volume: Volume, decisions: Sequence[calcium.Decision]
           ) -> tuple[calcium.CalciumResult, list[calcium.Decision]]:
    """The result with every decision whose lesion is still a candidate, and those applied.

    New images can move a lesion (its id names its first voxel): a decision
    whose lesion is gone is not applied, and the result's QA notes say so.
    """
    try:
        return score_volume(volume, decisions), list(decisions)
    except ValueError:
        if not decisions:
            raise
    known = {lesion.id for lesion in score_volume(volume, ()).lesions}
    kept = [d for d in decisions if d.lesion_id in known]
    result = score_volume(volume, kept)
    gone = sorted({d.lesion_id for d in decisions if d.lesion_id not in known})
    result.qa.append(f"review-not-applied: {len(decisions) - len(kept)} review decisions "
                     f"name lesions this analysis did not find ({', '.join(gone)})")
    return result, kept


def _reviewed(applied: Sequence[calcium.Decision]) -> str:
    """A sentence saying a radiologist's review is in the result, or nothing."""
    if not applied:
        return ""
    return (f" A radiologist's review of the automatic findings ({len(applied)} "
            f"change{'s' if len(applied) != 1 else ''}) is applied.")


def _first(sources: list[Dataset], keyword: str) -> str | None:
    value = next((getattr(s, keyword, None) for s in sources if getattr(s, keyword, None)), None)
    return str(value) if value else None


SIGNED_OFF = review.SIGNED_OFF


def job_key(store: Store, job: jobs.AnalysisJob) -> dict[str, str]:
    """The report identifier that makes a job's results idempotent."""
    return {"system": f"{store.settings.canonical_base}/analysis-job",
            "value": job.idempotency_key}


def published(store: Store, key: dict[str, str]) -> str | None:
    """The id of the report a job with ``key`` already wrote, if any."""
    existing = run_search(store.session, spec_for("DiagnosticReport"),
                          [("identifier", f"{key['system']}|{key['value']}")], count=1)
    return str(existing.matches[0]["id"]) if existing.matches else None


def publish(store: Store, job: jobs.AnalysisJob, analysis: Analysis) -> str:
    """Write the results of ``analysis`` for ``job``; the DiagnosticReport id."""
    key = job_key(store, job)
    done = published(store, key)
    if done is not None:
        return done
    order = store.read("ServiceRequest", job.service_request_id)
    earlier = _order_report(store, order["id"], key["system"])
    if earlier is not None and earlier["status"] in SIGNED_OFF:
        if signoff.is_reissue(job):
            return _reissue(store, job, analysis, earlier)
        if review.is_review_job(store.session, job.id):  # signed while the job waited
            log.warning("review not applied: the report was signed off first", extra={
                "diagnostic_report_id": earlier["id"], "job_id": job.id})
            return str(earlier["id"])
        return _hold_result(store, job, order, earlier, analysis)
    context = store_derived(store, job, order, analysis)
    if earlier is not None:
        _amend(context, job, analysis, earlier)
    report = _report(context, job, analysis, key, earlier)
    review.save_candidates(store.session, str(report["id"]), job, analysis.result,
                           analysis.applied_through)
    _owe_to_pacs(store, str(report["id"]), job, analysis)
    _provenance(context, report, analysis)
    return order_analysed(context, report)


def store_derived(store: Store, job: jobs.AnalysisJob, order: dict[str, Any],
                  analysis: Outputs) -> _Context:
    """The SR and SEG stored with the study; the context the results are written in."""
    for derived in analysis.derived:
        store_instance(store.session, store.settings, derived, "derived")
    study = store.session.get(ReceivedStudy, job.study_uid)
    return _Context(store, order, study.imaging_study_id if study else None,
                    analysis.effective)


def order_analysed(ctx: _Context, report: dict[str, Any]) -> str:
    """Move the order to ``analysed`` (the order workflow); the report id."""
    study_ref = f"ImagingStudy/{ctx.imaging_study_id}" if ctx.imaging_study_id else None
    orders.analysed(ctx.store, ctx.order, study_ref)
    return str(report["id"])


def _reissue(store: Store, job: jobs.AnalysisJob, analysis: Outputs,
             report: dict[str, Any]) -> str:
    """The signed report's PDF, SR and SEG issued again (FINAL, who signed); the report's
    Observations and conclusion are the signed ones and stay as they are."""
    for derived in analysis.derived:
        store_instance(store.session, store.settings, derived, "derived")
    context = _Context(store, store.read("ServiceRequest", job.service_request_id), None)
    kept = [f for f in report.get("presentedForm", []) if f.get("contentType") !=
            "application/pdf"]
    pdf = [{"contentType": "application/pdf", "title": analysis.pdf_title,
            "url": _binary(context, "application/pdf", analysis.pdf)}] if analysis.pdf else []
    current = {k: v for k, v in report.items() if k != "meta"}
    with orders.workflow_write(store, f"DiagnosticReport/{report['id']}"):
        context.amend(str(report["id"]), {**current, "presentedForm": pdf + kept})
    _owe_to_pacs(store, str(report["id"]), job, analysis)  # the PACS get the signed ones
    log.info("signed report's outputs issued again", extra={
        "diagnostic_report_id": report["id"], "job_id": job.id})
    return str(report["id"])


def _owe_to_pacs(store: Store, report_id: str, job: jobs.AnalysisJob,
                 analysis: Outputs) -> None:
    """The SR, SEG and Encapsulated PDF join the PACS outbox in the results' transaction."""
    objects = [*analysis.derived, *([analysis.document] if analysis.document else [])]
    if objects:
        pacs.record_results(store.session, store.settings, report_id, job.id or 0, objects)
        pacs.queue_results_to_pacs(store.session, report_id, store.settings)


def _order_report(store: Store, order_id: str, system: str) -> dict[str, Any] | None:
    """The order's report written by an analysis, if there is one."""
    found = run_search(store.session, spec_for("DiagnosticReport"),
                       [("based-on", f"ServiceRequest/{order_id}")], count=50).matches
    ours = [r for r in found if any(i.get("system") == system for i in r.get("identifier", []))]
    return ours[0] if ours else None


def _more_images(store: Store, job: jobs.AnalysisJob, report: dict[str, Any]) -> str:
    """Why the study was analysed again, in words, from the earlier job's instance count."""
    earlier = store.session.exec(select(jobs.AnalysisJob).where(
        col(jobs.AnalysisJob.diagnostic_report_id) == report["id"],
        col(jobs.AnalysisJob.id) != job.id).order_by(col(jobs.AnalysisJob.id).desc())).first()
    before, now = (earlier.instance_count if earlier else None), job.instance_count
    if before is None or now is None:
        return "the study's images changed after the first analysis"
    if now > before:
        return f"{now - before} more images arrived after the first analysis ({now} in all)"
    return f"the study's images changed after the first analysis ({now} in all)"


def _amend(ctx: _Context, job: jobs.AnalysisJob, analysis: Analysis,
           earlier: dict[str, Any]) -> None:
    """Prepare a re-analysis to replace the preliminary report and its Observations."""
    ctx.reuse = _observation_ids(ctx.store, earlier)
    if not review.is_review_job(ctx.store.session, job.id):
        analysis.conclusion = f"Re-analysed: {_more_images(ctx.store, job, earlier)}. " \
            + analysis.conclusion
    log.info("preliminary report amended by a re-analysis", extra={
        "diagnostic_report_id": earlier["id"], "job_id": job.id})


def _observation_ids(store: Store, report: dict[str, Any]) -> dict[str, str]:
    """The report's Observations by :func:`_reuse_key` (measure code, and artery if any)."""
    ids: dict[str, str] = {}
    for ref in report.get("result", []):
        observation = store.read("Observation", ref["reference"].split("/", 1)[1])
        key = _reuse_key(store.settings.canonical_base, observation)
        if key is not None:
            ids[key] = str(observation["id"])
    return ids


def _reuse_key(base: str, observation: dict[str, Any]) -> str | None:
    """``agatston-score``, or ``agatston-score@LAD`` for an artery's: one Observation each."""
    measure = code_in(observation.get("code"), f"{base}/CodeSystem/measure")
    if measure is None:
        return None
    site = code_in(observation.get("bodySite"), f"{base}/CodeSystem/coronary-vessel")
    return f"{measure}@{site}" if site else measure


def _hold_result(store: Store, job: jobs.AnalysisJob, order: dict[str, Any],
                 report: dict[str, Any], analysis: Analysis) -> str:
    """A signed-off report stays as it is; the new result waits for a person."""
    why = _more_images(store, job, report)
    output: list[dict[str, Any]] = [
        {"type": {"text": "conclusion"}, "valueString": analysis.conclusion},
        {"type": {"text": "analysis-job"}, "valueString": job.idempotency_key}]
    if analysis.result is not None and analysis.result.scorable:
        output.append({"type": {"text": "agatston-score"},
                       "valueDecimal": round(float(analysis.result.agatston or 0), 2)})
    hold_for_person(store, order, f"DiagnosticReport/{report['id']}", "result-after-sign-off",
                    f"Re-analysed after sign-off: {why}. The signed report is unchanged; "
                    "a radiologist decides whether to amend it", output)
    log.warning("re-analysis of a signed-off report held for a person", extra={
        "diagnostic_report_id": report["id"], "job_id": job.id})
    return str(report["id"])


@dataclass
class _Context:
    store: Store
    order: dict[str, Any]
    imaging_study_id: str | None
    effective: str | None = None  # when the images were taken (Analysis.effective)
    # Observations of an amended report, by measure code: updated, not created anew.
    reuse: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.store.settings.canonical_base

    @property
    def subject(self) -> dict[str, Any]:
        return dict(self.order["subject"])

    @property
    def order_ref(self) -> dict[str, str]:
        return {"reference": f"ServiceRequest/{self.order['id']}"}

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        return self.store.create(resource["resourceType"], resource).resource

    def amend(self, resource_id: str, resource: dict[str, Any]) -> dict[str, Any]:
        """A new version of ``resource_id`` holding ``resource``."""
        return self.store.update(resource["resourceType"], resource_id,
                                 {**resource, "id": resource_id}).resource

    def write_observation(self, resource: dict[str, Any]) -> dict[str, Any]:
        key = _reuse_key(self.base, resource)
        if key is not None and key in self.reuse:
            return self.amend(self.reuse[key], resource)
        return self.create(resource)


def _report(ctx: _Context, job: jobs.AnalysisJob, analysis: Analysis,
            key: dict[str, str], earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    content = ReportContent("Cardiac CT for calcium scoring", _observations(ctx, analysis),
                            analysis.conclusion, _attachments(ctx, analysis), analysis.images)
    return write_report(ctx, key, content, earlier)


@dataclass
class ReportContent:
    """What a DiagnosticReport says: ``code_text`` names the procedure when the order has
    no code; ``observations`` are written already; ``forms`` are presentedForm entries."""

    code_text: str
    observations: list[dict[str, Any]]
    conclusion: str
    forms: list[dict[str, Any]]
    images: Sequence[KeyImage]


def write_report(ctx: _Context, key: dict[str, str], content: ReportContent,
                 earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``preliminary`` DiagnosticReport ``basedOn`` the order (a new version of
    ``earlier`` when given), its images as Media."""
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport", "status": "preliminary",
        "identifier": [*(earlier or {}).get("identifier", []), key],
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                  "code": "RAD", "display": "Radiology"}]}],
        "code": (ctx.order.get("code") or {"text": content.code_text}),
        "subject": ctx.subject, "basedOn": [ctx.order_ref], "issued": instant(now_utc()),
        **_effective_time(ctx),
        "result": [{"reference": f"Observation/{o['id']}"} for o in content.observations],
        "conclusion": content.conclusion,
    }
    if ctx.imaging_study_id:
        report["imagingStudy"] = [{"reference": f"ImagingStudy/{ctx.imaging_study_id}"}]
    report["presentedForm"] = content.forms
    media = [_media(ctx, image) for image in content.images]
    if media:
        report["media"] = [{"comment": m["content"]["title"],
                            "link": {"reference": f"Media/{m['id']}"}} for m in media]
    return ctx.amend(earlier["id"], report) if earlier else ctx.create(report)


def _effective_time(ctx: _Context) -> dict[str, str]:
    """``effectiveDateTime`` when the header says when the scan was; otherwise none."""
    return {"effectiveDateTime": ctx.effective} if ctx.effective else {}


NOT_SCORED = ("agatston-score", "cac-drs")


def _observations(ctx: _Context, analysis: Analysis) -> list[dict[str, Any]]:
    """The total scores, one ``agatston-score`` per artery (with ``bodySite``) and CAC-DRS.

    A scan that was not scored still gets its ``agatston-score`` and ``cac-drs``, each
    with ``dataAbsentReason`` ``not-performed`` and the reason, so a receiving system
    can never read "no result" as "no calcium".
    """
    result = analysis.result
    if result is None or not result.scorable:
        reason = (result.reason if result is not None else analysis.failure) or "no reason"
        absent = _absent("not-performed", f"Not scorable: {reason}")
        return [ctx.write_observation(_observation(ctx, code, absent)) for code in NOT_SCORED]
    values: list[tuple[str, dict[str, Any]]] = [
        ("agatston-score", {"valueQuantity": _quantity(result.agatston, "1", "{score}")}),
        *[("agatston-score", value) for value in _artery_values(ctx, result)],
        ("cac-volume-mm3", {"valueQuantity": _quantity(result.volume_mm3, "mm3", "mm3")}),
        ("cac-lesion-count", {"valueInteger": result.lesion_count}),
        ("cac-drs", _cac_drs_value(ctx, result)),
        ("cac-mass-mg", ({"valueQuantity": _quantity(result.mass_mg, "mg", "mg")}
                         if result.mass_mg is not None else _absent(
                             "not-performed", "No scanner calibration factor is configured"))),
    ]
    return [ctx.write_observation(_observation(ctx, code, value)) for code, value in values]


def _absent(code: str, text: str) -> dict[str, Any]:
    """A ``dataAbsentReason`` (http://hl7.org/fhir/R4/valueset-data-absent-reason.html)."""
    display = {"not-performed": "Not Performed", "unknown": "Unknown", "error": "Error",
               "not-a-number": "Not a Number (NaN)"}[code]
    return {"dataAbsentReason": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
        "code": code, "display": display}], "text": text}}


UNATTRIBUTED = "Some counted calcium is not attributed to a coronary artery"


def _artery_values(ctx: _Context, result: calcium.CalciumResult) -> list[dict[str, Any]]:
    """Per artery (zeros included): its Agatston score, or unknown when calcium is
    unattributed (an artery's share is then not known, never 0)."""
    known = result.cac_vessels is not None
    return [{"bodySite": vessel_concept(ctx.base, artery), **(
        {"valueQuantity": _quantity(result.arteries[artery].agatston, "1", "{score}")}
        if known and artery in result.arteries else _absent("unknown", UNATTRIBUTED))}
        for artery in calcium.CORONARY_ARTERIES]


def _cac_drs_value(ctx: _Context, result: calcium.CalciumResult) -> dict[str, Any]:
    """CAC-DRS A as a coding, N as the ``cac-vessels`` component (Hecht 2018; CONTRACT §5)."""
    category = f"A{result.cac_drs}"
    vessels: dict[str, Any] = ({"valueInteger": result.cac_vessels}
                               if result.cac_vessels is not None
                               else _absent("unknown", UNATTRIBUTED))
    return {"valueCodeableConcept": {
        "coding": [{"system": f"{ctx.base}/CodeSystem/cac-drs", "code": category,
                    "display": CAC_DRS_CATEGORIES[category]}],
        "text": result.cac_drs_label},
        "component": [{"code": _measure_concept(ctx, "cac-vessels"), **vessels}]}


def _quantity(value: float | None, unit: str, code: str) -> dict[str, Any]:
    return {"value": round(float(value or 0), 2), "unit": unit, "system": UCUM, "code": code}


def _measure_concept(ctx: _Context, code: str) -> dict[str, Any]:
    measure = MEASURES[code]
    return {"coding": [{"system": f"{ctx.base}/CodeSystem/measure", "code": code,
                        "display": measure.display}, *measure.standard],
            "text": measure.display}


def _observation(ctx: _Context, code: str, value: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation", "status": "preliminary",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "imaging", "display": "Imaging"}]}],
        "code": _measure_concept(ctx, code),
        "subject": ctx.subject, "basedOn": [ctx.order_ref], **_effective_time(ctx), **value}
    if ctx.imaging_study_id:
        resource["derivedFrom"] = [{"reference": f"ImagingStudy/{ctx.imaging_study_id}"}]
    return resource


def _binary(ctx: _Context, content_type: str, data: bytes) -> str:
    made = ctx.create({"resourceType": "Binary", "contentType": content_type,
                       "securityContext": ctx.order_ref,
                       "data": base64.b64encode(data).decode()})
    return f"Binary/{made['id']}"


def _attachments(ctx: _Context, analysis: Analysis) -> list[dict[str, Any]]:
    forms = []
    if analysis.pdf:
        forms.append({"contentType": "application/pdf", "title": "Calcium score report",
                      "url": _binary(ctx, "application/pdf", analysis.pdf)})
    if analysis.glb:
        forms.append({"contentType": "model/gltf-binary", "title": "3D model of calcified plaque",
                      "url": _binary(ctx, "model/gltf-binary", analysis.glb)})
    return forms


def _media(ctx: _Context, image: KeyImage) -> dict[str, Any]:
    return ctx.create({
        "resourceType": "Media", "status": "completed",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/media-type",
                             "code": "image", "display": "Image"}]},
        "subject": ctx.subject, "basedOn": [ctx.order_ref],
        "content": {"contentType": "image/png", "title": image.description,
                    "url": _binary(ctx, "image/png", image.png)}})


def _provenance(ctx: _Context, report: dict[str, Any], analysis: Analysis) -> None:
    result = analysis.result
    params = result.as_dict() if result else {"failure": analysis.failure}
    write_provenance(ctx, report, calcium.ANALYSER_VERSION, {
        "parameters": json.dumps(params.get("params", params)),
        "inputs": json.dumps(params.get("inputs", {})),
        "review-decisions": review.decisions_json(analysis.decisions)},
        _reviewers(analysis.decisions))


def write_provenance(ctx: _Context, report: dict[str, Any], version: str,
                     parameters: dict[str, str],
                     authors: Sequence[dict[str, Any]] = ()) -> None:
    """The report version's and its Observations' Provenance: the analyser ``version``
    as performer, ``parameters`` (text each) in a contained Parameters, and ``authors``."""
    targets = [{"reference": f"DiagnosticReport/{report['id']}/_history/"
                             f"{report['meta']['versionId']}"}, *report.get("result", [])]
    ctx.create({
        "resourceType": "Provenance", "target": targets, "recorded": instant(now_utc()),
        "contained": [{"resourceType": "Parameters", "id": "analysis", "parameter": [
            {"name": "analyser", "valueString": version},
            *[{"name": name, "valueString": text} for name, text in parameters.items()]]}],
        "agent": [{"type": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
            "code": "performer", "display": "Performer"}]},
            "who": {"display": f"ScanPath imaging core ({version})"}}, *authors],
        "entity": [{"role": "source", "what": {"reference": "#analysis"}}] + (
            [{"role": "source", "what": {"reference": f"ImagingStudy/{ctx.imaging_study_id}"}}]
            if ctx.imaging_study_id else []),
    })


def _reviewers(decisions: Sequence[calcium.Decision]) -> list[dict[str, Any]]:
    """Each radiologist whose decisions shaped the result, as an ``author`` agent."""
    return [{"type": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
        "code": "author", "display": "Author"}]}, "who": {"reference": reviewer}}
        for reviewer in dict.fromkeys(d.reviewer for d in decisions)]
