"""A whole-thorax CT phantom with coronary plaques and their expected scores from geometry.

Patient supine, head first, axial slices in DICOM patient coordinates (LPS:
+x patient left, +y posterior, +z superior), the image centred on x = y = 0.
Structures are analytic shapes painted in order onto a label map (later
shapes cover earlier ones), then mapped to HU:

- chest wall: skin and subcutaneous fat, a muscle layer, the thoracic cavity
  filled with lung; mediastinal fat between the lungs; the trachea and the
  main bronchi from the carina;
- bone: ribs every ``RIB_PITCH_MM`` (cortical rim, cancellous core) running
  round the chest wall and descending anteriorly, the sternum in the anterior
  midline, a vertebral body (cortex, cancellous bone, discs) with its
  posterior arch round the spinal canal;
- the descending aorta left-anterior of the spine, the ascending aorta
  anterior-right rising from the aortic root, whose three sinuses sit at the
  heart's base; the liver dome under the right hemidiaphragm;
- the heart: a half-ellipsoid of ventricles from the atrioventricular (AV)
  plane to the apex and a half-ellipsoid of atria above it, its long axis
  pointing anterior, left and inferior; pericardium, a layer of epicardial
  fat, myocardium, four chambers split by the septa and the AV plane;
- coronary arteries (soft-tissue tubes) in fat-filled grooves: LM from the
  left coronary sinus to its split into the LAD (anterior interventricular
  groove to the apex) and the LCX (left AV groove, round to the back); the
  RCA from the right coronary sinus round the right AV groove to the crux
  and down the inferior interventricular groove;
- calcium: coronary plaques (ellipsoids on an artery's centreline), and the
  non-coronary kind a calcium-scoring CT also shows (aortic wall plaques,
  aortic valve nodules, mitral annulus calcification).

Sizes follow adult anatomy:

- heart about 12 cm from base to apex and 9 cm across (Standring S, ed.
  Gray's Anatomy, 41st ed., Elsevier 2016, chapter 57, gives about 12 x 8-9
  x 6 cm; the 9 cm depth is the issue's specification, a rounder heart);
- ascending aorta 32 mm and descending aorta 25 mm across (Hager A et al.
  Diameters of the thoracic aorta throughout life as measured with helical
  CT. J Thorac Cardiovasc Surg 2002;123:1060-1066: adult means about 3.2
  and 2.5 cm);
- coronary arteries: LM 4.4 mm, LAD, LCX and RCA 3.5 mm across (Dodge JT et
  al. Lumen diameter of normal human coronary arteries. Circulation
  1992;86:232-246: proximal lumens 3.4-4.5 mm);
- courses after the AHA segment model (Austen WG et al. A reporting system
  on patients evaluated for coronary artery disease. Circulation
  1975;51:5-40): LM from the left coronary sinus to its bifurcation, LAD in
  the anterior interventricular groove, LCX in the left AV groove, RCA in
  the right AV groove to the crux and on as the posterior descending artery
  in the inferior interventricular groove (right dominance);
- ribs every 25 mm along z and vertebrae every 28 mm with 6 mm discs:
  approximate adult values, unverified against one source.

Tissue HU are phantom design values inside the usual unenhanced ranges (fat
-100, soft tissue and blood 40, lung -850, air -1000; cortical bone 800 and
cancellous bone 250 per the issue's ranges); the enhanced blood pool is 300
HU. Metal streaks are a caricature of the alternating bright and dark
streaks of beam hardening and photon starvation (Barrett JF, Keat N.
Artifacts in CT: recognition and avoidance. RadioGraphics 2004;24:1679-1691):
a cosine in angle round the metal, fading with distance.

Each voxel takes the value of the last shape containing its centre; there is
no partial-volume blur, so the truth below is exact. **Truth** per plaque
comes from the plaque's own mask, never from ``imaging_core``: per slice the
8-connected regions of the mask, kept when their area is >= 1 mm^2, weighted
by the plaque's HU (Agatston 1990), summed over slices and scaled by
increment / 3 mm as the scorer documents. Plaque HU are kept at least five
noise sigmas from 130/200/300/400 HU, tissue stays below 130 HU by far more,
and ``build`` asserts every coronary plaque is apart from all other calcium,
so noise cannot move the truth. Non-coronary calcium contributes 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
from pydicom.dataset import Dataset
from scipy import ndimage

from tests.imaging_core.phantoms import Phantom, agatston_weight, series

_Inside = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

ARTERIES = ("LM", "LAD", "LCX", "RCA")
THRESHOLD_HU = 130.0  # Agatston 1990 lesion threshold
MIN_AREA_MM2 = 1.0  # Agatston 1990 minimum lesion area
WEIGHT_BOUNDS_HU = (130.0, 200.0, 300.0, 400.0)  # Agatston 1990 density-weight bounds
REFERENCE_INCREMENT_MM = 3.0  # Agatston 1990 slice spacing (the scorer's increment / 3 rule)
RIB_PITCH_MM = 25.0  # rib plus intercostal space along z, adult
PLAQUE_MARGIN_SIGMA = 5.0  # plaque HU at least this many noise sigmas from a weight bound

# Labels of the painted map, and their HU without contrast.
AIR, SUBCUT_FAT, MUSCLE, LUNG, MEDIASTINAL_FAT, LIVER = 0, 1, 2, 3, 4, 5
PERICARDIUM, EPICARDIAL_FAT, MYOCARDIUM, CHAMBER, CORONARY = 6, 7, 8, 9, 10
AORTA_WALL, AORTA_LUMEN, ROOT_WALL, ROOT_LUMEN = 11, 12, 13, 14
CORTICAL, CANCELLOUS, CANAL, DISC = 15, 16, 17, 18
AORTIC_PLAQUE, VALVE_CALCIUM, MITRAL_CALCIUM, CORONARY_PLAQUE, METAL = 19, 20, 21, 22, 23
AIRWAY, AIRWAY_WALL = 24, 25
TISSUE_HU = {
    AIR: -1000, SUBCUT_FAT: -100, MUSCLE: 50, LUNG: -850, MEDIASTINAL_FAT: -100, LIVER: 55,
    PERICARDIUM: 40, EPICARDIAL_FAT: -100, MYOCARDIUM: 40, CHAMBER: 40, CORONARY: 40,
    AORTA_WALL: 40, AORTA_LUMEN: 40, ROOT_WALL: 40, ROOT_LUMEN: 40,
    CORTICAL: 800, CANCELLOUS: 250, CANAL: 10, DISC: 80,
    AORTIC_PLAQUE: 550, VALVE_CALCIUM: 600, MITRAL_CALCIUM: 500, CORONARY_PLAQUE: 0,
    METAL: 3000, AIRWAY: -1000, AIRWAY_WALL: 40,
}
BONE = (CORTICAL, CANCELLOUS)
HEART = (PERICARDIUM, EPICARDIAL_FAT, MYOCARDIUM, CHAMBER, CORONARY, CORONARY_PLAQUE,
         MITRAL_CALCIUM)
AORTA = (AORTA_WALL, AORTA_LUMEN, ROOT_WALL, ROOT_LUMEN, AORTIC_PLAQUE, VALVE_CALCIUM)
ROOT = (ROOT_WALL, ROOT_LUMEN, VALVE_CALCIUM)
BLOOD = (CHAMBER, AORTA_LUMEN, ROOT_LUMEN)

# Body and heart sizes (mm).
BODY_SEMI = (160.0, 115.0)  # x, y semi-axes of the chest at the skin
FAT_MM, MUSCLE_MM = 15.0, 12.0  # subcutaneous fat, chest-wall muscle
VENTRICLE_SEMI = (80.0, 45.0)  # AV plane to apex, transverse radius at the AV plane
ATRIA_SEMI = (35.0, 45.0)  # AV plane to the roof of the atria, transverse radius
PERICARDIUM_MM, EPI_FAT_MM = 1.5, 3.0
LV_WALL_MM, ATRIAL_WALL_MM, SEPTUM_MM = 10.0, 6.0, 10.0
ARTERY_DEPTH_MM = 6.5  # centreline below the heart's outer surface
ARTERY_RADIUS_MM = {"LM": 2.2, "LAD": 1.75, "LCX": 1.75, "RCA": 1.75}
GROOVE_RADIUS_MM = 5.5  # fat-filled groove round each artery
ASCENDING_RADIUS, DESCENDING_RADIUS, AORTIC_WALL_MM = 16.0, 12.5, 2.0
SINUS_RADIUS, SINUS_OFFSET = 11.0, 7.0  # each sinus a sphere this far from the root axis
GROOVE_ANGLE = {"anterior-iv": 25.0, "inferior-iv": 205.0}  # degrees round the long axis


@dataclass(frozen=True)
class Plaque:
    """A calcified ellipsoid centred on an artery's centreline.

    ``at`` is the fraction (0-1) of the artery's length from its ostium;
    ``length_mm`` is the full extent along the artery, ``radius_mm`` across it.
    """

    artery: str
    at: float
    length_mm: float
    radius_mm: float
    hu: float


@dataclass(frozen=True)
class Metal:
    """A dense clip (cylinder) at ``offset_mm`` from the heart's ventricular centre (LPS)."""

    offset_mm: tuple[float, float, float] = (-5.0, -45.0, 0.0)
    radius_mm: float = 1.5
    length_mm: float = 8.0
    hu: float = 3000.0
    streaks: bool = True
    streak_hu: float = 400.0  # amplitude of the alternating bright and dark streaks


def default_scan() -> Phantom:
    """512 x 512 at 0.7 mm, 64 slices of 3 mm every 3 mm, 120 kVp, signed pixels."""
    return Phantom(rows=512, cols=512, pixel_spacing=(0.7, 0.7), n_slices=64, increment=3.0,
                   thickness=3.0, accession="ACC-THORAX", name="thorax", body_part="CHEST",
                   convolution_kernel="B35f", gantry_tilt=0.0)


@dataclass(frozen=True)
class Thorax:
    """Anatomy parameters plus the scan (grid and tags, a :class:`Phantom`).

    The scan's ``origin`` and ``w_start`` are replaced: the image is centred
    on x = y = 0 and the first slice lies ``below_heart_mm`` under the heart
    unless ``z_start`` is given. Its ``inserts`` and ``background_hu`` are
    not used. Tag-only variants go through the scan (``scan_changed``):
    ``gantry_tilt`` (the geometry stays axial, as a scanner that corrected the
    tilt would write it), ``convolution_kernel``, ``kvp``, ``thickness``,
    ``contrast_agent``, ``signed``, ``padding_value`` and ``padding_range_limit``.
    """

    scan: Phantom = field(default_factory=default_scan)
    plaques: tuple[Plaque, ...] = ()
    # With all 11 PLAQUES, offsets up to 10 mm and rotations up to 10 degrees build,
    # except moving the heart back (+y) 7 mm or more, which puts the distal LCX plaque
    # against the descending aorta; ``build`` refuses any plaque not lying in fat.
    heart_offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    heart_rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)  # azimuth, elevation, roll
    aortic_calcium: bool = True
    valve_calcium: bool = True
    mitral_calcium: bool = True
    fov_diameter_mm: float | None = None  # reconstruction circle; outside is padding or air
    contrast_hu: float | None = None  # blood pool HU when enhanced (the tag is scan.contrast_agent)
    metal: Metal | None = None
    z_start: float | None = None
    below_heart_mm: float = 15.0


@dataclass(frozen=True)
class Truth:
    """Expected scores of one artery, or of all arteries together."""

    agatston: float
    volume_mm3: float
    lesion_count: int


@dataclass(frozen=True)
class PlaqueTruth:
    """One plaque's expected share and where it is."""

    plaque: Plaque
    centre_mm: tuple[float, float, float]
    agatston: float
    volume_mm3: float
    lesion_count: int


class Grid:
    """Voxel centres of the scan: x (cols), y (rows), z (slices) in mm."""

    def __init__(self, scan: Phantom) -> None:
        dy, dx = scan.pixel_spacing
        self.x = scan.origin[0] + np.arange(scan.cols) * dx
        self.y = scan.origin[1] + np.arange(scan.rows) * dy
        self.z = scan.w_start + np.arange(scan.n_slices) * scan.increment
        self.shape = (scan.n_slices, scan.rows, scan.cols)

    def box(self, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice, slice]:
        """Index ranges (z, y, x) of voxel centres inside the mm box [lo, hi] (x, y, z)."""
        out = []
        for axis, coords in zip((2, 1, 0), (self.z, self.y, self.x), strict=True):
            i0 = int(np.searchsorted(coords, lo[axis], side="left"))
            i1 = int(np.searchsorted(coords, hi[axis], side="right"))
            out.append(slice(i0, max(i0, i1)))
        return out[0], out[1], out[2]

    def points(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, ...]:
        """Broadcastable (z, y, x) coordinate arrays of a box."""
        return (self.z[box[0]][:, None, None], self.y[box[1]][None, :, None],
                self.x[box[2]][None, None, :])


@dataclass(frozen=True)
class HeartFrame:
    """The heart's axes: ``origin`` is the centre of the AV plane, ``axis`` points to the apex.

    ``anterior`` and ``left`` complete the frame; angle 0 faces ``anterior``
    and 90 degrees faces ``left`` (``direction``).
    """

    origin: np.ndarray
    axis: np.ndarray
    anterior: np.ndarray
    left: np.ndarray

    def direction(self, degrees: float) -> np.ndarray:
        """Unit vector (LPS) at ``degrees`` round the long axis, 0 anterior, 90 left."""
        a = math.radians(degrees)
        return np.asarray(math.cos(a) * self.anterior + math.sin(a) * self.left)

    def outer_radius(self, s: np.ndarray | float) -> np.ndarray:
        """Radius of the heart's outer surface at ``s`` mm along the axis (NaN outside)."""
        s = np.asarray(s, dtype=np.float64)
        semi = np.where(s >= 0, VENTRICLE_SEMI[0], ATRIA_SEMI[0])
        with np.errstate(invalid="ignore"):
            return np.asarray(VENTRICLE_SEMI[1] * np.sqrt(1 - (s / semi) ** 2))

    def groove_point(self, s: float, degrees: float) -> np.ndarray:
        """The artery centreline point ``ARTERY_DEPTH_MM`` under the surface at (s, angle)."""
        radius = float(self.outer_radius(s)) - ARTERY_DEPTH_MM
        return np.asarray(self.origin + s * self.axis + radius * self.direction(degrees))


def heart_frame(thorax: Thorax) -> HeartFrame:
    """Long axis at azimuth 45 degrees (anterior to left) and 35 degrees below the axial plane."""
    azimuth, elevation, roll = (math.radians(d) for d in (
        45.0 + thorax.heart_rotation_deg[0], -35.0 + thorax.heart_rotation_deg[1],
        thorax.heart_rotation_deg[2]))
    axis = np.array([math.cos(elevation) * math.sin(azimuth),
                     -math.cos(elevation) * math.cos(azimuth), math.sin(elevation)])
    anterior = _orthogonal(np.array([0.0, -1.0, 0.0]), axis)
    left = np.cross(axis, anterior)
    left = left if left[0] > 0 else -left
    c, s = math.cos(roll), math.sin(roll)
    anterior, left = c * anterior + s * left, -s * anterior + c * left
    ventricle_centre = np.array([20.0, -25.0, 0.0]) + np.asarray(thorax.heart_offset_mm)
    return HeartFrame(ventricle_centre - 40.0 * axis, axis, anterior, left)


def _orthogonal(v: np.ndarray, *to: np.ndarray) -> np.ndarray:
    for t in to:
        v = v - float(v @ t) * t
    return np.asarray(v / np.linalg.norm(v))


# --- centrelines -------------------------------------------------------------------

@dataclass(frozen=True)
class Root:
    """Aortic valve centre, root axis and the coronary ostia."""

    valve: np.ndarray
    axis: np.ndarray
    sinus_centres: dict[str, np.ndarray]
    ostia: dict[str, np.ndarray]


def aortic_root(frame: HeartFrame) -> Root:
    """The valve 10 mm above the AV plane, its axis rising anterior-right and superior."""
    valve = frame.origin - 10.0 * frame.axis + 8.0 * frame.anterior
    axis = _orthogonal(np.array([-0.2, -0.3, 0.93]))
    level = valve + 8.0 * axis
    targets = {"left": frame.groove_point(0.0, GROOVE_ANGLE["anterior-iv"]),
               "right": frame.groove_point(0.0, -40.0),
               "non-coronary": frame.origin - 30.0 * frame.axis}
    centres, ostia = {}, {}
    for name, target in targets.items():
        way = _orthogonal(target - level, axis)
        centres[name] = level + SINUS_OFFSET * way
        ostia[name] = level + (SINUS_OFFSET + SINUS_RADIUS) * way
    return Root(valve, axis, centres, ostia)


def polyline(points: list[np.ndarray], step: float = 0.25) -> np.ndarray:
    """Points every ``step`` mm along straight segments through ``points``."""
    out = []
    for a, b in zip(points[:-1], points[1:], strict=True):
        n = max(1, int(math.ceil(np.linalg.norm(b - a) / step)))
        out.append(a + (b - a) * (np.arange(n)[:, None] / n))
    out.append(points[-1][None, :])
    return np.concatenate(out)


def _arc(frame: HeartFrame, s: float, start: float, stop: float) -> list[np.ndarray]:
    n = max(2, int(abs(stop - start)))
    return [frame.groove_point(s, a) for a in np.linspace(start, stop, n)]


def _meridian(frame: HeartFrame, degrees: float, s0: float, s1: float) -> list[np.ndarray]:
    return [frame.groove_point(s, degrees) for s in np.linspace(s0, s1, max(2, int(s1 - s0)))]


def centrelines(frame: HeartFrame, root: Root) -> dict[str, np.ndarray]:
    """Dense centreline points (n, 3) of each artery, from its ostium (LPS mm)."""
    anterior_iv, inferior_iv = GROOVE_ANGLE["anterior-iv"], GROOVE_ANGLE["inferior-iv"]
    split = frame.groove_point(0.0, anterior_iv)
    return {
        "LM": polyline([root.ostia["left"], split]),
        "LAD": polyline([split, *_meridian(frame, anterior_iv, 0.0, 72.0)]),
        "LCX": polyline([split, *_arc(frame, 0.0, anterior_iv, 170.0)]),
        "RCA": polyline([root.ostia["right"], *_arc(frame, 0.0, -40.0, inferior_iv - 360.0),
                          *_meridian(frame, inferior_iv, 0.0, 50.0)]),
    }


def along(line: np.ndarray, at: float) -> tuple[np.ndarray, np.ndarray]:
    """Point and unit tangent at fraction ``at`` of a centreline's length."""
    steps = np.linalg.norm(np.diff(line, axis=0), axis=1)
    length = np.concatenate([[0.0], np.cumsum(steps)])
    i = int(np.clip(np.searchsorted(length, at * length[-1]), 1, len(line) - 1))
    tangent = line[i] - line[i - 1]
    return line[i], tangent / np.linalg.norm(tangent)


# --- painting ----------------------------------------------------------------------

class Painter:
    """Paints labels (uint8) onto the grid; later shapes cover earlier ones."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.labels = np.zeros(grid.shape, dtype=np.uint8)

    def prism(self, mask2d: np.ndarray, label: int, z0: float = -np.inf,
              z1: float = np.inf, where: tuple[int, ...] | None = None) -> None:
        """Paint a z-constant cross-section over slices z0..z1 (within its bounding box)."""
        k0 = np.searchsorted(self.grid.z, z0, side="left")
        k1 = np.searchsorted(self.grid.z, z1, side="right")
        present_rows, present_cols = np.flatnonzero(mask2d.any(axis=1)), np.flatnonzero(
            mask2d.any(axis=0))
        if k1 <= k0 or not len(present_rows):
            return
        rows = slice(int(present_rows[0]), int(present_rows[-1]) + 1)
        cols = slice(int(present_cols[0]), int(present_cols[-1]) + 1)
        view = self.labels[int(k0):int(k1), rows, cols]
        mask = np.broadcast_to(mask2d[rows, cols], view.shape)
        view[mask & _allowed(view, where)] = label

    def region(self, lo: np.ndarray, hi: np.ndarray, inside: _Inside, label: int,
               where: tuple[int, ...] | None = None) -> None:
        """Paint voxels of the mm box [lo, hi] where ``inside(z, y, x)`` holds, by slab."""
        box = self.grid.box(lo, hi)
        for slab in _slabs(box):
            view = self.labels[slab]
            paint = np.broadcast_to(inside(*self.grid.points(slab)), view.shape)
            view[paint & _allowed(view, where)] = label

    def tube(self, line: np.ndarray, radius: float | np.ndarray, label: int,
             where: tuple[int, ...] | None = None) -> None:
        """Paint every voxel within ``radius`` mm (one, or one per point) of a dense centreline."""
        for k, rows, cols, mask in tube_slices(self.grid, line, radius):
            view = self.labels[k, rows, cols]
            view[mask & _allowed(view, where)] = label


def _allowed(view: np.ndarray, where: tuple[int, ...] | None) -> np.ndarray | bool:
    """Voxels of ``view`` whose label is in ``where`` (all when None), by table look-up."""
    if where is None:
        return True
    table = np.zeros(256, dtype=bool)
    table[list(where)] = True
    return np.asarray(table[view])


def _slabs(box: tuple[slice, slice, slice], size: int = 8) -> Iterator[tuple[slice, slice, slice]]:
    for k in range(box[0].start, box[0].stop, size):
        yield slice(k, min(k + size, box[0].stop)), box[1], box[2]


def tube_slices(grid: Grid, line: np.ndarray, radius: float | np.ndarray,
                run: int = 24) -> Iterator[tuple[int, slice, slice, np.ndarray]]:
    """Per slice, a window and the pixels within ``radius`` of some centreline point.

    ``radius`` is one value (mm) or one per point of ``line`` (n,): the tube is
    then the union of balls of those radii, a tapering or narrowed lumen.
    """
    radii = np.broadcast_to(np.asarray(radius, dtype=np.float64), (len(line),))
    for k, z in enumerate(grid.z):
        chosen = np.abs(line[:, 2] - z) <= radii
        near, near_r = line[chosen], radii[chosen]
        for start in range(0, len(near), run):
            group = near[start:start + run]
            r2 = near_r[start:start + run] ** 2 - (group[:, 2] - z) ** 2
            reach = math.sqrt(float(r2.max()))
            lo = np.array([*(group[:, :2].min(axis=0) - reach), z])
            hi = np.array([*(group[:, :2].max(axis=0) + reach), z])
            _, rows, cols = grid.box(lo, hi)
            if rows.stop <= rows.start or cols.stop <= cols.start:
                continue
            dx = grid.x[cols][None, None, :] - group[:, 0, None, None]
            dy = grid.y[rows][None, :, None] - group[:, 1, None, None]
            mask = (dx ** 2 + dy ** 2 <= r2[:, None, None]).any(axis=0)
            yield k, rows, cols, mask


def _ellipsoid(centre: np.ndarray, axes: np.ndarray, semi: np.ndarray) -> _Inside:
    """Inside test of an ellipsoid with unit ``axes`` rows and ``semi``-axes (mm)."""

    def inside(z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        total = np.zeros(np.broadcast_shapes(z.shape, y.shape, x.shape))
        for axis, half in zip(axes, semi, strict=True):
            q = (x - centre[0]) * axis[0] + (y - centre[1]) * axis[1] + (z - centre[2]) * axis[2]
            total = total + (q / half) ** 2
        return np.asarray(total <= 1.0)

    return inside


def _extent(axes: np.ndarray, semi: np.ndarray) -> np.ndarray:
    return np.asarray(np.sqrt(((axes * np.asarray(semi)[:, None]) ** 2).sum(axis=0)))


def _ellipse2d(grid: Grid, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    return np.asarray(((grid.x[None, :] - cx) / ax) ** 2 + ((grid.y[:, None] - cy) / ay) ** 2 <= 1)


# --- the image ----------------------------------------------------------------------

@dataclass
class ThoraxImage:
    """A built thorax: labels, noise-free HU, plaque masks and the scan geometry."""

    thorax: Thorax
    scan: Phantom
    frame: HeartFrame
    root: Root
    lines: dict[str, np.ndarray]
    labels: np.ndarray  # uint8 (z, y, x), one of the label constants
    hu: np.ndarray  # int16 (z, y, x), noise-free, before padding
    plaque_boxes: list[tuple[tuple[slice, slice, slice], np.ndarray]]  # box, bool mask

    @cached_property
    def masks(self) -> dict[str, np.ndarray]:
        """Structure masks (bool, volume-shaped) named as in ``imaging_core.anatomy.Anatomy``."""
        lab = self.labels
        return {
            "body": lab != AIR,
            "lungs": lab == LUNG,
            "bone": np.isin(lab, BONE),
            "aorta": np.isin(lab, AORTA),
            "aortic_root": np.isin(lab, ROOT),
            "heart": np.isin(lab, HEART),
            "epicardial_fat": lab == EPICARDIAL_FAT,
            "blood_pool": np.isin(lab, BLOOD),
        }

    @property
    def landmarks(self) -> dict[str, tuple[float, float, float]]:
        """Geometric landmarks (LPS mm) named as the anatomy step names them.

        ``aortic_root``: the centre of the sinuses, 8 mm above the valve on the
        root axis; ``av_plane_centre``: the heart frame's origin; ``long_axis``:
        the unit vector from base to apex; ``apex``; ``heart_centre``: the
        centre of the ventricles' half-ellipsoid's bounding length.
        """
        f = self.frame
        points = {
            "aortic_root": self.root.valve + 8.0 * self.root.axis,
            "av_plane_centre": f.origin,
            "long_axis": f.axis,
            "apex": f.origin + VENTRICLE_SEMI[0] * f.axis,
            "heart_centre": f.origin + (VENTRICLE_SEMI[0] - ATRIA_SEMI[0]) / 2 * f.axis,
        }
        return {k: (float(v[0]), float(v[1]), float(v[2])) for k, v in points.items()}

    def plaque_mask(self, i: int, margin: int | None = None) -> np.ndarray:
        """Plaque ``i``'s voxels: volume-shaped, or over ``near(i, margin)`` when given."""
        box, mask = self.plaque_boxes[i]
        if margin is None:
            out = np.zeros(self.labels.shape, dtype=bool)
            out[box] = mask
            return out
        around = self.near(i, margin)
        out = np.zeros(tuple(s.stop - s.start for s in around), dtype=bool)
        out[tuple(slice(b.start - a.start, b.stop - a.start)
                  for a, b in zip(around, box, strict=True))] = mask
        return out

    def near(self, i: int, margin: int) -> tuple[slice, slice, slice]:
        """Plaque ``i``'s box grown by ``margin`` voxels each way (clipped to the volume)."""
        box = self.plaque_boxes[i][0]
        out = [slice(max(0, s.start - margin), min(n, s.stop + margin))
               for s, n in zip(box, self.labels.shape, strict=True)]
        return out[0], out[1], out[2]

    @cached_property
    def plaque_truths(self) -> list[PlaqueTruth]:
        """Each plaque's expected share, in ``thorax.plaques`` order."""
        return [self._plaque_truth(i) for i in range(len(self.thorax.plaques))]

    def _plaque_truth(self, i: int) -> PlaqueTruth:
        box, mask = self.plaque_boxes[i]
        plaque = self.thorax.plaques[i]
        dy, dx = self.scan.pixel_spacing
        accepted = np.zeros_like(mask)
        for k in range(mask.shape[0]):
            regions, n = ndimage.label(mask[k], structure=np.ones((3, 3), bool))
            area = np.bincount(regions.ravel(), minlength=n + 1) * dx * dy
            keep = area >= MIN_AREA_MM2 - 1e-9
            keep[0] = False
            accepted[k] = keep[regions]
        area_sum = float(accepted.sum()) * dx * dy
        scale = self.scan.increment / REFERENCE_INCREMENT_MM
        _, lesions = ndimage.label(accepted, structure=np.ones((3, 3, 3), bool))
        centre, _ = along(self.lines[plaque.artery], plaque.at)
        return PlaqueTruth(plaque, (float(centre[0]), float(centre[1]), float(centre[2])),
                           area_sum * agatston_weight(plaque.hu) * scale,
                           area_sum * self.scan.increment, int(lesions))

    def truth(self, artery: str | None = None) -> Truth:
        """Expected Agatston, volume and lesion count of one artery, or of all of them."""
        chosen = [t for t in self.plaque_truths if artery is None or t.plaque.artery == artery]
        return Truth(sum(t.agatston for t in chosen), sum(t.volume_mm3 for t in chosen),
                     sum(t.lesion_count for t in chosen))

    @property
    def arteries(self) -> dict[str, Truth]:
        """Expected scores of each artery with calcium."""
        return {a: self.truth(a) for a in ARTERIES if self.truth(a).lesion_count}

    def slice_hu(self, k: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Slice k's HU with the thorax's noise, NaN outside the FOV where padding is set."""
        image = self.hu[k].astype(np.float32)
        if self.scan.noise_sigma > 0 and rng is not None:
            image += self.scan.noise_sigma * rng.standard_normal(image.shape, dtype=np.float32)
        image = np.round(image)
        outside = self.outside_fov
        if outside is not None:
            image[outside] = np.nan if self.scan.padding_value is not None else -1024.0
        return image

    @cached_property
    def outside_fov(self) -> np.ndarray | None:
        """Pixels outside the reconstruction circle (centred on the image), or None."""
        if self.thorax.fov_diameter_mm is None:
            return None
        grid = Grid(self.scan)
        r2 = grid.x[None, :] ** 2 + grid.y[:, None] ** 2
        return np.asarray(r2 > (self.thorax.fov_diameter_mm / 2) ** 2)


def build(thorax: Thorax) -> ThoraxImage:
    """Paint the thorax and check its plaques are apart from all other calcium.

    Raises ValueError for a plaque on an unknown artery or off its ends, and
    AssertionError when a plaque's HU is within ``PLAQUE_MARGIN_SIGMA``
    noise sigmas of a weight bound, when a plaque touches other calcium, or
    when anything but epicardial fat and its artery borders it (in-plane or
    straight above or below).
    """
    for plaque in thorax.plaques:
        if plaque.artery not in ARTERIES or not 0.0 <= plaque.at <= 1.0:
            raise ValueError(f"plaque {plaque}: artery must be one of {ARTERIES}, at in 0-1")
    scan = _placed_scan(thorax)
    grid = Grid(scan)
    frame = heart_frame(thorax)
    root = aortic_root(frame)
    lines = centrelines(frame, root)
    painter = Painter(grid)
    paint_chest(painter, frame)
    paint_heart(painter, frame)
    _paint_coronaries(painter, lines)
    paint_aorta(painter, root, grid)
    paint_bone(painter)
    _paint_calcium(painter, thorax, frame, root)
    boxes = [_paint_plaque(painter, p, lines) for p in thorax.plaques]
    hu = _hu(painter.labels, thorax, boxes)
    if thorax.metal is not None:
        _paint_metal(painter, hu, thorax.metal, frame)
    image = ThoraxImage(thorax, scan, frame, root, lines, painter.labels, hu, boxes)
    _check_plaques(image)
    return image


def _placed_scan(thorax: Thorax) -> Phantom:
    scan = thorax.scan
    dy, dx = scan.pixel_spacing
    origin = (-(scan.cols - 1) / 2 * dx, -(scan.rows - 1) / 2 * dy, 0.0)
    z_start = thorax.z_start
    if z_start is None:
        z_start = lowest_heart_z(heart_frame(thorax)) - thorax.below_heart_mm
    return replace(scan, origin=origin, w_start=z_start,
                   reconstruction_diameter=thorax.fov_diameter_mm or scan.reconstruction_diameter)


def lowest_heart_z(frame: HeartFrame) -> float:
    """z (mm) of the lowest point of the ventricles' outer surface."""
    semi = np.array([VENTRICLE_SEMI[0], VENTRICLE_SEMI[1], VENTRICLE_SEMI[1]])
    axes = np.stack([frame.axis, frame.anterior, frame.left])
    return float(frame.origin[2] - _extent(axes, semi)[2])


def paint_chest(painter: Painter, frame: HeartFrame) -> None:
    grid = painter.grid
    ax, ay = BODY_SEMI
    painter.prism(_ellipse2d(grid, 0, 0, ax, ay), SUBCUT_FAT)
    painter.prism(_ellipse2d(grid, 0, 0, ax - FAT_MM, ay - FAT_MM), MUSCLE)
    wall = FAT_MM + MUSCLE_MM
    painter.prism(_ellipse2d(grid, 0, 0, ax - wall, ay - wall), LUNG)
    painter.prism(_ellipse2d(grid, 5, -15, 40, 80), MEDIASTINAL_FAT, where=(LUNG,))
    painter.prism(_ellipse2d(grid, 0, 80, 45, 35), MUSCLE, where=(LUNG,))  # paraspinal
    _paint_airways(painter, float(aortic_root(frame).valve[2]) + CARINA_ABOVE_VALVE_MM)
    apex = frame.origin + VENTRICLE_SEMI[0] * frame.axis
    liver = np.array([-50.0, 10.0, float(apex[2]) - 55.0])
    semi = np.array([110.0, 85.0, 70.0])
    painter.region(liver - semi, liver + semi, _ellipsoid(liver, np.eye(3), semi), LIVER,
                   where=(LUNG, MEDIASTINAL_FAT))


TRACHEA_CENTRE, TRACHEA_RADIUS, BRONCHUS_RADIUS = (-3.0, 12.0), 9.0, 6.5
CARINA_ABOVE_VALVE_MM = 35.0  # approximate adult value, unverified against one source


def _paint_airways(painter: Painter, carina_z: float) -> None:
    """Trachea down to the carina, then the right and left main bronchi (wall 2 mm)."""
    cx, cy = TRACHEA_CENTRE
    carina = np.array([cx, cy, carina_z])
    grid = painter.grid
    for radius, label in ((TRACHEA_RADIUS, AIRWAY_WALL), (TRACHEA_RADIUS - 2, AIRWAY)):
        painter.prism(_ellipse2d(grid, cx, cy, radius, radius), label, z0=carina_z)
    for end in ((-45.0, 18.0, carina_z - 20.0), (45.0, 15.0, carina_z - 35.0)):
        line = polyline([carina, np.asarray(end)])
        painter.tube(line, BRONCHUS_RADIUS, AIRWAY_WALL, where=(LUNG, MEDIASTINAL_FAT))
        painter.tube(line, BRONCHUS_RADIUS - 2, AIRWAY, where=(AIRWAY_WALL, AIRWAY))


def _heart_inside(frame: HeartFrame, inset: float, part: str) -> _Inside:
    """Ventricles ("v") or atria ("a") shrunk by ``inset`` mm, or both ("va")."""

    def inside(z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        px, py, pz = x - frame.origin[0], y - frame.origin[1], z - frame.origin[2]
        s = px * frame.axis[0] + py * frame.axis[1] + pz * frame.axis[2]
        q1 = px * frame.anterior[0] + py * frame.anterior[1] + pz * frame.anterior[2]
        q2 = px * frame.left[0] + py * frame.left[1] + pz * frame.left[2]
        rho2 = q1 ** 2 + q2 ** 2
        out = np.zeros(np.broadcast_shapes(s.shape, rho2.shape), dtype=bool)
        if "v" in part:
            out |= (s >= 0) & ((s / (VENTRICLE_SEMI[0] - inset)) ** 2
                               + rho2 / (VENTRICLE_SEMI[1] - inset) ** 2 <= 1)
        if "a" in part:
            out |= (s < 0) & ((s / (ATRIA_SEMI[0] - inset)) ** 2
                              + rho2 / (ATRIA_SEMI[1] - inset) ** 2 <= 1)
        return out

    return inside


def _septa(frame: HeartFrame, inside: _Inside) -> _Inside:
    """``inside`` less the interventricular/interatrial septum and the AV plane."""
    normal = frame.direction(GROOVE_ANGLE["anterior-iv"] + 90.0)

    def chambers(z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        px, py, pz = x - frame.origin[0], y - frame.origin[1], z - frame.origin[2]
        septum = np.abs(px * normal[0] + py * normal[1] + pz * normal[2]) < SEPTUM_MM / 2
        s = px * frame.axis[0] + py * frame.axis[1] + pz * frame.axis[2]
        return np.asarray(inside(z, y, x) & ~septum & (np.abs(s) >= 3.0))

    return chambers


def paint_heart(painter: Painter, frame: HeartFrame) -> None:
    reach = max(VENTRICLE_SEMI[0], VENTRICLE_SEMI[1]) + 2
    lo = frame.origin + np.minimum(0, VENTRICLE_SEMI[0] * frame.axis) - reach
    hi = frame.origin + np.maximum(0, VENTRICLE_SEMI[0] * frame.axis) + reach
    lo = np.minimum(lo, frame.origin - ATRIA_SEMI[0] * frame.axis - reach)
    hi = np.maximum(hi, frame.origin - ATRIA_SEMI[0] * frame.axis + reach)
    myo = PERICARDIUM_MM + EPI_FAT_MM
    painter.region(lo, hi, _heart_inside(frame, 0.0, "va"), PERICARDIUM)
    painter.region(lo, hi, _heart_inside(frame, PERICARDIUM_MM, "va"), EPICARDIAL_FAT)
    painter.region(lo, hi, _heart_inside(frame, myo, "va"), MYOCARDIUM)
    painter.region(lo, hi, _septa(frame, _heart_inside(frame, myo + LV_WALL_MM, "v")), CHAMBER)
    painter.region(lo, hi, _septa(frame, _heart_inside(frame, myo + ATRIAL_WALL_MM, "a")),
                   CHAMBER)


def _paint_coronaries(painter: Painter, lines: dict[str, np.ndarray]) -> None:
    inner = (EPICARDIAL_FAT, MYOCARDIUM, CHAMBER, MEDIASTINAL_FAT)
    for line in lines.values():
        painter.tube(line, GROOVE_RADIUS_MM, EPICARDIAL_FAT, where=inner)
    for name, line in lines.items():
        painter.tube(line, ARTERY_RADIUS_MM[name], CORONARY)


def paint_aorta(painter: Painter, root: Root, grid: Grid) -> None:
    top = root.valve + 25.0 * root.axis
    ascending = polyline([root.valve, top, np.array([top[0], top[1], grid.z[-1] + 20])], 0.5)
    painter.tube(ascending, ASCENDING_RADIUS, AORTA_WALL)
    painter.tube(ascending, ASCENDING_RADIUS - AORTIC_WALL_MM, AORTA_LUMEN)
    for centre in root.sinus_centres.values():
        semi = np.full(3, SINUS_RADIUS)
        inside = _ellipsoid(centre, np.eye(3), semi)
        painter.region(centre - semi, centre + semi, inside, ROOT_WALL)
    for centre in root.sinus_centres.values():
        semi = np.full(3, SINUS_RADIUS - AORTIC_WALL_MM)
        painter.region(centre - semi, centre + semi, _ellipsoid(centre, np.eye(3), semi),
                       ROOT_LUMEN)
    (cx, cy), r = DESCENDING_CENTRE, DESCENDING_RADIUS
    painter.prism(_ellipse2d(grid, cx, cy, r, r), AORTA_WALL)
    painter.prism(_ellipse2d(grid, cx, cy, r - AORTIC_WALL_MM, r - AORTIC_WALL_MM), AORTA_LUMEN)


DESCENDING_CENTRE = (26.0, 38.0)  # left-anterior of the vertebral body
VERTEBRA_CENTRE, VERTEBRA_SEMI = (0.0, 58.0), (21.0, 16.0)
CANAL_CENTRE, CANAL_RADIUS, ARCH_RADIUS = (0.0, 86.0), 8.0, 14.0
STERNUM_CENTRE, STERNUM_SEMI = (0.0, -94.0), (16.0, 6.0)
CORTEX_MM = 1.5
VERTEBRA_PITCH_MM, DISC_MM = 28.0, 6.0


def paint_bone(painter: Painter) -> None:
    grid = painter.grid
    for (cx, cy), (ax, ay) in ((VERTEBRA_CENTRE, VERTEBRA_SEMI), (STERNUM_CENTRE, STERNUM_SEMI)):
        painter.prism(_ellipse2d(grid, cx, cy, ax, ay), CORTICAL)
        painter.prism(_ellipse2d(grid, cx, cy, ax - CORTEX_MM, ay - CORTEX_MM), CANCELLOUS)
    cx, cy = CANAL_CENTRE
    painter.prism(_ellipse2d(grid, cx, cy, ARCH_RADIUS, ARCH_RADIUS), CORTICAL)
    painter.prism(_ellipse2d(grid, cx, cy, ARCH_RADIUS - 3, ARCH_RADIUS - 3), CANCELLOUS)
    painter.prism(_ellipse2d(grid, cx, cy, CANAL_RADIUS, CANAL_RADIUS), CANAL)
    body = _ellipse2d(grid, *VERTEBRA_CENTRE, *VERTEBRA_SEMI)
    for z in _levels(grid, VERTEBRA_PITCH_MM):
        painter.prism(body, DISC, z, z + DISC_MM)
    _paint_ribs(painter)


def _levels(grid: Grid, pitch: float, above: float = 0.0) -> np.ndarray:
    """Every ``pitch`` mm from z = 0, over the scan's z range (and ``above`` it)."""
    first = math.floor((grid.z.min() - pitch) / pitch) * pitch
    return np.arange(first, grid.z.max() + above + pitch, pitch)


def _paint_ribs(painter: Painter) -> None:
    """Ribs round the chest wall, each falling 40 mm from back to front (cortex, core)."""
    grid = painter.grid
    a = BODY_SEMI[0] - FAT_MM - MUSCLE_MM + 4
    b = BODY_SEMI[1] - FAT_MM - MUSCLE_MM + 4
    xn, yn = grid.x[None, :] / a, grid.y[:, None] / b
    rn = np.sqrt(xn ** 2 + yn ** 2)
    radial = (rn - 1) * (a + b) / 2  # mm from the rib circle, approximately
    psi = np.arccos(np.clip(yn / np.maximum(rn, 1e-9), -1, 1)) / math.pi  # 0 back, 1 front
    band = (np.abs(radial) <= 4.5) & (psi > 0.12) & (psi < 0.85)
    rows, cols = np.nonzero(band)
    radial, psi = radial[rows, cols], psi[rows, cols]
    semi_r, semi_z, drop = 4.0, 6.0, 40.0
    for z_back in _levels(grid, RIB_PITCH_MM, above=drop + semi_z):
        z_rib = z_back - drop * psi
        for k in np.nonzero((grid.z >= z_back - drop - semi_z) & (grid.z <= z_back + semi_z))[0]:
            dz = grid.z[k] - z_rib
            outer = (radial / semi_r) ** 2 + (dz / semi_z) ** 2 <= 1
            inner = ((radial / (semi_r - CORTEX_MM)) ** 2
                     + (dz / (semi_z - CORTEX_MM)) ** 2 <= 1)
            painter.labels[k, rows[outer], cols[outer]] = CORTICAL
            painter.labels[k, rows[inner], cols[inner]] = CANCELLOUS


def _paint_calcium(painter: Painter, thorax: Thorax, frame: HeartFrame, root: Root) -> None:
    grid = painter.grid
    if thorax.aortic_calcium:
        (cx, cy), r = DESCENDING_CENTRE, DESCENDING_RADIUS - AORTIC_WALL_MM / 2
        for z, angle in ((frame.origin[2] - 30, 200.0), (frame.origin[2] + 45, 30.0)):
            _blob(painter, np.array([cx + r * math.cos(math.radians(angle)),
                                     cy + r * math.sin(math.radians(angle)), z]),
                  np.array([3.0, 3.0, 5.0]), AORTIC_PLAQUE)
        top = root.valve + 25.0 * root.axis
        rr = ASCENDING_RADIUS - AORTIC_WALL_MM / 2
        _blob(painter, np.array([top[0] - rr, top[1], grid.z[-1] - 25]),
              np.array([3.0, 3.0, 5.0]), AORTIC_PLAQUE)
    if thorax.valve_calcium:
        across = _orthogonal(frame.anterior, root.axis)
        other = np.cross(root.axis, across)
        for angle in (30.0, 150.0, 270.0):
            a = math.radians(angle)
            centre = root.valve + 2.0 * root.axis + 7.0 * (math.cos(a) * across
                                                          + math.sin(a) * other)
            _blob(painter, centre, np.array([2.5, 2.5, 2.5]), VALVE_CALCIUM)
    if thorax.mitral_calcium:
        mitral = frame.origin + 18.0 * frame.direction(120.0)
        arc = [mitral + 13.0 * frame.direction(a) for a in np.linspace(80.0, 200.0, 60)]
        painter.tube(polyline(arc), 2.0, MITRAL_CALCIUM)


def _blob(painter: Painter, centre: np.ndarray, semi: np.ndarray, label: int) -> None:
    painter.region(centre - semi, centre + semi, _ellipsoid(centre, np.eye(3), semi), label)


def _paint_plaque(painter: Painter, plaque: Plaque,
                  lines: dict[str, np.ndarray]) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    centre, tangent = along(lines[plaque.artery], plaque.at)
    axes = np.stack([tangent, _orthogonal(np.array([0.0, 0.0, 1.0]) + 0.1, tangent),
                     np.zeros(3)])
    axes[2] = np.cross(axes[0], axes[1])
    semi = np.array([plaque.length_mm / 2, plaque.radius_mm, plaque.radius_mm])
    reach = _extent(axes, semi)
    box = painter.grid.box(centre - reach, centre + reach)
    mask = np.asarray(_ellipsoid(centre, axes, semi)(*painter.grid.points(box)))
    mask = np.broadcast_to(mask, tuple(s.stop - s.start for s in box)).copy()
    painter.labels[box][mask] = CORONARY_PLAQUE
    return box, mask


def _hu(labels: np.ndarray, thorax: Thorax,
        boxes: list[tuple[tuple[slice, slice, slice], np.ndarray]]) -> np.ndarray:
    table = np.zeros(256, dtype=np.int16)
    for label, value in TISSUE_HU.items():
        table[label] = value
    if thorax.contrast_hu is not None:
        for label in BLOOD:
            table[label] = thorax.contrast_hu
    hu = table[labels]
    for plaque, (box, mask) in zip(thorax.plaques, boxes, strict=True):
        hu[box][mask] = plaque.hu
    return hu


def _paint_metal(painter: Painter, hu: np.ndarray, metal: Metal, frame: HeartFrame) -> None:
    centre = frame.origin + 40.0 * frame.axis + np.asarray(metal.offset_mm)
    line = polyline([centre - metal.length_mm / 2 * frame.left,
                      centre + metal.length_mm / 2 * frame.left])
    grid = painter.grid
    slices = set()
    for k, rows, cols, mask in tube_slices(grid, line, metal.radius_mm):
        painter.labels[k, rows, cols][mask] = METAL
        hu[k, rows, cols][mask] = metal.hu
        slices.add(k)
    if not metal.streaks:
        return
    dx = grid.x[None, :] - centre[0]
    dy = grid.y[:, None] - centre[1]
    r = np.hypot(dx, dy)
    streak = metal.streak_hu * np.cos(12 * np.arctan2(dy, dx)) * np.exp(-r / 60.0)
    streak[r <= 3 * metal.radius_mm] = 0
    for k in slices:
        body = painter.labels[k] != AIR
        hu[k][body] = np.clip(hu[k][body] + streak[body], -1024, 3071).astype(np.int16)


def _check_plaques(image: ThoraxImage) -> None:
    sigma = image.scan.noise_sigma
    blood = np.zeros(256, dtype=bool)
    if image.thorax.contrast_hu is not None:
        blood[list(BLOOD)] = True  # enhanced blood is refused by the QA gate, not calcium
    for i, (_, mask) in enumerate(image.plaque_boxes):
        plaque = image.thorax.plaques[i]
        gap = min(abs(plaque.hu - b) for b in WEIGHT_BOUNDS_HU)
        assert gap >= PLAQUE_MARGIN_SIGMA * sigma, f"plaque {i} HU {plaque.hu} too near a bound"
        assert mask.any(), f"plaque {i} covers no voxel centre"
        near = image.near(i, 2)
        own = image.plaque_mask(i, 2)
        grown = ndimage.binary_dilation(own, structure=np.ones((3, 5, 5), bool))
        others = (image.hu[near] >= THRESHOLD_HU) & ~blood[image.labels[near]] & ~own
        assert not (grown & others).any(), f"plaque {i} ({plaque.artery}) touches other calcium"
        shell = ndimage.binary_dilation(own, structure=_CROSS) & ~own
        around = set(np.unique(image.labels[near][shell]).tolist())
        assert around <= {EPICARDIAL_FAT, CORONARY}, f"plaque {i} ({plaque.artery}) not in fat"


# In-plane neighbours and the voxels straight above and below.
_CROSS = np.zeros((3, 3, 3), dtype=bool)
_CROSS[1], _CROSS[:, 1, 1] = True, True


def datasets(image: ThoraxImage) -> list[Dataset]:
    """The thorax as CT Image Storage instances (noise seeded by the scan's ``seed``)."""
    rng = np.random.default_rng(image.scan.seed)
    return series(image.scan, lambda k: image.slice_hu(k, rng))


# --- presets (the issue's cases) ----------------------------------------------------

# Plaques at anatomical positions, apart from each other and from other calcium. The
# first six (proximal LM, proximal and mid LAD, proximal LCX, proximal and distal RCA,
# every density weight) score about 309 at 0.7 mm (A3, N4); the rest are for
# plaque-count variants.
PLAQUES = (
    Plaque("LM", 0.5, 5.0, 2.2, 350.0),
    Plaque("LAD", 0.15, 8.0, 2.2, 450.0),
    Plaque("LAD", 0.45, 6.0, 1.9, 250.0),
    Plaque("LCX", 0.35, 6.0, 2.0, 350.0),
    Plaque("RCA", 0.3, 6.0, 2.2, 450.0),
    Plaque("RCA", 0.65, 5.0, 1.7, 165.0),
    Plaque("LAD", 0.7, 5.0, 1.8, 350.0),
    Plaque("LCX", 0.7, 5.0, 1.8, 250.0),
    Plaque("RCA", 0.1, 5.0, 2.0, 350.0),
    Plaque("RCA", 0.9, 5.0, 1.7, 450.0),
    Plaque("LAD", 0.3, 4.0, 1.6, 165.0),
)
PLAQUES_311 = PLAQUES[:6]
# One proximal LAD plaque: truth about 42 (CAC-DRS A1, N1).
PLAQUES_42 = (Plaque("LAD", 0.22, 7.0, 2.0, 250.0),)
UNSIGNED_PADDING = 63536  # the issue's unsigned PixelPaddingValue
SIGNED_PADDING = -2000  # stored -2000 = -3024 HU with the -1024 intercept
CONTRAST_HU = 300.0  # iodinated blood pool at a calcium-scoring tube voltage


def thorax_311(**changes: object) -> Thorax:
    """Several arteries calcified, about 309 Agatston (A3/N4), aortic, valve and annulus calcium."""
    return replace(Thorax(plaques=PLAQUES_311), **changes)  # type: ignore[arg-type]


def thorax_42(**changes: object) -> Thorax:
    """One LAD plaque, about 42 Agatston (A1/N1), with the non-coronary calcium."""
    return replace(Thorax(plaques=PLAQUES_42), **changes)  # type: ignore[arg-type]


def thorax_a0(**changes: object) -> Thorax:
    """No coronary calcium but a calcified aorta, aortic valve and mitral annulus (A0)."""
    return replace(Thorax(), **changes)  # type: ignore[arg-type]


def scan_changed(thorax: Thorax, **changes: object) -> Thorax:
    """``thorax`` with scan fields changed (spacing, tags, padding, noise, slices)."""
    return replace(thorax, scan=replace(thorax.scan, **changes))  # type: ignore[arg-type]


def padded(thorax: Thorax, *, signed: bool = False, fov_mm: float = 340.0,
           range_limit: int | None = None) -> Thorax:
    """Padding outside a reconstruction circle of ``fov_mm``: unsigned 63536 or signed -2000."""
    value = SIGNED_PADDING if signed else UNSIGNED_PADDING
    return replace(scan_changed(thorax, signed=signed, padding_value=value,
                                padding_range_limit=range_limit), fov_diameter_mm=fov_mm)


def contrast(thorax: Thorax, *, tagged: bool = False) -> Thorax:
    """Blood pool at ``CONTRAST_HU``; the ContrastBolusAgent tag only when ``tagged``."""
    return scan_changed(replace(thorax, contrast_hu=CONTRAST_HU),
                        contrast_agent="Iohexol" if tagged else None)


def with_metal(thorax: Thorax, *, streaks: bool = True) -> Thorax:
    """A 3000 HU clip in the fat in front of the heart, with or without streaks."""
    return replace(thorax, metal=Metal(streaks=streaks))


def with_plaques(thorax: Thorax, count: int) -> Thorax:
    """``thorax`` with the first ``count`` (at most 11) of PLAQUES."""
    if not 0 <= count <= len(PLAQUES):
        raise ValueError(f"count {count} outside 0-{len(PLAQUES)}")
    return replace(thorax, plaques=PLAQUES[:count])


def fov_cut(thorax: Thorax, fov_mm: float = 280.0) -> Thorax:
    """A reconstruction circle of ``fov_mm`` (air, -1024 HU, outside) that cuts the body.

    280 mm cuts the chest wall at the sides but keeps the heart; 120 mm cuts the heart.
    """
    return replace(thorax, fov_diameter_mm=fov_mm)


def benchmark_thorax(n_slices: int = 300, increment: float = 3.0) -> Thorax:
    """thorax_311 with ``n_slices`` of 3 mm every ``increment`` mm and 5 HU noise, 512 x 512.

    At 3 mm the z range grows with the count (the chest prism is long enough);
    a smaller increment is an overlapping reconstruction of the same range.
    """
    return scan_changed(thorax_311(), n_slices=n_slices, increment=increment, noise_sigma=5.0)
