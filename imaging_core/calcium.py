"""Coronary artery calcium scoring: Agatston, volume and mass scores, and CAC-DRS.

Method (Agatston AS, Janowitz WR, Hildner FJ, et al. Quantification of
coronary artery calcium using ultrafast computed tomography. J Am Coll
Cardiol 1990;15:827-832):

- a lesion is a 2-D connected region of pixels >= 130 HU within one slice,
  with an area >= 1 mm^2 (area from PixelSpacing);
- its density weight comes from its peak HU: 1 for 130-199, 2 for 200-299,
  3 for 300-399 and 4 for >= 400;
- its score is area x weight; the Agatston score sums lesions over slices.

Choices this module makes, each a parameter recorded in every result:

- **Connectivity.** Agatston 1990 does not state a pixel connectivity. We
  use 8-connectivity in-plane (diagonal neighbours join), the full
  neighbourhood that ``scipy.ndimage.generate_binary_structure(2, 2)`` gives,
  so a thin oblique calcification counts as one lesion rather than as
  several sub-threshold fragments. The 3-D lesion count uses 26-connectivity.
- **Slice increment.** Agatston's protocol used contiguous 3 mm slices. The
  increment must lie in the accepted 2.5-3.0 mm range as the thickness does
  (below); within it the per-slice scores are multiplied by increment / 3 mm
  (e.g. 2.5 / 3 for 3 mm slices reconstructed every 2.5 mm), so that a
  slightly overlapping reconstruction, which images each lesion about
  thickness / increment times, is not counted that many times over. A finer
  increment (1.5 mm) is refused, not scaled: the scaling is exact only for
  lesions much taller than a slice, and the published thresholds and
  CAC-DRS categories were set on 2.5-3 mm slices.
- **Volume score.** Voxels of accepted lesions x pixel area x slice increment
  (the increment, not the thickness, so overlap is not counted twice).
- **Mass score.** mass = c x mean HU x volume, summed over voxels (McCollough
  CH, Ulzheimer S, Halliburton SS, et al. Coronary artery calcium: a
  multi-institutional, multimanufacturer international standard for
  quantification at cardiac CT. Radiology 2007;243:527-538). The factor c
  (mg/cm^3 per HU) is specific to the scanner and protocol and must be measured
  with a hydroxyapatite calibration phantom; there is no honest default, so
  without one the mass is reported as absent, never guessed.
- **Lesions.** Accepted 2-D lesions are grouped into 3-D candidate lesions
  (26-connectivity). Each candidate gets a label: an artery (``LM``, ``LAD``,
  ``LCX``, ``RCA``), a named non-coronary class (``NON_CORONARY``), or
  ``unassigned`` when no labeller ran. Only counted candidates enter the
  scores; a non-coronary label is never counted. A radiologist's
  :class:`Decision` (reject, accept, relabel) overrides the labeller, and the
  scores are summed again from the candidates.
- **Region.** Without a labeller every lesion in the field of view counts,
  including bone, valve and aortic calcium, and is labelled ``unassigned``.

The QA gate refuses (``scorable=False`` with a reason) rather than return a
wrong number: contrast-enhanced images (iodine exceeds 130 HU), a tube
voltage other than 120 kVp (calcium's HU rises as kVp falls, so the fixed
130 HU threshold and weights only transfer at the standard voltage; 120 kVp is
the multidetector-CT standard of McCollough 2007, Agatston's own electron-beam
scanner predating it), a slice thickness or a
slice increment outside 2.5-3.0 mm (Agatston's 3 mm, plus the 2.5 mm
reconstruction that some vendors use for the same protocol; thinner slices
raise the score materially), and sampling defects reported by the volume
loader (gaps, irregular or non-contiguous slices). This is the one place the
thickness and increment rule lives; the image-based gate
(``imaging_core.scanqa``: contrast in the blood pool, metal, gantry tilt, a
field of view that cuts the heart, the kernel) does not repeat it.

CAC-DRS (Hecht HS, Blaha MJ, Kazerooni EA, et al. CAC-DRS: Coronary Artery
Calcium Data and Reporting System. An expert consensus document of the
Society of Cardiovascular Computed Tomography (SCCT). J Cardiovasc Comput
Tomogr 2018;12:185-191): Agatston 0 -> 0, 1-99 -> 1, 100-299 -> 2,
>= 300 -> 3. A non-zero score below 1 is category 1: calcium is present.
N is the number of arteries (LM, LAD, LCX, RCA) with counted calcium.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from imaging_core.volume import QA_GAP, QA_IRREGULAR, QA_NONCONTIGUOUS, Volume

ANALYSER_VERSION = "scanpath-cac 1.0.0"

AGATSTON_1990 = "Agatston AS et al. J Am Coll Cardiol 1990;15:827-832"
MCCOLLOUGH_2007 = "McCollough CH et al. Radiology 2007;243:527-538"
HECHT_2018 = "Hecht HS et al. (SCCT CAC-DRS) J Cardiovasc Comput Tomogr 2018;12:185-191"

# Peak-HU lower bounds of density weights 2, 3 and 4 (Agatston 1990); weight 1 starts
# at the detection threshold.
WEIGHT_BOUNDS_HU = (200.0, 300.0, 400.0)
# CAC-DRS lower bounds of categories 1, 2 and 3 (Hecht 2018); 0 is "no calcium".
CAC_DRS_BOUNDS = (100.0, 300.0)

_REFUSING_QA = (QA_GAP, QA_IRREGULAR, QA_NONCONTIGUOUS)

# Lesion labels. The arteries are those CAC-DRS counts for N (Hecht 2018); the
# non-coronary classes are what a calcium-scoring CT also shows (CONTRACT §5).
CORONARY_ARTERIES = ("LM", "LAD", "LCX", "RCA")
NON_CORONARY = ("bone", "aortic-wall", "aortic-valve", "mitral-annulus", "outside-heart")
UNASSIGNED = "unassigned"
LABELS = (*CORONARY_ARTERIES, *NON_CORONARY, UNASSIGNED)


@dataclass(frozen=True)
class CalciumParams:
    """Every threshold the score depends on; all of them go into the result."""

    threshold_hu: float = 130.0
    min_lesion_area_mm2: float = 1.0
    reference_increment_mm: float = 3.0
    connectivity_2d: int = 8
    connectivity_3d: int = 26
    required_kvp: float = 120.0
    kvp_tolerance: float = 0.5
    thickness_range_mm: tuple[float, float] = (2.5, 3.0)
    mass_calibration: float | None = None  # mg/cm^3 per HU, from a phantom scan
    sources: dict[str, str] = field(default_factory=lambda: {
        "threshold_hu": AGATSTON_1990,
        "min_lesion_area_mm2": AGATSTON_1990,
        "density_weights": AGATSTON_1990,
        "reference_increment_mm": AGATSTON_1990 + " (3 mm slices)",
        "required_kvp": MCCOLLOUGH_2007 + " (multidetector-CT standard protocol)",
        "thickness_range_mm": "slice thickness and increment; project choice around "
                              "Agatston's 3 mm; see module docstring",
        "mass_calibration": MCCOLLOUGH_2007 + " (scanner-specific, measured)",
        "cac_drs": HECHT_2018,
        "connectivity_2d": "project choice; not stated by Agatston 1990",
    })


@dataclass
class Lesion:
    """One 3-D candidate lesion: 26-connected accepted 2-D lesions.

    ``id`` is stable for the same images and analyser version (it names the
    first voxel in (z, y, x) order), so a reviewer's decision still applies
    when the study is analysed again. ``slices`` are first and last slice
    indices (inclusive); ``centre_mm`` is the voxel centroid in patient (LPS)
    mm; ``area_mm2`` the largest in-plane area; ``agatston``, ``volume_mm3``
    and ``mass_mg`` this lesion's share of the scores (counted or not).
    """

    id: str
    label: str
    counted: bool
    slices: tuple[int, int]
    centre_mm: tuple[float, float, float]
    area_mm2: float
    peak_hu: float
    agatston: float
    volume_mm3: float
    mass_mg: float | None
    reviewed_by: str | None = None


@dataclass(frozen=True)
class Decision:
    """A radiologist's change to one candidate lesion.

    ``reject`` stops it counting; ``accept`` makes it count (its label must
    then be an artery, given here or already held); ``relabel`` gives it
    ``label``, counted when that is an artery. ``reviewer`` is a FHIR
    reference (``Practitioner/...``).
    """

    lesion_id: str
    action: Literal["reject", "accept", "relabel"]
    reviewer: str
    label: str | None = None


@dataclass
class ArteryScore:
    """Counted calcium of one artery."""

    agatston: float
    volume_mm3: float
    mass_mg: float | None
    lesion_count: int


# Gives each candidate (in ``lesions`` order) a label from LABELS. The int32 map
# holds 1 + the candidate's index at its voxels, 0 elsewhere (the volume's shape).
Labeller = Callable[["Volume", np.ndarray, Sequence[Lesion]], list[str]]


@dataclass
class CalciumResult:
    """The outcome of scoring one volume; ``as_dict`` is what gets stored.

    When ``scorable`` is False every score is None and ``reason`` says why.
    ``weight_map`` (per voxel: 0, or the density weight 1-4 of its counted
    lesion) feeds the mesh and key images; ``lesion_map`` (per voxel: 0, or 1 +
    the index in ``lesions`` of its candidate, counted or not) feeds the SEG
    and the review overlays. Neither is serialised.
    """

    scorable: bool
    reason: str | None
    agatston: float | None
    volume_mm3: float | None
    mass_mg: float | None
    lesion_count: int | None
    lesion_count_2d: int | None
    cac_drs: int | None
    slice_scores: list[float]
    series_uid: str
    region: str
    inputs: dict[str, Any]
    params: dict[str, Any]
    qa: list[str]
    lesions: list[Lesion] = field(default_factory=list)
    arteries: dict[str, ArteryScore] = field(default_factory=dict)
    cac_vessels: int | None = None
    analyser_version: str = ANALYSER_VERSION
    weight_map: np.ndarray | None = field(default=None, repr=False, compare=False)
    lesion_map: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def cac_drs_label(self) -> str | None:
        """``CAC-DRS A2/N3`` (Hecht 2018; CONTRACT §5), or None when not scored.

        Without N (``CAC-DRS A2``) when counted calcium is not attributed to an
        artery: N is then unknown, never 0.
        """
        if self.cac_drs is None:
            return None
        vessels = "" if self.cac_vessels is None else f"/N{self.cac_vessels}"
        return f"CAC-DRS A{self.cac_drs}{vessels}"

    def as_dict(self) -> dict[str, Any]:
        """Everything but the voxel maps, as plain JSON-ready values."""
        out = {f.name: copy.deepcopy(getattr(self, f.name))
               for f in fields(self) if f.name not in ("weight_map", "lesion_map")}
        out["lesions"] = [asdict(lesion) for lesion in self.lesions]
        out["arteries"] = {name: asdict(s) for name, s in self.arteries.items()}
        out["cac_drs_label"] = self.cac_drs_label
        return out


@dataclass(frozen=True)
class _Lesions:
    """2-D lesions of a volume, one row per label (index 0 is background)."""

    labels: np.ndarray  # int32 label per voxel of ``box``, unique across slices
    box: tuple[slice, slice, slice]  # where ``labels`` sits in the volume
    area_mm2: np.ndarray
    peak_hu: np.ndarray
    slice_index: np.ndarray
    accepted: np.ndarray
    weight: np.ndarray


def score(volume: Volume, params: CalciumParams | None = None,
          roi: np.ndarray | None = None, *, labeller: Labeller | None = None,
          decisions: Sequence[Decision] = ()) -> CalciumResult:
    """Score a non-contrast cardiac CT volume, or refuse with a reason.

    Parameters
    ----------
    volume : Volume
        From :func:`imaging_core.volume.load_volume`.
    params : CalciumParams, optional
        Thresholds and protocol limits; defaults follow Agatston 1990.
    roi : bool array shaped like ``volume.hu``, optional
        Voxels eligible for scoring. Without one the whole field of view is
        searched for candidates.
    labeller : Labeller, optional
        Labels each candidate (an artery or a non-coronary class). Without
        one every candidate is ``unassigned`` and counted.
    decisions : sequence of Decision
        A radiologist's changes, applied in order after the labeller.

    Raises
    ------
    ValueError
        ``roi`` of another shape, or a decision naming an unknown lesion or label.
    """
    params = params or CalciumParams()
    region = ("coronary candidates, labelled" if labeller is not None
              else "region mask" if roi is not None
              else "whole field of view (no coronary attribution)")
    refusal = protocol_refusal(volume, params)
    if refusal is not None:
        return _refused(volume, params, region, refusal)
    if roi is not None and roi.shape != volume.shape:
        raise ValueError(f"roi shape {roi.shape} differs from volume shape {volume.shape}")
    lesions = find_lesions(volume.hu, volume.spacing, params, roi)
    return _scored(volume, params, region, lesions, labeller, decisions)


def protocol_refusal(volume: Volume, params: CalciumParams) -> str | None:
    """Why the volume cannot be scored by the Agatston protocol, or None if it can."""
    low, high = params.thickness_range_mm
    thickness = volume.slice_thickness
    if volume.modality != "CT":
        return f"modality {volume.modality or 'unknown'} is not CT"
    if volume.contrast:
        return "contrast-enhanced acquisition (ContrastBolusAgent present): iodine exceeds 130 HU"
    if volume.kvp is None:
        return "tube voltage (KVP) not recorded; the protocol requires 120 kVp"
    if abs(volume.kvp - params.required_kvp) > params.kvp_tolerance:
        return f"tube voltage {volume.kvp:g} kVp; the protocol requires {params.required_kvp:g} kVp"
    if thickness is None:
        return "slice thickness not recorded"
    if not low - 1e-3 <= thickness <= high + 1e-3:
        return f"slice thickness {thickness:g} mm outside the accepted {low:g}-{high:g} mm"
    defects = [item for item in volume.qa if item.split(":", 1)[0] in _REFUSING_QA]
    if defects:
        return f"slice sampling defect: {defects[0]}"
    increment = volume.spacing[0]
    if volume.shape[0] > 1 and not low - 1e-3 <= increment <= high + 1e-3:
        return f"slice increment {increment:g} mm outside the accepted {low:g}-{high:g} mm"
    return None


def find_lesions(hu: np.ndarray, spacing: tuple[float, float, float],
                 params: CalciumParams, roi: np.ndarray | None = None) -> _Lesions:
    """Label 2-D lesions of every slice in one pass and measure them, vectorised.

    Work is confined to the bounding box of the above-threshold voxels; the
    returned ``labels`` cover that box only (``box`` says where it sits).
    """
    full_mask = hu >= params.threshold_hu
    if roi is not None:
        full_mask &= roi
    box = _bounding_box(full_mask)
    mask, hu = full_mask[box], hu[box]
    labels, count = ndimage.label(mask, structure=_in_plane_structure(params.connectivity_2d))
    labels = labels.astype(np.int32, copy=False)
    flat = labels[mask]
    area = np.bincount(flat, minlength=count + 1) * (spacing[1] * spacing[2])
    peak = np.full(count + 1, -np.inf)
    np.maximum.at(peak, flat, hu[mask].astype(np.float64))
    slice_index = np.zeros(count + 1, dtype=np.int64)
    slice_index[flat] = np.nonzero(mask)[0] + box[0].start
    accepted = area >= params.min_lesion_area_mm2 - 1e-9
    accepted[0] = False
    weight = np.where(accepted, density_weight(peak), 0)
    return _Lesions(labels, box, area, peak, slice_index, accepted, weight)


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice]:
    """The smallest box holding every True voxel (an empty box when there is none)."""
    bounds = []
    for axis in range(3):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        bounds.append(slice(int(present[0]), int(present[-1]) + 1) if len(present)
                      else slice(0, 0))
    return bounds[0], bounds[1], bounds[2]


def density_weight(peak_hu: np.ndarray) -> np.ndarray:
    """Agatston density weight 1-4 from each lesion's peak HU (peaks are >= 130 HU)."""
    return np.digitize(peak_hu, WEIGHT_BOUNDS_HU) + 1


def cac_drs(agatston: float) -> int:
    """CAC-DRS Agatston category 0-3 (Hecht 2018)."""
    if agatston <= 0:
        return 0
    return 1 + int(np.digitize(agatston, CAC_DRS_BOUNDS))


def _in_plane_structure(connectivity: int) -> np.ndarray:
    """A 3-D structuring element that links pixels within a slice only."""
    if connectivity not in (4, 8):
        raise ValueError(f"2-D connectivity must be 4 or 8, got {connectivity}")
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    return structure


def _structure_3d(connectivity: int) -> np.ndarray:
    rank = {6: 1, 18: 2, 26: 3}.get(connectivity)
    if rank is None:
        raise ValueError(f"3-D connectivity must be 6, 18 or 26, got {connectivity}")
    return ndimage.generate_binary_structure(3, rank)


def _scored(volume: Volume, params: CalciumParams, region: str, lesions: _Lesions,
            labeller: Labeller | None, decisions: Sequence[Decision]) -> CalciumResult:
    factor = volume.spacing[0] / params.reference_increment_mm
    voxel_mm3 = volume.spacing[1] * volume.spacing[2] * volume.spacing[0]
    grouped = _group(volume, params, lesions, factor, voxel_mm3)
    candidates, lesion_map = grouped.candidates, grouped.lesion_map
    labels = (labeller(volume, lesion_map, candidates) if labeller is not None
              else [UNASSIGNED] * len(candidates))
    for candidate, label in zip(candidates, labels, strict=True):
        candidate.label, candidate.counted = label, label not in NON_CORONARY
    apply_decisions(candidates, decisions)
    counted_2d = grouped.lesion_of_2d >= 0
    counted_2d[counted_2d] = np.array([candidates[i].counted
                                       for i in grouped.lesion_of_2d[counted_2d]], dtype=bool)
    per_slice = np.bincount(lesions.slice_index, weights=grouped.score_2d * counted_2d,
                            minlength=volume.shape[0])
    weight_map = np.zeros(volume.shape, dtype=np.uint8)
    weight_map[lesions.box] = (lesions.weight * counted_2d).astype(np.uint8)[lesions.labels]
    counted = [c for c in candidates if c.counted]
    agatston = float(per_slice.sum())
    arteries = artery_scores(candidates)
    return CalciumResult(
        scorable=True, reason=None,
        agatston=agatston,
        volume_mm3=float(sum(c.volume_mm3 for c in counted)),
        mass_mg=_sum_or_none([c.mass_mg for c in counted], params.mass_calibration),
        lesion_count=len(counted),
        lesion_count_2d=int(counted_2d.sum()),
        cac_drs=cac_drs(agatston),
        slice_scores=[float(s) for s in per_slice],
        series_uid=volume.series_uid, region=region,
        inputs=_inputs(volume), params=_params(params, factor),
        qa=list(volume.qa) + _mass_qa(params), lesions=candidates, arteries=arteries,
        cac_vessels=cac_vessels(candidates),
        weight_map=weight_map, lesion_map=lesion_map,
    )


@dataclass(frozen=True)
class _Grouped:
    candidates: list[Lesion]
    lesion_map: np.ndarray  # int32, volume shape: 1 + candidate index
    lesion_of_2d: np.ndarray  # per 2-D label: candidate index, -1 for none
    score_2d: np.ndarray  # per 2-D label: area x weight x increment factor


def _group(volume: Volume, params: CalciumParams, lesions: _Lesions, factor: float,
           voxel_mm3: float) -> _Grouped:
    """3-D candidates from accepted 2-D lesions, each with its share of every score."""
    accepted_voxels = lesions.accepted[lesions.labels]
    components, count = ndimage.label(accepted_voxels,
                                      structure=_structure_3d(params.connectivity_3d))
    lesion_of_2d = np.full(len(lesions.accepted), -1, dtype=np.int64)
    lesion_of_2d[lesions.labels[accepted_voxels]] = components[accepted_voxels] - 1
    score_2d = np.where(lesions.accepted, lesions.area_mm2 * lesions.weight * factor, 0.0)
    lesion_map = np.zeros(volume.shape, dtype=np.int32)
    lesion_map[lesions.box] = components
    hu = volume.hu[lesions.box]
    candidates = [_candidate(volume, params, lesions, i, components == i + 1, hu,
                             score_2d, lesion_of_2d, voxel_mm3) for i in range(count)]
    return _Grouped(candidates, lesion_map, lesion_of_2d, score_2d)


def _candidate(volume: Volume, params: CalciumParams, lesions: _Lesions, index: int,
               voxels: np.ndarray, hu: np.ndarray, score_2d: np.ndarray,
               lesion_of_2d: np.ndarray, voxel_mm3: float) -> Lesion:
    where = np.argwhere(voxels)
    offset = np.array([b.start for b in lesions.box])
    first = where[0] + offset
    mine = lesion_of_2d == index
    centre = volume.voxel_to_patient((where.mean(axis=0) + offset)[None, :])[0]
    return Lesion(
        id=f"L{first[0]:03d}-{first[1]:03d}-{first[2]:03d}", label=UNASSIGNED, counted=True,
        slices=(int(first[0]), int(where[-1][0] + offset[0])),
        centre_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
        area_mm2=float(lesions.area_mm2[mine].max()),
        peak_hu=float(lesions.peak_hu[mine].max()),
        agatston=float(score_2d[mine].sum()),
        volume_mm3=float(len(where) * voxel_mm3),
        mass_mg=_mass_mg(hu, voxels, voxel_mm3, params.mass_calibration))


def apply_decisions(candidates: Sequence[Lesion], decisions: Sequence[Decision]) -> None:
    """Apply a reviewer's decisions in order, in place.

    Raises
    ------
    ValueError
        A decision names an unknown lesion or label, or accepts a lesion
        without an artery label.
    """
    by_id = {c.id: c for c in candidates}
    for decision in decisions:
        lesion = by_id.get(decision.lesion_id)
        if lesion is None:
            raise ValueError(f"no candidate lesion {decision.lesion_id!r}")
        label = decision.label or lesion.label
        if label not in LABELS:
            raise ValueError(f"unknown lesion label {label!r}; one of {', '.join(LABELS)}")
        if decision.action == "accept" and label not in CORONARY_ARTERIES:
            raise ValueError(f"accepting lesion {lesion.id} needs an artery label "
                             f"({', '.join(CORONARY_ARTERIES)})")
        lesion.label = label
        lesion.counted = (decision.action != "reject"
                          and (decision.action == "accept" or label in CORONARY_ARTERIES))
        lesion.reviewed_by = decision.reviewer


def artery_scores(candidates: Sequence[Lesion]) -> dict[str, ArteryScore]:
    """Counted calcium per artery; every artery appears, with zeros when clean."""
    out = {}
    for artery in CORONARY_ARTERIES:
        mine = [c for c in candidates if c.counted and c.label == artery]
        masses = [c.mass_mg for c in mine]
        out[artery] = ArteryScore(
            agatston=float(sum(c.agatston for c in mine)),
            volume_mm3=float(sum(c.volume_mm3 for c in mine)),
            mass_mg=None if any(m is None for m in masses) else float(sum(
                m for m in masses if m is not None)),
            lesion_count=len(mine))
    return out


def cac_vessels(candidates: Sequence[Lesion]) -> int | None:
    """CAC-DRS N: arteries with counted calcium (Hecht 2018); None (unknown) when some
    counted calcium is ``unassigned`` to an artery."""
    if any(c.counted and c.label == UNASSIGNED for c in candidates):
        return None
    return sum(1 for a in artery_scores(candidates).values() if a.agatston > 0)


def _sum_or_none(values: Sequence[float | None], calibration: float | None) -> float | None:
    if calibration is None:
        return None
    return float(sum(v for v in values if v is not None))


def _mass_mg(hu: np.ndarray, calcified: np.ndarray, voxel_mm3: float,
             calibration: float | None) -> float | None:
    """c x sum of HU x voxel volume, i.e. c x mean HU x volume (mm^3 -> cm^3)."""
    if calibration is None:
        return None
    return float(calibration * hu[calcified].astype(np.float64).sum() * voxel_mm3 / 1000.0)


def _mass_qa(params: CalciumParams) -> list[str]:
    if params.mass_calibration is None:
        return ["mass-not-calibrated: no scanner calibration factor; mass score not reported"]
    return []


def not_scorable(volume: Volume, params: CalciumParams, region: str,
                 reason: str) -> CalciumResult:
    """A result that scores nothing and says why (a refusal found outside :func:`score`)."""
    return _refused(volume, params, region, reason)


def _refused(volume: Volume, params: CalciumParams, region: str, reason: str) -> CalciumResult:
    return CalciumResult(
        scorable=False, reason=reason, agatston=None, volume_mm3=None, mass_mg=None,
        lesion_count=None, lesion_count_2d=None, cac_drs=None, slice_scores=[],
        series_uid=volume.series_uid, region=region, inputs=_inputs(volume),
        params=_params(params, None), qa=list(volume.qa),
    )


def _inputs(volume: Volume) -> dict[str, Any]:
    return {
        "kvp": volume.kvp, "contrast": volume.contrast, "modality": volume.modality,
        "slice_thickness_mm": volume.slice_thickness,
        "spacing_mm": list(volume.spacing), "shape": list(volume.shape),
        "study_uid": volume.study_uid, "accession_number": volume.accession_number,
    }


def _params(params: CalciumParams, factor: float | None) -> dict[str, Any]:
    out = asdict(params)
    out["thickness_range_mm"] = list(params.thickness_range_mm)
    out["density_weight_bounds_hu"] = list(WEIGHT_BOUNDS_HU)
    out["cac_drs_bounds"] = [0.0, *CAC_DRS_BOUNDS]
    out["increment_factor"] = factor
    return out
