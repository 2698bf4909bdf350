"""Analytic CT phantoms written as valid DICOM, and their expected scores from geometry.

Geometry is defined once, in image-plane coordinates: ``u`` along a row
(ImageOrientationPatient[0:3]), ``v`` down a column (IOP[3:6]) and ``w``
along the slice normal (u x v), all in mm from the centre of pixel (0, 0) of
the slice at ``w = 0``. Pixel (r, c) of slice k has its centre at
``u = c * dx, v = r * dy, w = w_start + k * increment``. A calcified insert
is a cylinder: a voxel takes the insert's HU when its centre is inside the
disc (closed) and its slice position lies in ``[w0, w1]``. Expected scores
below count those pixel centres directly; they never call ``imaging_core``.

Single-frame instances follow the CT Image IOD (PS3.3 A.3): Patient,
General Study, General Series, Frame of Reference, General Equipment,
General Image, General Acquisition, Image Plane, Image Pixel, Contrast/Bolus
(when contrast is given), CT Image, VOI LUT and SOP Common modules. The
multi-frame variant follows the Enhanced CT IOD (PS3.3 A.38). Both were
checked with dicom3tools' ``dciodvfy`` (see ``test_phantom_iod``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

from tests.factories import VALID_NHS_NUMBER

INTERCEPT = -1024.0  # stored = HU + 1024, the usual CT convention


@dataclass(frozen=True)
class Insert:
    """A calcified cylinder of radius ``radius`` mm around (u, v), spanning w0..w1 mm.

    ``peak`` puts a single brighter pixel at the disc pixel nearest (u, v), so a
    lesion's peak differs from its bulk value.
    """

    u: float
    v: float
    radius: float
    w0: float
    w1: float
    hu: float
    peak: float | None = None


@dataclass(frozen=True)
class Phantom:
    """A CT series: grid, geometry, acquisition parameters and inserts."""

    rows: int = 64
    cols: int = 64
    pixel_spacing: tuple[float, float] = (0.5, 0.5)  # (row spacing dy, column spacing dx)
    n_slices: int = 12
    increment: float = 3.0
    thickness: float = 3.0
    w_start: float = 0.0
    origin: tuple[float, float, float] = (-20.0, -30.0, 100.0)
    row_dir: tuple[float, float, float] = (1.0, 0.0, 0.0)
    col_dir: tuple[float, float, float] = (0.0, 1.0, 0.0)
    inserts: tuple[Insert, ...] = ()
    background_hu: float = 40.0
    intercept: float = INTERCEPT
    noise_sigma: float = 0.0
    seed: int = 0
    kvp: float | None = 120.0
    contrast_agent: str | None = None
    rescale_slope: float = 1.0
    signed: bool = True  # PixelRepresentation 1 (two's complement) or 0 (unsigned)
    missing: tuple[int, ...] = ()
    reversed_z: bool = False
    accession: str = "ACC0001"
    name: str = "phantom"
    study_uid: str = field(default_factory=lambda: generate_uid(entropy_srcs=["study"]))
    series_number: int = 1
    # Optional tags a real scanner writes (absent when None).
    padding_value: int | None = None  # PixelPaddingValue (0028,0120), stored domain
    padding_range_limit: int | None = None  # PixelPaddingRangeLimit (0028,0121)
    convolution_kernel: str | None = None  # (0018,1210)
    gantry_tilt: float | None = None  # GantryDetectorTilt (0018,1120), degrees
    reconstruction_diameter: float | None = None  # (0018,1100), mm
    body_part: str = "HEART"

    @property
    def normal(self) -> np.ndarray:
        return np.cross(np.asarray(self.row_dir), np.asarray(self.col_dir))

    @property
    def series_uid(self) -> str:
        return generate_uid(entropy_srcs=[self.study_uid, self.name, str(self.series_number)])

    def w(self, k: int) -> float:
        """Position of slice k along the normal."""
        return self.w_start + k * self.increment

    def position(self, k: int) -> list[float]:
        """ImagePositionPatient of slice k: the centre of its pixel (0, 0)."""
        return (np.asarray(self.origin) + self.w(k) * self.normal).tolist()


def oblique(phantom: Phantom, degrees: float = 20.0) -> Phantom:
    """The same phantom with rows and columns rotated about a tilted axis."""
    a = math.radians(degrees)
    row = (math.cos(a), math.sin(a), 0.0)
    col = (-math.sin(a) * math.cos(a), math.cos(a) * math.cos(a), math.sin(a))
    return replace(phantom, row_dir=row, col_dir=col)


# --- expected values from geometry ------------------------------------------------

def disc_mask(phantom: Phantom, insert: Insert) -> np.ndarray:
    """Pixel centres of one slice inside the insert's disc (closed)."""
    dy, dx = phantom.pixel_spacing
    v = np.arange(phantom.rows)[:, None] * dy
    u = np.arange(phantom.cols)[None, :] * dx
    return np.asarray((u - insert.u) ** 2 + (v - insert.v) ** 2 <= insert.radius ** 2)


def covered_slices(phantom: Phantom, insert: Insert) -> list[int]:
    """Written slices whose position lies in the insert's [w0, w1]."""
    return [k for k in range(phantom.n_slices) if k not in phantom.missing
            and insert.w0 - 1e-9 <= phantom.w(k) <= insert.w1 + 1e-9]


def agatston_weight(peak_hu: float) -> int:
    """Agatston 1990 density factor from a lesion's peak HU (0 below 130 HU)."""
    return 0 if peak_hu < 130 else 1 if peak_hu < 200 else 2 if peak_hu < 300 else (
        3 if peak_hu < 400 else 4)


def insert_peak(insert: Insert) -> float:
    return max(insert.hu, insert.peak) if insert.peak is not None else insert.hu


def expected_agatston(phantom: Phantom, min_area_mm2: float = 1.0) -> float:
    """Agatston score of separated inserts, slices weighted by increment / 3 mm."""
    pixel_area = phantom.pixel_spacing[0] * phantom.pixel_spacing[1]
    total = 0.0
    for insert in phantom.inserts:
        area = int(disc_mask(phantom, insert).sum()) * pixel_area
        if area + 1e-9 < min_area_mm2:
            continue
        total += area * agatston_weight(insert_peak(insert)) * len(covered_slices(phantom, insert))
    return total * phantom.increment / 3.0


def expected_volume_mm3(phantom: Phantom) -> float:
    """Calcified volume: counted voxels times pixel area times slice increment."""
    pixel_area = phantom.pixel_spacing[0] * phantom.pixel_spacing[1]
    voxels = sum(int(disc_mask(phantom, i).sum()) * len(covered_slices(phantom, i))
                 for i in phantom.inserts if insert_peak(i) >= 130)
    return voxels * pixel_area * phantom.increment


# --- pixel values -----------------------------------------------------------------

def hu_slice(phantom: Phantom, k: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """HU of slice k: background, inserts, then optional Gaussian noise, rounded to 1 HU."""
    image = np.full((phantom.rows, phantom.cols), phantom.background_hu, dtype=np.float64)
    for insert in phantom.inserts:
        if insert.w0 - 1e-9 <= phantom.w(k) <= insert.w1 + 1e-9:
            mask = disc_mask(phantom, insert)
            image[mask] = insert.hu
            if insert.peak is not None:
                image[_nearest_centre(phantom, insert)] = insert.peak
    if phantom.noise_sigma > 0 and rng is not None:
        image += rng.normal(0.0, phantom.noise_sigma, image.shape)
    return np.round(image)


def _nearest_centre(phantom: Phantom, insert: Insert) -> tuple[int, int]:
    dy, dx = phantom.pixel_spacing
    return int(round(insert.v / dy)), int(round(insert.u / dx))


def _stored(phantom: Phantom, hu: np.ndarray) -> np.ndarray:
    """Stored values of HU; NaN pixels (not reconstructed) get the pixel padding.

    With a PixelPaddingRangeLimit the padded pixels cycle through the whole
    inclusive range between the value and the limit (PS3.3 C.7.5.1.1.2), so a
    reader that honours only the value misses most of them.
    """
    padded = np.isnan(hu)
    stored = np.round((np.where(padded, 0.0, hu) - phantom.intercept) / phantom.rescale_slope)
    info = np.iinfo(np.int16 if phantom.signed else np.uint16)
    stored = np.clip(stored, info.min, info.max)  # a scanner clips, never wraps
    if padded.any():
        if phantom.padding_value is None:
            raise ValueError("NaN pixels need a padding_value")
        stored[padded] = _padding_values(phantom, int(padded.sum()))
    return stored.astype(np.int16 if phantom.signed else np.uint16)


def _padding_values(phantom: Phantom, n: int) -> np.ndarray:
    assert phantom.padding_value is not None
    low = phantom.padding_value
    high = low if phantom.padding_range_limit is None else phantom.padding_range_limit
    low, high = min(low, high), max(low, high)
    return low + np.arange(n) % (high - low + 1)


# --- single-frame CT Image IOD (PS3.3 A.3) ----------------------------------------

def datasets(phantom: Phantom) -> list[Dataset]:
    """One CT Image Storage instance per written slice, in acquisition order."""
    rng = np.random.default_rng(phantom.seed)
    return series(phantom, lambda k: hu_slice(phantom, k, rng))


def series(phantom: Phantom, hu_of: Callable[[int], np.ndarray]) -> list[Dataset]:
    """The CT Image instances of ``phantom``'s grid and tags with pixels from ``hu_of``.

    ``hu_of(k)`` gives slice k's HU as a (rows, cols) float array, NaN where
    the pixel is padding; it is called for every slice in acquisition order,
    written or missing, so seeded noise does not depend on which are missing.
    """
    order = range(phantom.n_slices - 1, -1, -1) if phantom.reversed_z else range(phantom.n_slices)
    out = []
    for number, k in enumerate(order, start=1):
        hu = hu_of(k)
        if k not in phantom.missing:
            out.append(_ct_slice(phantom, k, number, hu))
    return out


def _ct_slice(phantom: Phantom, k: int, number: int, hu: np.ndarray) -> Dataset:
    sop_uid = generate_uid(entropy_srcs=[phantom.series_uid, str(k)])
    ds = Dataset()
    ds.file_meta = _file_meta(CTImageStorage, sop_uid)
    _sop_common(ds, CTImageStorage, sop_uid)
    _patient_study_series(ds, phantom)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = number
    ds.ContentDate, ds.ContentTime = "20250101", "090000"
    ds.AcquisitionDate, ds.AcquisitionTime = "20250101", "090000"
    ds.SliceThickness = _ds(phantom.thickness)
    ds.KVP = _ds(phantom.kvp) if phantom.kvp is not None else None
    ds.ImagePositionPatient = [_ds(x) for x in phantom.position(k)]
    ds.ImageOrientationPatient = [_ds(x) for x in (*phantom.row_dir, *phantom.col_dir)]
    ds.SliceLocation = _ds(phantom.w(k))
    ds.PixelSpacing = [_ds(x) for x in phantom.pixel_spacing]
    _contrast(ds, phantom)
    _image_pixel(ds, phantom, _stored(phantom, hu))
    ds.RescaleIntercept, ds.RescaleSlope = _ds(phantom.intercept), _ds(phantom.rescale_slope)
    ds.RescaleType = "HU"
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    _scanner_tags(ds, phantom)
    return ds


def _scanner_tags(ds: Dataset, phantom: Phantom) -> None:
    """Optional CT Image (C.8.2.1) and General Equipment (C.7.5.1) attributes."""
    if phantom.convolution_kernel is not None:
        ds.ConvolutionKernel = phantom.convolution_kernel
    if phantom.gantry_tilt is not None:
        ds.GantryDetectorTilt = _ds(phantom.gantry_tilt)
    if phantom.reconstruction_diameter is not None:
        ds.ReconstructionDiameter = _ds(phantom.reconstruction_diameter)
    _padding_tags(ds, phantom)


def _padding_tags(ds: Dataset, phantom: Phantom) -> None:
    """Pixel Padding Value and Range Limit (General Equipment, PS3.3 C.7.5.1), US or SS."""
    vr = "SS" if phantom.signed else "US"
    if phantom.padding_value is not None:
        ds.add_new(0x00280120, vr, phantom.padding_value)  # PixelPaddingValue
    if phantom.padding_range_limit is not None:
        ds.add_new(0x00280121, vr, phantom.padding_range_limit)  # PixelPaddingRangeLimit


def _ds(value: float) -> str:
    """A decimal string of at most 16 characters (PS3.5 6.2, DS)."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.8g}"


def _file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _sop_common(ds: Dataset, sop_class: str, sop_uid: str) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = "20250101", "090500"


# The patient of tests.factories.patient() with its defaults, so a phantom study sent
# for an order made with it passes the identity check (referral.identity).
PATIENT_NAME, PATIENT_ID, PATIENT_BIRTH_DATE = "Smith^Alex", VALID_NHS_NUMBER, "19680402"


def _patient_study_series(ds: Dataset, phantom: Phantom) -> None:
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = PATIENT_BIRTH_DATE
    ds.PatientSex = "F"
    ds.StudyInstanceUID = phantom.study_uid
    ds.StudyDate, ds.StudyTime = "20250101", "090000"
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.AccessionNumber = phantom.accession
    ds.StudyDescription = "CT calcium score phantom"
    ds.Modality = "CT"
    ds.SeriesInstanceUID = phantom.series_uid
    ds.SeriesNumber = phantom.series_number
    ds.SeriesDescription = phantom.name
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[phantom.study_uid, "for"])
    ds.PositionReferenceIndicator = ""
    ds.BodyPartExamined = phantom.body_part
    ds.Manufacturer = "ScanPath"
    ds.ManufacturerModelName = "Analytic phantom"
    ds.DeviceSerialNumber = "0001"
    ds.SoftwareVersions = "1"


def _contrast(ds: Dataset, phantom: Phantom) -> None:
    if phantom.contrast_agent:
        ds.ContrastBolusAgent = phantom.contrast_agent
        ds.ContrastBolusRoute = "IV"


def _image_pixel(ds: Dataset, phantom: Phantom, stored: np.ndarray) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = phantom.rows, phantom.cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if phantom.signed else 0
    ds.PixelData = np.ascontiguousarray(stored, dtype="<i2" if phantom.signed else "<u2").tobytes()


# --- Enhanced CT IOD (PS3.3 A.38) -------------------------------------------------

def enhanced_dataset(phantom: Phantom, slices: Sequence[Dataset] | None = None) -> Dataset:
    """The phantom as one Enhanced CT Image Storage instance, one frame per slice.

    ``slices`` are the single-frame instances to pack (default ``datasets(phantom)``),
    e.g. a thorax's, written on ``phantom``'s grid.
    """
    slices = datasets(phantom) if slices is None else slices
    sop_uid = generate_uid(entropy_srcs=[phantom.series_uid, "enhanced"])
    ds = Dataset()
    ds.file_meta = _file_meta(EnhancedCTImageStorage, sop_uid)
    _sop_common(ds, EnhancedCTImageStorage, sop_uid)
    _patient_study_series(ds, phantom)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.PixelPresentation, ds.VolumetricProperties = "MONOCHROME", "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = "20250101", "090000"
    ds.AcquisitionDateTime = "20250101090000"
    ds.AcquisitionDuration = 1.0
    ds.ContentQualification = "PRODUCT"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.AcquisitionContextSequence = DicomSequence()
    ds.NumberOfFrames = len(slices)
    _enhanced_contrast(ds, phantom)
    _dimensions(ds)
    ds.SharedFunctionalGroupsSequence = DicomSequence([_shared_groups(phantom)])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(
        [_frame_groups(s, i) for i, s in enumerate(slices)])
    _image_pixel(ds, phantom, np.zeros((1,), np.int16 if phantom.signed else np.uint16))
    _padding_tags(ds, phantom)
    ds.PixelData = b"".join(s.PixelData for s in slices)
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _enhanced_contrast(ds: Dataset, phantom: Phantom) -> None:
    """Enhanced Contrast/Bolus module (PS3.3 C.7.6.4b), only when contrast was given."""
    if not phantom.contrast_agent:
        return
    agent = _code("385420005", "SCT", "Contrast media")
    agent.ContrastBolusAgentNumber = 1
    agent.ContrastBolusAdministrationRouteSequence = DicomSequence(
        [_code("47625008", "SCT", "Intravenous route")])
    agent.ContrastBolusIngredientCodeSequence = DicomSequence()
    agent.ContrastBolusVolume = None
    agent.ContrastBolusIngredientConcentration = None
    ds.ContrastBolusAgentSequence = DicomSequence([agent])


def _contrast_usage() -> DicomSequence:
    """Contrast/Bolus Usage functional group (PS3.3 C.7.6.16.2.12)."""
    return _item(ContrastBolusAgentNumber=1, ContrastBolusAgentAdministered="YES",
                 ContrastBolusAgentDetected="YES")


def _dimensions(ds: Dataset) -> None:
    """One dimension: the position along the stack (PS3.3 C.7.6.17)."""
    organisation = Dataset()
    organisation.DimensionOrganizationUID = generate_uid(entropy_srcs=[ds.SOPInstanceUID, "dim"])
    ds.DimensionOrganizationSequence = DicomSequence([organisation])
    index = Dataset()
    index.DimensionOrganizationUID = organisation.DimensionOrganizationUID
    index.DimensionIndexPointer = 0x00200032  # Image Position (Patient)
    index.FunctionalGroupPointer = 0x00209113  # Plane Position Sequence
    index.DimensionDescriptionLabel = "Image Position"
    ds.DimensionIndexSequence = DicomSequence([index])
    ds.DimensionOrganizationType = "3D"


def _item(**attributes: object) -> DicomSequence:
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return DicomSequence([item])


def _shared_groups(phantom: Phantom) -> Dataset:
    shared = Dataset()
    shared.PixelMeasuresSequence = _item(
        PixelSpacing=[_ds(x) for x in phantom.pixel_spacing],
        SliceThickness=_ds(phantom.thickness))
    shared.PlaneOrientationSequence = _item(
        ImageOrientationPatient=[_ds(x) for x in (*phantom.row_dir, *phantom.col_dir)])
    shared.PixelValueTransformationSequence = _item(
        RescaleIntercept=_ds(phantom.intercept), RescaleSlope=_ds(phantom.rescale_slope),
        RescaleType="HU")
    shared.FrameVOILUTSequence = _item(WindowCenter="40", WindowWidth="400")
    shared.CTImageFrameTypeSequence = _item(
        FrameType=["ORIGINAL", "PRIMARY", "VOLUME", "NONE"], PixelPresentation="MONOCHROME",
        VolumetricProperties="VOLUME", VolumeBasedCalculationTechnique="NONE")
    shared.CTAcquisitionTypeSequence = _item(
        AcquisitionType="SEQUENCED", ConstantVolumeFlag="NO",
        FluoroscopyFlag="NO")
    shared.CTAcquisitionDetailsSequence = _item(
        DataCollectionDiameter=_ds(phantom.cols * phantom.pixel_spacing[1]),
        RotationDirection="CW", RevolutionTime=0.5, SingleCollimationWidth=0.6,
        TotalCollimationWidth=38.4, TableHeight=_ds(150), GantryDetectorTilt=_ds(0))
    shared.CTGeometrySequence = _item(
        DistanceSourceToDetector=1085.6, DistanceSourceToDataCollectionCenter=595.0)
    shared.CTReconstructionSequence = _item(
        ReconstructionAlgorithm="FILTER_BACK_PROJ", ConvolutionKernel="B35f",
        ConvolutionKernelGroup="SOFT_TISSUE",
        ReconstructionDiameter=_ds(phantom.cols * phantom.pixel_spacing[1]),
        ReconstructionPixelSpacing=list(phantom.pixel_spacing),
        ReconstructionAngle=360.0, ImageFilter="NONE")
    shared.CTExposureSequence = _item(
        ExposureTimeInms=500.0, XRayTubeCurrentInmA=100.0, ExposureInmAs=50.0,
        ExposureModulationType="NONE", CTDIvol=2.0,
        CTDIPhantomTypeCodeSequence=DicomSequence(
            [_code("113691", "DCM", "IEC Body Dosimetry Phantom")]))
    shared.CTTableDynamicsSequence = _item(TableSpeed=0.0, TableFeedPerRotation=0.0)
    shared.FrameAnatomySequence = _item(
        AnatomicRegionSequence=DicomSequence([_code("80891009", "SCT", "Heart")]),
        FrameLaterality="U")
    shared.IrradiationEventIdentificationSequence = _item(
        IrradiationEventUID=generate_uid(entropy_srcs=[phantom.series_uid, "irradiation"]))
    if phantom.contrast_agent:
        shared.ContrastBolusUsageSequence = _contrast_usage()
    shared.CTXRayDetailsSequence = _item(
        KVP=_ds(phantom.kvp) if phantom.kvp is not None else None,
        FocalSpots=[_ds(1.2)], FilterType="FLAT", FilterMaterial=["ALUMINUM"])
    return shared


def _frame_groups(single: Dataset, i: int) -> Dataset:
    groups = Dataset()
    position = [float(x) for x in single.ImagePositionPatient]
    groups.PlanePositionSequence = _item(ImagePositionPatient=single.ImagePositionPatient)
    groups.FrameContentSequence = _item(
        FrameAcquisitionNumber=1, FrameReferenceDateTime="20250101090000",
        FrameAcquisitionDateTime="20250101090000", FrameAcquisitionDuration=100.0,
        DimensionIndexValues=[i + 1], StackID="1", InStackPositionNumber=i + 1)
    groups.CTPositionSequence = _item(
        TablePosition=position[2], ReconstructionTargetCenterPatient=position,
        DataCollectionCenterPatient=position)
    return groups


# --- files, transfer syntaxes, studies --------------------------------------------

def compressed(instances: Sequence[Dataset], syntax: str) -> list[Dataset]:
    """Copies re-encoded in a lossless transfer syntax (RLE natively, J2K via pylibjpeg)."""
    out = []
    for ds in instances:
        copy = ds.copy()
        copy.file_meta = ds.file_meta.copy()
        copy.compress(syntax)
        out.append(copy)
    return out


def write(instances: Sequence[Dataset], directory: Path, seed: int = 0) -> list[Path]:
    """Write instances under random-looking names and return the paths shuffled."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for ds in instances:
        path = directory / f"{rng.getrandbits(48):012x}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    rng.shuffle(paths)
    return paths


def shuffled(instances: Sequence[Dataset], seed: int = 0) -> list[Dataset]:
    out = list(instances)
    random.Random(seed).shuffle(out)
    return out
