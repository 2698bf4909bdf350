"""One candidate calcium lesion outlined on its axial slice, as PNG (issue 12 item 5).

The candidate's id names its first voxel (``calcium.Lesion``: ``Lzzz-yyy-xxx``
in (slice, row, column) order). Its voxels are found again as the
26-connected region at or above the scoring threshold (130 HU, Agatston 1990;
``calcium.CalciumParams``) holding that voxel, within the lesion's slices; the
slice where it is largest is shown in the mediastinal window
(``keyimages.MEDIASTINAL_WINDOW``) with the region's edge drawn in cyan, a
colour the density tints of the key images never use. Pure: no database,
no Flask.
"""

from __future__ import annotations

import re

import numpy as np
from scipy import ndimage

from imaging_core import keyimages
from imaging_core.calcium import CalciumParams
from imaging_core.volume import Volume

OUTLINE = np.array((0, 255, 255), dtype=np.uint8)  # cyan
MIN_SIDE = 384  # pixels: small matrices are enlarged (nearest neighbour) to at least this
_ID = re.compile(r"L(\d{3,})-(\d{3,})-(\d{3,})")


def first_voxel(lesion_id: str) -> tuple[int, int, int] | None:
    """The (slice, row, column) a candidate's id names; None for an id of another form."""
    match = _ID.fullmatch(lesion_id)
    if match is None:
        return None
    z, y, x = (int(g) for g in match.groups())
    return z, y, x


def lesion_png(volume: Volume, lesion_id: str, slices: tuple[int, int]) -> bytes | None:
    """The outlined slice of the lesion; None when the id's voxel is not calcium here."""
    voxel = first_voxel(lesion_id)
    if voxel is None or not all(0 <= v < n for v, n in zip(voxel, volume.shape, strict=True)):
        return None
    first, last = max(0, slices[0]), min(volume.shape[0] - 1, slices[1])
    region = _region(volume, voxel, first, last)
    if region is None:
        return None
    index = first + int(np.argmax(region.reshape(region.shape[0], -1).sum(axis=1)))
    mask = region[index - first]
    grey = keyimages.windowed(volume.hu[index], keyimages.MEDIASTINAL_WINDOW)
    rgb = np.repeat(np.round(grey).astype(np.uint8)[..., None], 3, axis=2)
    rgb, mask = _enlarged(rgb), _enlarged(mask)
    rgb[mask & ~ndimage.binary_erosion(mask, iterations=2)] = OUTLINE
    return keyimages.png(rgb, f"candidate lesion {lesion_id} outlined on axial slice "
                               f"{index + 1} of {volume.shape[0]}")


def _region(volume: Volume, voxel: tuple[int, int, int], first: int,
            last: int) -> np.ndarray | None:
    """The thresholded 26-connected region holding ``voxel``, over slices first..last."""
    z, y, x = voxel
    if not first <= z <= last:
        return None
    calcified = volume.hu[first:last + 1] >= CalciumParams().threshold_hu
    labels, _ = ndimage.label(calcified, structure=np.ones((3, 3, 3), dtype=bool))
    own = labels[z - first, y, x]
    return None if own == 0 else np.asarray(labels == own)


def _enlarged(image: np.ndarray) -> np.ndarray:
    factor = max(1, -(-MIN_SIDE // max(image.shape[0], image.shape[1])))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
