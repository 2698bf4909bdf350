"""Thoracic anatomy from a non-contrast chest CT, by classical image analysis.

Interface only in this commit: :class:`Anatomy` is what the segmentation gives
the coronary labeller (``imaging_core.coronary``) and the image QA gate
(``imaging_core.scanqa``). Every mask is a bool array shaped like
``Volume.hu`` (z, y, x). A structure that could not be found is an all-False
mask *and* a line in ``missing``: absent from ``missing`` means found, so a
consumer never reads a failed step as "nothing there".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
