"""Which artery, or which non-coronary structure, a calcium candidate belongs to.

:func:`labeller` turns an :class:`~imaging_core.anatomy.Anatomy` into a
:data:`~imaging_core.calcium.Labeller`. The coronary arteries run in the
epicardial fat of the atrioventricular and interventricular grooves; wall,
valve and annular calcium do not (aortic wall and lumen, the fibrous
skeleton, myocardium and blood surround them). So the share of fat
(``FAT_HU``) in a shell ``SHELL_MM`` around a candidate decides first, and
the masks second, because a non-contrast image shows the aortic root only as
an estimate under the heart's silhouette. Each candidate gets:

1. ``bone``: half or more of its voxels in the bone mask;
2. not in fat (less than ``EPICARDIAL_SHARE`` of its shell): ``aortic-wall``
   when half of it, and no less than lies in the heart region, is within
   ``AORTIC_WALL_MM`` of the aorta above the root; else, in the heart or the
   root, ``aortic-valve`` when half of it is in the root or it lies within
   ``VALVE_REACH_MM`` of it, otherwise ``mitral-annulus``; else
   ``outside-heart``;
3. in fat, with half of it within ``NEAR_HEART_MM`` of the heart region: an
   artery (below);
4. in fat, further out: ``aortic-wall`` within ``AORTIC_WALL_MM`` of the
   aorta, otherwise ``outside-heart``.

Arteries, from the candidate's place in a heart-centred frame: origin at the
atrioventricular-plane centre, axis the long axis (base to apex); ``t`` is
the distance along it and ``phi`` the angle around it, 0 deg anterior and
+90 deg to the patient's left. ``LM`` within ``LM_REACH_MM`` of the aortic
root's surface, on its left, in the anterior sector and no further than
``LM_SPLIT_MM`` past the AV plane (the left main leaves the left coronary
sinus and divides at the AV groove within about 1 cm). In the
atrioventricular groove (``t`` < ``AV_GROOVE_MM``) the right side is the
``RCA`` and the left side the ``LCX``, except the anterior left sector where
the ``LAD`` leaves the bifurcation; on the ventricles the anterior
interventricular groove (``LAD_SECTOR_DEG``) is the ``LAD``, the left lateral
wall (``LCX_SECTOR_DEG``) the ``LCX`` (obtuse marginals), and the right and
inferior walls with the posterior interventricular groove the ``RCA`` (acute
marginal, posterior descending: right dominance, the usual case).

Artery territories follow the AHA coronary segment model (Austen WG, Edwards
JE, Frye RL, et al. A reporting system on patients evaluated for coronary
artery disease. Circulation 1975;51(4 Suppl):5-40: RCA segments 1-4, LM 5,
LAD 6-10, LCX 11-15) as the SCCT model keeps it (Leipsic J, Abbara S,
Achenbach S, et al. SCCT guidelines for the interpretation and reporting of
coronary CT angiography. J Cardiovasc Comput Tomogr 2014;8:342-358). The
sector bounds are this project's reading of those courses, not published
thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from imaging_core.anatomy import FAT_HU, Anatomy
from imaging_core.calcium import UNASSIGNED, Labeller, Lesion
from imaging_core.volume import Volume

AUSTEN_1975 = "Austen WG et al. Circulation 1975;51(4 Suppl):5-40 (AHA segment model)"
LEIPSIC_2014 = "Leipsic J et al. J Cardiovasc Comput Tomogr 2014;8:342-358 (SCCT segments)"

MAJORITY = 0.5  # share of a candidate's voxels that puts it in a structure
NEAR_HEART_MM = 4.0  # epicardial calcium this close to the heart region is on the heart
AORTIC_WALL_MM = 3.0  # wall calcium sits on the outline the Hough circles trace
SHELL_MM = (1.5, 5.0)  # shell around a candidate read for its surroundings
EPICARDIAL_SHARE = 0.5  # a coronary plaque's shell is at least half fat (project choice)
VALVE_REACH_MM = 10.0  # deep calcium this close to the root is valvular
# The left main: from the left sinus, ~10 mm long (Austen 1975 segment 5), to its split
# at the AV groove. Reach from the estimated root surface allows for the root's error.
LM_REACH_MM = 15.0
LM_SPLIT_MM = 5.0  # the split lies at the AV plane: past this towards the apex it is the LAD
AV_GROOVE_MM = 20.0  # half-width of the atrioventricular-groove band along the long axis
LAD_SECTOR_DEG = (-30.0, 75.0)  # anterior interventricular groove, around anterior
LCX_SECTOR_DEG = (75.0, 160.0)  # left lateral (obtuse marginal) wall


@dataclass(frozen=True)
class HeartFrame:
    """A heart-centred frame: origin (AV-plane centre), long axis, anterior and left units."""

    origin: np.ndarray
    axis: np.ndarray
    anterior: np.ndarray
    left: np.ndarray

    @classmethod
    def from_landmarks(cls, landmarks: dict[str, tuple[float, float, float]]) -> HeartFrame:
        """The frame from ``av_plane_centre`` and ``long_axis`` (LPS).

        Raises
        ------
        KeyError
            A landmark is missing.
        """
        origin = np.asarray(landmarks["av_plane_centre"], dtype=np.float64)
        axis = np.asarray(landmarks["long_axis"], dtype=np.float64)
        axis /= np.linalg.norm(axis)
        front = np.array([0.0, -1.0, 0.0])  # LPS anterior
        anterior = _unit(front - (front @ axis) * axis)
        left = np.cross(axis, anterior)
        left = left if left[0] > 0 else -left
        return cls(origin, axis, anterior, left)

    def place(self, point: np.ndarray) -> tuple[float, float]:
        """(t mm along the long axis from the AV plane, phi deg from anterior towards left)."""
        offset = np.asarray(point, dtype=np.float64) - self.origin
        t = float(offset @ self.axis)
        phi = float(np.degrees(np.arctan2(offset @ self.left, offset @ self.anterior)))
        return t, phi


def _unit(vector: np.ndarray) -> np.ndarray:
    return np.asarray(vector / np.linalg.norm(vector))


def labeller(anatomy: Anatomy) -> Labeller:
    """A :data:`~imaging_core.calcium.Labeller` for ``anatomy`` (rules in the module docstring).

    A candidate no rule can place (the frame's landmarks missing) stays
    ``unassigned``, which counts: the chest pipeline refuses before that
    happens when the heart or the root is missing.
    """

    def label(volume: Volume, lesion_map: np.ndarray, lesions: Sequence[Lesion]) -> list[str]:
        return label_candidates(anatomy, volume, lesion_map, lesions)

    return label


def label_candidates(anatomy: Anatomy, volume: Volume, lesion_map: np.ndarray,
                     lesions: Sequence[Lesion]) -> list[str]:
    """One label per candidate, in ``lesions`` order (see the module docstring)."""
    count = len(lesions) + 1
    where = np.nonzero(lesion_map)
    owner = lesion_map[where]
    sizes = np.maximum(np.bincount(owner, minlength=count), 1)

    def share(mask: np.ndarray) -> np.ndarray:
        return np.asarray(np.bincount(owner[mask[where]], minlength=count) / sizes)

    vessel = anatomy.aorta & ~anatomy.aortic_root
    boxes = _boxes(lesion_map, where, volume.spacing, max(SHELL_MM[1], NEAR_HEART_MM,
                                                          AORTIC_WALL_MM))
    shares = {"bone": share(anatomy.bone), "aortic-valve": share(anatomy.aortic_root),
              "aortic-wall": _near_share(vessel, volume, lesion_map, boxes, AORTIC_WALL_MM),
              "heart": share(anatomy.heart),
              "near-heart": _near_share(anatomy.heart, volume, lesion_map, boxes,
                                        NEAR_HEART_MM)}
    fat = _fat_around(volume, lesion_map, count, boxes)
    frame = _frame(anatomy)
    root = _root(anatomy, volume)
    out = []
    for i, lesion in enumerate(lesions, start=1):
        out.append(_label(np.asarray(lesion.centre_mm), {k: v[i] for k, v in shares.items()},
                          float(fat[i]), frame, root))
    return out


def _label(point: np.ndarray, share: dict[str, float], fat: float,
           frame: HeartFrame | None, root: Root | None) -> str:
    """One candidate's label from its shares of each structure and of fat around it."""
    if share["bone"] >= MAJORITY:
        return "bone"
    if fat < EPICARDIAL_SHARE:  # not in the epicardial fat: wall, valve or annulus
        return _not_coronary(point, share, root)
    if share["near-heart"] >= MAJORITY:
        return artery(point, frame, root)
    return "aortic-wall" if share["aortic-wall"] >= MAJORITY else "outside-heart"


def _not_coronary(point: np.ndarray, share: dict[str, float], root: Root | None) -> str:
    """Calcium outside the epicardial fat: in the aorta, the valve, the annulus or elsewhere."""
    if share["aortic-wall"] >= max(MAJORITY, share["heart"]):
        return "aortic-wall"
    if max(share["heart"], share["aortic-valve"]) >= MAJORITY:
        valvular = share["aortic-valve"] >= MAJORITY or (
            root is not None and root.distance(point) <= VALVE_REACH_MM)
        return "aortic-valve" if valvular else "mitral-annulus"
    return "outside-heart"


@dataclass(frozen=True)
class Root:
    """The aortic root as a centre and a radius (mm, LPS)."""

    centre: np.ndarray
    radius: float

    def distance(self, point: np.ndarray) -> float:
        """Distance from the root's surface (negative inside)."""
        return float(np.linalg.norm(point - self.centre)) - self.radius


def _root(anatomy: Anatomy, volume: Volume) -> Root | None:
    if "aortic_root" not in anatomy.landmarks or not anatomy.aortic_root.any():
        return None
    per_slice = anatomy.aortic_root.sum(axis=(1, 2))
    area = float(per_slice.max()) * volume.spacing[1] * volume.spacing[2]
    return Root(np.asarray(anatomy.landmarks["aortic_root"]), float(np.sqrt(area / np.pi)))


def _frame(anatomy: Anatomy) -> HeartFrame | None:
    try:
        return HeartFrame.from_landmarks(anatomy.landmarks)
    except KeyError:
        return None


def artery(point: np.ndarray, frame: HeartFrame | None, root: Root | None) -> str:
    """LM, LAD, LCX or RCA for an epicardial candidate at ``point`` (LPS mm).

    ``unassigned`` without a frame.
    """
    if frame is None:
        return UNASSIGNED
    t, phi = frame.place(point)
    if (root is not None and root.distance(point) <= LM_REACH_MM and point[0] > root.centre[0]
            and t <= LM_SPLIT_MM and LAD_SECTOR_DEG[0] <= phi < LAD_SECTOR_DEG[1]):
        return "LM"
    if t < AV_GROOVE_MM:
        if phi < 0:
            return "RCA"
        return "LAD" if phi < LAD_SECTOR_DEG[1] / 2 else "LCX"
    if LAD_SECTOR_DEG[0] <= phi < LAD_SECTOR_DEG[1]:
        return "LAD"
    if LCX_SECTOR_DEG[0] <= phi < LCX_SECTOR_DEG[1]:
        return "LCX"
    return "RCA"


Boxes = list[tuple[int, tuple[slice, ...]]]


def _fat_around(volume: Volume, lesion_map: np.ndarray, count: int, boxes: Boxes) -> np.ndarray:
    """Per candidate, the share of fat (``FAT_HU``) in a shell ``SHELL_MM`` around it."""
    out = np.ones(count)
    for index, box in boxes:
        distance = ndimage.distance_transform_edt(lesion_map[box] != index,
                                                  sampling=volume.spacing)
        shell = (distance >= SHELL_MM[0]) & (distance <= SHELL_MM[1])
        hu = volume.hu[box][shell]
        out[index] = float(np.mean((hu >= FAT_HU[0]) & (hu <= FAT_HU[1]))) if hu.size else 0.0
    return out


def _near_share(mask: np.ndarray, volume: Volume, lesion_map: np.ndarray, boxes: Boxes,
                mm: float) -> np.ndarray:
    """Per candidate, the share of its voxels within ``mm`` of ``mask`` (0 for none)."""
    out = np.zeros(max((index for index, _ in boxes), default=0) + 1)
    for index, box in boxes:
        local = mask[box]
        if not local.any():
            continue
        near = ndimage.distance_transform_edt(~local, sampling=volume.spacing) <= mm
        out[index] = float(near[lesion_map[box] == index].mean())
    return out


def _boxes(lesion_map: np.ndarray, where: tuple[np.ndarray, ...],
           spacing: tuple[float, float, float], mm: float) -> Boxes:
    """Each candidate's bounding box grown by ``mm`` (clipped to the volume).

    ``where`` are the candidates' voxel indices (``np.nonzero(lesion_map)``);
    the boxes come from them, not from a pass over the whole map.
    """
    owner = lesion_map[where]
    count = int(owner.max(initial=0))
    low = np.full((count + 1, 3), np.iinfo(np.int64).max)
    high = np.full((count + 1, 3), -1)
    for axis in range(3):
        np.minimum.at(low[:, axis], owner, where[axis])
        np.maximum.at(high[:, axis], owner, where[axis])
    pad = [int(np.ceil(mm / s)) + 1 for s in spacing]
    return [(index, tuple(slice(max(int(low[index, a]) - pad[a], 0),
                                min(int(high[index, a]) + 1 + pad[a], lesion_map.shape[a]))
                          for a in range(3)))
            for index in range(1, count + 1) if high[index, 0] >= 0]
