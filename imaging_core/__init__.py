"""The embedded imaging core: DICOM in, analysis jobs, results back as FHIR.

Analysis code here knows nothing about Flask. May import ``core``, ``fhir``
and ``referral`` (the accession number's identifier type, and the order
workflow that images and results move); must not import ``scanpath``. The
pure analysis modules import nothing of the project's at all:

- ``volume``: DICOM instances to a HU volume with patient geometry and QA;
- ``calcium``: Agatston, volume and mass scores, lesion count, CAC-DRS, QA gate;
- ``anatomy``: body, lungs, bone, aorta and root, heart, epicardial fat, blood
  pool and heart landmarks from the CT (classical image analysis);
- ``coronary``: labels calcium candidates by artery or non-coronary structure;
- ``chest``: the chest pipeline (anatomy, image QA, candidates, labels, score);
- ``mesh``: lesion surfaces as binary glTF (GLB) in patient millimetres;
- ``keyimages``: PNG key images (axial slices with overlay, MIP);
- ``errors``: their typed errors, and those of DICOM in.

DICOM in:

- ``models``: ``DicomInstance`` (one row per kept instance) and
  ``ReceivedStudy`` (per study: order link, ``last_received_at`` for the
  completion scheduler);
- ``storage``: check, durable content-addressed write, index; ``receive``;
- ``studies``: matching by accession number, the FHIR ImagingStudy;
- ``scp``: the C-STORE/C-ECHO listener (pynetdicom);
- ``dicomweb``: STOW-RS and WADO-RS (and ``qido``), Flask views.

Staff pages (Flask views, templates in ``templates/staff/``): ``staffviewer``
(image review in the browser; its JavaScript in ``viewer/``, bundled by
``make static``), with its CT window presets in ``windows``; ``staffviews``
(calcium lesion review and report sign-off, lesion outlines from ``lesionimages``).

Results out: ``results`` (the calcium analyser and its FHIR report, and the
report, Provenance and PACS helpers every analyser shares),
``reports`` (SR, SEG, PDF), ``ctca_results`` (the CTCA analyser: lesion,
FFR-CT and CAD-RADS Observations), ``ctca_reports`` (its conclusion, SR and
PDF), ``ctca_media`` (the coronary tree as GLB coloured by FFR-CT, straightened
views as PNG), ``terminology`` (the local CodeSystems) and
``review`` (a radiologist's ``$lesions`` and ``$review`` operations on the
report, and the decisions they keep), ``signoff`` (a radiologist's sign-off
and amendments of the report: the DiagnosticReport write hook).

Staff pages (issue 12): ``staffviews`` (Flask: lesion review and sign-off at
``/staff/reports/{id}``, behind ``auth.staff``) over ``staffreview`` (what the
pages show and do, through ``review`` and the FHIR store's update, as the API
does) and ``lesionimages`` (a candidate outlined on its slice, PNG).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    """Serve DICOMweb and link late orders to waiting studies.

    Call after ``referral.init_app``: the order hook needs the accession
    number that referral's hook assigns.
    """
    from imaging_core import dicomweb, review, signoff, staffviewer, staffviews, studies

    dicomweb.init_app(app)
    staffviewer.init_app(app)
    staffviews.init_app(app)
    studies.register()
    review.register()
    signoff.register()
