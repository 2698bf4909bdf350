"""The contrast-filled aorta, its root, the blood pool and the coronary ostia of a CTCA.

Steps, each a function of its own (positions LPS mm, masks on the volume's grid):

1. :func:`find_ascending`: the ascending aorta as a chain of Hough circles
   on the working grid, found and tracked by ``imaging_core.anatomy``
   (Kurkure U et al. Proc IEEE ISBI 2008:29-32; Avila-Montes OC et al. IEEE J
   Biomed Health Inform 2013;17:936-949); with contrast its lumen is the
   brightest round structure not over bone, and of the chains reaching the
   top slices the ascending aorta is the one furthest anterior and to the
   right (the descending aorta lies posterior by the spine). Its lumen HU is
   measured inside its circles. :func:`heart_crop` then cuts the volume to a
   box round the heart.
2. :func:`contrast_threshold`: half way between the aortic lumen and fat
   (a half-maximum edge, so a 1 mm radius lumen that partial volume dims
   still passes).
3. :func:`blood_pool`: the contrast above the threshold opened with a ball
   wider than any coronary lumen: aorta, chambers, great veins.
4. :func:`find_root`: the pool pieces on the aorta's axis near its lowest
   circle (the sinuses; some ventricle where the valve lets contrast through).
5. :func:`find_ostia`: pieces of contrast outside the pool (vessels) that
   reach within ``OSTIUM_REACH_MM`` of the root's lumen; the largest on
   each side is that side's coronary tree, its ostium the point of the root
   lumen next to where the piece comes nearest the aorta's axis. The left
   coronary leaves the left (posterior-left) sinus and the right coronary the
   right (anterior) sinus (Austen WG et al. Circulation 1975;51(4
   Suppl):5-40; Standring S, ed. Gray's Anatomy, 41st ed. 2016, ch. 57), so
   of two trees the one further to the patient's left is the left coronary,
   and a lone tree is placed by the side of the axis its ostium lies on.

Noise in enhanced myocardium (~120 HU) reaches the threshold now and then;
the image is smoothed by a Gaussian of ``SMOOTH_MM`` first so that speckle
cannot bridge a coronary to a chamber.

A side without such a piece has no ostium: the caller lists its arteries as
missing, never as healthy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from imaging_core.anatomy import (
    HOUGH_MIN_SCORE,
    Circle,
    Grid,
    aortic_circles,
    bone_candidates,
    bounding_box,
    circle_disc,
    grid_to_mm,
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
FAT_REFERENCE_HU = -100.0  # fat, inside Dey D et al. 2010's -190..-30 HU (value unverified)
# The lumen's edge at half the lumen-to-fat step: the full width at half maximum measures
# a blurred vessel's diameter (Varma JK, Subramanyan K, Durgan J. Full width at half
# maximum as a measure of vessel diameter in computed tomography angiography. Proc SPIE
# 2004;5372:447-454), and a 1 mm radius lumen dimmed by partial volume still passes.
HALF_MAXIMUM = 0.5
# No coronary lumen is wider than ~5 mm (Dodge JT et al. Circulation 1992;86:232-246:
# left main 4.5 mm); a ball of this radius fits in chambers and aorta, never in a coronary.
POOL_RADIUS_MM = 3.5
SMOOTH_MM = 0.5  # Gaussian sigma before thresholding: noise down, a 1 mm lumen kept
POOL_MARGIN_MM = 1.5  # the pool's blurred edge (partial volume, ~1 mm) and the coarse grid's step
POOL_FACTOR = 2  # the pool is coarse: found on every other voxel (project choice)
# The coronary lumen starts outside the aortic wall (~2 mm) and the pool margin.
OSTIUM_REACH_MM = 5.0
ROOT_BELOW_MM = 21.0  # the sinus portion below the tubular aorta (~2 cm, as anatomy.py)
ROOT_RADIUS_GAIN = 1.5  # the sinuses bulge past the tubular radius (project choice)
MAX_TREE_MM3 = 10000.0  # a coronary tree's lumen is a few ml; more is a leak (project choice)
MIN_TREE_MM3 = 40.0  # a coronary tree holds more than ~1 cm of 1 mm radius lumen
WALL_SHELL_MM = 2.0  # the aortic wall, ~2 mm (as anatomy.AORTIC_WALL_MM; unverified)
HUG_MM = 4.0  # a piece mostly this close to the aorta's outline is a sliver of its lumen
SUBSAMPLE = 7  # every 7th voxel of a piece is enough to place it
NEAR_AXIS_MM = 5.0  # the part of a tree round its nearest approach to the aortic axis
FIRST_SECTION_MM = 0.75  # depth of the first cross-section read for the ostium (a voxel)
BONE_SHARE = 0.2  # a circle this much over bone is not the aorta (as anatomy.find_aorta)
MIN_CHAIN = 3  # circles in the ascending aorta's chain (9 mm of 3 mm working slices)
# Left of the root: patient left (LPS +x). Of two trees the one further left is the left
# coronary (left sinus left-posterior, right sinus anterior-right); a lone tree is
# placed by the side of the aortic axis its ostium lies on. Project choice.
LEFT_OF_ROOT = np.array([1.0, 0.0, 0.0])
# Where the coronary arteries can lie, LPS mm from the lowest ascending circle (x right to
# left, y anterior to posterior, z inferior to superior): the heart is ~12 cm from base to
# apex (Standring S, ed. Gray's Anatomy, 41st ed. 2016, ch. 57) and its apex lies left,
# anterior and inferior of the root. The margins are this project's, generous.
HEART_BOX_MM = ((-60.0, 110.0), (-90.0, 70.0), (-150.0, 30.0))
MIN_REACH_MM = 20.0  # a coronary tree runs at least this far from its ostium (project choice)


@dataclass(frozen=True)
class AorticRoot:
    """The aortic lumen round the root: ``lumen`` bool mask (volume grid), ``lumen_hu``.

    ``axis`` (n, 3) LPS mm runs down the ascending aorta's centres and on
    below them (every ~1 mm); ``ascending`` (n, 3) are the tracked centres,
    LPS mm, from the root up; ``radius_mm`` the tubular lumen radius.
    """

    axis: np.ndarray
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


@dataclass(frozen=True)
class Ascending:
    """The tracked ascending aorta: circle centres (n, 3) LPS mm from the lowest up,
    the tubular lumen radius (mm), the lumen's median HU, and the chain of working-grid
    circles behind the centres (``anatomy.Circle``, lowest first)."""

    centres: np.ndarray
    radius_mm: float
    lumen_hu: float
    chain: tuple[Circle, ...] = ()


def find_ascending(volume: Volume, floor_hu: float = BRIGHT_HU,
                   grid: Grid | None = None) -> Ascending:
    """The ascending aorta, on the working grid (step 1): the one finder of the CTCA.

    Circles are searched where the working grid is above ``floor_hu``:
    ``BRIGHT_HU`` (contrast) for the lumen steps; QA (``qa.check``) also
    passes a soft-tissue floor so that an unenhanced aorta is found and its
    HU measured. ``grid`` is ``working_grid(volume)`` when the caller has it.

    Raises
    ------
    SegmentationError
        No circle chain runs from the top of the volume.
    """
    grid = working_grid(volume) if grid is None else grid
    to_mm = grid_to_mm(volume, grid)
    chain = ascending_chain(grid, to_mm, floor_hu)
    centres = to_mm(np.array([[c.k, c.row, c.col] for c in chain], dtype=np.float64))
    radius = float(np.median([c.radius for c in chain])) * grid.spacing[2]
    lumen_hu = float(np.median(np.concatenate([_disc_hu(grid, c) for c in chain])))
    return Ascending(centres, radius, lumen_hu, tuple(chain))


def find_root(volume: Volume, ascending: Ascending, pool: np.ndarray) -> AorticRoot:
    """The aortic lumen round the root: pool pieces on the aorta's axis (step 1).

    The pieces of the pool met by the ascending aorta's axis, carried half
    ``ROOT_BELOW_MM`` on below its lowest circle along its course (to the
    sinus level), kept within ``ROOT_RADIUS_GAIN`` radii plus
    ``ROOT_BELOW_MM`` of that circle. Where contrast runs on through the
    valve the lumen holds some ventricle too; the ostia are placed against
    the axis, so that does no harm.

    Raises
    ------
    SegmentationError
        No contrast on the aorta's axis.
    """
    labels, _ = ndimage.label(pool)
    axis = _axis_points(ascending)
    hit = np.unique(labels[_on_voxels(volume, axis)])
    hit = hit[hit > 0]
    if not len(hit):
        raise SegmentationError("no contrast on the ascending aorta's axis")
    low = ascending.centres[0]
    reach = ROOT_RADIUS_GAIN * ascending.radius_mm + ROOT_BELOW_MM
    box = box_around(volume, low, reach)
    lumen = np.zeros(volume.shape, dtype=bool)
    lumen[box] = np.isin(labels[box], hit) & ball_in(volume, box, low, reach)
    return AorticRoot(axis, lumen, ascending.lumen_hu, ascending.centres, ascending.radius_mm)


def _axis_points(ascending: Ascending) -> np.ndarray:
    """The ascending centres and their course carried ``ROOT_BELOW_MM`` down, every 1 mm."""
    low = ascending.centres[0]
    course = ascending.centres[min(3, len(ascending.centres) - 1)] - low
    course = course / max(float(np.linalg.norm(course)), 1e-6)
    down = low - np.arange(0.0, ROOT_BELOW_MM / 2, 1.0)[:, None] * course
    up = [np.linspace(a, b, max(2, int(np.linalg.norm(b - a)) + 1))
          for a, b in zip(ascending.centres[:-1], ascending.centres[1:], strict=True)]
    return np.concatenate([*up, down])


def _on_voxels(volume: Volume, points_mm: np.ndarray) -> tuple[np.ndarray, ...]:
    """Index arrays of the voxels nearest to points (those inside the volume)."""
    voxels = np.round(volume.patient_to_voxel(points_mm)).astype(int)
    inside = np.all((voxels >= 0) & (voxels < np.array(volume.shape)), axis=1)
    return tuple(voxels[inside].T)


def ascending_chain(grid: Grid, to_mm: Callable[[np.ndarray], np.ndarray],
                    floor_hu: float = BRIGHT_HU) -> list[Circle]:
    """The ascending aorta: of the circle chains reaching the top slices, the most anterior-right.

    A CTCA covers the heart from above the root (SCCT 2016, Abbara et al.,
    scan range from the tracheal carina), so both aortas cross its top
    slices; the ascending one lies anterior and to the right of the
    descending one (LPS: smallest x + y). Circles are searched above
    ``floor_hu``; those over bone (the sternum is as round and as bright) are
    left out as ``anatomy.find_aorta`` does.

    Raises
    ------
    SegmentationError
        No chain of ``MIN_CHAIN`` circles reaches the top slices.
    """
    bone = bone_candidates(grid)
    circles = [c for c in aortic_circles(grid, grid.hu > floor_hu)
               if bone[c.k][circle_disc(grid.hu.shape[1:], c)].mean() < BONE_SHARE]
    top = grid.hu.shape[0] - 1
    seeds = [c for c in circles if c.k >= top - 1 and c.score >= HOUGH_MIN_SCORE]
    found = set(circles)
    chains = [confirmed_descent(track(circles, seed, grid), found) for seed in seeds]
    chains = [c for c in chains if len(c) >= MIN_CHAIN]
    if not chains:
        raise SegmentationError("no aortic circle chain reaches the top of the volume")

    def anterior_right(chain: list[Circle]) -> float:
        points = to_mm(np.array([[c.k, c.row, c.col] for c in chain], dtype=np.float64))
        return float(points[:, 0].mean() + points[:, 1].mean())

    return min(chains, key=anterior_right)


def confirmed_descent(chain: list[Circle], found: set[Circle]) -> list[Circle]:
    """``chain`` (lowest first) cut below its first unconfirmed bridge, going down.

    ``anatomy.track`` carries the last circle over a gap of up to
    ``AORTA_GAP_MM`` (wall calcium, a contact), so that the tube goes on past
    it. The ascending aorta ends at the aortic valve, below its ~2 cm root
    (``ROOT_BELOW_MM``): a gap there is the end of the tube, and a stray
    circle within the gap's reach (noise in the root's trefoil, a chamber
    below the valve) would carry the chain down into the left ventricle, and
    every step anchored on the lowest circle (heart crop, root, ostia) with
    it. Going down from the top, a bridge is therefore kept only when at
    least ``MIN_CHAIN`` circles found in consecutive slices (``found``, not
    carried over) follow it: the tube resumes (project rule, unverified).
    """
    down = chain[::-1]
    kept: list[Circle] = []
    i = 0
    while i < len(down):
        j = i
        while j < len(down) and down[j] not in found:  # a bridged stretch (or none)
            j += 1
        run = j
        while run < len(down) and down[run] in found:
            run += 1
        if i > 0 and j > i and run - j < MIN_CHAIN:
            break
        kept += down[i:run]
        i = run
    return sorted(kept, key=lambda c: c.k)


def _disc_hu(grid: Grid, circle: Circle) -> np.ndarray:
    """Working-grid HU inside 0.6 of a circle's radius (its lumen, away from the wall)."""
    return np.asarray(grid.hu[circle.k][circle_disc(grid.hu.shape[1:], circle, 0.6)])


def _to_voxel(volume: Volume, point_mm: np.ndarray) -> np.ndarray:
    return np.asarray(volume.patient_to_voxel(point_mm)[0])


def box_around(volume: Volume, point_mm: np.ndarray, reach_mm: float
               ) -> tuple[slice, slice, slice]:
    """The voxel box within ``reach_mm`` of a point in every axis (clipped to the volume)."""
    centre = _to_voxel(volume, point_mm)
    half = np.ceil(reach_mm / np.asarray(volume.spacing)).astype(int)
    lo = np.clip(np.floor(centre).astype(int) - half, 0, np.array(volume.shape))
    hi = np.clip(np.ceil(centre).astype(int) + half + 1, 0, np.array(volume.shape))
    return (slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1])),
            slice(int(lo[2]), int(hi[2])))


def ball_in(volume: Volume, box: tuple[slice, slice, slice], point_mm: np.ndarray,
            reach_mm: float) -> np.ndarray:
    """Voxels of ``box`` within ``reach_mm`` of a point (bool, box-shaped).

    Distances are taken on the nominal spacing (a gap the volume's QA
    reports is not honoured here; a few tenths of a mm at most).
    """
    centre = _to_voxel(volume, point_mm)
    axes = [((np.arange(b.start, b.stop) - c) * h) ** 2
            for b, c, h in zip(box, centre, volume.spacing, strict=True)]
    return np.asarray(axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :]
                      <= reach_mm ** 2)


def contrast_mask(volume: Volume, threshold: float) -> np.ndarray:
    """Voxels above ``threshold`` after a Gaussian of ``SMOOTH_MM`` (bool, volume grid)."""
    sigma = [SMOOTH_MM / s for s in volume.spacing]
    smooth = ndimage.gaussian_filter(volume.hu.astype(np.float32), sigma)
    return np.asarray(smooth > threshold)


def blood_pool(contrast: np.ndarray, spacing: tuple[float, float, float]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Contrast opened with a ball of ``POOL_RADIUS_MM``, and that grown by ``POOL_MARGIN_MM``.

    Aorta, chambers and great vessels; never a coronary (narrower than the
    ball). Found on every ``POOL_FACTOR``-th voxel (the pool is coarse) and
    brought back to the volume's grid: (pool, pool with its margin).
    """
    f = POOL_FACTOR
    sampling = [s * f for s in spacing]
    pad = [int(np.ceil(2 * POOL_RADIUS_MM / s)) + 1 for s in sampling]
    inner = tuple(slice(p, -p) for p in pad)
    # A vessel the field of view cuts (the descending aorta at the image's edge) runs
    # on outside it: the edge is carried outwards so the ball still fits there.
    coarse = np.pad(contrast[::f, ::f, ::f], [(p, p) for p in pad], mode="edge")
    core = ndimage.distance_transform_edt(coarse, sampling=sampling) > POOL_RADIUS_MM
    if not core.any():
        return np.zeros_like(contrast), np.zeros_like(contrast)
    distance = ndimage.distance_transform_edt(~core, sampling=sampling)[inner]
    return (_upsampled(distance <= POOL_RADIUS_MM, contrast.shape) & contrast,
            _upsampled(distance <= POOL_RADIUS_MM + POOL_MARGIN_MM, contrast.shape))


def _upsampled(coarse: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    f = POOL_FACTOR
    full = np.repeat(np.repeat(np.repeat(coarse, f, 0), f, 1), f, 2)
    return np.asarray(full[:shape[0], :shape[1], :shape[2]])


def find_ostia(volume: Volume, root: AorticRoot, vessels: np.ndarray) -> dict[str, Ostium]:
    """The left and right coronary trees among the vessel pieces near the root (step 4).

    ``vessels`` is contrast outside the blood pool (bool, volume grid). A
    shell ``WALL_SHELL_MM`` round the root's lumen is taken out first: the
    blurred aortic wall between two bright lumens reaches the threshold and
    would join a coronary to the root along its wall. Pieces that then come
    within ``OSTIUM_REACH_MM`` of the root, run ``MIN_REACH_MM`` from it, lie
    mostly more than ``HUG_MM`` outside the aorta (not a sliver of it) and
    hold ``MIN_TREE_MM3`` to ``MAX_TREE_MM3`` (more is a leak) are coronary
    trees. A side absent from the answer has no ostium.
    """
    margin = max(OSTIUM_REACH_MM, HUG_MM) + 1.0
    box = bounding_box(root.lumen, [int(np.ceil(margin / h)) for h in volume.spacing])
    distance = ndimage.distance_transform_edt(~root.lumen[box], sampling=volume.spacing)
    cut = vessels.copy()
    cut[box] &= distance > WALL_SHELL_MM
    labels, _ = ndimage.label(cut, structure=np.ones((3, 3, 3), dtype=bool))
    objects = ndimage.find_objects(labels)
    sizes = np.bincount(labels.ravel()) * float(np.prod(volume.spacing))
    found = []
    for label in np.unique(labels[box][(distance <= OSTIUM_REACH_MM) & (labels[box] > 0)]):
        where = objects[label - 1]
        voxels = np.argwhere(labels[where] == label)[::SUBSAMPLE] + [w.start for w in where]
        points = volume.voxel_to_patient(voxels)
        if not MIN_TREE_MM3 <= sizes[label] <= MAX_TREE_MM3 or _hugs(points, root):
            continue
        ostium = _ostium(volume, root, labels[box] == label, distance, box)
        if np.linalg.norm(points - ostium, axis=1).max() >= MIN_REACH_MM:
            found.append((float(sizes[label]), ostium, int(label)))
    return _sides(found, root.axis, labels)


def _hugs(points: np.ndarray, root: AorticRoot) -> bool:
    """Whether half the piece's points or more lie within ``HUG_MM`` of the aorta's outline.

    A sliver of aortic lumen (what the ball of the pool did not fit into)
    stays round the aorta's axis; a coronary tree runs away from it.
    """
    from_axis = cKDTree(root.axis).query(points)[0]
    return bool(np.mean(from_axis <= root.radius_mm + HUG_MM) >= 0.5)


def _ostium(volume: Volume, root: AorticRoot, piece: np.ndarray, distance: np.ndarray,
            box: tuple[slice, ...]) -> np.ndarray:
    """Where the piece's first cross-section past the shell, carried to the root, meets it.

    A coronary tree comes nearest the aortic axis at its ostium (the
    arteries run away from the root), so only the piece's voxels within
    ``NEAR_AXIS_MM`` of its nearest approach to the axis are read. Of those,
    the centroid of the ones within ``FIRST_SECTION_MM`` of the shell is
    carried to the root lumen's nearest voxel: where lumen meets lumen, LPS mm.
    """
    corner = np.array([b.start for b in box])
    where = np.argwhere(piece)
    from_axis = cKDTree(root.axis).query(volume.voxel_to_patient(where + corner))[0]
    where = where[from_axis <= from_axis.min() + NEAR_AXIS_MM]
    depth = distance[tuple(where.T)]
    first = where[depth <= depth.min() + FIRST_SECTION_MM]
    centre = volume.voxel_to_patient(first.mean(axis=0)[None] + corner)[0]
    local = box_around(volume, centre, float(depth.min()) + 2.0)
    wall = np.argwhere(root.lumen[local]) + [b.start for b in local]
    wall_mm = volume.voxel_to_patient(wall)
    return np.asarray(wall_mm[np.argmin(np.linalg.norm(wall_mm - centre, axis=1))])


def _sides(found: list[tuple[float, np.ndarray, int]], axis: np.ndarray,
           labels: np.ndarray) -> dict[str, Ostium]:
    """The largest piece each side of the root; with two pieces, the lefter one is left.

    A piece's side is where its ostium lies from the nearest point of the
    aortic axis (``LEFT_OF_ROOT``).
    """
    biggest = sorted(found, key=lambda f: -f[0])
    score = {f[2]: float((f[1] - axis[int(cKDTree(axis).query(f[1])[1])]) @ LEFT_OF_ROOT)
             for f in biggest}
    out: dict[str, Ostium] = {}
    left = [f for f in biggest if score[f[2]] > 0]
    right = [f for f in biggest if score[f[2]] <= 0]
    if len(biggest) >= 2:  # two trees: the one further left is the left coronary
        pair = sorted(biggest[:2], key=lambda f: score[f[2]])
        right, left = [pair[0]], [pair[1]]
    for side, pieces in (("left", left), ("right", right)):
        if pieces:
            _, point, label = pieces[0]
            out[side] = Ostium(side, point, np.asarray(labels == label))
    return out


def heart_crop(volume: Volume, ascending: Ascending) -> Volume:
    """``volume`` cut to ``HEART_BOX_MM`` round the root (the coronaries lie inside it).

    The box is taken in patient axes round the lowest ascending circle and
    mapped to voxel indices (clipped to the volume); positions in mm are
    unchanged, so centrelines found in the crop need no conversion.
    """
    low = ascending.centres[0]
    corners = np.array(np.meshgrid(*HEART_BOX_MM, indexing="ij")).reshape(3, -1).T + low
    voxels = volume.patient_to_voxel(corners)
    lo = np.clip(np.floor(voxels.min(axis=0)).astype(int), 0, np.array(volume.shape))
    hi = np.clip(np.ceil(voxels.max(axis=0)).astype(int) + 1, 0, np.array(volume.shape))
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    if all(b.stop - b.start == n for b, n in zip(box, volume.shape, strict=True)):
        return volume
    origin = volume.voxel_to_patient(lo[None].astype(np.float64))[0]
    positions = volume.slice_positions[box[0]]
    return replace(volume, hu=volume.hu[box], padding=volume.padding[box], origin=origin,
                   slice_positions=positions - positions[0])
