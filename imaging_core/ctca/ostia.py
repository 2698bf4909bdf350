"""The contrast-filled aorta, its root, the blood pool and the coronary ostia of a CTCA.

Steps, each a function of its own (positions LPS mm, masks on the volume's grid):

1. :func:`find_root`: the ascending aorta as a chain of Hough circles on the
   working grid, found and tracked by ``imaging_core.anatomy`` (Kurkure U et
   al. Proc IEEE ISBI 2008:29-32; Avila-Montes OC et al. IEEE J Biomed Health
   Inform 2013;17:936-949); with contrast its lumen is the brightest round
   structure, and of the chains the ascending aorta is the one furthest
   anterior and to the right (the descending aorta lies posterior by the
   spine). Its lowest circle is the root level; the root's lumen HU is
   measured inside its circles.
2. :func:`contrast_threshold`: half way between the root's lumen and fat
   (a half-maximum edge, so a 1 mm radius lumen that partial volume dims
   still passes).
3. :func:`blood_pool`: the contrast above the threshold opened with a ball
   wider than any coronary lumen: aorta, chambers, great veins.
4. :func:`find_ostia`: pieces of contrast outside the pool (vessels) that
   reach within ``OSTIUM_REACH_MM`` of the root's lumen; the largest on
   each side is that side's coronary tree, its ostium the point between the
   piece and the root lumen where they come closest. The left coronary
   leaves the left (posterior-left) sinus and the right coronary the right
   (anterior) sinus (Austen WG et al. Circulation 1975;51(4 Suppl):5-40;
   Standring S, ed. Gray's Anatomy, 41st ed. 2016, ch. 57), so the side is
   the piece's ostium position relative to the root's centre.

A side without such a piece has no ostium: the caller lists its arteries as
missing, never as healthy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from imaging_core.anatomy import (
    HOUGH_MIN_SCORE,
    Circle,
    Grid,
    _mm_of,
    aortic_circles,
    track,
    working_grid,
)
from imaging_core.errors import SegmentationError
from imaging_core.volume import Volume

# Enhanced blood: CTCA aims at >= 250-300 HU in the coronary lumen (SCCT guidelines,
# Abbara S et al. J Cardiovasc Comput Tomogr 2016;10:435-449, section on contrast);
# anything above 150 HU on the working grid is searched for the aorta. The 150 is this
# project's choice (above unenhanced blood and myocardium, ~40 HU), unverified.
BRIGHT_HU = 150.0
FAT_REFERENCE_HU = -100.0  # mid epicardial fat (Dey D et al. 2010 window -190..-30 HU)
HALF_MAXIMUM = 0.5  # lumen edge at half the lumen-to-fat step (half maximum; see lumen.py)
# No coronary lumen is wider than ~5 mm (Dodge JT et al. Circulation 1992;86:232-246:
# left main 4.5 mm); a ball of this radius fits in chambers and aorta, never in a coronary.
POOL_RADIUS_MM = 3.5
POOL_MARGIN_MM = 1.0  # the pool's blurred edge (partial volume) is not vessel
POOL_FACTOR = 2  # the pool is coarse: found on every other voxel (project choice)
# The coronary lumen starts outside the aortic wall (~2 mm) and the pool margin.
OSTIUM_REACH_MM = 5.0
ROOT_BELOW_MM = 21.0  # the sinus portion below the tubular aorta (~2 cm, as anatomy.py)
ROOT_RADIUS_GAIN = 1.5  # the sinuses bulge past the tubular radius (project choice)
MIN_TREE_MM3 = 40.0  # a coronary tree holds more than ~1 cm of 1 mm radius lumen
MIN_CHAIN = 3  # circles in the ascending aorta's chain (9 mm of 3 mm working slices)
# Left of the root: patient left, turned a little posterior, so the left ostium (left
# sinus, left-posterior) scores above the right (right sinus, anterior). Project choice.
LEFT_OF_ROOT = np.array([1.0, 0.4, 0.0]) / np.hypot(1.0, 0.4)


@dataclass(frozen=True)
class AorticRoot:
    """The root: ``centre`` (3,) LPS mm, ``lumen`` bool mask (volume grid), ``lumen_hu``.

    ``ascending`` (n, 3) are the centres of the tracked ascending aorta, LPS mm,
    from the root up; ``radius_mm`` its tubular lumen radius.
    """

    centre: np.ndarray
    lumen: np.ndarray
    lumen_hu: float
    ascending: np.ndarray
    radius_mm: float


@dataclass(frozen=True)
class Ostium:
    """A coronary ostium: ``point`` (3,) LPS mm and the tree's lumen mask (volume grid)."""

    side: str
    point: np.ndarray
    tree: np.ndarray


def contrast_threshold(lumen_hu: float) -> float:
    """HU half way from fat to the measured lumen (the half-maximum edge).

    Raises
    ------
    SegmentationError
        The lumen is not brighter than ``BRIGHT_HU``: no contrast to follow.
    """
    if lumen_hu < BRIGHT_HU:
        raise SegmentationError(f"aortic lumen {lumen_hu:.0f} HU: no contrast above "
                                f"{BRIGHT_HU:g} HU")
    return FAT_REFERENCE_HU + HALF_MAXIMUM * (lumen_hu - FAT_REFERENCE_HU)


def find_root(volume: Volume) -> AorticRoot:
    """The ascending aorta and its root in a contrast-enhanced volume (module steps 1).

    Raises
    ------
    SegmentationError
        No bright circle chain runs from the top of the volume (no ascending
        aorta), or its lumen holds no contrast.
    """
    grid = working_grid(volume)
    to_mm = _mm_of(volume, grid)
    chain = ascending_chain(grid, to_mm)
    centres = to_mm(np.array([[c.k, c.row, c.col] for c in chain], dtype=np.float64))
    radius = float(np.median([c.radius for c in chain])) * grid.spacing[2]
    lumen_hu = float(np.median(np.concatenate([_disc_hu(grid, c) for c in chain])))
    threshold = contrast_threshold(lumen_hu)
    lumen = root_lumen(volume, centres, radius, threshold)
    if not lumen.any():
        raise SegmentationError("no contrast-filled root below the ascending aorta")
    centre = volume.voxel_to_patient(np.argwhere(lumen).mean(axis=0)[None])[0]
    return AorticRoot(centre, lumen, lumen_hu, centres, radius)


def ascending_chain(grid: Grid, to_mm: Callable[[np.ndarray], np.ndarray]) -> list[Circle]:
    """The ascending aorta: of the circle chains reaching the top slices, the most anterior-right.

    A CTCA covers the heart from above the root (SCCT 2016, Abbara et al.,
    scan range from the tracheal carina), so both aortas cross its top
    slices; the ascending one lies anterior and to the right of the
    descending one (LPS: smallest x + y).

    Raises
    ------
    SegmentationError
        No chain of ``MIN_CHAIN`` circles reaches the top slices.
    """
    circles = aortic_circles(grid, grid.hu > BRIGHT_HU)
    top = grid.hu.shape[0] - 1
    seeds = [c for c in circles if c.k >= top - 1 and c.score >= HOUGH_MIN_SCORE]
    chains = [track(circles, seed, grid) for seed in seeds]
    chains = [c for c in chains if len(c) >= MIN_CHAIN]
    if not chains:
        raise SegmentationError("no aortic circle chain reaches the top of the volume")

    def anterior_right(chain: list[Circle]) -> float:
        points = to_mm(np.array([[c.k, c.row, c.col] for c in chain], dtype=np.float64))
        return float(points[:, 0].mean() + points[:, 1].mean())

    return min(chains, key=anterior_right)


def _disc_hu(grid: Grid, circle: Circle) -> np.ndarray:
    """Working-grid HU inside 0.6 of a circle's radius (its lumen, away from the wall)."""
    rows, cols = np.ogrid[:grid.hu.shape[1], :grid.hu.shape[2]]
    inside = (rows - circle.row) ** 2 + (cols - circle.col) ** 2 <= (0.6 * circle.radius) ** 2
    return np.asarray(grid.hu[circle.k][inside])


def root_lumen(volume: Volume, ascending: np.ndarray, radius_mm: float,
               threshold: float) -> np.ndarray:
    """Contrast below the lowest ascending circle: the sinus portion's lumen (volume grid).

    Voxels above ``threshold`` within ``ROOT_RADIUS_GAIN`` radii of the
    ascending aorta's axis carried ``ROOT_BELOW_MM`` down, connected to the
    lowest circle's centre.
    """
    low = ascending[0]
    course = ascending[min(3, len(ascending) - 1)] - low
    course = course / max(float(np.linalg.norm(course)), 1e-6)
    reach = ROOT_RADIUS_GAIN * radius_mm + ROOT_BELOW_MM
    box, points = box_around(volume, low, reach)
    offset = points - low
    along = offset @ course
    across = np.linalg.norm(offset - along[..., None] * course, axis=-1)
    near = (along <= 0) & (along >= -ROOT_BELOW_MM) & (across <= ROOT_RADIUS_GAIN * radius_mm)
    bright = (volume.hu[box] > threshold) & (near | (np.linalg.norm(offset, axis=-1) <= radius_mm))
    labels, _ = ndimage.label(bright)
    seed = labels[tuple(np.clip(np.round(_to_voxel(volume, low) - [b.start for b in box]),
                                0, np.array(labels.shape) - 1).astype(int))]
    out = np.zeros(volume.shape, dtype=bool)
    if seed:
        out[box] = (labels == seed) & near
    return out


def to_voxel(volume: Volume, points_mm: np.ndarray) -> np.ndarray:
    """Fractional (z, y, x) voxel indices of LPS mm points (n, 3): voxel_to_patient inverted."""
    uvw = (np.asarray(points_mm, dtype=np.float64).reshape(-1, 3) - volume.origin) \
        @ volume.orientation.T
    z = np.interp(uvw[:, 2], volume.slice_positions, np.arange(volume.shape[0]),
                  left=np.nan, right=np.nan)
    outside = ~np.isfinite(z)
    z[outside] = uvw[outside, 2] / volume.spacing[0]
    return np.stack([z, uvw[:, 1] / volume.spacing[1], uvw[:, 0] / volume.spacing[2]], axis=1)


def _to_voxel(volume: Volume, point_mm: np.ndarray) -> np.ndarray:
    return np.asarray(to_voxel(volume, point_mm)[0])


def box_around(volume: Volume, point_mm: np.ndarray, reach_mm: float
               ) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """Voxel box within ``reach_mm`` of a point (clipped) and its voxels' LPS mm, (z, y, x, 3)."""
    centre = _to_voxel(volume, point_mm)
    half = np.ceil(reach_mm / np.asarray(volume.spacing)).astype(int)
    lo = np.clip(np.floor(centre).astype(int) - half, 0, np.array(volume.shape))
    hi = np.clip(np.ceil(centre).astype(int) + half + 1, 0, np.array(volume.shape))
    box = (slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1])),
           slice(int(lo[2]), int(hi[2])))
    grid = np.stack(np.meshgrid(*[np.arange(b.start, b.stop) for b in box], indexing="ij"), -1)
    points = volume.voxel_to_patient(grid.reshape(-1, 3)).reshape(*grid.shape[:3], 3)
    return box, points
