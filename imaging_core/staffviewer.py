"""Image review in the browser (issue 12 item 4): the staff viewer's pages.

``GET /staff/studies/{study}`` shows the study's CT series: a Cornerstone3D stack
viewer (``imaging_core/viewer/viewer.js``, bundled into ``static/viewer/`` by
``make static``) that reads ScanPath's own DICOMweb with the staff session, and,
without JavaScript (or with ``view=slices``), one server-rendered slice at a time
(DICOMweb ``rendered``, ``imaging_core.rendering``) with previous and next links
and links for each CT window preset (``imaging_core.windows``). ``slice`` (from 1)
and ``window`` (a preset key) choose what that page shows; anything else is 400.

``GET /staff/studies/{study}/overlay.json`` gives the calcium overlay from the
study's latest DICOM SEG (the voxels counted in the Agatston score,
``imaging_core.reports.build_seg``): each segment's label, and per source slice
(SOP Instance UID, from each frame's Derivation Image Sequence, PS3.3 C.7.6.16.2.6)
the segment pixels as ``[segment, row, column]``; the viewer draws them over the slice.

``GET /staff/studies/{study}/model.glb`` serves the 3D model (GLB) the calcium or
CTCA analysis attached to the order's report (a FHIR Binary, ``imaging_core.results``)
to the page's ``<model-viewer>``, titled as the analysis titled it.

Any logged-in staff user may view images (issue 12); the foundation audits each
page view, and the DICOMweb reads are audited as the bearer-token ones are.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from itertools import groupby
from typing import Any
from urllib.parse import urlencode

import numpy as np
from flask import Blueprint, Flask, Response, jsonify, render_template, request
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import SegmentationStorage
from sqlmodel import Session

from auth.staff import staff_required
from core.errors import BadRequest, NotFound
from core.params import whole_number
from core.web import allow_model_viewer, app_settings, db
from fhir.search import run_search
from fhir.store import Store, spec_for
from imaging_core.models import DicomInstance, ReceivedStudy
from imaging_core.studies import instances
from imaging_core.windows import BY_KEY, DEFAULT, PRESETS, WindowPreset

log = logging.getLogger(__name__)

bp = Blueprint("staff_viewer", __name__, url_prefix="/staff/studies")

GLB = "model/gltf-binary"
# No CT study has this many slices; a larger number is capped, then refused as too large.
MAX_SLICE = 100_000


def init_app(app: Flask) -> None:
    """Register the viewer's pages."""
    app.register_blueprint(bp)


@dataclass(frozen=True)
class SliceView:
    """What the page without JavaScript shows: one slice of the series, in a window."""

    study: str
    series: list[DicomInstance]
    number: int  # 1-based
    preset: WindowPreset

    @property
    def instance(self) -> DicomInstance:
        """The instance shown."""
        return self.series[self.number - 1]

    def rendered_url(self) -> str:
        """The DICOMweb rendered PNG of this slice in this window."""
        row = self.instance
        return (f"/dicomweb/studies/{row.study_uid}/series/{row.series_uid}/instances/"
                f"{row.sop_instance_uid}/rendered?{urlencode({'window': self.preset.parameter})}")

    def page_url(self, number: int | None = None, preset: WindowPreset | None = None,
                 view: str | None = None) -> str:
        """This page at another slice or window."""
        query = {"slice": number or self.number, "window": (preset or self.preset).key}
        if view:
            query["view"] = view
        return f"{bp.url_prefix}/{self.study}?{urlencode(query)}"


@bp.get("/<study>")
@staff_required()
def viewer(study: str) -> str:
    """The viewer page: the JavaScript viewer, and the rendered slice without it."""
    series = viewed_series(db(), study)
    view = SliceView(study, series, _slice_number(len(series)), _preset())
    slices_only = request.args.get("view") == "slices"
    if request.args.get("view") not in (None, "slices"):
        raise BadRequest("view takes only the value 'slices' (the page without the viewer)",
                         ["view"])
    model_form = _model_form(study)
    has_model = model_form is not None
    if has_model:  # <model-viewer>: WebAssembly mesh decoders and its own stylesheet
        allow_model_viewer()
    return render_template("staff/viewer.html", view=view, presets=PRESETS,
                           slices_only=slices_only, slices_view="slices" if slices_only else None,
                           has_model=has_model, model_title=_title(model_form),
                           has_overlay=latest_seg(db(), study) is not None)


@bp.get("/<study>/overlay.json")
@staff_required()
def overlay(study: str) -> Response:
    """The calcium overlay of the study's latest SEG, per source slice."""
    row = latest_seg(db(), study)
    if row is None:
        raise NotFound(f"No calcium segmentation has been made for study {study[:64]}")
    return jsonify(seg_overlay(dcmread(app_settings().var_dir / row.path)))


def latest_seg(session: Session, study: str) -> DicomInstance | None:
    """The study's most recently stored Segmentation instance, if any."""
    segs = [row for row in instances(session, study) if row.sop_class_uid == SegmentationStorage]
    return max(segs, key=lambda row: row.received_at) if segs else None


def seg_overlay(ds: Dataset) -> dict[str, Any]:
    """Segments and, per source SOP Instance UID, ``[segment, row, column]`` of each
    pixel in a segment; frames that name no source slice are left out."""
    pixels = ds.pixel_array.reshape(int(ds.get("NumberOfFrames", 1)), ds.Rows, ds.Columns)
    shared = ds.get("SharedFunctionalGroupsSequence", [Dataset()])[0]
    slices: dict[str, list[list[int]]] = {}
    for frame, item in zip(pixels, ds.PerFrameFunctionalGroupsSequence, strict=True):
        source, segment = _source_sop(item, shared), _segment_number(item, shared)
        if source is None or segment is None:
            continue
        rows, columns = np.nonzero(frame)
        slices.setdefault(source, []).extend(
            [segment, int(r), int(c)] for r, c in zip(rows, columns, strict=True))
    segments = [{"number": int(item.SegmentNumber), "label": str(item.SegmentLabel)}
                for item in ds.SegmentSequence]
    return {"segments": segments, "slices": slices}


def _source_sop(item: Dataset, shared: Dataset) -> str | None:
    """The frame's source slice: per frame, else shared by all frames (PS3.3 C.7.6.16)."""
    for group in (item, shared):
        for derivation in group.get("DerivationImageSequence", []):
            for source in derivation.get("SourceImageSequence", []):
                return str(source.ReferencedSOPInstanceUID)
    return None


def _segment_number(item: Dataset, shared: Dataset) -> int | None:
    """The frame's segment: per frame, else shared (highdicom shares it when only one)."""
    for group in (item, shared):
        for identification in group.get("SegmentIdentificationSequence", []):
            return int(identification.ReferencedSegmentNumber)
    return None


@bp.get("/<study>/model.glb")
@staff_required()
def model(study: str) -> Response:
    """The study's 3D model (GLB: calcified plaque, or the CTCA tree), as attached."""
    glb = _model(study)
    if glb is None:
        raise NotFound(f"No 3D model has been made for study {study[:64]}")
    return Response(glb, content_type=GLB)


def viewed_series(session: Session, study: str) -> list[DicomInstance]:
    """The study's CT series with the most instances (the thin axial series), in
    instance order; ``NotFound`` when the study holds no CT image."""
    rows = [row for row in instances(session, study) if row.modality == "CT"]
    by_series = [list(group) for _, group in groupby(rows, key=lambda row: row.series_uid)]
    if not by_series:
        raise NotFound(f"No CT images are stored for study {study[:64]}")
    return max(by_series, key=len)


def _slice_number(count: int) -> int:
    raw = request.args.get("slice")
    if raw is None:
        return 1
    number = whole_number(raw, "slice", MAX_SLICE, minimum=1)
    if number > count:
        raise BadRequest(f"slice must be from 1 to {count}, the slices of this series, "
                         f"not {raw[:12]}", ["slice"])
    return number


def _preset() -> WindowPreset:
    key = request.args.get("window", DEFAULT.key)
    if key not in BY_KEY:
        raise BadRequest(f"window must be one of {', '.join(BY_KEY)}, not '{key[:40]}'",
                         ["window"])
    return BY_KEY[key]


def _model(study: str) -> bytes | None:
    """The GLB of the order's report for ``study``, or None when there is none."""
    form = _model_form(study)
    return _binary(db(), form["url"].removeprefix("Binary/")) if form else None


def _model_form(study: str) -> dict[str, Any] | None:
    """The ``presentedForm`` holding the GLB of the order's report (calcium or CTCA)."""
    session = db()
    received = session.get(ReceivedStudy, study)
    if received is None or not received.service_request_id:
        return None
    reports = run_search(session, spec_for("DiagnosticReport"),
                         [("based-on", f"ServiceRequest/{received.service_request_id}")],
                         count=50).matches
    for report in reports:
        for form in report.get("presentedForm", []):
            if form.get("contentType") == GLB and str(form.get("url", "")).startswith("Binary/"):
                return dict(form)
    return None


def _title(form: dict[str, Any] | None) -> tuple[str, str]:
    """(heading, the rest) of the model's title, as the analysis wrote it: "3D model of
    calcified plaque", or the CTCA tree coloured by FFR-CT with its colour scale."""
    title = str((form or {}).get("title") or "3D model")
    heading, _, rest = title.partition(". ")
    return heading.rstrip("."), rest


def _binary(session: Session, binary_id: str) -> bytes:
    binary: dict[str, Any] = Store(session, app_settings()).read("Binary", binary_id)
    return base64.b64decode(binary.get("data", ""))
