"""Analytic blurred tubes for the CTCA measurement tests: geometry known exactly.

A tube is a centreline (straight or a circular arc, in any plane) with a
lumen radius given as a function of arc length ``s``; the wall between the
lumen and the healthy radius ``r0`` may hold plaque of a given HU. Voxels are
the average of 4x4x4 sub-samples (partial volume), then blurred with a
Gaussian point spread function and given white noise, like a CT image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from imaging_core.ctca.tree import Segment
from imaging_core.volume import Volume

LUMEN_HU = 400.0
FAT_HU = -100.0
SOFT_PLAQUE_HU = 50.0
CALCIUM_HU = 900.0

Radius = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Tube:
    """Centre ``c`` (3,) mm; ``u`` the direction of a straight tube, or an arc of radius
    ``bend_mm`` in the plane of the unit vectors ``u`` and ``v`` (starting at c, heading u)."""

    c: np.ndarray
    u: np.ndarray
    v: np.ndarray
    length_mm: float
    bend_mm: float | None = None

    def project(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Arc length s and the in-plane offsets (a, b) from the centreline of points p (N, 3);
        b runs along ``w`` = u x v (straight) or the arc plane's normal (arc)."""
        q = p - self.c
        w = np.cross(self.u, self.v)
        if self.bend_mm is None:
            return q @ self.u, q @ self.v, q @ w
        rel = q + self.bend_mm * self.v  # from the arc's centre
        x, y = rel @ self.v, rel @ self.u
        return self.bend_mm * np.arctan2(y, x), np.hypot(x, y) - self.bend_mm, rel @ w

    def points(self, step: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        s = np.arange(0.0, self.length_mm + 1e-9, step)
        if self.bend_mm is None:
            return self.c + np.outer(s, self.u), s
        phi = s / self.bend_mm
        centre = -self.bend_mm * self.v
        return (self.c + centre + self.bend_mm * (np.outer(np.cos(phi), self.v)
                                                  + np.outer(np.sin(phi), self.u))), s


def hu_of(tube: Tube, radius: Radius, r0: float, plaque_hu: float, eccentric: bool = False,
          remodel_mm: float = 0.0) -> Callable[[np.ndarray], np.ndarray]:
    """HU of points (N, 3): lumen inside ``radius(s)``, plaque out to ``r0`` (and
    ``remodel_mm`` beyond it where the lumen is narrowed: positive remodelling), fat beyond.

    ``eccentric``: the narrowed lumen keeps touching the wall on one side (its
    centre moves by r0 - radius(s) along b) and the plaque is a crescent on
    the other, as a calcified nodule makes it.
    """
    def hu(p: np.ndarray) -> np.ndarray:
        s, a, b = tube.project(p)
        inside = (s >= -5) & (s <= tube.length_mm + 5)
        r = radius(np.clip(s, 0, tube.length_mm))
        shift = (r0 - r) if eccentric else 0.0
        out = np.full(len(p), FAT_HU)
        outer = r0 + np.where(r < r0 - 1e-9, remodel_mm, 0.0)
        out[inside & (np.hypot(a, b) < outer)] = plaque_hu
        out[inside & (np.hypot(a, b - shift) < r)] = LUMEN_HU
        return out
    return hu


def volume_of(hu: Callable[[np.ndarray], np.ndarray], shape: tuple[int, int, int],
              spacing: tuple[float, float, float] = (0.6, 0.5, 0.5), psf_mm: float = 0.4,
              noise_hu: float = 20.0, seed: int = 0) -> Volume:
    """A Volume (z, y, x) with identity orientation: patient (x, y, z) = index * spacing."""
    zz, yy, xx = np.indices(shape, dtype=np.float64)
    acc = np.zeros(shape)
    subs = (-3 / 8, -1 / 8, 1 / 8, 3 / 8)  # midpoint rule: 4 sub-samples a voxel side
    for dz in subs:
        for dy in subs:
            for dx in subs:
                p = np.stack([(xx + dx) * spacing[2], (yy + dy) * spacing[1],
                              (zz + dz) * spacing[0]], axis=-1).reshape(-1, 3)
                acc += hu(p).reshape(shape)
    acc /= len(subs) ** 3
    sigma = [psf_mm / s for s in spacing]
    image = ndimage.gaussian_filter(acc, sigma) + np.random.default_rng(seed).normal(
        0.0, noise_hu, shape)
    return Volume(hu=image.astype(np.float32), spacing=spacing, origin=np.zeros(3),
                  orientation=np.eye(3), slice_positions=np.arange(shape[0]) * spacing[0],
                  slice_thickness=spacing[0], series_uid="1.2.3", study_uid="1.2",
                  frame_of_reference_uid="1.4", accession_number="ACC-CTCA", modality="CT",
                  kvp=100.0, contrast=True, sop_instance_uids=[])


def segment_of(tube: Tube, step: float = 0.5) -> Segment:
    points, s = tube.points(step)
    return Segment(id="LAD", vessel="LAD", parent=None, points_mm=points, from_ostium_mm=s)


def constant(r: float) -> Radius:
    return lambda s: np.full_like(s, r)


def narrowing(r0: float, stenosis_pct: float, centre_mm: float, length_mm: float,
              shoulder_mm: float = 1.0) -> Radius:
    """Radius r0 with a narrowing to (1 - stenosis) r0 over ``length_mm`` (flat middle,
    linear shoulders of ``shoulder_mm`` included in the length)."""
    def radius(s: np.ndarray) -> np.ndarray:
        from_edge = length_mm / 2 - np.abs(s - centre_mm)
        depth = np.clip(from_edge / shoulder_mm, 0.0, 1.0) * stenosis_pct / 100
        return r0 * (1 - depth)
    return radius
