"""SR, SEG and PDF of a calcium score, checked against an analytic phantom and real peers.

Expected values come from the phantom's geometry (``phantoms.expected_agatston`` and
the disc masks), never from the scorer. The two inserts below are separate lesions:

- A: r = 2 mm at 0.5 mm pixels -> 49 pixels (12.25 mm^2), 350 HU (weight 3), w 3..12 mm,
  so slices 1-4: 12.25 x 3 x 4 = 147;
- B: r = 1.5 mm -> 29 pixels (7.25 mm^2), 160 HU with a 450 HU peak (weight 4),
  w 15..18 mm, so slices 5-6: 7.25 x 4 x 2 = 58.

Agatston 205 is CAC-DRS A2, "moderate" (Hecht 2018: 100-299). dciodvfy
(dicom3tools), pdftotext and pdftoppm (poppler-utils) are the independent checkers;
a test that needs one skips where it is not installed.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import Comprehensive3DSRStorage, SegmentationStorage

from imaging_core.calcium import CalciumParams, CalciumResult, score
from imaging_core.keyimages import key_images
from imaging_core.reports import (
    PRELIMINARY_BANNER,
    ReportError,
    build_encapsulated_pdf,
    build_pdf,
    build_seg,
    build_sr,
    conclusion_text,
    format_agatston,
)
from imaging_core.volume import Volume, load_volume
from tests.imaging_core.phantoms import (
    Insert,
    Phantom,
    covered_slices,
    datasets,
    disc_mask,
    enhanced_dataset,
    expected_agatston,
    expected_volume_mm3,
    insert_peak,
    shuffled,
)
from tests.imaging_core.test_phantom_iod import DCIODVFY, _errors

PHANTOM = Phantom(rows=64, cols=64, n_slices=10, inserts=(
    Insert(u=10, v=10, radius=2.0, w0=3, w1=12, hu=350),
    Insert(u=22, v=20, radius=1.5, w0=15, w1=18, hu=160, peak=450),
))
EXPECTED_AGATSTON = 205.0  # see the module docstring
CALCIFIED_SLICES = sorted({k for i in PHANTOM.inserts for k in covered_slices(PHANTOM, i)})
MASS_CALIBRATION = 0.8  # mg/cm^3 per HU; any value will do, the mass is linear in it

PDFTOTEXT = shutil.which("pdftotext")
PDFTOPPM = shutil.which("pdftoppm")
needs_dciodvfy = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (dicom3tools) not installed")


@dataclass(frozen=True)
class Case:
    sources: list[Dataset]
    volume: Volume
    result: CalciumResult


def _case(phantom: Phantom, params: CalciumParams | None = None) -> Case:
    sources = shuffled(datasets(phantom))
    volume = load_volume(sources)
    return Case(sources, volume, score(volume, params))


@pytest.fixture(scope="module")
def scored() -> Case:
    return _case(PHANTOM)


@pytest.fixture(scope="module")
def refused() -> Case:
    return _case(replace(PHANTOM, contrast_agent="Iohexol"))


# --- helpers reading what a DICOM consumer would read -----------------------------

def _round_trip(ds: Dataset) -> Dataset:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return dcmread(io.BytesIO(buffer.getvalue()))


def _items(node: Dataset) -> Iterator[Dataset]:
    """Every content item below ``node``, depth first."""
    for item in node.get("ContentSequence", []):
        yield item
        yield from _items(item)


def _concept(item: Dataset) -> tuple[str, str]:
    code = item.ConceptNameCodeSequence[0]
    return str(code.CodeValue), str(code.CodingSchemeDesignator)


def _numbers(sr: Dataset, concept: tuple[str, str]) -> list[tuple[float, str]]:
    """(value, UCUM unit) of every NUM item named ``concept``."""
    return [(float(i.MeasuredValueSequence[0].NumericValue),
             str(i.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue))
            for i in _items(sr) if i.ValueType == "NUM" and _concept(i) == concept]


def _texts(sr: Dataset) -> list[str]:
    return [str(i.TextValue) for i in _items(sr) if i.ValueType == "TEXT"]


def _evidence_uids(sr: Dataset) -> set[str]:
    return {str(ref.ReferencedSOPInstanceUID)
            for study in sr.CurrentRequestedProcedureEvidenceSequence
            for series in study.ReferencedSeriesSequence
            for ref in series.ReferencedSOPSequence}


def _dciodvfy_errors(ds: Dataset, path: Path) -> list[str]:
    ds.save_as(path, enforce_file_format=True)
    return _errors(path)


def _pdf_text(pdf: bytes, tmp_path: Path) -> tuple[str, int]:
    """The PDF's words, whitespace collapsed (table cells wrap), and its page count."""
    assert PDFTOTEXT is not None
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    raw = subprocess.run([PDFTOTEXT, str(path), "-"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return " ".join(raw.split()), raw.count("\f")  # pdftotext ends each page with \f


# --- SR -------------------------------------------------------------------------

def test_sr_keeps_the_study_and_carries_the_analytic_agatston(scored: Case) -> None:
    assert expected_agatston(PHANTOM) == pytest.approx(EXPECTED_AGATSTON)
    source = scored.sources[0]
    sr = _round_trip(build_sr(scored.sources, scored.volume, scored.result))

    assert sr.SOPClassUID == Comprehensive3DSRStorage
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    assert sr.AccessionNumber == source.AccessionNumber == PHANTOM.accession
    assert sr.PatientID == source.PatientID
    assert sr.SeriesInstanceUID != source.SeriesInstanceUID and sr.SeriesNumber == 900
    assert (sr.PreliminaryFlag, sr.VerificationFlag) == ("PRELIMINARY", "UNVERIFIED")
    assert _concept(sr) == ("126000", "DCM")  # TID 1500 "Imaging Measurement Report"
    assert _numbers(sr, ("112058", "DCM")) == [(pytest.approx(EXPECTED_AGATSTON), "1")]


def test_sr_names_the_agatston_method_and_the_analyser(scored: Case) -> None:
    sr = build_sr(scored.sources, scored.volume, scored.result)
    score_item = next(i for i in _items(sr) if _concept(i) == ("112058", "DCM"))
    methods = [i.ConceptCodeSequence[0].CodeValue for i in _items(score_item)
               if _concept(i) == ("370129005", "SCT")]
    assert methods == ["112055"]  # DCM "Agatston scoring method"
    texts = _texts(sr)
    assert "ScanPath calcium scoring" in texts and scored.result.analyser_version in texts
    assert "threshold_hu=130" in texts  # TID 4019 Algorithm Parameters
    assert any(text.startswith("Coronary calcium score (Agatston) 205") for text in texts)


def test_sr_volume_count_and_mass_only_when_calibrated(scored: Case) -> None:
    sr = build_sr(scored.sources, scored.volume, scored.result)
    assert _numbers(sr, ("122660", "DCM")) == [(pytest.approx(expected_volume_mm3(PHANTOM)),
                                                "mm3")]
    assert _numbers(sr, ("111038", "DCM")) == [(2.0, "1")]  # two separate inserts
    assert _numbers(sr, ("122661", "DCM")) == []  # no calibration: no mass

    calibrated = _case(PHANTOM, CalciumParams(mass_calibration=MASS_CALIBRATION))
    sr = build_sr(calibrated.sources, calibrated.volume, calibrated.result)
    assert _numbers(sr, ("122661", "DCM")) == [(pytest.approx(_expected_mass_mg()), "mg")]


def _expected_mass_mg() -> float:
    """c x sum of HU x voxel volume over the inserts' voxels (McCollough 2007), mm^3 -> cm^3."""
    voxel_mm3 = PHANTOM.pixel_spacing[0] * PHANTOM.pixel_spacing[1] * PHANTOM.increment
    total_hu = sum((int(disc_mask(PHANTOM, i).sum()) * i.hu + insert_peak(i) - i.hu)
                   * len(covered_slices(PHANTOM, i)) for i in PHANTOM.inserts)
    return MASS_CALIBRATION * total_hu * voxel_mm3 / 1000.0


def test_sr_references_every_source_instance(scored: Case) -> None:
    sr = build_sr(scored.sources, scored.volume, scored.result)
    source_uids = {str(ds.SOPInstanceUID) for ds in scored.sources}
    assert _evidence_uids(sr) == source_uids
    images = {str(i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
              for i in _items(sr) if i.ValueType == "IMAGE"}
    # TID 1600 Image Library: up to three of the slices the phantom's inserts cover.
    covered = {k for insert in PHANTOM.inserts for k in covered_slices(PHANTOM, insert)}
    assert len(images) == min(3, len(covered)) and images <= source_uids


def test_sr_of_a_refused_scan_gives_the_reason_and_no_numbers(refused: Case) -> None:
    assert not refused.result.scorable and refused.result.reason
    sr = _round_trip(build_sr(refused.sources, refused.volume, refused.result))
    group = next(i for i in _items(sr) if _concept(i) == ("125007", "DCM"))  # TID 1501
    assert [i for i in _items(group) if i.ValueType == "NUM"] == []
    assert f"Not scored: {refused.result.reason}" in _texts(sr)
    assert _evidence_uids(sr) == {str(ds.SOPInstanceUID) for ds in refused.sources}


@needs_dciodvfy
@pytest.mark.parametrize("which", ["scored", "refused"])
def test_sr_passes_dciodvfy(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    case: Case = request.getfixturevalue(which)
    sr = build_sr(case.sources, case.volume, case.result)
    assert _dciodvfy_errors(sr, tmp_path / "sr.dcm") == []


def test_sources_that_do_not_match_the_volume_are_refused(scored: Case) -> None:
    with pytest.raises(ReportError, match="not among the source datasets"):
        build_sr(scored.sources[1:], scored.volume, scored.result)
    other = replace(scored.result, series_uid="1.2.3")
    with pytest.raises(ReportError, match="result is for series"):
        build_seg(scored.sources, scored.volume, other)


# --- SEG ------------------------------------------------------------------------

def test_seg_has_one_frame_per_calcified_slice(scored: Case) -> None:
    seg = _round_trip(_seg(scored))
    assert seg.SOPClassUID == SegmentationStorage
    assert seg.StudyInstanceUID == scored.sources[0].StudyInstanceUID
    assert seg.SegmentationType == "BINARY"
    assert int(seg.NumberOfFrames) == len(CALCIFIED_SLICES) == 6
    segment = seg.SegmentSequence[0]
    assert segment.SegmentLabel == "Calcium"
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "18115005"
    assert segment.SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion == (
        scored.result.analyser_version)


def test_seg_frames_sit_on_their_source_slices(scored: Case) -> None:
    seg = _round_trip(_seg(scored))
    by_uid = {str(ds.SOPInstanceUID): ds for ds in scored.sources}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        position = [float(x) for x in frame.PlanePositionSequence[0].ImagePositionPatient]
        source_uid = frame.DerivationImageSequence[0].SourceImageSequence[0]
        source = by_uid[str(source_uid.ReferencedSOPInstanceUID)]
        np.testing.assert_allclose(position, [float(x) for x in source.ImagePositionPatient])
    expected_voxels = sum(int(disc_mask(PHANTOM, i).sum()) * len(covered_slices(PHANTOM, i))
                          for i in PHANTOM.inserts)
    assert int(seg.pixel_array.sum()) == expected_voxels


def test_seg_of_an_enhanced_ct_refers_to_its_frames() -> None:
    phantom = replace(PHANTOM, reversed_z=True)  # frame order opposite to the volume's
    source = enhanced_dataset(phantom)
    volume = load_volume([source])
    seg = build_seg([source], volume, score(volume))
    assert seg is not None and int(seg.NumberOfFrames) == len(CALCIFIED_SLICES)
    frames = [int(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
              for f in seg.PerFrameFunctionalGroupsSequence]
    # Frame n of the reversed source holds slice n_slices - n.
    assert sorted(phantom.n_slices - n for n in frames) == CALCIFIED_SLICES


def test_no_seg_without_calcium_or_without_a_score(refused: Case) -> None:
    empty = _case(replace(PHANTOM, inserts=()))
    assert empty.result.agatston == 0
    assert build_seg(empty.sources, empty.volume, empty.result) is None
    assert build_seg(refused.sources, refused.volume, refused.result) is None


@needs_dciodvfy
def test_seg_passes_dciodvfy(scored: Case, tmp_path: Path) -> None:
    assert _dciodvfy_errors(_seg(scored), tmp_path / "seg.dcm") == []


def _seg(case: Case) -> Dataset:
    seg = build_seg(case.sources, case.volume, case.result)
    assert seg is not None
    return seg


# --- Encapsulated PDF (PS3.3 A.45.1), for PACS -------------------------------------

def _encapsulated(case: Case, tmp_path: Path) -> tuple[bytes, Dataset]:
    pdf = build_pdf(case.result, patient_name="Test^Patient", accession="SP1",
                    study_date="20260101", key_images=[],
                    conclusion=conclusion_text(case.result))
    return pdf, _round_trip(build_encapsulated_pdf(case.sources, pdf))


def test_encapsulated_pdf_holds_the_report_in_the_patients_study(scored: Case,
                                                                 tmp_path: Path) -> None:
    pdf, ds = _encapsulated(scored, tmp_path)
    source = scored.sources[0]
    assert (ds.StudyInstanceUID, ds.PatientID, ds.AccessionNumber) == (
        source.StudyInstanceUID, source.PatientID, source.AccessionNumber)
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID and ds.Modality == "DOC"
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert ds.EncapsulatedDocument[:ds.EncapsulatedDocumentLength] == pdf
    assert ds.VerificationFlag == "UNVERIFIED"  # preliminary until signed off
    assert {ref.ReferencedSOPInstanceUID for ref in ds.SourceInstanceSequence} == {
        s.SOPInstanceUID for s in scored.sources}


@needs_dciodvfy
def test_encapsulated_pdf_passes_dciodvfy(scored: Case, tmp_path: Path) -> None:
    _, ds = _encapsulated(scored, tmp_path)
    assert _dciodvfy_errors(ds, tmp_path / "pdf.dcm") == []


# --- conclusion and PDF -----------------------------------------------------------

@pytest.mark.parametrize(("agatston", "category", "words"), [
    (0.0, 0, "no calcified plaque"),
    (1.0, 1, "mild calcified plaque"),
    (99.0, 1, "mild calcified plaque"),
    (100.0, 2, "moderate calcified plaque"),
    (299.0, 2, "moderate calcified plaque"),
    (300.0, 3, "severe calcified plaque"),
])
def test_conclusion_follows_cac_drs(scored: Case, agatston: float, category: int,
                                    words: str) -> None:
    result = replace(scored.result, agatston=agatston, cac_drs=category)
    text = conclusion_text(result)
    assert text.startswith(f"Coronary calcium score (Agatston) {agatston:.0f}: {words} "
                           f"(CAC-DRS A{category}).")
    assert "preliminary" in text


def test_conclusion_of_a_refused_scan(refused: Case) -> None:
    assert conclusion_text(refused.result) == (
        f"The scan could not be scored: {refused.result.reason}. "
        "A radiologist will review it.")


@pytest.mark.parametrize(("value", "text"), [
    (0.0, "0"), (0.4, "0.4"), (1.2, "1"), (99.4, "99"), (99.6, "99.6"),
    (150.5, "151"), (299.7, "299.7"), (300.4, "300"),
    (99.96, "99.9"), (299.99, "299.9"), (0.04, "below 0.1"),
])
def test_agatston_rounding_never_changes_the_category(value: float, text: str) -> None:
    assert format_agatston(value) == text


def _pdf(case: Case) -> bytes:
    weights = case.result.weight_map
    images = [] if weights is None else [k.png for k in key_images(case.volume, weights)]
    first = case.sources[0]
    return build_pdf(case.result, patient_name=str(first.PatientName),
                     accession=str(first.AccessionNumber), study_date=str(first.StudyDate),
                     key_images=images, conclusion=conclusion_text(case.result))


def test_pdf_is_a_pdf(scored: Case) -> None:
    assert _pdf(scored).startswith(b"%PDF")


@pytest.mark.skipif(PDFTOTEXT is None, reason="pdftotext (poppler-utils) not installed")
def test_pdf_states_score_category_and_preliminary(scored: Case, tmp_path: Path) -> None:
    text, pages = _pdf_text(_pdf(scored), tmp_path)
    assert pages in (1, 2)
    assert PRELIMINARY_BANNER in text
    assert "Coronary calcium score (Agatston) 205" in text
    assert "CAC-DRS" in text and "A2" in text
    assert "not available (no scanner calibration)" in text
    assert "Smith, Alex" in text  # DICOM Smith^Alex as "Family, Given"
    assert "1 January 2025" in text and PHANTOM.accession in text
    assert scored.result.analyser_version in text


@pytest.mark.skipif(PDFTOTEXT is None, reason="pdftotext (poppler-utils) not installed")
def test_pdf_of_a_refused_scan(refused: Case, tmp_path: Path) -> None:
    text, pages = _pdf_text(_pdf(refused), tmp_path)
    assert pages in (1, 2)
    assert "The scan could not be scored" in text and "not scored" in text
    assert PRELIMINARY_BANNER in text


@pytest.mark.skipif(PDFTOPPM is None, reason="pdftoppm (poppler-utils) not installed")
def test_pdf_page_one_renders_with_the_red_banner(scored: Case, tmp_path: Path) -> None:
    assert PDFTOPPM is not None
    (tmp_path / "report.pdf").write_bytes(_pdf(scored))
    subprocess.run([PDFTOPPM, "-png", "-r", "40", "-f", "1", "-l", "1", "-singlefile",
                    str(tmp_path / "report.pdf"), str(tmp_path / "page")],
                   check=True, timeout=30)
    page = np.asarray(Image.open(tmp_path / "page.png").convert("RGB")).astype(int)
    banner = (np.abs(page - [200, 30, 30]).sum(axis=2) < 40)
    rows = np.flatnonzero(banner.any(axis=1))
    assert rows.size and rows[0] < page.shape[0] * 0.15  # at the top of page one
