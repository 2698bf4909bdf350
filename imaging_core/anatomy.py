"""Thoracic anatomy from a non-contrast chest CT, by classical image analysis.

:func:`segment` gives the coronary labeller (``imaging_core.coronary``) and
the image QA gate (``imaging_core.scanqa``) an :class:`Anatomy`. Every mask is
a bool array shaped like ``Volume.hu`` (z, y, x). A structure that could not
be found is an all-False mask *and* a line in ``missing``: absent from
``missing`` means found, so a consumer never reads a failed step as "nothing
there".

Method. Each step is a function of its own, run on a working grid of block
means about ``WORKING_MM`` mm in-plane (the slice increment is kept), because
organ boundaries need no finer sampling and the block mean also quietens
noise; the masks are brought back to the full grid by nearest-neighbour
sampling. Where a step needs a calcium-level detail (bone) it refines on the
full grid. The steps, in order, each with its source:

1. body: air/tissue threshold, largest connected component, holes filled
   per slice (Hu S, Hoffman EA, Reinhardt JM. Automatic lung segmentation for
   accurate quantitation of volumetric X-ray CT images. IEEE Trans Med
   Imaging 2001;20:490-498, section II-A); where a small field of view cuts
   the chest wall, the slice's convex hull;
2. lungs: the optimal (iterative) threshold of Hu et al. 2001 (section II-B),
   inside the body, the large air components;
3. bone: components of block-mean HU >= the Agatston calcium threshold that
   are large and hold cortical-bone peaks (ribs, sternum, vertebrae);
4. aorta: circles found slice by slice with the Hough transform and tracked
   through the slices, ascending and descending (Kurkure U, Avila-Montes OC,
   Kakadiaris IA. Automated segmentation of thoracic aorta in non-contrast CT
   images. Proc IEEE ISBI 2008:29-32; Avila-Montes OC, Kurkure U, Nakazato R,
   Berman DS, Dey D, Kakadiaris IA. Segmentation of the thoracic aorta in
   noncontrast cardiac CT images. IEEE J Biomed Health Inform 2013;17:936-949);
5. heart: the soft tissue between the lungs (inside their per-slice convex
   hull, outside lungs, bone and the aorta above the root), opened with a disc
   wider than the great vessels so only the heart keeps its bulk, then grown
   into the surrounding fat by the pericardial margin (the pericardial-region
   approach of Dey D, Wong ND, Tamarappoo B, et al. Computer-aided non-contrast
   CT-based quantification of pericardial and thoracic fat. Atherosclerosis
   2010;209:136-141, and Dey D et al. Invest Radiol 2010;45:788-794);
6. epicardial fat: -190..-30 HU inside the heart region (Dey et al. 2010);
7. blood pool: the aortic lumen and the heart's soft-tissue core, eroded away
   from walls and fat, where contrast would show;
8. landmarks: aortic root centre, heart centre, apex and the long axis
   (principal axis of the heart region), and the centre of the
   atrioventricular plane (normal to the long axis, ``AV_FRACTION`` of the
   heart's length from its base).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage
from skimage.feature import canny
from skimage.morphology import convex_hull_image
from skimage.transform import hough_circle

from imaging_core.errors import SegmentationError
from imaging_core.volume import Volume

log = logging.getLogger(__name__)

HU_2001 = "Hu S, Hoffman EA, Reinhardt JM. IEEE Trans Med Imaging 2001;20:490-498"
KURKURE_2008 = "Kurkure U et al. Proc IEEE ISBI 2008:29-32; Avila-Montes OC et al. " \
    "IEEE J Biomed Health Inform 2013;17:936-949"
DEY_2010 = "Dey D et al. Invest Radiol 2010;45:788-794; Atherosclerosis 2010;209:136-141"
AGATSTON_1990 = "Agatston AS et al. J Am Coll Cardiol 1990;15:827-832"

WORKING_MM = 2.0  # in-plane sampling of the working grid (project choice: organ scale)
WORKING_SLICE_MM = 3.0  # slice sampling of the working grid (Agatston's 3 mm slices)
BODY_FILL_SHARE = 0.6  # an ellipse fills pi/4 of its box; a chest with open lungs far less
BODY_HU = -500.0  # air vs body; Hu 2001's starting threshold between air and tissue
LUNG_START_HU = -500.0  # Hu 2001: initial threshold of the iterative selection
MIN_LUNG_ML = 20.0  # smaller air pockets (bowel gas, trachea pieces) are not lung
CALCIUM_HU = 130.0  # Agatston 1990 calcium threshold; bone is found above it
# A bone holds cortex: cortical bone is ~700-1900 HU; averaged with marrow over a
# working block it stays above this, which contrast-filled blood (~300 HU) does not reach.
CORTICAL_HU = 450.0
CORTICAL_SHARE = 0.05  # share of a bone's blocks that are cortex (ribs ~30 %, vertebrae ~10 %)
MIN_BONE_ML = 1.5  # bone components are larger than any coronary plaque (project choice)
FAT_HU = (-190.0, -30.0)  # adipose tissue window (Dey et al. 2010)
SOFT_TISSUE_MIN_HU = -30.0  # above the fat window: myocardium, blood, vessel wall
MIN_HEART_ML = 100.0  # the heart's chambers and myocardium hold several hundred ml
HEART_OPENING_MM = 16.0  # disc radius: wider than the descending aorta, narrower than the heart
HEART_REGROW_MM = 10.0  # what the opening shaved off the heart's narrow ends, given back
# Heart core grown by this into the surrounding fat: epicardial fat and coronary arteries
# lie within a few mm of the myocardium (project choice, 3-6 mm fat layer in adults).
PERICARDIAL_MARGIN_MM = 5.0
AORTA_RADII_MM = (9.0, 21.0)  # thoracic aortic radius range, adult (Hough search range)
HOUGH_MIN_SCORE = 0.35  # share of a circle's circumference on edges to start a vessel there
HOUGH_TRACK_SCORE = 0.2  # ... and to follow a vessel already tracked (a partial outline)
AORTA_RADIUS_CHANGE = 0.2  # a tracked circle's radius stays within this share of the seed's
HOUGH_PEAKS = 6  # circles kept per slice
AORTA_STEP_MM = 8.0  # a tracked aortic centre moves less than this between slices
TRACK_SEEDS = 8  # best circles each tried as the start of a vessel's chain
AORTA_GAP_MM = 15.0  # a stretch without a circle bridged while tracking (wall calcium, contact)
ROOT_HEIGHT_MM = 21.0  # the sinus portion below the sinotubular junction (~2 cm)
# The AV plane sits this far from the heart's base along its long axis: the atria take
# about 35-45 mm and the ventricles 80-90 mm of an adult heart's long axis (chamber
# sizes of Lang RM et al. J Am Soc Echocardiogr 2015;28:1-39; the fraction is ours).
AV_FRACTION = 0.3
BLOOD_POOL_EROSION_MM = 8.0  # keep the measurement away from walls and fat (myocardium ~10 mm)
AORTIC_WALL_MM = 3.0  # the aortic lumen starts this far inside the outline (wall ~2 mm)

STEPS = ("body", "lungs", "bone", "aorta", "aortic_root", "heart", "epicardial_fat",
         "blood_pool")


@dataclass
class Anatomy:
    """Masks and landmarks of one CT volume (voxel grid of the Volume).

    Landmarks are patient (LPS) coordinates in mm; a missing landmark is
    absent from ``landmarks`` and named in ``missing``.
    """

    body: np.ndarray
    lungs: np.ndarray
    bone: np.ndarray
    aorta: np.ndarray  # wall and lumen, root to the lowest slice
    aortic_root: np.ndarray  # root and sinuses, with the aortic valve
    heart: np.ndarray  # pericardial contents: chambers, myocardium, epicardial fat
    epicardial_fat: np.ndarray
    blood_pool: np.ndarray  # where contrast would show: aortic lumen and cardiac chambers
    landmarks: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    method: dict[str, str] = field(default_factory=dict)  # step -> method and source


@dataclass(frozen=True)
class Grid:
    """The working grid: block means of ``factors`` (slices, rows, columns) voxels.

    ``spacing`` is (slice, row, column) spacing in mm; ``full_shape`` the
    volume's shape. Working voxel (k, i, j) covers volume voxels
    ``k*fz .. k*fz+fz-1`` (likewise rows and columns); whatever is left past
    the last whole block is dropped here and repeated back by :func:`to_full`.
    """

    hu: np.ndarray  # float32 block means
    factors: tuple[int, int, int]
    spacing: tuple[float, float, float]
    full_shape: tuple[int, int, int]

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0


def working_grid(volume: Volume) -> Grid:
    """Block means about ``WORKING_MM`` in-plane and ``WORKING_SLICE_MM`` apart (Grid)."""
    sizes = (WORKING_SLICE_MM, WORKING_MM, WORKING_MM)
    factors = tuple(min(max(1, int(round(want / have))), n)
                    for want, have, n in zip(sizes, volume.spacing, volume.shape, strict=True))
    fz, fy, fx = factors
    whole = tuple(n // f * f for n, f in zip(volume.shape, factors, strict=True))
    hu = volume.hu[:whole[0], :whole[1], :whole[2]]
    total = np.zeros((whole[0] // fz, whole[1] // fy, whole[2] // fx), dtype=np.float32)
    for a in range(fz):
        for b in range(fy):
            for c in range(fx):
                total += hu[a::fz, b::fy, c::fx]
    spacing = (volume.spacing[0] * fz, volume.spacing[1] * fy, volume.spacing[2] * fx)
    return Grid(total / (fz * fy * fx), (fz, fy, fx), spacing, volume.shape)


def to_full(grid: Grid, mask: np.ndarray) -> np.ndarray:
    """A working-grid mask on the volume's grid (nearest neighbour; edge blocks repeated)."""
    return _repeated(mask, grid.factors, grid.full_shape)


def grown(mask: np.ndarray, spacing: tuple[float, float, float], mm: float) -> np.ndarray:
    """``mask`` (volume grid) grown by ``mm`` in 3-D, measured on a ``WORKING_MM`` sampling.

    The distance is taken from every ``factor``-th pixel, so the margin is
    right to about ``WORKING_MM``; ``mask`` itself is always kept.
    """
    factor = max(1, int(round(WORKING_MM / min(spacing[1], spacing[2]))))
    coarse = (spacing[0], spacing[1] * factor, spacing[2] * factor)
    near = _within(mask[:, ::factor, ::factor], coarse, mm)
    return np.asarray(_repeated(near, (1, factor, factor), mask.shape) | mask)


def _repeated(mask: np.ndarray, factors: tuple[int, int, int],
              shape: tuple[int, ...]) -> np.ndarray:
    """Each working voxel repeated ``factors`` times (the last block's row repeated to fill).

    Only the slices that hold something are expanded; the rest stay an
    untouched (lazily zeroed) allocation.
    """
    out = np.zeros(shape, dtype=bool)
    present = np.flatnonzero(mask.any(axis=(1, 2)))
    if not len(present):
        return out
    k0, k1 = int(present[0]), int(present[-1]) + 1
    fz, fy, fx = factors
    block = np.repeat(mask[k0:k1], fx, axis=2) if fx > 1 else mask[k0:k1]
    z0 = k0 * fz
    z1 = min(z0 + block.shape[0] * fz, shape[0])
    h, w = min(block.shape[1] * fy, shape[1]), min(block.shape[2], shape[2])
    for dz in range(fz):  # strided writes: each output voxel is written once
        for dy in range(fy):
            rows = block[:len(range(z0 + dz, z1, fz)), :len(range(dy, h, fy)), :w]
            out[z0 + dz:z1:fz, dy:h:fy, :w] = rows
    if h < shape[1]:
        out[z0:z1, h:, :w] = out[z0:z1, h - 1:h, :w]
    if w < shape[2]:
        out[z0:z1, :, w:] = out[z0:z1, :, w - 1:w]
    if k1 == mask.shape[0] and z1 < shape[0]:
        out[z1:] = out[z1 - 1:z1]
    return out


# In-plane 4-connectivity: fills and labels that must stay within one slice.
_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def _components(mask: np.ndarray, structure: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Labels (0 background) and each label's voxel count (index 0 is zeroed)."""
    labels, _ = ndimage.label(mask, structure=structure)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels, sizes


def largest(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of ``mask`` (empty when there is none)."""
    labels, sizes = _components(mask)
    if sizes.max(initial=0) == 0:
        return np.zeros_like(mask)
    return np.asarray(labels == sizes.argmax())


def _within(mask: np.ndarray, spacing: tuple[float, float, float], mm: float, *,
            in_plane: bool = False) -> np.ndarray:
    """Voxels within ``mm`` of ``mask`` (a Euclidean dilation in mm), cropped to work fast."""
    if not mask.any():
        return mask.copy()
    sampling = (1e6 if in_plane else spacing[0], spacing[1], spacing[2])
    pad = [int(np.ceil(mm / s)) + 1 for s in sampling]
    box = bounding_box(mask, pad)
    out = np.zeros_like(mask)
    out[box] = ndimage.distance_transform_edt(~mask[box], sampling=sampling) <= mm
    return out


def _eroded(mask: np.ndarray, spacing: tuple[float, float, float], mm: float, *,
            in_plane: bool = False) -> np.ndarray:
    """Voxels of ``mask`` deeper than ``mm`` inside it."""
    if not mask.any():
        return mask.copy()
    sampling = (1e6 if in_plane else spacing[0], spacing[1], spacing[2])
    box = bounding_box(mask, [1, 1, 1])
    out = np.zeros_like(mask)
    inside = np.pad(mask[box], 1)  # the array's edge counts as outside
    out[box] = (ndimage.distance_transform_edt(inside, sampling=sampling) > mm)[1:-1, 1:-1, 1:-1]
    return out


def bounding_box(mask: np.ndarray, margin: Sequence[int] = (0, 0, 0)
                 ) -> tuple[slice, slice, slice]:
    """Bounding box of 3D ``mask`` grown by ``margin`` voxels per axis, clipped to the
    array; empty slices where ``mask`` holds nothing."""
    out = []
    for axis in range(3):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        low = max(int(present[0]) - margin[axis], 0) if len(present) else 0
        high = min(int(present[-1]) + 1 + margin[axis], mask.shape[axis]) if len(present) else 0
        out.append(slice(low, high))
    return out[0], out[1], out[2]


def segment_body(grid: Grid) -> np.ndarray:
    """The body: tissue above ``BODY_HU``, its largest component, holes filled per slice.

    Returns a working-grid bool mask (Hu et al. 2001, section II-A). Where a
    field of view cuts the chest wall the lungs open onto the image edge or
    the air outside the reconstruction circle and no fill closes them: a
    slice whose body touches the edge, or fills less than
    ``BODY_FILL_SHARE`` of its bounding box, takes the body's convex hull.

    Raises
    ------
    SegmentationError
        Nothing in the volume is denser than air.
    """
    body = largest(grid.hu > BODY_HU)
    if not body.any():
        raise SegmentationError(f"no tissue above {BODY_HU:g} HU")
    filled = np.asarray(ndimage.binary_fill_holes(body, structure=_IN_PLANE))
    edge = (body[:, 0, :].any(axis=1) | body[:, -1, :].any(axis=1)
            | body[:, :, 0].any(axis=1) | body[:, :, -1].any(axis=1))
    rows, cols = filled.any(axis=2).sum(axis=1), filled.any(axis=1).sum(axis=1)
    open_lungs = filled.sum(axis=(1, 2)) < BODY_FILL_SHARE * rows * cols
    cut = edge | open_lungs
    if cut.any():
        filled[cut] = slice_hulls(body[cut])
    return filled


def lung_threshold(hu: np.ndarray) -> float:
    """Hu et al. 2001's optimal threshold: iterate T = mean(below T) / 2 + mean(above T) / 2.

    ``hu`` are the body's voxels; the iteration starts at ``LUNG_START_HU`` and
    runs on a 1 HU histogram, so it costs nothing per step.

    Raises
    ------
    SegmentationError
        No air, or no tissue, in the body.
    """
    counts, edges = np.histogram(np.clip(hu, -1100, 1100), bins=2200, range=(-1100, 1100))
    centres = (edges[:-1] + edges[1:]) / 2
    threshold = LUNG_START_HU
    for _ in range(50):
        below = centres < threshold
        n_low, n_high = counts[below].sum(), counts[~below].sum()
        if n_low == 0 or n_high == 0:
            raise SegmentationError("no air or no tissue inside the body")
        mean_low = (counts[below] * centres[below]).sum() / n_low
        mean_high = (counts[~below] * centres[~below]).sum() / n_high
        new = float(mean_low + mean_high) / 2
        if abs(new - threshold) < 0.5:
            return new
        threshold = new
    return threshold


def segment_lungs(grid: Grid, body: np.ndarray) -> np.ndarray:
    """The lungs: body voxels below Hu 2001's optimal threshold, in components >= ``MIN_LUNG_ML``.

    Returns a working-grid bool mask (airways included). Source: Hu et al.
    2001, section II-B.

    Raises
    ------
    SegmentationError
        No air component inside the body is large enough to be lung.
    """
    threshold = lung_threshold(grid.hu[body])
    labels, sizes = _components(body & (grid.hu < threshold))
    keep = sizes * grid.voxel_ml >= MIN_LUNG_ML
    if not keep.any():
        raise SegmentationError(f"no air volume of {MIN_LUNG_ML:g} ml inside the body")
    return np.asarray(keep[labels])


def bone_candidates(grid: Grid) -> np.ndarray:
    """Components at or above ``CALCIUM_HU`` (block mean), >= ``MIN_BONE_ML``, with cortex.

    A coronary plaque is far smaller than ``MIN_BONE_ML``. Contrast-filled
    blood (~300 HU) is as large as bone but has no cortex: even with calcified
    plaque in its wall, less than ``CORTICAL_SHARE`` of it reaches ``CORTICAL_HU``. Returns
    a working-grid bool mask; calcium inside the heart or the aorta (a
    calcified valve or annulus) is taken out by :func:`segment_bone`.
    """
    dense = grid.hu >= CALCIUM_HU
    labels, sizes = _components(dense, np.ones((3, 3, 3), dtype=bool))
    cortex = np.bincount(labels[grid.hu >= CORTICAL_HU], minlength=len(sizes))
    keep = (sizes * grid.voxel_ml >= MIN_BONE_ML) & (cortex >= CORTICAL_SHARE * sizes)
    keep[0] = False
    return np.asarray(keep[labels])


def segment_bone(grid: Grid, candidates: np.ndarray, heart: np.ndarray,
                 aorta: np.ndarray) -> np.ndarray:
    """Bone: the candidates less than half inside the heart region or the aorta.

    Returns a working-grid bool mask (ribs, sternum, vertebrae).

    Raises
    ------
    SegmentationError
        No bone found (a chest CT always shows ribs and vertebrae).
    """
    labels, sizes = _components(candidates, np.ones((3, 3, 3), dtype=bool))
    inside = np.bincount(labels[heart | aorta], minlength=len(sizes))
    keep = (sizes > 0) & (inside < sizes / 2)
    keep[0] = False
    if not keep.any():
        raise SegmentationError("no dense component with cortical bone")
    return np.asarray(keep[labels])


def slice_hulls(mask: np.ndarray) -> np.ndarray:
    """Per slice, the convex hull of ``mask`` (the lungs' hull is the chest's inner cavity).

    The hull is drawn at half the working resolution (it bounds organs, not
    edges) and sampled back, which quarters its cost; ``mask`` itself is kept.
    """
    half = mask[:, ::2, ::2]
    hull = np.zeros_like(half)
    for k in np.flatnonzero(half.any(axis=(1, 2))):
        hull[k] = convex_hull_image(half[k])
    full = np.repeat(np.repeat(hull, 2, axis=1), 2, axis=2)
    return np.asarray(full[:, :mask.shape[1], :mask.shape[2]] | mask)


@dataclass(frozen=True)
class Circle:
    """An aortic cross-section on working slice ``k``: row, column and radius in voxels."""

    k: int
    row: float
    col: float
    radius: float
    score: float


def aortic_circles(grid: Grid, region: np.ndarray) -> list[Circle]:
    """Hough circles of aortic size on each slice, inside ``region`` (the mediastinum).

    Edges come from Canny on the slice clipped to -200..200 HU; a circle is
    kept when ``HOUGH_MIN_SCORE`` of its circumference lies on edges and its
    inside is not fat or air (Kurkure et al. 2008; Avila-Montes et al. 2013).
    Each slice gives at most ``HOUGH_PEAKS`` circles, strongest first, whose
    centres are at least the smallest radius apart.
    """
    radii = np.arange(AORTA_RADII_MM[0] / grid.spacing[2], AORTA_RADII_MM[1] / grid.spacing[2],
                      max(1.0, 1.0 / grid.spacing[2]))
    rmax = int(np.ceil(radii[-1])) + 2
    found = []
    grown_region = ndimage.binary_dilation(region, structure=_IN_PLANE, iterations=2)
    for k in np.flatnonzero(region.any(axis=(1, 2))):
        box = bounding_box(region[k][None], [0, rmax, rmax])[1:]
        near = grown_region[k][box]
        edges = canny(np.clip(grid.hu[k][box], -200, 200), sigma=1.0, low_threshold=25,
                      high_threshold=50) & near
        if edges.any():
            best = hough_circle(edges, radii)
            found += _peaks(best, radii, int(k), (box[0].start, box[1].start))
    return [c for c in found if region[c.k, int(c.row), int(c.col)]
            and _lumen_hu(grid, c) > SOFT_TISSUE_MIN_HU]


def _peaks(accumulator: np.ndarray, radii: np.ndarray, k: int,
           offset: tuple[int, int]) -> list[Circle]:
    """The strongest circles of one slice's Hough accumulator (radius, row, column)."""
    score = accumulator.max(axis=0)
    radius = radii[accumulator.argmax(axis=0)]
    spread = max(int(radii[0]), 1)
    peak = score == ndimage.maximum_filter(score, size=2 * spread + 1)
    local = peak & (score >= HOUGH_TRACK_SCORE)
    rows, cols = np.nonzero(local)
    order = np.argsort(-score[rows, cols])[:HOUGH_PEAKS]
    return [Circle(k, float(rows[i] + offset[0]), float(cols[i] + offset[1]),
                   float(radius[rows[i], cols[i]]), float(score[rows[i], cols[i]]))
            for i in order]


def circle_disc(shape: tuple[int, int], circle: Circle, scale: float = 1.0) -> np.ndarray:
    """The slice-shaped (rows, cols) mask inside ``circle``'s radius times ``scale``."""
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    return np.asarray((rows - circle.row) ** 2 + (cols - circle.col) ** 2
                      <= (circle.radius * scale) ** 2)


def _lumen_hu(grid: Grid, circle: Circle) -> float:
    inner = circle_disc(grid.hu.shape[1:], circle, 0.6)
    return float(np.median(grid.hu[circle.k][inner]))


def track(circles: list[Circle], seed: Circle, grid: Grid, gap_mm: float = AORTA_GAP_MM
          ) -> list[Circle]:
    """The chain of circles through ``seed``: each slice's circle nearest the last one.

    A slice without a circle within ``AORTA_STEP_MM`` of the last one is
    bridged (the last circle carried over) for up to ``gap_mm``; a longer
    gap ends the chain on that side. An infinite ``gap_mm`` carries the last
    circle on to the first and last slices.
    """
    by_slice: dict[int, list[Circle]] = {}
    for c in circles:
        by_slice.setdefault(c.k, []).append(c)
    chain = [seed]
    gap = int(min(gap_mm / grid.spacing[0], grid.hu.shape[0]))
    for direction in (1, -1):
        last, bridged = seed, list[Circle]()
        k = seed.k + direction
        while 0 <= k < grid.hu.shape[0] and len(bridged) <= gap:
            alike = [c for c in by_slice.get(k, [])
                     if abs(c.radius - seed.radius) <= AORTA_RADIUS_CHANGE * seed.radius]
            near = min(alike, key=lambda c: _step_mm(c, last, grid), default=None)
            if near is None or _step_mm(near, last, grid) > AORTA_STEP_MM:
                bridged.append(replace(last, k=k))
            else:
                chain += [*bridged, near]
                last, bridged = near, []
            k += direction
        if np.isinf(gap_mm):  # carried to the end: the vessel runs through every slice
            chain += bridged
    return sorted(chain, key=lambda c: c.k)


def _step_mm(a: Circle, b: Circle, grid: Grid) -> float:
    return float(np.hypot((a.row - b.row) * grid.spacing[1], (a.col - b.col) * grid.spacing[2]))


@dataclass(frozen=True)
class Aorta:
    """The tracked aorta: descending and ascending chains of circles (working grid)."""

    descending: list[Circle]
    ascending: list[Circle]


Locate = Callable[[float, float, float], np.ndarray]  # working (k, row, col) -> LPS mm


def find_aorta(grid: Grid, circles: list[Circle], bone: np.ndarray, locate: Locate,
               middle: np.ndarray) -> Aorta:
    """Pick and track the descending and ascending aorta among the Hough circles.

    The descending aorta is the longest chain of circles behind ``middle``
    (LPS mm, the centre of the chest cavity) and not over bone, carried
    through every slice (below the arch it runs the whole chest); the ascending
    aorta the longest chain of circles well in front of it and to the
    patient's right of it (Kurkure et al. 2008 track the aorta the same way).

    Raises
    ------
    SegmentationError
        Either vessel has no circle.
    """
    usable = [c for c in circles if bone[c.k][circle_disc(bone.shape[1:], c)].mean() < 0.2]
    if not usable:
        raise SegmentationError("no aortic cross-section (Hough circle) between the lungs")
    where = {c: locate(c.k, c.row, c.col) for c in usable}
    back = [c for c in usable if where[c][1] > middle[1]]
    if not back:
        raise SegmentationError("no descending aorta: no circle behind the heart")
    descending = longest_chain(back, grid, gap_mm=np.inf)
    behind = np.median(np.array([where[c] for c in descending if c in where]), axis=0)
    gap = 3 * AORTA_RADII_MM[0]
    front = [c for c in usable if where[c][1] < behind[1] - gap and where[c][0] < behind[0]
             and c not in descending]
    if not front:
        raise SegmentationError("no ascending aorta: no circle in front of the descending aorta")
    return Aorta(descending, longest_chain(front, grid))


def longest_chain(circles: list[Circle], grid: Grid, gap_mm: float = AORTA_GAP_MM
                  ) -> list[Circle]:
    """Of the chains tracked from the ``TRACK_SEEDS`` best circles, the one of most circles.

    A vessel runs through many slices; a chance circle (the apex of the heart
    in cross-section, a rib's curve) does not, however well it scores.

    Raises
    ------
    SegmentationError
        No circle is strong enough to start from.
    """
    strong = [c for c in circles if c.score >= HOUGH_MIN_SCORE]
    if not strong:
        raise SegmentationError(f"no circle with {HOUGH_MIN_SCORE:.0%} of its outline on edges")
    seeds = sorted(strong, key=lambda c: -c.score)[:TRACK_SEEDS]
    found = set(circles)
    chains = [track(circles, seed, grid, gap_mm) for seed in seeds]
    return max(chains, key=lambda chain: sum(c in found for c in chain))


def aorta_masks(grid: Grid, aorta: Aorta) -> tuple[np.ndarray, np.ndarray]:
    """Working-grid masks of the aorta (both chains and the root, wall included) and of its root.

    The root is the sinus portion under the lowest ascending circle, where the
    aorta enters the heart's silhouette and no edge is left to track it:
    ``ROOT_HEIGHT_MM`` deep, the tubular radius (the sinuses bulge past it,
    but a wider guess would swallow the coronary ostia), its centre
    continuing the ascending aorta's course.
    """
    vessel = np.zeros(grid.hu.shape, dtype=bool)
    for c in [*aorta.descending, *aorta.ascending]:
        vessel[c.k] |= circle_disc(grid.hu.shape[1:], c)
    root = np.zeros_like(vessel)
    for c in root_circles(grid, aorta.ascending):
        root[c.k] |= circle_disc(grid.hu.shape[1:], c)
    return vessel | root, root


def root_circles(grid: Grid, ascending: list[Circle]) -> list[Circle]:
    """Circles of the aortic root below the ascending chain (see :func:`aorta_masks`)."""
    low, high = ascending[0], ascending[min(3, len(ascending) - 1)]
    rise = max(high.k - low.k, 1)
    per_row, per_col = (high.row - low.row) / rise, (high.col - low.col) / rise
    depth = max(1, int(round(ROOT_HEIGHT_MM / grid.spacing[0])))
    return [Circle(low.k - step, low.row - per_row * step, low.col - per_col * step,
                   low.radius, low.score)
            for step in range(1, depth + 1) if low.k - step >= 0]


def segment_heart(grid: Grid, lungs: np.ndarray, hull: np.ndarray, bone: np.ndarray,
                  vessel: np.ndarray, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The heart region (pericardial contents) and its soft-tissue core, working grid.

    Soft tissue (above the fat window) inside the lungs' hull, outside lungs,
    bone and the aorta above the root, is opened with a disc of
    ``HEART_OPENING_MM`` (only the heart is that wide); the largest piece is
    the core (chambers and myocardium). The region is the core grown by
    ``PERICARDIAL_MARGIN_MM`` into what is not lung or bone, holes filled: it
    holds the epicardial fat and the coronary arteries in their grooves
    (Dey et al. 2010's pericardial region).

    Raises
    ------
    SegmentationError
        No soft tissue wide enough to be the heart.
    """
    cavity = hull & ~lungs & ~ndimage.binary_dilation(bone) & ~(vessel & ~root)
    tissue = cavity & (grid.hu > SOFT_TISSUE_MIN_HU)
    core = heart_core(_opened(tissue, grid, HEART_OPENING_MM), root, grid)
    core = _within(core, grid.spacing, HEART_REGROW_MM) & tissue
    if not core.any():
        wide = 2 * HEART_OPENING_MM
        raise SegmentationError(f"no soft tissue {wide:g} mm wide between the lungs")
    region = _within(core, grid.spacing, PERICARDIAL_MARGIN_MM) & (cavity | core)
    return np.asarray(ndimage.binary_fill_holes(region, structure=_IN_PLANE)), core


def heart_core(pieces: np.ndarray, root: np.ndarray, grid: Grid) -> np.ndarray:
    """The heart among wide soft-tissue pieces: the one >= ``MIN_HEART_ML`` nearest the root.

    The aortic root sits in the cardiac base, so the piece closest to it is
    the heart and not the liver dome under the diaphragm; without a root the
    largest piece is taken.
    """
    labels, sizes = _components(pieces)
    big = np.flatnonzero(sizes * grid.voxel_ml >= MIN_HEART_ML)
    if not len(big):
        return np.zeros_like(pieces)
    if not root.any() or len(big) == 1:
        return np.asarray(labels == big[np.argmax(sizes[big])])
    scale = np.asarray(grid.spacing)
    centre = np.argwhere(root).mean(axis=0) * scale
    points = np.argwhere(np.isin(labels, big))
    distance = np.linalg.norm(points * scale - centre, axis=1)
    nearest = np.full(len(sizes), np.inf)
    np.minimum.at(nearest, labels[tuple(points.T)], distance)
    return np.asarray(labels == int(np.argmin(nearest)))


def _opened(mask: np.ndarray, grid: Grid, mm: float) -> np.ndarray:
    """In-plane morphological opening with a disc of radius ``mm`` (by distance transforms)."""
    inner = _eroded(mask, grid.spacing, mm, in_plane=True)
    return _within(inner, grid.spacing, mm, in_plane=True) & mask


def segment_epicardial_fat(hu: np.ndarray, heart: np.ndarray) -> np.ndarray:
    """Fat (``FAT_HU``, Dey et al. 2010) inside the heart region, on the volume's grid."""
    out = np.zeros(heart.shape, dtype=bool)
    if heart.any():
        box = bounding_box(heart, [0, 0, 0])
        out[box] = heart[box] & (hu[box] >= FAT_HU[0]) & (hu[box] <= FAT_HU[1])
    return out


def bone_on(volume: Volume, near: np.ndarray) -> np.ndarray:
    """Voxels at or above ``CALCIUM_HU`` where the working-grid bone (grown a block) lies."""
    out = volume.hu >= CALCIUM_HU
    out &= near
    return out


def segment_blood_pool(grid: Grid, core: np.ndarray, vessel: np.ndarray) -> np.ndarray:
    """The heart's core and the aortic lumen, ``BLOOD_POOL_EROSION_MM`` away from their edges."""
    pool = (_eroded(core, grid.spacing, BLOOD_POOL_EROSION_MM)
            | _eroded(vessel, grid.spacing, AORTIC_WALL_MM, in_plane=True))
    if not pool.any():
        raise SegmentationError("heart and aorta too thin to hold a blood-pool sample")
    return pool


def heart_landmarks(core: np.ndarray, region: np.ndarray,
                    to_mm: Callable[[np.ndarray], np.ndarray]
                    ) -> dict[str, tuple[float, float, float]]:
    """Heart centre, long axis, apex and the atrioventricular-plane centre, LPS mm.

    The long axis is the first principal axis of the core's voxels (PCA),
    pointed so it runs anterior, left and inferior (base to apex). Along it
    the heart region spans from its base (the atrial roof) to the apex (1st
    and 99th percentiles); the AV plane, normal to the axis, lies
    ``AV_FRACTION`` of that span from the base. ``to_mm`` maps working-grid
    (k, row, column) rows to LPS mm.
    """
    points = to_mm(np.argwhere(core).astype(np.float64))
    centre = points.mean(axis=0)
    _, _, axes = np.linalg.svd(points - centre, full_matrices=False)
    axis = axes[0] if axes[0] @ np.array([1.0, -1.0, -1.0]) > 0 else -axes[0]
    along = (to_mm(np.argwhere(region).astype(np.float64)) - centre) @ axis
    base, apex = np.percentile(along, (1.0, 99.0))
    return {"heart_centre": _triple(centre), "long_axis": _triple(axis),
            "apex": _triple(centre + axis * float(along.max())),
            "av_plane_centre": _triple(centre + axis * float(base + AV_FRACTION * (apex - base)))}


def _triple(point: np.ndarray) -> tuple[float, float, float]:
    return float(point[0]), float(point[1]), float(point[2])


def grid_to_mm(volume: Volume, grid: Grid) -> Callable[[np.ndarray], np.ndarray]:
    """Working-grid (k, row, column) rows -> LPS mm through the volume's geometry."""
    factors = np.asarray(grid.factors, dtype=np.float64)

    def to_mm(kij: np.ndarray) -> np.ndarray:
        full = np.asarray(kij, dtype=np.float64).reshape(-1, 3) * factors + (factors - 1) / 2
        return volume.voxel_to_patient(full)

    return to_mm


METHODS = {
    "body": f"air/tissue threshold {BODY_HU:g} HU, largest component, holes filled "
            f"({HU_2001}); convex hull where the field of view cuts the chest",
    "lungs": f"iterative optimal threshold, components >= {MIN_LUNG_ML:g} ml ({HU_2001})",
    "bone": f">= {CALCIUM_HU:g} HU components >= {MIN_BONE_ML:g} ml with a cortical peak "
            f">= {CORTICAL_HU:g} HU, outside heart and aorta (project method)",
    "aorta": f"Hough circles {AORTA_RADII_MM[0]:g}-{AORTA_RADII_MM[1]:g} mm tracked "
             f"slice to slice ({KURKURE_2008})",
    "aortic_root": f"{ROOT_HEIGHT_MM:g} mm below the lowest ascending circle, "
                   "its radius, its centre continuing the ascending aorta's course",
    "heart": f"soft tissue between the lungs opened by {HEART_OPENING_MM:g} mm, grown by "
             f"{PERICARDIAL_MARGIN_MM:g} mm ({DEY_2010})",
    "epicardial_fat": f"{FAT_HU[0]:g}..{FAT_HU[1]:g} HU inside the heart region ({DEY_2010})",
    "blood_pool": f"heart core and aortic lumen eroded by {BLOOD_POOL_EROSION_MM:g} mm",
    "landmarks": "principal axis of the heart (long axis, apex); AV plane "
                 f"{AV_FRACTION:g} of the heart's length from its base",
}


def segment(volume: Volume) -> Anatomy:
    """Segment the thorax of ``volume`` (a non-contrast chest or cardiac CT).

    Returns an :class:`Anatomy` whose masks are on the volume's grid. Steps
    run in the order of the module docstring; a step that fails, or whose
    input failed, leaves an empty mask and a ``missing`` line saying why.
    Never raises for image content.
    """
    grid = working_grid(volume)
    to_mm = grid_to_mm(volume, grid)
    empty = np.zeros(grid.hu.shape, dtype=bool)
    missing: list[str] = []

    def attempt(step: str, run: Callable[[], np.ndarray], *needs: np.ndarray) -> np.ndarray:
        if any(not need.any() for need in needs):
            missing.append(f"{step}: not attempted, an earlier step failed")
            return empty
        try:
            return run()
        except SegmentationError as failure:
            missing.append(f"{step}: {failure}")
            log.info("anatomy step failed", extra={"step": step, "reason": str(failure)})
            return empty

    body = attempt("body", lambda: segment_body(grid))
    lungs = attempt("lungs", lambda: segment_lungs(grid, body), body)
    hull = slice_hulls(lungs)
    candidates = bone_candidates(grid)
    aorta = _aorta(grid, hull & ~lungs, candidates, to_mm, missing) if lungs.any() else None
    vessel, root = aorta_masks(grid, aorta) if aorta else (empty, empty)
    if aorta is None and lungs.any():
        missing.append("aortic_root: the ascending aorta was not found")
    elif aorta is None:
        missing += ["aorta: not attempted, an earlier step failed",
                    "aortic_root: not attempted, an earlier step failed"]
    cores: list[np.ndarray] = []
    heart = attempt("heart", lambda: _keep_core(segment_heart(
        grid, lungs, hull, candidates, vessel, root), cores), lungs)
    core = cores[0] if cores else empty
    bone = attempt("bone", lambda: segment_bone(grid, candidates, heart, vessel))
    pool = attempt("blood_pool", lambda: segment_blood_pool(grid, core, vessel), core)
    landmarks = _landmarks(core, heart, root, to_mm, missing)
    heart_full = to_full(grid, heart)
    return Anatomy(
        body=to_full(grid, body), lungs=to_full(grid, lungs),
        bone=bone_on(volume, to_full(grid, ndimage.binary_dilation(bone))),
        aorta=to_full(grid, vessel), aortic_root=to_full(grid, root), heart=heart_full,
        epicardial_fat=segment_epicardial_fat(volume.hu, heart_full),
        blood_pool=to_full(grid, pool), landmarks=landmarks,
        missing=missing + (["epicardial_fat: the heart was not found"] if not heart.any() else []),
        method=dict(METHODS))


def _keep_core(found: tuple[np.ndarray, np.ndarray], cores: list[np.ndarray]) -> np.ndarray:
    cores.append(found[1])
    return found[0]


def _aorta(grid: Grid, mediastinum: np.ndarray, candidates: np.ndarray,
           to_mm: Callable[[np.ndarray], np.ndarray], missing: list[str]) -> Aorta | None:
    try:
        middle = to_mm(np.argwhere(mediastinum).mean(axis=0))[0]
        return find_aorta(grid, aortic_circles(grid, mediastinum), candidates,
                          lambda k, r, c: to_mm(np.array([k, r, c]))[0], middle)
    except SegmentationError as failure:
        missing.append(f"aorta: {failure}")
        return None


def _landmarks(core: np.ndarray, heart: np.ndarray, root: np.ndarray,
               to_mm: Callable[[np.ndarray], np.ndarray], missing: list[str]
               ) -> dict[str, tuple[float, float, float]]:
    out: dict[str, tuple[float, float, float]] = {}
    if root.any():
        out["aortic_root"] = _triple(to_mm(np.argwhere(root).astype(np.float64)).mean(axis=0))
    else:
        missing.append("landmark aortic_root: no aortic root")
    if not core.any():
        missing.append("landmarks heart_centre, apex, long_axis, av_plane_centre: no heart")
        return out
    out.update(heart_landmarks(core, heart, to_mm))
    return out
