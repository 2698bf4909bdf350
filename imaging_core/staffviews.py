"""Staff pages of a report: calcium lesion review, CTCA findings, sign-off (issues 12, 14).

Served at ``/staff/reports/{report id}``; every page needs a staff session
(``auth.staff``) and every form its CSRF token (the foundation's CSRFProtect):

- ``GET  /staff/reports/{id}``: the report beside its key images, a link to
  the viewer, the conclusion; for a radiologist, the sign-off or amendment form.
  Any staff user may read it. What it shows depends on the report's kind
  (``terminology.report_kind``): the Agatston scores of a calcium report; for a
  CTCA report the CAD-RADS category, the lesions, FFR-CT per vessel, the stent
  suggestions (advice for a cardiologist), what was not assessed, the
  straightened views and the 3D model (``imaging_core.ctcafindings``).
- ``POST /staff/reports/{id}/sign-off`` (radiologist): ``conclusion``, ``version`` and,
  optionally, ``next_step`` (the patient's next step, shown on their report link's page).
- ``POST /staff/reports/{id}/amend`` (radiologist): ``conclusion``, ``reason``, ``version``,
  ``next_step``.
- ``GET  /staff/reports/{id}/key-images/{n}``: the report's n-th key image (PNG).
- ``GET  /staff/reports/{id}/lesions`` (radiologist): the candidates, the score
  as reported and as now summed, and per lesion a reject / accept / relabel form.
- ``GET  /staff/reports/{id}/lesions/{lesion}/image`` (radiologist): the lesion
  outlined on its slice (PNG).
- ``POST /staff/reports/{id}/lesions/{lesion}`` (radiologist): ``action``
  (reject, accept, relabel) and, to relabel, ``label`` (LM, LAD, LCX, RCA).

Under IR(ME)R 2017 the clinical evaluation is the practitioner's: lesion
decisions and sign-off are the radiologist's only. The work is done by
``imaging_core.staffreview``, which calls the FHIR API's own code.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, redirect, render_template, request
from sqlmodel import Session, col, select
from werkzeug.wrappers import Response as BaseResponse

from auth.staff import audit_staff, current_staff, staff_required
from core.errors import FhirError, NotFound
from core.web import app_settings, db
from fhir.store import Store
from fhir.validation import valid_id
from imaging_core import lesionimages, staffreview
from imaging_core.ctcafindings import SOURCES as CTCA_SOURCES
from imaging_core.ctcafindings import ctca_findings
from imaging_core.errors import ImagingError
from imaging_core.models import AnalysisJob, CalciumCandidates, DicomInstance
from imaging_core.results import IMAGE_MODALITIES
from imaging_core.signoff import next_step
from imaging_core.staffviewer import GLB
from imaging_core.terminology import CALCIUM_SCORING, CORONARY_CTA, report_kind
from imaging_core.volume import Volume, load_volumes

log = logging.getLogger(__name__)

bp = Blueprint("staff_reports", __name__, url_prefix="/staff/reports")
RADIOLOGIST = "radiologist"
Work = Callable[[Store, str, str], object]
TITLES = {CALCIUM_SCORING: "Calcium score report", CORONARY_CTA: "CT coronary angiography report"}


def init_app(app: Flask) -> None:
    """Serve the report pages."""
    app.register_blueprint(bp)


def _store() -> Store:
    return Store(db(), app_settings())


def _page(report_id: str) -> str:
    return f"{bp.url_prefix}/{report_id}"


def _checked(report_id: str) -> str:
    if not valid_id(report_id):
        raise NotFound(f"There is no report {report_id[:64]}")
    return report_id


def _acting(store: Store) -> tuple[str, str]:
    """(Practitioner reference, client id) of the logged-in radiologist."""
    user = current_staff()
    return (staffreview.practitioner_for(store, user.username, user.display_name),
            staffreview.staff_client(user.username))


def _act(action: str, report_id: str, work: Work, target: str) -> BaseResponse:
    """Run ``work(store, practitioner, client)``, commit, and see ``target`` (303).

    A refusal is rolled back, audited as a failed action, and shown as its error page.
    """
    store = _store()
    try:
        practitioner, client = _acting(store)
        work(store, practitioner, client)
        audit_staff(action, f"DiagnosticReport/{report_id}")
        store.session.commit()
    except FhirError as error:
        store.session.rollback()
        audit_staff(action, f"DiagnosticReport/{report_id}", "minor", str(error))
        store.session.commit()
        raise
    return redirect(target, 303)


# --- the report and sign-off ------------------------------------------------------------

@bp.get("/<report_id>")
@staff_required()
def report_page(report_id: str) -> str:
    """The report, its key images and scores; the sign-off or amendment form."""
    store = _store()
    report = store.read("DiagnosticReport", _checked(report_id))
    kind = report_kind(store.settings.canonical_base, report)
    return render_template(
        "staff/reports/report.html", report=report,
        title=TITLES.get(kind or "", "Imaging report"), **_measurements(store, report, kind),
        images=_key_images(report), study_uid=_study_uid(store.session, report_id),
        scored=store.session.get(CalciumCandidates, report_id) is not None,
        radiologist=current_staff().role == RADIOLOGIST,
        reason=_reason(store, report),
        next_step=next_step(store.settings.canonical_base, report))


def _measurements(store: Store, report: dict[str, Any], kind: str | None) -> dict[str, Any]:
    """The template's measurements by the report's kind: ``scores`` (calcium), or
    ``ctca`` with its sources and whether a 3D model is attached; none for a kind
    ScanPath does not know (the page then says so)."""
    if kind == CALCIUM_SCORING:
        return {"scores": staffreview.reported_scores(store, str(report["id"]))}
    if kind != CORONARY_CTA:
        return {}
    findings = ctca_findings(store.settings.canonical_base,
                             staffreview.observations_of(store, report))
    return {"ctca": findings, "ctca_sources": CTCA_SOURCES,
            "has_model": any(f.get("contentType") == GLB for f in report.get("presentedForm", []))}


def _key_images(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"number": n, "title": m.get("comment", f"Key image {n}")}
            for n, m in enumerate(report.get("media", []), start=1)]


def _reason(store: Store, report: dict[str, Any]) -> str | None:
    url = f"{store.settings.canonical_base}{staffreview.REASON}"
    texts = [e.get("valueString") for e in report.get("extension", []) if e.get("url") == url]
    return str(texts[-1]) if texts else None


def _study_uid(session: Session, report_id: str) -> str | None:
    return session.exec(select(AnalysisJob.study_uid).where(
        col(AnalysisJob.diagnostic_report_id) == report_id)
        .order_by(col(AnalysisJob.id).desc())).first()


@bp.get("/<report_id>/key-images/<int:number>")
@staff_required()
def key_image(report_id: str, number: int) -> Response:
    """The report's ``number``-th key image (from 1), as PNG."""
    store = _store()
    media = store.read("DiagnosticReport", _checked(report_id)).get("media", [])
    if not 1 <= number <= len(media):
        raise NotFound(f"The report has no key image {number}")
    ref = str(media[number - 1].get("link", {}).get("reference", ""))
    content = store.read("Media", ref.removeprefix("Media/")).get("content", {})
    binary = store.read("Binary", str(content.get("url", "")).removeprefix("Binary/"))
    return Response(base64.b64decode(binary["data"]), mimetype="image/png")


@bp.post("/<report_id>/sign-off")
@staff_required(RADIOLOGIST)
def sign_off(report_id: str) -> BaseResponse:
    """Sign the report off (final) with the conclusion as written."""
    form = request.form
    return _act("sign-off", _checked(report_id), lambda store, who, client: (
        staffreview.sign_off(store, report_id, form.get("conclusion", ""),
                             form.get("version", ""), who, client,
                             form.get("next_step", ""))), _page(report_id))


@bp.post("/<report_id>/amend")
@staff_required(RADIOLOGIST)
def amend(report_id: str) -> BaseResponse:
    """Amend the signed-off report, with the reason for the amendment."""
    form = request.form
    return _act("amend", _checked(report_id), lambda store, who, client: (
        staffreview.amend(store, report_id, form.get("conclusion", ""),
                          form.get("reason", ""), form.get("version", ""), who, client,
                          form.get("next_step", ""))),
        _page(report_id))


# --- lesion review ----------------------------------------------------------------------

@bp.get("/<report_id>/lesions")
@staff_required(RADIOLOGIST)
def lesions_page(report_id: str) -> str:
    """The candidates with their review forms, the scores as reported and as summed."""
    state = staffreview.review_state(_store(), _checked(report_id))
    return render_template("staff/reports/lesions.html", state=state,
                           arteries=staffreview.ARTERIES)


@bp.post("/<report_id>/lesions/<lesion_id>")
@staff_required(RADIOLOGIST)
def change_lesion(report_id: str, lesion_id: str) -> BaseResponse:
    """Reject, accept or relabel one lesion; the report is re-scored by a job."""
    form, lesion = request.form, lesion_id[:64]
    return _act("lesion-review", _checked(report_id), lambda store, who, client: (
        staffreview.change_lesion(store, report_id, lesion, form.get("action", ""),
                                  form.get("label") or None, who, client)),
        f"{_page(report_id)}/lesions#lesion-{lesion}")


@bp.get("/<report_id>/lesions/<lesion_id>/image")
@staff_required(RADIOLOGIST)
def lesion_image(report_id: str, lesion_id: str) -> Response:
    """The lesion outlined on the axial slice where it is largest (PNG)."""
    session = db()
    row = session.get(CalciumCandidates, _checked(report_id))
    state = staffreview.review_state(_store(), report_id) if row else None
    lesion = next((c for c in state.lesions if c.id == lesion_id), None) if state else None
    if row is None or lesion is None:
        raise NotFound(f"The report has no candidate lesion {lesion_id[:64]}")
    volume = _volume(str(app_settings().var_dir), tuple(_instance_paths(session, row.study_uid)))
    png = lesionimages.lesion_png(volume, lesion.id, (lesion.first_slice, lesion.last_slice)) \
        if volume is not None else None
    if png is None:
        raise NotFound(f"The images of lesion {lesion.id} are not held here any more")
    return Response(png, mimetype="image/png")


def _instance_paths(session: Session, study_uid: str) -> list[str]:
    return sorted(str(p) for p in session.exec(select(DicomInstance.path).where(
        col(DicomInstance.study_uid) == study_uid,
        col(DicomInstance.modality).in_(IMAGE_MODALITIES))).all())


@lru_cache(maxsize=2)
def _volume(var_dir: str, paths: tuple[str, ...]) -> Volume | None:
    """The study's largest volume, as the analysis loads it; cached for the next lesion."""
    try:
        volumes = load_volumes([Path(var_dir) / p for p in paths])
    except (ImagingError, ValueError, OSError) as error:
        log.warning("lesion image: study not loadable", extra={"error": str(error)})
        return None
    return max(volumes, key=lambda v: v.shape[0]) if volumes else None
