"""Straightened (curved planar) views of a vessel, and the frames along its centreline.

A straightened view samples the CT on lines perpendicular to the centreline,
one line per step along it, all lying along the centreline's rotation-minimising
normal (Wang W et al. "Computation of rotation minimizing frames", ACM Trans
Graph 2008;27(1):2, the double-reflection method), so the vessel appears as a
straight band whose width follows its lumen. Values come from
``scipy.ndimage.map_coordinates`` (trilinear, order 1) in the volume's voxel
grid; outside the volume they are -1024 HU (air), never a made-up tissue value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from imaging_core.volume import Volume

OUTSIDE_HU = -1024.0


@dataclass(frozen=True)
class Straightened:
    """``hu`` (across, along): column j lies ``along_mm[j]`` from the ostium, row i at
    ``across_mm[i]`` from the centreline along the frame's normal."""

    hu: np.ndarray
    along_mm: np.ndarray
    across_mm: np.ndarray


def frames(points_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit tangents, normals and binormals (each (n, 3)) along a polyline, rotation-minimising.

    The first normal is the direction most perpendicular to the first tangent
    among the patient axes, so the frame is fixed by the geometry alone.
    """
    points = np.asarray(points_mm, dtype=np.float64)
    tangents = _unit(np.gradient(points, axis=0))
    normals = np.empty_like(points)
    start = np.eye(3)[int(np.argmin(np.abs(tangents[0])))]
    normals[0] = _unit(start - tangents[0] * (start @ tangents[0]))
    for i in range(len(points) - 1):
        normals[i + 1] = _double_reflection(points[i], points[i + 1], tangents[i],
                                            tangents[i + 1], normals[i])
    return tangents, normals, np.cross(tangents, normals)


def _double_reflection(p0: np.ndarray, p1: np.ndarray, t0: np.ndarray, t1: np.ndarray,
                       r0: np.ndarray) -> np.ndarray:
    """The next normal by Wang 2008's double reflection (their Algorithm 1)."""
    v1 = p1 - p0
    c1 = v1 @ v1
    if c1 == 0:
        return r0
    r_left = r0 - (2 / c1) * (v1 @ r0) * v1
    t_left = t0 - (2 / c1) * (v1 @ t0) * v1
    v2 = t1 - t_left
    c2 = v2 @ v2
    normal = r_left if c2 == 0 else r_left - (2 / c2) * (v2 @ r_left) * v2
    return _unit(normal - t1 * (normal @ t1))


def _unit(vectors: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.asarray(vectors / np.where(length == 0, 1.0, length))


def resample(points_mm: np.ndarray, from_ostium_mm: np.ndarray,
             step_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Centreline points every ``step_mm`` of distance from the ostium, and those distances."""
    along = np.arange(from_ostium_mm[0], from_ostium_mm[-1] + step_mm / 2, step_mm)
    points = np.stack([np.interp(along, from_ostium_mm, points_mm[:, k]) for k in range(3)],
                      axis=1)
    return points, along


def straighten(volume: Volume, points_mm: np.ndarray, from_ostium_mm: np.ndarray,
               half_width_mm: float = 8.0, step_mm: float = 0.5) -> Straightened:
    """The straightened view of one centreline (points (n, 3) mm, distances (n,) mm)."""
    if len(points_mm) < 2:
        raise ValueError("a centreline needs at least two points")
    centres, along = resample(np.asarray(points_mm, dtype=np.float64),
                              np.asarray(from_ostium_mm, dtype=np.float64), step_mm)
    _, normals, _ = frames(centres)
    across = np.arange(-half_width_mm, half_width_mm + step_mm / 2, step_mm)
    samples = centres[None, :, :] + across[:, None, None] * normals[None, :, :]
    zyx = volume.patient_to_voxel(samples.reshape(-1, 3)).T
    hu = ndimage.map_coordinates(volume.hu, zyx, output=np.float32, order=1,
                                 mode="constant", cval=OUTSIDE_HU)
    return Straightened(hu.reshape(len(across), len(along)), along, across)
