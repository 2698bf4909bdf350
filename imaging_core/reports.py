"""Calcium-score results out: DICOM SR, DICOM SEG, a PDF report and its plain-words conclusion.

Pure builders: they take the source instances, the :class:`~imaging_core.volume.Volume`
and the :class:`~imaging_core.calcium.CalciumResult` and return a pydicom Dataset or PDF
bytes. No Flask, no database, no network; fonts are the PDF core fonts.

- :func:`build_sr`: Comprehensive 3D SR (PS3.3 A.35.13) whose content tree is DICOM
  PS3.16 TID 1500 "Measurement Report", built with highdicom. One TID 1501 "Measurement
  and Qualitative Evaluation Group" holds the totals, and one per coronary artery (its
  finding site the artery) holds that artery's share when calcium is attributed; TID 4019 "Algorithm
  Identification" names the analyser, its version and every parameter; TID 1600 "Image
  Library" and the evidence sequence reference every source image.
- :func:`build_seg`: Segmentation (PS3.3 A.51), BINARY: the voxels that counted in the
  Agatston score, one segment per artery with calcium ("Calcium LAD"), or one segment
  "Calcium" when the calcium is not attributed to arteries.
- :func:`build_pdf`: a one- or two-page report for the GP and the patient, with a table
  per artery and CAC-DRS A/N.
- :func:`build_encapsulated_pdf`: that PDF as a DICOM Encapsulated PDF (PS3.3 A.45.1)
  in the study, for PACS.
- :func:`conclusion_text`: the plain-words conclusion, CAC-DRS A/N per Hecht 2018,
  naming the arteries with calcium.

Every output says PRELIMINARY (the SR's PreliminaryFlag and VerificationFlag, the SEG's
series description, the PDF's banner) unless it is built with a :class:`Signature`: a
radiologist's sign-off (CONTRACT §6) issues them again as FINAL (or AMENDED, CORRECTED),
the SR VERIFIED with the radiologist in VerifyingObserverSequence (PS3.3 C.17.2.1, SR
Document General Module).

Codes and where each was verified (pydicom 3.0 ``pydicom.sr.codedict``, generated from
PS3.16; ``shared/CODES.md``):

=====================  ==============================================  =====================
Use                    Code                                            Status
=====================  ==============================================  =====================
Agatston score         DCM 112058 "Calcium score"                      codedict, CODES.md
its method             DCM 112055 "Agatston scoring method"            codedict, CODES.md
Volume score           DCM 122660 "Calcium Volume"                     codedict, CODES.md
Mass score             DCM 122661 "Calcium Mass"                       codedict, CODES.md
Lesion count           DCM 111038 "Number of calcifications"           codedict (no CID)
Procedure reported     SCT 426005005 "Cardiac CT for calcium scoring"  CID 3757, CODES.md
Finding / SEG type     SCT 18115005 "Pathologic calcification"         codedict concept and
                                                                       CID 3802; not in
                                                                       CID 7151 (extensible)
SEG category           SCT 49755003 "Morphologically abnormal          CID 7150
                       structure"
Algorithm family       DCM 123101 "Neighborhood Analysis"              CID 7162
Text evaluations       DCM 121106 "Comment", DCM 121077 "Conclusion"   codedict
Root evaluations box   UMLS C0034375 "Qualitative Evaluations"         TID 1500 row (HL7
                                                                       DICOM SR-to-FHIR IG)
Finding site, SEG      SCT 3227004 LM, 59438005 LAD, 57396003 LCX,       CID 3016 "Major
anatomic region        13647002 RCA                                    Coronary Artery"
Units                  UCUM 1, mm3 (CID 7181), mg                      codedict; mg is UCUM
=====================  ==============================================  =====================

SNOMED CT 450360000 "Coronary artery calcium score" is not used here: the SR names the
measurement with the DICOM concept above and has room for one; the FHIR Observations
carry both (CONTRACT §5).
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import highdicom as hd
import numpy as np
from fpdf import FPDF
from fpdf.fonts import FontFace
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.tag import Tag
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian, generate_uid

from imaging_core.calcium import (
    AGATSTON_1990,
    CORONARY_ARTERIES,
    HECHT_2018,
    MCCOLLOUGH_2007,
    ArteryScore,
    CalciumResult,
)
from imaging_core.errors import ReportError
from imaging_core.volume import Volume

log = logging.getLogger(__name__)
PIXEL_DATA = Tag(0x7FE0, 0x0010)

MANUFACTURER = "ScanPath"
ALGORITHM_NAME = "ScanPath calcium scoring"
PRELIMINARY_BANNER = "PRELIMINARY - not yet verified by a radiologist"
PRELIMINARY_SENTENCE = " This is a preliminary result until a radiologist has checked it."


@dataclass(frozen=True)
class Signature:
    """A radiologist's sign-off of a report: what the re-issued outputs say.

    ``status`` is the DiagnosticReport's (``final``, ``amended``, ``corrected``);
    ``verifier`` the radiologist's name as DICOM PN (``Family^Given``);
    ``organization`` where they verify (SR VerifyingOrganization, Type 1);
    ``signed_at`` when; ``conclusion`` the signed report's wording; ``reason`` why
    it was amended or corrected (None at sign-off).
    """

    status: str
    verifier: str
    organization: str
    signed_at: datetime
    conclusion: str
    reason: str | None = None

    @property
    def banner(self) -> str:
        """The PDF's banner line, e.g. "FINAL - verified by Jones, Sam on 1 December 2026"."""
        when = self.signed_at.strftime("%d %B %Y %H:%M").lstrip("0")
        return f"{self.status.upper()} - verified by {_person_name(self.verifier)} on {when}"


def final_conclusion(conclusion: str) -> str:
    """``conclusion`` without the sentence that calls it preliminary."""
    return conclusion.replace(PRELIMINARY_SENTENCE, "").strip()
SEGMENT_LABEL = "Calcium"

CALCIUM_SCORE = codes.DCM.CalciumScore  # DCM 112058
AGATSTON_METHOD = codes.DCM.AgatstonScoringMethod  # DCM 112055
CALCIUM_VOLUME = codes.DCM.CalciumVolume  # DCM 122660
CALCIUM_MASS = codes.DCM.CalciumMass  # DCM 122661
NUMBER_OF_CALCIFICATIONS = codes.DCM.NumberOfCalcifications  # DCM 111038
CAC_PROCEDURE = codes.SCT.CardiacCTForCalciumScoring  # SCT 426005005, CID 3757
# The codedict meaning is lower case ("pathologic calcification"); SNOMED's preferred term
# is capitalised like this. Not a member of CID 7151, which is extensible.
CALCIFICATION = Code("18115005", "SCT", "Pathologic calcification")
ABNORMAL_STRUCTURE = codes.SCT.MorphologicallyAbnormalStructure  # SCT 49755003, CID 7150
# Threshold, then connected lesions of a minimum area: a pixel's class depends on its
# neighbours, which is what CID 7162 "Neighborhood Analysis" describes.
ALGORITHM_FAMILY = codes.cid7162.NeighborhoodAnalysis  # DCM 123101
COMMENT = codes.DCM.Comment  # DCM 121106
CONCLUSION = codes.DCM.Conclusion  # DCM 121077
QUALITATIVE_EVALUATIONS = Code("C0034375", "UMLS", "Qualitative Evaluations")
# The arteries as finding sites and SEG anatomic regions: DICOM PS3.16 CID 3016 "Major
# Coronary Artery" (SNOMED CT), the same concepts as imaging_core.terminology.
ARTERY_CODES: dict[str, Code] = {
    "LM": codes.cid3016.LeftMainCoronaryArtery,  # SCT 3227004
    "LAD": codes.cid3016.LeftAnteriorDescendingCoronaryArtery,  # SCT 59438005
    "LCX": codes.cid3016.CircumflexCoronaryArtery,  # SCT 57396003
    "RCA": codes.cid3016.RightCoronaryArtery,  # SCT 13647002
}
NO_UNITS = codes.UCUM.NoUnits  # UCUM "1"
CUBIC_MM = codes.UCUM.CubicMillimeter  # UCUM "mm3"
MILLIGRAM = Code("mg", "UCUM", "milligram")

# CAC-DRS Agatston categories in plain words. The bounds (0, 1-99, 100-299, >= 300) are
# Hecht 2018's and match calcium.CAC_DRS_BOUNDS; the none/mild/moderate/severe labels
# were not checked against the wording of the paper's own table. "Plaque" means
# calcified plaque: a calcium score cannot see non-calcified plaque.
CAC_DRS_MEANING: dict[int, tuple[str, str]] = {
    0: ("0", "no calcified plaque"),
    1: ("1-99", "mild calcified plaque"),
    2: ("100-299", "moderate calcified plaque"),
    3: ("300 or more", "severe calcified plaque"),
}
CAC_DRS_SOURCE = HECHT_2018


# --- conclusion -------------------------------------------------------------------

def conclusion_text(result: CalciumResult) -> str:
    """The conclusion in plain words: score, CAC-DRS category and what is still to come.

    Categories and wording follow CAC-DRS (Hecht HS et al., J Cardiovasc Comput Tomogr
    2018;12:185-191): Agatston 0 -> A0 no plaque, 1-99 -> A1 mild, 100-299 -> A2
    moderate, >= 300 -> A3 severe; N is the number of coronary arteries with calcium,
    named. Without attribution to arteries no N is given (unknown, not none).
    """
    if not result.scorable or result.agatston is None or result.cac_drs is None:
        reason = (result.reason or "reason not recorded").rstrip(".")
        return f"The scan could not be scored: {reason}. A radiologist will review it."
    burden = CAC_DRS_MEANING[result.cac_drs][1]
    text = (f"Coronary calcium score (Agatston) {format_agatston(result.agatston)}: "
            f"{burden} ({result.cac_drs_label}).{vessels_text(result)}")
    if result.region.startswith("whole field of view"):
        text += (" The whole scan was measured, so calcium outside the coronary arteries "
                 "(for example in the aortic valve or aorta) may be included.")
    return text + PRELIMINARY_SENTENCE


ARTERY_NAMES = {"LM": "left main (LM)", "LAD": "left anterior descending (LAD)",
                "LCX": "left circumflex (LCX)", "RCA": "right coronary artery (RCA)"}


def vessels_text(result: CalciumResult) -> str:
    """" Calcium in 2 of the 4 coronary arteries scored: ..." in plain words."""
    if result.cac_vessels is None:
        return (" Which coronary arteries hold the calcium was not determined."
                if result.agatston else "")
    with_calcium = [ARTERY_NAMES[a] for a in CORONARY_ARTERIES
                    if result.arteries.get(a) and result.arteries[a].agatston > 0]
    if not with_calcium:
        return ""
    return (f" Calcium in {result.cac_vessels} of the 4 coronary arteries scored: "
            f"{_and_list(with_calcium)}.")


def _and_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def format_agatston(value: float) -> str:
    """The score as readers expect it: a whole number, unless rounding would misstate it.

    A score below 1 is still calcium (CAC-DRS 1), and 99.6 must not read as 100 (CAC-DRS
    2), so one decimal is kept wherever rounding would cross a category bound.
    """
    rounded = math.floor(value + 0.5)  # half up, as a reader rounds; round() is half-even
    crosses = (value > 0) != (rounded > 0) or any(
        (value < bound) != (rounded < bound) for bound in (100.0, 300.0))
    if not crosses:
        return f"{rounded:d}"
    if 0 < value < 0.1:
        return "below 0.1"
    # Truncated, not rounded: 99.96 rounded to one decimal would read 100.0 again.
    return f"{math.floor(value * 10) / 10:.1f}"


# --- parameters shared by SR, SEG and PDF -----------------------------------------

def algorithm_parameters(result: CalciumResult) -> dict[str, str]:
    """Every analyser parameter of ``result`` as text, without the literature sources."""
    return {key: _parameter_text(value) for key, value in result.params.items()
            if key != "sources"}


def _parameter_text(value: Any) -> str:
    """A parameter value with no commas: highdicom joins SEG parameters with commas."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "/".join(_parameter_text(item) for item in value)
    return str(value)


def _ordered_sources(source_datasets: Sequence[Dataset], volume: Volume,
                     result: CalciumResult) -> list[Dataset]:
    """The source instances of ``volume``, in its sorted slice order; others are dropped.

    A study can hold dose screens or other series besides the scored one; only the
    volume's instances are evidence for this result.
    """
    if result.series_uid != volume.series_uid:
        raise ReportError(f"result is for series {result.series_uid}, "
                          f"volume is series {volume.series_uid}")
    by_uid = {str(ds.SOPInstanceUID): ds for ds in source_datasets}
    missing = [uid for uid in volume.sop_instance_uids if uid not in by_uid]
    if missing:
        raise ReportError(f"{len(missing)} of the volume's instances are not among the "
                          f"source datasets, e.g. {missing[0]}")
    return [by_uid[uid] for uid in volume.sop_instance_uids]


# --- DICOM SR: PS3.16 TID 1500 Measurement Report --------------------------------

def build_sr(source_datasets: list[Dataset], volume: Volume, result: CalciumResult, *,
             series_number: int = 900, instance_number: int = 1,
             signature: Signature | None = None) -> Dataset:
    """A Comprehensive 3D SR (TID 1500) of ``result``, in the source images' study.

    Patient, study and accession number are copied from the sources; the series and
    instance UIDs are new. A refused result gives an SR whose measurement group holds
    the reason as text and no numbers. Without ``signature`` the SR is PRELIMINARY and
    UNVERIFIED; with it FINAL and VERIFIED by ``signature.verifier`` (PS3.3 C.17.2).
    """
    sources = _ordered_sources(source_datasets, volume, result)
    report = hd.sr.MeasurementReport(
        observation_context=device_context(ALGORITHM_NAME, result.analyser_version),
        procedure_reported=CAC_PROCEDURE,
        imaging_measurements=[
            _measurement_group(result, [ds for ds in sources if _is_multiframe(ds)]),
            *_artery_groups(result)],
        referenced_images=_library(sources, result) or None,
    )
    report[0].ContentSequence.append(conclusion_container(conclusion_text(result), signature))
    return sr_document(report, sources, CAC_PROCEDURE, "Calcium score", signature,
                       series_number, instance_number)


def sr_document(report: hd.sr.MeasurementReport, sources: Sequence[Dataset], procedure: Code,
                title: str, signature: Signature | None, series_number: int,
                instance_number: int) -> Dataset:
    """A Comprehensive 3D SR holding ``report``, every source as evidence (without pixels).

    PRELIMINARY and UNVERIFIED without ``signature``; with it FINAL and VERIFIED by
    the radiologist at the sign-off time (PS3.3 C.17.2). ``title`` starts the series
    description, which ends with the status.
    """
    sr = hd.sr.Comprehensive3DSR(
        evidence=_evidence(sources), content=report[0],
        series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=instance_number,
        manufacturer=MANUFACTURER,
        is_complete=True,  # the analysis is whole; verification is a separate flag
        is_final=signature is not None, is_verified=signature is not None,
        verifying_observer_name=signature.verifier if signature else None,
        verifying_organization=signature.organization if signature else None,
        performed_procedure_codes=[procedure],
    )
    if signature is not None:  # highdicom stamps "now"; the sign-off time is what counts
        observer = sr.VerifyingObserverSequence[0]
        observer.VerificationDateTime = signature.signed_at.strftime("%Y%m%d%H%M%S")
    sr.SeriesDescription = f"{title} ({_status_word(signature)})"
    return sr


def _status_word(signature: Signature | None) -> str:
    return signature.status if signature else "preliminary"


# What highdicom reads of each evidence instance but the first (collect_evidence: the
# Current Requested Procedure Evidence Sequence, PS3.3 C.17.2.3, groups references by study
# and series); the first also gives the Patient, General Study and equipment attributes.
EVIDENCE_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID")


def _evidence(sources: Sequence[Dataset]) -> list[Dataset]:
    """The first source's header and the others' references: highdicom deep-copies what it
    is given, and a whole header per slice cost most of a CTCA SR's time."""
    if not sources:
        return []
    return [_header(sources[0]), *(_identity(ds) for ds in sources[1:])]


def _identity(ds: Dataset) -> Dataset:
    """``ds``'s study, series, SOP class and instance UIDs only."""
    identity = Dataset()
    for keyword in EVIDENCE_KEYS:
        setattr(identity, keyword, ds[keyword].value)
    return identity


def _header(ds: Dataset) -> Dataset:
    """``ds`` without its pixels: highdicom deep-copies the evidence it is given."""
    header = Dataset()
    for element in ds:
        if element.tag != PIXEL_DATA:
            header.add(element)
    return header


LIBRARY_SLICES = 3  # as many as the key images


def _library(sources: list[Dataset], result: CalciumResult) -> list[Dataset]:
    """TID 1600 Image Library entries: the slices with the most scored calcium.

    Every source instance is referenced in the evidence sequence already.
    Whole-field scoring finds bone calcium on nearly every slice, and an entry
    per slice (with its geometry) took half of a 300-slice job
    (docs/benchmarks.md), so the library names the key slices only.
    """
    weights = result.weight_map
    if weights is None:
        return []
    per_slice = (weights > 0).reshape(weights.shape[0], -1).sum(axis=1)
    ranked = [int(i) for i in np.argsort(-per_slice, kind="stable") if per_slice[i] > 0]
    chosen = sorted(ranked[:LIBRARY_SLICES])
    return [_header(sources[i]) for i in chosen if not _is_multiframe(sources[i])]


def _algorithm(result: CalciumResult) -> hd.sr.AlgorithmIdentification:
    """TID 4019: name, version and one "Algorithm Parameters" row per parameter."""
    return hd.sr.AlgorithmIdentification(
        name=ALGORITHM_NAME, version=result.analyser_version,
        parameters=[f"{k}={v}" for k, v in algorithm_parameters(result).items()],
        manufacturer=MANUFACTURER,
    )


def device_context(name: str, version: str) -> hd.sr.ObservationContext:
    """TID 1001 context: the analyser as a device observer (TID 1004), UID stable per version."""
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(prefix=None, entropy_srcs=[name, version]),
        name=name, manufacturer_name=MANUFACTURER, model_name=version,
    )
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))


def _is_multiframe(ds: Dataset) -> bool:
    return "PerFrameFunctionalGroupsSequence" in ds


def _measurement_group(
        result: CalciumResult,
        multiframe_sources: list[Dataset]) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 group: the scores, or for a refused scan the reason alone.

    An Enhanced CT source is named here as the group's source image: highdicom's Image
    Library entry reads slice geometry at the top level, where Enhanced CT has none.
    """
    scored = result.scorable
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(),
                                                     identifier="Calcium score"),
        finding_type=CALCIFICATION if scored else None,
        algorithm_id=_algorithm(result),
        measurements=_measurements(result) if scored else None,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ds)
                       for ds in multiframe_sources] or None,
    )
    # TID 1501 admits TEXT qualitative evaluations beside the coded ones; highdicom's
    # constructor takes only CODE, so they are appended to the group container.
    group[0].ContentSequence.extend(text_item(COMMENT, text) for text in _comments(result))
    return group


def _measurements(result: CalciumResult) -> list[hd.sr.Measurement]:
    """TID 300 measurements of the total; mass only when a calibration made it measurable."""
    agatston, volume_mm3, _ = _scores(result)
    return _score_measurements(ArteryScore(agatston, volume_mm3, result.mass_mg,
                                           result.lesion_count or 0))


def _score_measurements(scores: ArteryScore) -> list[hd.sr.Measurement]:
    """Agatston, volume, mass (when calibrated) and lesion count, as TID 300 items."""
    items = [
        hd.sr.Measurement(name=CALCIUM_SCORE, value=scores.agatston, unit=NO_UNITS,
                          method=AGATSTON_METHOD),
        hd.sr.Measurement(name=CALCIUM_VOLUME, value=scores.volume_mm3, unit=CUBIC_MM),
    ]
    if scores.mass_mg is not None:
        items.append(hd.sr.Measurement(name=CALCIUM_MASS, value=scores.mass_mg,
                                       unit=MILLIGRAM))
    items.append(hd.sr.Measurement(name=NUMBER_OF_CALCIFICATIONS,
                                   value=scores.lesion_count, unit=NO_UNITS))
    return items


def _artery_groups(result: CalciumResult) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    """One TID 1501 group per coronary artery (zeros included), its finding site the
    artery (CID 3016); none when calcium is not attributed to arteries (unknown, not 0)."""
    if not result.scorable or result.cac_vessels is None:
        return []
    return [hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=hd.UID(), identifier=f"Calcium score {artery}"),
        finding_type=CALCIFICATION,
        finding_sites=[hd.sr.FindingSite(anatomic_location=ARTERY_CODES[artery])],
        algorithm_id=_algorithm(result),
        measurements=_score_measurements(result.arteries[artery]),
    ) for artery in CORONARY_ARTERIES]


def _scores(result: CalciumResult) -> tuple[float, float, int]:
    """Agatston, volume and CAC-DRS of a scored result, which always has all three."""
    if result.agatston is None or result.volume_mm3 is None or result.cac_drs is None:
        raise ReportError("a scored result lacks its Agatston, volume or CAC-DRS")
    return result.agatston, result.volume_mm3, result.cac_drs


def _comments(result: CalciumResult) -> list[str]:
    """The refusal reason, the scored region and the QA notes, each a TEXT item."""
    lines = [] if result.scorable else [f"Not scored: {result.reason or 'no reason recorded'}"]
    lines.append(f"Region scored: {result.region}")
    if result.cac_drs_label is not None:
        lines.append(f"{result.cac_drs_label} ({CAC_DRS_SOURCE})")
    return lines + [f"QA: {item}" for item in result.qa]


def conclusion_container(conclusion: str,
                         signature: Signature | None = None) -> hd.sr.ContainerContentItem:
    """TID 1500's optional "Qualitative Evaluations" container with the conclusion: the
    analysis' own until a radiologist signs, then the signed wording
    (:func:`signed_conclusion`), so a FINAL SR never calls itself preliminary."""
    container = hd.sr.ContainerContentItem(name=QUALITATIVE_EVALUATIONS,
                                           relationship_type="CONTAINS")
    container.ContentSequence = hd.sr.ContentSequence(
        [text_item(CONCLUSION, signed_conclusion(conclusion, signature))])
    return container


def text_item(name: Code, text: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=text, relationship_type="CONTAINS")


# --- DICOM Encapsulated PDF: PS3.3 A.45.1 -------------------------------------------

# Patient (C.7.1.1) and General Study (C.7.2.1) attributes, copied from the sources.
_PATIENT_AND_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                      "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName",
                      "StudyID", "AccessionNumber")
PDF_TITLE = "Coronary artery calcium score report (preliminary)"


def build_encapsulated_pdf(source_datasets: Sequence[Dataset], pdf: bytes, *,
                           series_number: int = 902,
                           signature: Signature | None = None,
                           title: str = "Calcium score report",
                           document_title: str = PDF_TITLE) -> Dataset:
    """``pdf`` as an Encapsulated PDF instance (PS3.3 A.45.1) in the sources' study.

    Modules: Patient and General Study (copied from the first source),
    Encapsulated Document Series (C.24.1, Modality DOC), General Equipment,
    SC Equipment (C.8.6.1, Conversion Type ``SYN``: made by software), Encapsulated
    Document (C.24.2) and SOP Common. The document is unverified (Verification
    Flag UNVERIFIED) until a radiologist signs it off (``signature``: VERIFIED, and
    the series, named ``title``, says final, amended or corrected); its key images are burned
    in, so Burned In Annotation is YES, and Source Instance Sequence names every
    source image. Raises ReportError without sources or PDF bytes.
    """
    if not source_datasets or not pdf:
        raise ReportError("an Encapsulated PDF needs the source images and the PDF")
    first, now = source_datasets[0], datetime.now()
    ds = Dataset()
    ds.SpecificCharacterSet = first.get("SpecificCharacterSet", "ISO_IR 192")
    ds.SOPClassUID, ds.SOPInstanceUID = EncapsulatedPDFStorage, generate_uid()
    for keyword in _PATIENT_AND_STUDY:
        setattr(ds, keyword, first.get(keyword, ""))
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "DOC", generate_uid(), series_number
    ds.SeriesDescription = f"{title} ({_status_word(signature)})"
    ds.Manufacturer, ds.ConversionType = MANUFACTURER, "SYN"
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation, ds.DocumentTitle = "YES", document_title
    ds.ConceptNameCodeSequence = []
    ds.VerificationFlag = "UNVERIFIED" if signature is None else "VERIFIED"
    ds.SourceInstanceSequence = [_reference(source) for source in source_datasets]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf)  # before the pad byte (C.24.2)
    ds.EncapsulatedDocument = pdf + b"\0" * (len(pdf) % 2)  # even length (PS3.5 7.1.1)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _reference(source: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return item


# --- DICOM SEG --------------------------------------------------------------------

def build_seg(source_datasets: list[Dataset], volume: Volume, result: CalciumResult, *,
              series_number: int = 901, signature: Signature | None = None) -> Dataset | None:
    """A BINARY Segmentation of the voxels that counted in the Agatston score.

    With calcium attributed to arteries, one segment per artery that has counted
    calcium ("Calcium LAD", its anatomic region the artery, CID 3016); otherwise one
    segment "Calcium" of all counted voxels.

    Returns None when there is nothing to segment: a refused scan, or a score of 0. A
    SEG must hold at least one frame, and highdicom would then write every frame empty,
    a "Calcium" segment with no calcium in it; the SR already says the score is 0.

    Frames are placed by the volume's own geometry (plane positions from
    :meth:`Volume.voxel_to_patient`), so the mask lines up whatever the order of the
    sources, and highdicom refers each frame to the source slice or frame at that
    position (single-frame CT or Enhanced CT alike).
    """
    sources = _ordered_sources(source_datasets, volume, result)
    if not result.scorable or result.weight_map is None:
        return None
    segments = _segments(result)
    if not segments:
        log.info("no calcium: no segmentation built", extra={"series_uid": volume.series_uid})
        return None
    labels = np.zeros(result.weight_map.shape, dtype=np.uint8)
    for number, (_, mask) in enumerate(segments, start=1):
        labels[mask] = number
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=labels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment_description(result, number, artery)
                              for number, (artery, _) in enumerate(segments, start=1)],
        series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name=ALGORITHM_NAME,
        software_versions=result.analyser_version, device_serial_number="none",
        plane_positions=_plane_positions(volume), plane_orientation=_plane_orientation(volume),
        pixel_measures=_pixel_measures(volume),
        content_label="CALCIUM", content_description="Voxels counted in the Agatston score",
    )
    seg.SeriesDescription = f"Calcium segmentation ({_status_word(signature)})"
    return seg


def _segments(result: CalciumResult) -> list[tuple[str | None, np.ndarray]]:
    """``(artery or None, mask)`` of each non-empty segment, in segment-number order."""
    if result.weight_map is None:
        return []
    counted = result.weight_map > 0
    if result.cac_vessels is None or result.lesion_map is None:
        return [(None, counted)] if counted.any() else []
    out: list[tuple[str | None, np.ndarray]] = []
    for artery in CORONARY_ARTERIES:
        mine = [i + 1 for i, c in enumerate(result.lesions) if c.counted and c.label == artery]
        mask = np.isin(result.lesion_map, mine) & counted
        if mask.any():
            out.append((artery, mask))
    return out


def _segment_description(result: CalciumResult, number: int = 1,
                         artery: str | None = None) -> hd.seg.SegmentDescription:
    algorithm = hd.AlgorithmIdentificationSequence(
        name=ALGORITHM_NAME, family=ALGORITHM_FAMILY, version=result.analyser_version,
        source=MANUFACTURER, parameters=algorithm_parameters(result))
    description = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=SEGMENT_LABEL if artery is None else f"{SEGMENT_LABEL} {artery}",
        segmented_property_category=ABNORMAL_STRUCTURE,
        segmented_property_type=CALCIFICATION,
        # A radiologist's review of the candidates makes it semi-automatic (PS3.3 C.8.20.2).
        algorithm_type=(hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
                        if any(c.reviewed_by for c in result.lesions)
                        else hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC),
        algorithm_identification=algorithm,
        anatomic_regions=None if artery is None else [ARTERY_CODES[artery]],
    )
    # Say what the segment is not: without a region mask it includes bone and valves.
    description.SegmentDescription = f"Agatston lesions, {result.region}"[:64]
    return description


def _plane_positions(volume: Volume) -> list[hd.PlanePositionSequence]:
    corners = np.zeros((volume.shape[0], 3))
    corners[:, 0] = np.arange(volume.shape[0])
    return [hd.PlanePositionSequence(hd.CoordinateSystemNames.PATIENT, point.tolist())
            for point in volume.voxel_to_patient(corners)]


def _plane_orientation(volume: Volume) -> hd.PlaneOrientationSequence:
    row, column = volume.orientation[0], volume.orientation[1]
    return hd.PlaneOrientationSequence(hd.CoordinateSystemNames.PATIENT,
                                       [*row.tolist(), *column.tolist()])


def _pixel_measures(volume: Volume) -> hd.PixelMeasuresSequence:
    increment, row_spacing, column_spacing = volume.spacing
    return hd.PixelMeasuresSequence(
        pixel_spacing=[row_spacing, column_spacing],
        slice_thickness=volume.slice_thickness or increment,
        spacing_between_slices=increment)


# --- PDF --------------------------------------------------------------------------

_PAGE_WIDTH_MM = 180.0  # A4 less 15 mm margins
_KEY_IMAGE_MM = 45.0  # three across, small enough to keep a scored report on one page
_LATIN1 = str.maketrans({"\u2013": "-", "\u2014": "-", "\u2265": ">=", "\u2264": "<=",
                         "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                         "\u00d7": "x", "\u2026": "..."})
_HIGHLIGHT = FontFace(emphasis="BOLD", fill_color=(255, 236, 179))  # the patient's row
_HEADINGS = FontFace(emphasis="BOLD", fill_color=(225, 225, 225))


def build_pdf(result: CalciumResult, *, patient_name: str | None, accession: str | None,
              study_date: str | None, key_images: list[bytes], conclusion: str,
              signature: Signature | None = None) -> bytes:
    """A one- or two-page A4 report in plain words, with up to three key images.

    Parameters
    ----------
    result : CalciumResult
        The score, or a refusal.
    patient_name, accession, study_date : str or None
        As stored in DICOM (``Family^Given``, the accession, ``YYYYMMDD``); None prints
        "not recorded".
    key_images : list of PNG bytes
        The first three are shown; a PNG "Description" text chunk becomes the caption.
    conclusion : str
        Usually :func:`conclusion_text` of ``result``, or a radiologist's wording.
    signature : Signature or None
        A radiologist's sign-off: the banner says FINAL (AMENDED, CORRECTED) with
        who and when, the conclusion is the signed one, and no line says PRELIMINARY.
    """
    pdf = report_pdf("Coronary artery calcium score", ALGORITHM_NAME, signature)
    patient_block(pdf, patient_name, accession, study_date)
    section(pdf, "Conclusion", signed_conclusion(conclusion, signature))
    _scores_table(pdf, result)
    _artery_table(pdf, result)
    _cac_drs_table(pdf, result)
    _key_images(pdf, key_images[:3])
    _qa_notes(pdf, result)
    _small_print(pdf, result, signature)
    return bytes(pdf.output())


def report_pdf(title: str, creator: str, signature: Signature | None) -> FPDF:
    """A4 report with its first page begun: ``title``, then the status banner
    (PRELIMINARY, or FINAL and who signed), repeated in every page's footer."""
    banner = signature.banner if signature else PRELIMINARY_BANNER
    pdf = _ReportPDF(banner, f"{title} - {_status_word(signature)} report", creator)
    pdf.add_page()
    _heading(pdf, title, banner, signature)
    return pdf


def signed_conclusion(conclusion: str, signature: Signature | None) -> str:
    """The conclusion to print: the signed wording (and why amended) once signed off."""
    if signature is None:
        return conclusion
    if signature.reason:
        return f"{signature.conclusion}\n{signature.status.capitalize()}: {signature.reason}"
    return signature.conclusion


class _ReportPDF(FPDF):
    """A4 with the status line (PRELIMINARY, or FINAL and who signed) and page numbers
    on every page."""

    def __init__(self, banner: str, title: str, creator: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.banner = banner
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(auto=True, margin=18)
        self.set_title(title)
        self.set_creator(creator)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font("Helvetica", "I", 8)
        self.set_text_color(120, 120, 120)
        self.cell(0, 5, _latin1(f"{self.banner}  |  page {self.page_no()} of {{nb}}"),
                  align="C")
        self.set_text_color(0, 0, 0)


def _latin1(text: str) -> str:
    """Text the PDF core fonts can draw (they are Latin-1 only)."""
    return text.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")


def _heading(pdf: FPDF, title: str, banner: str, signature: Signature | None) -> None:
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 9, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_fill_color(*((200, 30, 30) if signature is None else (30, 110, 60)))
    pdf.set_text_color(255, 255, 255)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 9, _latin1(banner), align="C", fill=True, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.set_fill_color(255, 255, 255)  # tables and cells must not inherit the banner red
    pdf.ln(3)


def patient_block(pdf: FPDF, patient_name: str | None, accession: str | None,
                   study_date: str | None) -> None:
    rows = [("Patient", _person_name(patient_name)),
            ("Accession number", accession or "not recorded"),
            ("Scan date", _study_date(study_date))]
    pdf.set_font("Helvetica", "", 10)
    for label, value in rows:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(40, 6, label)
        pdf.set_font("Helvetica", "", 10)
        pdf.cell(0, 6, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _person_name(name: str | None) -> str:
    """DICOM ``Family^Given^Middle`` as "Family, Given Middle"."""
    if not name:
        return "not recorded"
    family, _, rest = str(name).partition("^")
    given = " ".join(part for part in rest.split("^")[:2] if part)
    return f"{family}, {given}" if given else family


def _study_date(value: str | None) -> str:
    if not value:
        return "not recorded"
    try:
        return datetime.strptime(value[:8], "%Y%m%d").strftime("%d %B %Y").lstrip("0")
    except ValueError:
        return value


def section(pdf: FPDF, title: str, body: str) -> None:
    subheading(pdf, title)
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(0, 5, _latin1(body), align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def subheading(pdf: FPDF, title: str) -> None:
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 6.5, title, new_x="LMARGIN", new_y="NEXT")


def table(pdf: FPDF, rows: Sequence[Sequence[str]], widths: tuple[int, ...],
           highlight: int | None = None) -> None:
    """A bordered table whose first row is the heading; ``highlight`` shades one row."""
    pdf.set_font("Helvetica", "", 10)
    with pdf.table(col_widths=widths, line_height=4.6, width=_PAGE_WIDTH_MM,
                   text_align="LEFT", headings_style=_HEADINGS) as table:
        for index, cells in enumerate(rows):
            style = _HIGHLIGHT if index == highlight else None
            table.row([_latin1(cell) for cell in cells], style=style)
    pdf.ln(3)


def _scores_table(pdf: FPDF, result: CalciumResult) -> None:
    subheading(pdf, "Scores")
    table(pdf, [("Measure", "Result", "What it is"), *_score_rows(result)], (45, 50, 85))


def _score_rows(result: CalciumResult) -> list[tuple[str, str, str]]:
    if not result.scorable:
        reason = result.reason or "no reason recorded"
        return [("Agatston score", "not scored", reason)]
    agatston, volume_mm3, drs = _scores(result)
    mass = ("not available (no scanner calibration)" if result.mass_mg is None
            else f"{result.mass_mg:.1f} mg")
    return [
        ("Agatston score", format_agatston(agatston),
         "Calcium in the scan, weighted by how dense it is (Agatston 1990)"),
        ("Calcium volume", f"{volume_mm3:.1f} mm\u00b3", "Volume of the calcium found"),
        ("Calcium mass", mass, "Needs a calibration of the scanner (McCollough 2007)"),
        ("Calcified lesions", str(result.lesion_count), "Separate spots of calcium"),
        ("CAC-DRS", (result.cac_drs_label or f"A{drs}").removeprefix("CAC-DRS "),
         CAC_DRS_MEANING[drs][1].capitalize() + ("; N: arteries with calcium"
                                                 if result.cac_vessels is not None else "")),
    ]


def _artery_table(pdf: FPDF, result: CalciumResult) -> None:
    """Agatston, volume and lesions per coronary artery, when calcium is attributed."""
    if not result.scorable or result.cac_vessels is None:
        return
    subheading(pdf, "By coronary artery")
    rows = [("Artery", "Agatston score", "Calcium volume", "Lesions")]
    rows += [(ARTERY_NAMES[a][:1].upper() + ARTERY_NAMES[a][1:], format_agatston(s.agatston),
              f"{s.volume_mm3:.1f} mm\u00b3", str(s.lesion_count))
             for a in CORONARY_ARTERIES for s in [result.arteries[a]]]
    table(pdf, rows, (70, 35, 45, 30))


def _cac_drs_table(pdf: FPDF, result: CalciumResult) -> None:
    subheading(pdf, "What the CAC-DRS category means")
    rows = [("Category", "Agatston score", "Meaning")]
    rows += [(f"A{k}", score, meaning) for k, (score, meaning) in CAC_DRS_MEANING.items()]
    highlight = None if result.cac_drs is None else result.cac_drs + 1
    table(pdf, rows, (30, 45, 105), highlight=highlight)
    pdf.set_font("Helvetica", "I", 8)
    pdf.multi_cell(0, 4, _latin1(f"Categories: {CAC_DRS_SOURCE}. A calcium score measures "
                                 "calcified plaque only: a score of 0 does not exclude "
                                 "non-calcified plaque."),
                   align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _key_images(pdf: FPDF, images: Sequence[bytes]) -> None:
    """Up to three images side by side, each with its caption underneath."""
    if not images:
        return
    width = _KEY_IMAGE_MM
    heights = [width * _aspect(png) for png in images]
    if pdf.get_y() + 6.5 + max(heights) + 10 > pdf.page_break_trigger:
        pdf.add_page()
    subheading(pdf, "Key images")
    top = pdf.get_y()
    for index, png in enumerate(images):
        x = pdf.l_margin + index * (width + 5.0)
        pdf.image(io.BytesIO(png), x=x, y=top, w=width, h=heights[index])
        pdf.set_xy(x, top + heights[index] + 1)
        pdf.set_font("Helvetica", "", 7)
        pdf.multi_cell(width, 3.2, _latin1(_caption(png, index)), align="L")
    pdf.set_xy(pdf.l_margin, top + max(heights) + 8)
    pdf.set_font("Helvetica", "I", 8)
    pdf.cell(0, 4, "Calcium is tinted by density: yellow (weight 1), orange (2), red (3), "
             "magenta (4).", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _aspect(png: bytes) -> float:
    with Image.open(io.BytesIO(png)) as image:
        width, height = image.size
    return height / width


def _caption(png: bytes, index: int) -> str:
    with Image.open(io.BytesIO(png)) as image:
        text = getattr(image, "text", {}).get("Description")
    return str(text) if text else f"Key image {index + 1}"


def _qa_notes(pdf: FPDF, result: CalciumResult) -> None:
    notes = [f"Region scored: {result.region}."] + [f"{item}." for item in result.qa]
    section(pdf, "Quality notes", "\n".join(f"- {note}" for note in notes))


def _small_print(pdf: FPDF, result: CalciumResult, signature: Signature | None) -> None:
    parameters = "; ".join(f"{k}={v}" for k, v in algorithm_parameters(result).items())
    fine_print(pdf, [
        f"Analyser: {ALGORITHM_NAME}, version {result.analyser_version}.",
        f"Parameters: {parameters}.",
        f"Methods: {AGATSTON_1990}; {MCCOLLOUGH_2007}; {HECHT_2018}."], signature)


def fine_print(pdf: FPDF, lines: list[str], signature: Signature | None) -> None:
    """Small grey provenance lines, then when and by what it was made and who verified it;
    kept whole on one page."""
    verified = ("Not a diagnosis until a radiologist has verified it." if signature is None
                else f"Verified by {_person_name(signature.verifier)}, "
                f"{signature.organization}.")
    lines = [*lines,
             f"Generated {datetime.now().strftime('%Y-%m-%d %H:%M')} by software. {verified}"]
    text = _latin1("\n".join(lines))
    pdf.set_font("Helvetica", "", 7)
    pdf.set_text_color(90, 90, 90)
    # output="HEIGHT" returns only the height, a float; fpdf2's return type is a union.
    height = cast(float, pdf.multi_cell(0, 3.2, text, align="L", dry_run=True,
                                        output="HEIGHT"))
    if pdf.get_y() + height > pdf.page_break_trigger:
        pdf.add_page()  # keep the provenance block whole rather than split across pages
    pdf.multi_cell(0, 3.2, text, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
