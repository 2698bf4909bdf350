"""CTCA results out as documents: the plain-words conclusion, a DICOM SR (TID 1500) and a PDF.

Pure builders over a :class:`~imaging_core.ctca.tree.CtcaResult`, like
``imaging_core.reports`` (whose SR document, device context, PDF frame, tables
and fine print they reuse): no Flask, no database.

SR content (DICOM PS3.16 TID 1500 "Measurement Report"): one TID 1501 group
per reported lesion (finding site the artery, CID 3016; finding type SCT
415582006 "Stenosis") with its diameter stenosis, minimal and reference lumen
diameter, length, distance from the ostium and FFR-CT just distal to it, and
the stent suggestion as a comment; one group per main vessel with its distal
FFR-CT; one group with the CAD-RADS 2.0 category as a qualitative evaluation
(DCM 130720 "Coronary Artery Disease Assessment", value from CID 3020/3021);
the conclusion. Codes, where each was found (pydicom 3.0 ``codes``, generated
from PS3.16):

==========================  ===================================================
Procedure reported          SCT 419545005 "CT angiography of coronary arteries" (CID 3757)
Diameter stenosis           SCT 408715008 "Lumen Diameter Stenosis" (CID 12119)
Minimal lumen diameter      SCT 397413000 "Vessel lumen diameter" (CID 3481) with
                            derivation SCT 255605001 "Minimum" (CID 3488)
Lesion length               SCT 408716009 "Stenotic Lesion Length" (CID 3483)
Stenosis finding            SCT 415582006 "Stenosis" (codedict)
Units                       UCUM %, mm, {ratio} (codedict)
==========================  ===================================================

No standard concept was found for the reference diameter, the distance from
the ostium and FFR-CT (SCT 371842003 is the invasive, pressure-wire FFR):
they use the private scheme ``99SCANPATH`` (PS3.3 8.2, "99" local schemes),
declared in the SR's Coding Scheme Identification Sequence, with the same
codes as ``{base}/CodeSystem/measure``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import highdicom as hd
from fpdf import FPDF
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from imaging_core import reports
from imaging_core.ctca import cadrads
from imaging_core.ctca.tree import VESSELS, CtcaResult, Lesion, Stent
from imaging_core.keyimages import KeyImage
from imaging_core.reports import Signature, _aspect, _caption, _latin1
from imaging_core.terminology import CAD_RADS_CATEGORIES, CURY_2022
from imaging_core.volume import Volume

ALGORITHM_NAME = "ScanPath CTCA analysis"
VERSION = "scanpath-ctca 0.1.0"
PDF_TITLE = "CT coronary angiography report"
VIEW_MM_PER_PIXEL = 0.25  # straightened views printed at one size, up to the page width
REPORTED_FROM_PCT = 25.0  # CONTRACT §5; CAD-RADS 2.0 (Cury 2022) "mild" starts at 25 %
STENT_FROM_PCT = 50.0  # CONTRACT §5; CAD-RADS 2.0 "moderate" (50-69 %) and above
# FFR <= 0.80 marks a lesion as haemodynamically significant (FAME: Tonino PAL et al.
# N Engl J Med 2009;360:213-224); NICE MTG32 (2017) reads HeartFlow FFR-CT the same way.
FFR_SIGNIFICANT = 0.80
# The 3D model's colours (RGB, 0-1) by FFR-CT band: above 0.80 not significant (FAME);
# 0.76-0.80 the "grey zone" between the FAME cut-off and the original 0.75 (Pijls NHJ et
# al. N Engl J Med 1996;334:1703-1708); 0.75 or less significant in both. Unknown is grey.
FFR_BANDS: tuple[tuple[float, tuple[float, float, float], str], ...] = (
    (0.80, (0.10, 0.65, 0.25), "green above 0.80"),
    (0.75, (0.95, 0.80, 0.10), "yellow 0.76 to 0.80"),
    (-math.inf, (0.85, 0.10, 0.10), "red 0.75 or less"),
)
FFR_UNKNOWN_COLOUR = (0.6, 0.6, 0.6)
COLOUR_SCALE_TEXT = ("3D model colours, FFR-CT along each artery: "
                     + ", ".join(text for _, _, text in FFR_BANDS)
                     + "; grey where it was not estimated (thresholds: Tonino 2009, "
                     "Pijls 1996).")

LOCAL_SCHEME = "99SCANPATH"
CTCA_PROCEDURE = Code("419545005", "SCT", "CT angiography of coronary arteries")  # CID 3757
STENOSIS = Code("415582006", "SCT", "Stenosis")
DIAMETER_STENOSIS = codes.SCT.LumenDiameterStenosis  # SCT 408715008
LUMEN_DIAMETER = codes.SCT.VesselLumenDiameter  # SCT 397413000
MINIMUM = codes.SCT.Minimum  # SCT 255605001, CID 3488 derivation
LESION_LENGTH = codes.SCT.StenoticLesionLength  # SCT 408716009
CAD_ASSESSMENT = Code("130720", "DCM", "Coronary Artery Disease Assessment")
REFERENCE_DIAMETER = Code("reference-diameter-mm", LOCAL_SCHEME, "Reference lumen diameter")
FROM_OSTIUM = Code("from-ostium-mm", LOCAL_SCHEME, "Distance from the ostium")
FFR_CT = Code("ffr-ct", LOCAL_SCHEME, "FFR-CT (estimated from CT)")
PERCENT, MM, RATIO = codes.UCUM.Percent, codes.UCUM.Millimeter, codes.UCUM.Ratio

VESSEL_NAMES = {"LM": "left main (LM)", "LAD": "left anterior descending (LAD)",
                "LCX": "left circumflex (LCX)", "RCA": "right coronary artery (RCA)"}


def reported_lesions(result: CtcaResult) -> list[Lesion]:
    """Lesions of 25 % or more, by vessel and then from the ostium outwards."""
    kept = [lesion for lesion in result.lesions if lesion.stenosis_pct >= REPORTED_FROM_PCT]
    return sorted(kept, key=lambda lesion: (VESSELS.index(lesion.vessel), lesion.centre_mm))


def ffr_after(result: CtcaResult, lesion: Lesion) -> float | None:
    """FFR-CT just distal to ``lesion`` (at its end); None when unknown or NaN."""
    if result.ffr is None or result.tree is None or lesion.segment not in result.ffr.along:
        return None
    value = result.ffr.at(result.tree, lesion.segment, lesion.end_mm)
    return value if math.isfinite(value) else None


def stent_for(result: CtcaResult, lesion: Lesion) -> Stent | None:
    """The suggestion covering ``lesion`` (same segment, spanning its centre), if any."""
    return next((s for s in result.stents if s.segment == lesion.segment
                 and s.start_mm <= lesion.centre_mm <= s.end_mm), None)


def vessel_ffr(result: CtcaResult, vessel: str) -> float | None:
    """The distal FFR-CT of a main vessel; None when not assessed, failed or NaN."""
    tree, ffr = result.tree, result.ffr
    if tree is None or ffr is None or vessel in tree.missing:
        return None
    if vessel not in tree.segments or vessel not in ffr.along:
        return None
    value = ffr.distal(vessel)
    return value if math.isfinite(value) else None


# --- conclusion -------------------------------------------------------------------

def conclusion_text(result: CtcaResult) -> str:
    """The conclusion in plain words: CAD-RADS, each lesion, what was not assessed."""
    if not result.analysable:
        reason = (result.reason or "reason not recorded").rstrip(".")
        return (f"The coronary arteries could not be analysed: {reason}. A radiologist "
                f"will review the images.{reports.PRELIMINARY_SENTENCE}")
    lesions = reported_lesions(result)
    parts = [_category_sentence(result), *cadrads.near_bounds(result.lesions),
             *(lesion_sentence(result, x) for x in lesions)]
    if not lesions:
        parts.append("No narrowing of 25 % or more was found in the arteries assessed.")
    parts += _unknowns(result)
    if any(lesion.stenosis_pct >= STENT_FROM_PCT for lesion in lesions):
        parts.append("Stent sizes are suggestions for the cardiologist, not decisions.")
    return " ".join(parts) + reports.PRELIMINARY_SENTENCE


def _category_sentence(result: CtcaResult) -> str:
    if result.cad_rads is None:
        return "The CAD-RADS category could not be given."
    return f"{CAD_RADS_CATEGORIES[result.cad_rads].display}."


def lesion_sentence(result: CtcaResult, lesion: Lesion) -> str:
    """"LAD: 72 % narrowing 31.0 mm from the ostium, 8.0 mm long (FFR-CT 0.71 beyond it)."."""
    ffr = ffr_after(result, lesion)
    after = "FFR-CT not estimated" if ffr is None else f"FFR-CT {ffr:.2f} beyond it" + (
        ", below the 0.80 threshold" if ffr <= FFR_SIGNIFICANT else "")
    return (f"{lesion.vessel}: {lesion.stenosis_pct:.0f} % narrowing "
            f"{lesion.centre_mm:.1f} mm from the ostium, {lesion.length_mm:.1f} mm long "
            f"({after}).")


def _unknowns(result: CtcaResult) -> list[str]:
    """Sentences for every vessel not assessed and every step that failed."""
    missing = result.tree.missing if result.tree is not None else []
    said = [f"The {VESSEL_NAMES.get(v, v)} could not be traced and was not assessed."
            for v in missing]
    return said + [f"{step} could not be completed ({error})."
                   for step, error in result.failed.items()] + _caveats(result)


def _caveats(result: CtcaResult) -> list[str]:
    """The image-quality doubts that did not stop the analysis, as one sentence."""
    if not result.caveats:
        return []
    return [f"Image quality notes: {'; '.join(c.rstrip('.') for c in result.caveats)}."]


# --- DICOM SR ---------------------------------------------------------------------

def build_sr(source_datasets: list[Dataset], volume: Volume, result: CtcaResult,
             conclusion: str, *, signature: Signature | None = None,
             series_number: int = 910) -> Dataset:
    """A Comprehensive 3D SR (TID 1500) of ``result`` in the sources' study.

    A study that was not analysable gives one group holding the reason as text.
    """
    by_uid = {str(ds.SOPInstanceUID): ds for ds in source_datasets}
    sources = [by_uid[uid] for uid in volume.sop_instance_uids if uid in by_uid]
    groups = _groups(result) or [_group("Not analysable", [], comments=[
        f"Not analysable: {result.reason or 'no reason recorded'}"])]
    report = hd.sr.MeasurementReport(
        observation_context=reports.device_context(ALGORITHM_NAME, VERSION),
        procedure_reported=CTCA_PROCEDURE, imaging_measurements=groups)
    report[0].ContentSequence.append(reports.conclusion_container(conclusion, signature))
    sr = reports.sr_document(report, sources, CTCA_PROCEDURE, "CTCA measurements",
                             signature, series_number, 1)
    sr.CodingSchemeIdentificationSequence = [_local_scheme()]
    return sr


def _local_scheme() -> Dataset:
    item = Dataset()
    item.CodingSchemeDesignator = LOCAL_SCHEME
    item.CodingSchemeName = "ScanPath imaging measurements"
    item.CodingSchemeResponsibleOrganization = "ScanPath"
    return item


def _groups(result: CtcaResult) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    if not result.analysable:
        return []
    lesions = [_lesion_group(result, lesion) for lesion in reported_lesions(result)]
    vessels = [_vessel_group(result, vessel) for vessel in VESSELS]
    return [*lesions, *vessels, _cad_rads_group(result)]


def _group(name: str, measurements: list[hd.sr.Measurement], *, vessel: str | None = None,
           comments: Sequence[str] = (), finding: Code | None = None,
           evaluations: Sequence[hd.sr.QualitativeEvaluation] = (),
           ) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """One TID 1501 group; TEXT comments appended as in ``reports`` (highdicom takes CODE)."""
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=name),
        finding_type=finding,
        finding_sites=[hd.sr.FindingSite(reports.ARTERY_CODES[vessel])] if vessel else None,
        algorithm_id=hd.sr.AlgorithmIdentification(name=ALGORITHM_NAME, version=VERSION),
        measurements=measurements or None, qualitative_evaluations=list(evaluations) or None)
    group[0].ContentSequence.extend(reports.text_item(reports.COMMENT, c) for c in comments)
    return group


def _lesion_group(result: CtcaResult,
                  lesion: Lesion) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    items = [
        hd.sr.Measurement(name=DIAMETER_STENOSIS, value=lesion.stenosis_pct, unit=PERCENT),
        hd.sr.Measurement(name=LUMEN_DIAMETER, value=lesion.minimal_lumen_diameter_mm,
                          unit=MM, derivation=MINIMUM),
        hd.sr.Measurement(name=REFERENCE_DIAMETER, value=lesion.reference_diameter_mm, unit=MM),
        hd.sr.Measurement(name=LESION_LENGTH, value=lesion.length_mm, unit=MM),
        hd.sr.Measurement(name=FROM_OSTIUM, value=lesion.centre_mm, unit=MM),
    ]
    ffr = ffr_after(result, lesion)
    items += [hd.sr.Measurement(name=FFR_CT, value=ffr, unit=RATIO)] if ffr is not None else []
    name = f"{lesion.vessel} lesion at {lesion.centre_mm:.0f} mm"
    return _group(name, items, vessel=lesion.vessel, finding=STENOSIS,
                  comments=_stent_comment(result, lesion))


def _stent_comment(result: CtcaResult, lesion: Lesion) -> list[str]:
    if lesion.stenosis_pct < STENT_FROM_PCT:
        return []
    stent = stent_for(result, lesion)
    if stent is None:
        return ["No stent size suggested for this lesion"]
    return [f"Suggested stent (advice for a cardiologist): {stent.diameter_mm:g} x "
            f"{stent.length_mm:g} mm from {stent.start_mm:.1f} to {stent.end_mm:.1f} mm "
            "from the ostium"]


def _vessel_group(result: CtcaResult,
                  vessel: str) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    ffr = vessel_ffr(result, vessel)
    if ffr is None:
        return _group(f"{vessel} distal FFR-CT", [], vessel=vessel,
                      comments=[f"{vessel} distal FFR-CT: not assessed or not estimated"])
    return _group(f"{vessel} distal FFR-CT", [hd.sr.Measurement(
        name=FFR_CT, value=ffr, unit=RATIO)], vessel=vessel)


def _cad_rads_group(result: CtcaResult) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    if result.cad_rads is None:
        return _group("CAD-RADS", [], comments=["CAD-RADS could not be given"])
    entry = CAD_RADS_CATEGORIES[result.cad_rads]
    value = Code(entry.dcm, "DCM", entry.dcm_display)
    return _group("CAD-RADS", [], comments=[f"{entry.display} ({CURY_2022})"],
                  evaluations=[hd.sr.QualitativeEvaluation(CAD_ASSESSMENT, value)])


# --- PDF --------------------------------------------------------------------------

def build_pdf(result: CtcaResult, *, patient_name: str | None, accession: str | None,
              study_date: str | None, images: Sequence[KeyImage], conclusion: str,
              signature: Signature | None = None) -> bytes:
    """The CTCA report in plain words: conclusion, lesion and vessel tables, the
    straightened views and the FFR-CT colour scale; FINAL once ``signature`` is given."""
    pdf = reports.report_pdf("CT coronary angiography", ALGORITHM_NAME, signature)
    reports.patient_block(pdf, patient_name, accession, study_date)
    reports.section(pdf, "Conclusion", reports.signed_conclusion(conclusion, signature))
    if result.analysable:
        _lesion_table(pdf, result)
        _vessel_table(pdf, result)
        _vessel_images(pdf, images)
    reports.fine_print(pdf, [f"Analyser: {ALGORITHM_NAME}, version {VERSION}.",
                             f"Timings (s): {_timings(result)}.",
                             f"Categories: {CURY_2022}."], signature)
    return bytes(pdf.output())


def _timings(result: CtcaResult) -> str:
    return "; ".join(f"{step} {seconds:.1f}" for step, seconds in result.timings_s.items()) \
        or "not recorded"


def _lesion_table(pdf: FPDF, result: CtcaResult) -> None:
    reports.subheading(pdf, "Narrowings of 25 % or more")
    rows = [("Artery", "Narrowing", "From ostium", "Length", "Reference / MLD", "FFR-CT")]
    for lesion in reported_lesions(result):
        ffr = ffr_after(result, lesion)
        rows.append((lesion.vessel, f"{lesion.stenosis_pct:.0f} %",
                     f"{lesion.centre_mm:.1f} mm", f"{lesion.length_mm:.1f} mm",
                     f"{lesion.reference_diameter_mm:.1f} / "
                     f"{lesion.minimal_lumen_diameter_mm:.1f} mm",
                     "not estimated" if ffr is None else f"{ffr:.2f}"))
    if len(rows) == 1:
        rows.append(("none", "", "", "", "", ""))
    reports.table(pdf, rows, (22, 26, 30, 24, 44, 34))


def _vessel_table(pdf: FPDF, result: CtcaResult) -> None:
    reports.subheading(pdf, "FFR-CT at the end of each artery")
    rows = [("Artery", "FFR-CT (distal)")]
    for vessel in VESSELS:
        ffr = vessel_ffr(result, vessel)
        rows.append((VESSEL_NAMES[vessel], "not assessed" if ffr is None else f"{ffr:.2f}"))
    reports.table(pdf, rows, (90, 90))


def _vessel_images(pdf: FPDF, images: Sequence[KeyImage]) -> None:
    """Each straightened view across the page, its caption underneath."""
    if not images:
        return
    reports.subheading(pdf, "Straightened views")
    for image in images:
        with Image.open(io.BytesIO(image.png)) as opened:
            width = min(180.0, opened.width * VIEW_MM_PER_PIXEL)
        height = width * _aspect(image.png)
        if pdf.get_y() + height + 8 > pdf.page_break_trigger:
            pdf.add_page()
        pdf.image(io.BytesIO(image.png), x=pdf.l_margin, y=pdf.get_y(), w=width, h=height)
        pdf.set_y(pdf.get_y() + height + 1)
        pdf.set_font("Helvetica", "", 7)
        pdf.multi_cell(width, 3.2, _latin1(_caption(image.png, 0)), align="L",
                       new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "I", 8)
    pdf.multi_cell(0, 4, _latin1(COLOUR_SCALE_TEXT), align="L", new_x="LMARGIN",
                   new_y="NEXT")
