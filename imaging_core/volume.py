"""Build CT volumes in Hounsfield units from DICOM instances.

Instances are grouped by SeriesInstanceUID, FrameOfReferenceUID and
ImageOrientationPatient, then sorted by ImagePositionPatient projected on the
slice normal (PS3.3 C.7.6.2.1.1). InstanceNumber is never used for geometry:
it is only a Type 2 display order (PS3.3 C.7.6.1) and is often wrong.

Irregular sampling is reported, never silently repaired: gaps, overlaps and
shears go into ``Volume.qa`` as ``"code: message"`` strings whose codes are
the ``QA_*`` constants below, so a consumer (the calcium QA gate) can refuse.

Compressed transfer syntaxes decode through pydicom's pixel handlers: RLE
Lossless natively, JPEG 2000 through ``pylibjpeg`` + ``pylibjpeg-openjpeg``
(both MIT).

Pixel padding is never tissue (PS3.3 C.7.5.1.1.2): Pixel Padding Value
(0028,0120) alone marks one stored value, and with Pixel Padding Range Limit
(0028,0121) every stored value between the two, inclusive, in either order.
Both are in the stored-value domain, before the Modality LUT, and are US or SS
as Pixel Representation (0028,0103) says (PS3.3 C.7.6.3.1.2); a file whose tag
was written or read with the other VR is reinterpreted as 16-bit two's
complement or unsigned to match the pixels. Padded voxels become
:data:`PADDING_HU` in ``Volume.hu`` before anything downstream can threshold
them, and ``Volume.padding`` keeps where they were (the reconstruction circle
for QA). :func:`padding_mask` is the one reading of these tags; rendered
images use it too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder
from pydicom.uid import JPEG2000, ExplicitVRBigEndian, JPEG2000Lossless

from imaging_core.errors import MixedSeriesError, PixelDataError, VolumeError

log = logging.getLogger(__name__)

Source = Dataset | str | os.PathLike[str]

QA_GAP = "slice-gap"
QA_IRREGULAR = "irregular-spacing"
QA_OVERLAP = "overlapping-slices"
QA_NONCONTIGUOUS = "non-contiguous-slices"
QA_SHEAR = "shear-or-gantry-tilt"
QA_THICKNESS = "slice-thickness-varies"
QA_SINGLE = "single-slice"

# HU given to padded voxels: air (-1000 HU by the definition of the scale) at the
# usual -1024 floor of CT images, below any tissue, so no threshold takes it.
PADDING_HU = -1024

_IOP_ATOL = 1e-3  # direction cosines equal to this are one orientation
_POS_ATOL_MM = 0.01  # positions closer than this along the normal are duplicates


@dataclass
class Volume:
    """A CT volume on a (z, y, x) voxel grid with its patient geometry.

    ``orientation`` rows are unit vectors in patient (LPS) coordinates of the
    x axis (along a row, IOP[0:3]), the y axis (down a column, IOP[3:6]) and
    the z axis (slice normal, x cross y); slices are sorted so that z grows
    along the normal. ``spacing`` is (slice increment, row spacing, column
    spacing) in mm; ``slice_positions`` are the true positions of the slices
    along the normal, relative to ``origin``, so geometry stays right even
    where ``qa`` reports a gap.

    ``padding`` is True where the stored value was pixel padding (those
    voxels hold :data:`PADDING_HU` in ``hu``); all False when the series
    declares none. ``gantry_tilt_deg`` is Gantry/Detector Tilt (0018,1120),
    ``convolution_kernel`` Convolution Kernel (0018,1210, values joined by
    ``\\``), ``manufacturer`` Manufacturer (0008,0070) and
    ``reconstruction_diameter_mm`` Reconstruction Diameter (0018,1100); None
    or "" when not recorded.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    origin: np.ndarray
    orientation: np.ndarray
    slice_positions: np.ndarray
    slice_thickness: float | None
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    accession_number: str
    modality: str
    kvp: float | None
    contrast: bool
    sop_instance_uids: list[str]
    qa: list[str] = field(default_factory=list)
    padding: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), dtype=bool))
    gantry_tilt_deg: float | None = None
    convolution_kernel: str | None = None
    manufacturer: str = ""
    reconstruction_diameter_mm: float | None = None

    def __post_init__(self) -> None:
        if self.padding.shape != self.hu.shape:
            if self.padding.size:
                raise VolumeError(f"padding mask {self.padding.shape} is not shaped like the "
                                  f"volume {self.hu.shape}")
            self.padding = np.zeros(self.hu.shape, dtype=bool)

    @property
    def shape(self) -> tuple[int, int, int]:
        z, y, x = self.hu.shape
        return int(z), int(y), int(x)

    def has_qa(self, code: str) -> bool:
        """Whether a QA finding with ``code`` (one of the ``QA_*`` constants) was reported."""
        return any(item.split(":", 1)[0] == code for item in self.qa)

    def voxel_to_patient(self, zyx: np.ndarray) -> np.ndarray:
        """Patient (LPS) mm coordinates of fractional voxel indices.

        Parameters
        ----------
        zyx : array of shape (n, 3)
            Voxel indices in (z, y, x) order; fractional values are allowed.
            z is mapped through the true slice positions, so a gap is honoured.
        """
        zyx = np.asarray(zyx, dtype=np.float64).reshape(-1, 3)
        w = _slice_offset(self.slice_positions, zyx[:, 0], self.spacing[0])
        v = zyx[:, 1] * self.spacing[1]
        u = zyx[:, 2] * self.spacing[2]
        uvw = np.stack([u, v, w], axis=1)
        return np.asarray(self.origin + uvw @ self.orientation)

    def patient_to_voxel(self, points: np.ndarray) -> np.ndarray:
        """Fractional (z, y, x) voxel indices of patient (LPS) mm points, (n, 3).

        The inverse of :meth:`voxel_to_patient` inside the volume (z through the
        true slice positions); outside it z extrapolates by the slice increment.
        """
        uvw = (np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.origin) \
            @ self.orientation.T
        n = len(self.slice_positions)
        z = np.interp(uvw[:, 2], self.slice_positions, np.arange(n, dtype=np.float64))
        z = np.where(uvw[:, 2] < self.slice_positions[0],
                     (uvw[:, 2] - self.slice_positions[0]) / self.spacing[0], z)
        z = np.where(uvw[:, 2] > self.slice_positions[-1],
                     n - 1 + (uvw[:, 2] - self.slice_positions[-1]) / self.spacing[0], z)
        return np.stack([z, uvw[:, 1] / self.spacing[1], uvw[:, 0] / self.spacing[2]], axis=1)


@dataclass(frozen=True, eq=False)
class _Frame:
    """One 2-D image: a single-frame instance or one frame of a multi-frame one."""

    dataset: Dataset
    frame: int | None
    position: np.ndarray
    iop: np.ndarray
    pixel_spacing: tuple[float, float]
    thickness: float | None
    slope: float
    intercept: float


def load_volume(sources: Iterable[Source]) -> Volume:
    """Load exactly one volume; raise :class:`MixedSeriesError` if the input holds more.

    Parameters
    ----------
    sources : iterable of pydicom Datasets or file paths
        The instances of one series, in any order.
    """
    volumes = load_volumes(sources)
    if len(volumes) != 1:
        described = "; ".join(f"series {v.series_uid} ({v.shape[0]} slices)" for v in volumes)
        raise MixedSeriesError(f"expected one volume, found {len(volumes)}: {described}")
    return volumes[0]


def load_volumes(sources: Iterable[Source]) -> list[Volume]:
    """Load every volume in ``sources``, one per series, frame of reference and orientation.

    Instances without pixel data or without plane geometry (structured reports,
    dose screens) are skipped. Volumes come back ordered by series UID.
    """
    frames = _distinct([f for ds in (_read(s) for s in sources) if _is_image(ds)
                        for f in _frames(ds)])
    if not frames:
        raise VolumeError("no image instances with plane geometry in the input")
    groups = _group(frames)
    return [_build(group) for _, group in sorted(groups, key=lambda kg: kg[0])]


def _distinct(frames: list[_Frame]) -> list[_Frame]:
    """Drop repeats of the same SOP instance and frame (a re-sent instance is not a new slice)."""
    seen: set[tuple[str, int | None]] = set()
    out = []
    for frame in frames:
        key = (str(frame.dataset.get("SOPInstanceUID", "")), frame.frame)
        if key in seen:
            log.info("ignoring a repeated instance", extra={"sop_instance_uid": key[0]})
            continue
        seen.add(key)
        out.append(frame)
    return out


def _read(source: Source) -> Dataset:
    if isinstance(source, Dataset):
        return source
    try:
        return pydicom.dcmread(source)
    except (InvalidDicomError, OSError) as exc:
        raise VolumeError(f"cannot read DICOM file {os.fspath(source)!r}: {exc}") from exc


def _is_image(ds: Dataset) -> bool:
    has_plane = "ImageOrientationPatient" in ds or "PerFrameFunctionalGroupsSequence" in ds
    if "PixelData" in ds and has_plane:
        return True
    log.info("skipping instance without pixel data or plane geometry",
             extra={"sop_instance_uid": str(ds.get("SOPInstanceUID", ""))})
    return False


def _frames(ds: Dataset) -> list[_Frame]:
    if "PerFrameFunctionalGroupsSequence" in ds:
        return [_enhanced_frame(ds, i) for i in range(int(ds.NumberOfFrames))]
    return [_Frame(
        dataset=ds, frame=None,
        position=_floats(ds, "ImagePositionPatient", 3),
        iop=_floats(ds, "ImageOrientationPatient", 6),
        pixel_spacing=_pixel_spacing(ds),
        thickness=_optional_float(ds.get("SliceThickness")),
        slope=float(ds.get("RescaleSlope", 1.0)),
        intercept=float(ds.get("RescaleIntercept", 0.0)),
    )]


def _enhanced_frame(ds: Dataset, i: int) -> _Frame:
    """One frame of an Enhanced CT instance (PS3.3 A.38, C.7.6.16 functional groups)."""
    position = _functional(ds, i, "PlanePositionSequence")
    orientation = _functional(ds, i, "PlaneOrientationSequence")
    measures = _functional(ds, i, "PixelMeasuresSequence")
    transform = _functional(ds, i, "PixelValueTransformationSequence")
    return _Frame(
        dataset=ds, frame=i,
        position=_floats(position, "ImagePositionPatient", 3),
        iop=_floats(orientation, "ImageOrientationPatient", 6),
        pixel_spacing=_pixel_spacing(measures),
        thickness=_optional_float(measures.get("SliceThickness")),
        slope=float(transform.get("RescaleSlope", 1.0)) if transform else 1.0,
        intercept=float(transform.get("RescaleIntercept", 0.0)) if transform else 0.0,
    )


def _functional(ds: Dataset, i: int, name: str) -> Dataset:
    """A functional group macro item for frame ``i``: per-frame first, then shared."""
    for groups in (ds.PerFrameFunctionalGroupsSequence[i],
                   _first(ds.get("SharedFunctionalGroupsSequence"))):
        if groups is not None and name in groups and len(groups[name].value):
            item: Dataset = groups[name].value[0]
            return item
    if name == "PixelValueTransformationSequence":
        return Dataset()
    raise VolumeError(f"frame {i + 1}: {name} is in neither the per-frame nor the shared groups")


def _first(seq: Any) -> Dataset | None:
    return seq[0] if seq else None


def _floats(ds: Dataset, keyword: str, n: int) -> np.ndarray:
    value = ds.get(keyword)
    if value is None or len(value) != n:
        raise VolumeError(f"{keyword} missing or not {n} values in {ds.get('SOPInstanceUID', '')}")
    return np.asarray([float(v) for v in value], dtype=np.float64)


def _pixel_spacing(ds: Dataset) -> tuple[float, float]:
    row, col = _floats(ds, "PixelSpacing", 2)
    if row <= 0 or col <= 0:
        raise VolumeError(f"PixelSpacing must be positive, got {row}\\{col}")
    return float(row), float(col)


def _optional_float(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def _group(frames: Sequence[_Frame]) -> list[tuple[str, list[_Frame]]]:
    """Group frames by series, frame of reference and orientation (within a tolerance)."""
    groups: list[tuple[str, str, np.ndarray, list[_Frame]]] = []
    for frame in frames:
        series = str(frame.dataset.get("SeriesInstanceUID", ""))
        frame_of_reference = str(frame.dataset.get("FrameOfReferenceUID", ""))
        for g_series, g_for, g_iop, members in groups:
            same_iop = np.allclose(g_iop, frame.iop, atol=_IOP_ATOL)
            if g_series == series and g_for == frame_of_reference and same_iop:
                members.append(frame)
                break
        else:
            groups.append((series, frame_of_reference, frame.iop, [frame]))
    return [(f"{s}|{f}|{np.round(iop, 3).tolist()}", members) for s, f, iop, members in groups]


def _build(frames: list[_Frame]) -> Volume:
    first = frames[0]
    row_dir, col_dir, normal = _axes(first.iop)
    along = np.array([f.position @ normal for f in frames])
    order = np.argsort(along, kind="stable")
    frames = [frames[i] for i in order]
    along = along[order]
    _check_same_grid(frames)
    spacing_z, qa = _slice_spacing(along, first.thickness)
    qa += _shear_qa(frames, normal, along) + _thickness_qa(frames)
    ds = first.dataset
    hu, padding = _hounsfield(frames)
    return Volume(
        hu=hu,
        spacing=(spacing_z, first.pixel_spacing[0], first.pixel_spacing[1]),
        origin=frames[0].position.copy(),
        orientation=np.stack([row_dir, col_dir, normal]),
        slice_positions=along - along[0],
        slice_thickness=first.thickness,
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
        accession_number=str(ds.get("AccessionNumber", "") or ""),
        modality=str(ds.get("Modality", "")),
        kvp=_kvp(ds),
        contrast=_contrast(ds),
        sop_instance_uids=_unique([str(f.dataset.get("SOPInstanceUID", "")) for f in frames]),
        qa=qa,
        padding=padding,
        gantry_tilt_deg=_optional_float(_acquisition_tag(ds, "CTAcquisitionDetailsSequence",
                                                         "GantryDetectorTilt")),
        convolution_kernel=_kernel(ds),
        manufacturer=str(ds.get("Manufacturer", "") or ""),
        reconstruction_diameter_mm=_optional_float(_acquisition_tag(
            ds, "CTReconstructionSequence", "ReconstructionDiameter")),
    )


def _axes(iop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit row, column and normal directions; the normal is row x column (PS3.3 C.7.6.2.1.1)."""
    row, col = iop[:3], iop[3:]
    if not np.isclose(np.linalg.norm(row), 1, atol=1e-3) or not np.isclose(
            np.linalg.norm(col), 1, atol=1e-3) or abs(row @ col) > 1e-3:
        raise VolumeError(f"ImageOrientationPatient is not two orthonormal vectors: {iop.tolist()}")
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    return row, col, np.cross(row, col)


def _check_same_grid(frames: Sequence[_Frame]) -> None:
    first = frames[0]
    shape = (first.dataset.Rows, first.dataset.Columns)
    for f in frames[1:]:
        if (f.dataset.Rows, f.dataset.Columns) != shape:
            raise VolumeError(f"image size varies within the series: {shape} and "
                              f"{(f.dataset.Rows, f.dataset.Columns)}")
        if not np.allclose(f.pixel_spacing, first.pixel_spacing, atol=1e-4):
            raise VolumeError(f"PixelSpacing varies within the series: {first.pixel_spacing} "
                              f"and {f.pixel_spacing}")


def _slice_spacing(along: np.ndarray, thickness: float | None) -> tuple[float, list[str]]:
    """The nominal slice increment (median step) and QA findings about the steps."""
    if len(along) == 1:
        return (thickness or 1.0), [f"{QA_SINGLE}: the series has one slice"]
    steps = np.diff(along)
    if (steps < _POS_ATOL_MM).any():
        k = int(np.argmax(steps < _POS_ATOL_MM))
        raise VolumeError(f"two slices share the position {along[k]:.2f} mm along the normal; "
                          "the series holds more than one acquisition")
    nominal = float(np.median(steps))
    qa = _step_qa(along, steps, nominal)
    if thickness is not None:
        qa += _contiguity_qa(nominal, thickness)
    return nominal, qa


def _step_qa(along: np.ndarray, steps: np.ndarray, nominal: float) -> list[str]:
    tolerance = max(_POS_ATOL_MM, 0.02 * nominal)
    qa = []
    for k in np.flatnonzero(np.abs(steps - nominal) > tolerance):
        between = f"between {along[k]:.2f} and {along[k + 1]:.2f} mm"
        ratio = steps[k] / nominal
        if abs(ratio - round(ratio)) * nominal <= tolerance and round(ratio) >= 2:
            qa.append(f"{QA_GAP}: {round(ratio) - 1} missing slice(s) {between} "
                      f"(nominal increment {nominal:.2f} mm)")
        else:
            qa.append(f"{QA_IRREGULAR}: step {steps[k]:.2f} mm {between} "
                      f"(nominal increment {nominal:.2f} mm)")
    return qa


def _contiguity_qa(increment: float, thickness: float) -> list[str]:
    tolerance = max(_POS_ATOL_MM, 0.02 * thickness)
    if increment < thickness - tolerance:
        return [f"{QA_OVERLAP}: increment {increment:.2f} mm < slice thickness "
                f"{thickness:.2f} mm (overlapping reconstruction)"]
    if increment > thickness + tolerance:
        return [f"{QA_NONCONTIGUOUS}: increment {increment:.2f} mm > slice thickness "
                f"{thickness:.2f} mm (tissue between slices was not imaged)"]
    return []


def _shear_qa(frames: Sequence[_Frame], normal: np.ndarray, along: np.ndarray) -> list[str]:
    """Report slice origins that do not line up along the normal (tilted gantry, shear)."""
    positions = np.stack([f.position for f in frames])
    in_plane = positions - positions[0] - np.outer(along - along[0], normal)
    worst = float(np.abs(in_plane).max())
    if worst > 0.01 + 0.01 * frames[0].pixel_spacing[0]:
        return [f"{QA_SHEAR}: slice origins drift up to {worst:.2f} mm off the slice normal"]
    return []


def _thickness_qa(frames: Sequence[_Frame]) -> list[str]:
    values = {round(f.thickness, 3) for f in frames if f.thickness is not None}
    if len(values) > 1:
        return [f"{QA_THICKNESS}: SliceThickness takes the values {sorted(values)} mm"]
    return []


def _hounsfield(frames: Sequence[_Frame]) -> tuple[np.ndarray, np.ndarray]:
    """Stored values to HU (PS3.3 C.11.1.1.2), padding set to PADDING_HU, and the padding mask.

    HU are int16 when exact (slope 1, whole intercept, every unpadded value in
    range), else float32.
    """
    exact = all(f.slope == 1.0 and float(f.intercept).is_integer() for f in frames)
    rows, cols = int(frames[0].dataset.Rows), int(frames[0].dataset.Columns)
    out = np.empty((len(frames), rows, cols), dtype=np.int16 if exact else np.float32)
    padding = np.zeros(out.shape, dtype=bool)
    cache: dict[int, np.ndarray] = {}
    for k, f in enumerate(frames):
        stored = _stored_pixels(f, cache)
        padding[k] = padding_mask(f.dataset, stored)
        values: np.ndarray = (stored.astype(np.int32) + np.int32(f.intercept) if exact else
                              stored.astype(np.float32) * np.float32(f.slope)
                              + np.float32(f.intercept))
        values[padding[k]] = PADDING_HU
        if exact and not _fits_int16(values):
            return _hounsfield_float(frames, cache)
        out[k] = values  # int16 only when the range check above passed
    return out, padding


def _fits_int16(values: np.ndarray) -> bool:
    info = np.iinfo(np.int16)
    return bool(info.min <= int(values.min()) and int(values.max()) <= info.max)


def _hounsfield_float(frames: Sequence[_Frame],
                      cache: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    stored = [_stored_pixels(f, cache) for f in frames]
    padding = np.stack([padding_mask(f.dataset, s) for f, s in zip(frames, stored, strict=True)])
    out = np.stack([s.astype(np.float32) * np.float32(f.slope) + np.float32(f.intercept)
                    for f, s in zip(frames, stored, strict=True)])
    out[padding] = PADDING_HU
    return out, padding


def padding_mask(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """Where ``stored`` (stored values of one or more frames of ``ds``) is pixel padding.

    Parameters
    ----------
    ds : Dataset
        The instance: Pixel Padding Value (0028,0120), Pixel Padding Range
        Limit (0028,0121), Pixel Representation and Bits Allocated are read
        from its top level (General Equipment and Image Pixel modules, for
        single-frame and Enhanced CT alike).
    stored : int array, any shape
        Stored pixel values as decoded (before the Modality LUT).

    Returns
    -------
    bool array shaped like ``stored``; all False when no padding is declared.
    Method: PS3.3 C.7.5.1.1.2 (the range is inclusive, either order; a Range
    Limit without a Padding Value is ignored, as the standard makes it
    conditional on one).
    """
    bounds = padding_range(ds)
    if bounds is None:
        return np.zeros(stored.shape, dtype=bool)
    values = stored.astype(np.int64, copy=False)
    return np.asarray((values >= bounds[0]) & (values <= bounds[1]))


def padding_range(ds: Dataset) -> tuple[int, int] | None:
    """The inclusive (low, high) stored-value range of pixel padding, or None.

    Values are read as Pixel Representation says (US for 0, SS for 1;
    PS3.3 C.7.6.3.1.2), whatever VR the file or pydicom gave them: a raw
    value, or one decoded with the other VR, is reinterpreted in 16 bits.
    """
    value = _padding_tag(ds, "PixelPaddingValue")
    if value is None:
        return None
    limit = _padding_tag(ds, "PixelPaddingRangeLimit")
    if limit is None:
        return value, value
    return min(value, limit), max(value, limit)


def _padding_tag(ds: Dataset, keyword: str) -> int | None:
    element = ds.get(keyword)  # a DataElement only through ds[...]; .get gives the value
    if element is None or element == b"" or element == "":
        return None
    if isinstance(element, bytes):
        order: Literal["little", "big"] = "little" if _little_endian(ds) else "big"
        raw = int.from_bytes(element[:2], order)
    else:
        try:
            raw = int(element)
        except (TypeError, ValueError) as exc:
            raise VolumeError(f"{keyword} {element!r} is not an integer") from exc
    raw &= 0xFFFF
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    return raw - 0x10000 if signed and raw >= 0x8000 else raw


def _little_endian(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    return syntax is None or syntax != ExplicitVRBigEndian


def _stored_pixels(frame: _Frame, cache: dict[int, np.ndarray]) -> np.ndarray:
    """The frame's stored values; a multi-frame instance is decoded once and cached."""
    ds = frame.dataset
    if frame.frame is None:
        return _decode(ds)
    if id(ds) not in cache:
        cache[id(ds)] = _decode(ds).reshape(-1, int(ds.Rows), int(ds.Columns))
    return cache[id(ds)][frame.frame]


def _decode(ds: Dataset) -> np.ndarray:
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise PixelDataError(f"expected greyscale CT, SamplesPerPixel={ds.SamplesPerPixel}")
    try:
        ds.pixel_array_options(decoding_plugin=_preferred_plugin(syntax))
        return np.asarray(ds.pixel_array)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
        raise PixelDataError(f"cannot decode pixel data (transfer syntax {syntax or 'unknown'}) "
                             f"of {ds.get('SOPInstanceUID', '')}: {exc}") from exc


def _preferred_plugin(syntax: str) -> str:
    """Pin JPEG 2000 to pylibjpeg-openjpeg when present; otherwise let pydicom choose.

    pydicom tries Pillow first when both are installed; pinning keeps decoding
    on the one plugin the project depends on and tests, whatever else is there.
    """
    if syntax not in (JPEG2000Lossless, JPEG2000):
        return ""
    return "pylibjpeg" if "pylibjpeg" in get_decoder(syntax).available_plugins else ""


def _kvp(ds: Dataset) -> float | None:
    """KVP (0018,0060); for Enhanced CT it sits in the CT X-Ray Details functional group."""
    return _optional_float(_acquisition_tag(ds, "CTXRayDetailsSequence", "KVP"))


def _kernel(ds: Dataset) -> str | None:
    """Convolution Kernel (0018,1210), several values joined by a backslash; Enhanced CT
    keeps it in the CT Reconstruction functional group (PS3.3 C.8.15.3.8)."""
    value = _acquisition_tag(ds, "CTReconstructionSequence", "ConvolutionKernel")
    if value is None or value == "":
        return None
    values = [str(v).strip() for v in (value if isinstance(value, MultiValue) else [value])]
    return "\\".join(v for v in values if v) or None


def _acquisition_tag(ds: Dataset, group: str, keyword: str) -> Any:
    """An acquisition attribute: top level (CT Image), else the Enhanced CT functional
    group ``group``, shared first, then the first frame's."""
    if keyword in ds:
        return ds.get(keyword)
    shared = _first(ds.get("SharedFunctionalGroupsSequence"))
    item = _first(shared.get(group)) if shared is not None else None
    if item is None and "PerFrameFunctionalGroupsSequence" in ds:
        item = _first(ds.PerFrameFunctionalGroupsSequence[0].get(group))
    return item.get(keyword) if item is not None else None


def _contrast(ds: Dataset) -> bool:
    """Contrast given: Contrast/Bolus Agent (0018,0010) or its Enhanced sequence (0018,0012)."""
    agent = str(ds.get("ContrastBolusAgent", "") or "").strip()
    return bool(agent) or bool(ds.get("ContrastBolusAgentSequence"))


def _slice_offset(positions: np.ndarray, z: np.ndarray, step: float) -> np.ndarray:
    """Position along the normal of fractional slice indices, extrapolating by ``step``."""
    n = len(positions)
    inside = np.interp(z, np.arange(n), positions)
    below = positions[0] + z * step
    above = positions[-1] + (z - (n - 1)) * step
    return np.where(z < 0, below, np.where(z > n - 1, above, inside))


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
