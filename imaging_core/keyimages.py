"""Key images as PNG: the axial slices with the most calcium, and a maximum intensity projection.

Greyscale uses the mediastinal window W400/L40 (HU -160 to 240), the usual
soft-tissue window for cardiac CT reading: calcium (>= 130 HU) is near white
and the overlay makes it unambiguous. Each accepted lesion is tinted by its
Agatston density weight: 1 yellow, 2 orange, 3 red, 4 magenta. Images keep the
stored pixel layout (row 0 at the top, column 0 at the left), which for an
axial head-first-supine acquisition is the radiological view.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from imaging_core.volume import Volume

MEDIASTINAL_WINDOW = (400.0, 40.0)  # (width, level) in HU
WEIGHT_COLOURS = np.array([
    (0, 0, 0),  # unused: weight 0 is not tinted
    (255, 230, 0),
    (255, 140, 0),
    (230, 30, 30),
    (210, 0, 210),
], dtype=np.float32)
OVERLAY_ALPHA = 0.6


@dataclass(frozen=True)
class KeyImage:
    """One rendered key image; ``slice_index`` is None for a projection."""

    name: str
    png: bytes
    slice_index: int | None
    description: str


def key_images(volume: Volume, weight_map: np.ndarray, count: int = 3,
               window: tuple[float, float] = MEDIASTINAL_WINDOW) -> list[KeyImage]:
    """The ``count`` axial slices with the most weighted calcium, then an axial MIP.

    Slices are ranked by the sum of density weights of their calcified
    pixels (proportional to their Agatston contribution); slices without
    calcium are never chosen.
    """
    per_slice = weight_map.reshape(weight_map.shape[0], -1).sum(axis=1, dtype=np.int64)
    ranked = [int(k) for k in np.argsort(-per_slice, kind="stable")[:count] if per_slice[k] > 0]
    images = [KeyImage(f"axial-{k:03d}", axial_png(volume, weight_map, k, window), k,
                       f"axial slice {k + 1} of {volume.shape[0]} with calcium overlay")
              for k in ranked]
    images.append(KeyImage("mip-axial", mip_png(volume, weight_map, window), None,
                           "axial maximum intensity projection of the whole volume"))
    return images


def axial_png(volume: Volume, weight_map: np.ndarray, index: int,
              window: tuple[float, float] = MEDIASTINAL_WINDOW) -> bytes:
    """One axial slice, windowed, with lesions tinted by density weight."""
    rgb = _overlay(windowed(volume.hu[index], window), weight_map[index])
    return png(rgb, f"axial slice {index + 1}, window W{window[0]:g}/L{window[1]:g}")


def mip_png(volume: Volume, weight_map: np.ndarray,
            window: tuple[float, float] = MEDIASTINAL_WINDOW) -> bytes:
    """Maximum intensity projection along the slice normal, with the highest weight tinted."""
    rgb = _overlay(windowed(volume.hu.max(axis=0), window), weight_map.max(axis=0))
    return png(rgb, f"axial MIP, window W{window[0]:g}/L{window[1]:g}")


def windowed(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Linear window to 0-255 grey (floats), clipped at both ends."""
    width, level = window
    low = level - width / 2.0
    return np.clip((hu.astype(np.float32) - low) / width, 0.0, 1.0) * 255.0


def _overlay(grey: np.ndarray, weights: np.ndarray) -> np.ndarray:
    rgb = np.repeat(grey[..., None], 3, axis=2)
    tinted = weights > 0
    colours = WEIGHT_COLOURS[np.clip(weights[tinted], 0, 4)]
    rgb[tinted] = (1 - OVERLAY_ALPHA) * rgb[tinted] + OVERLAY_ALPHA * colours
    return np.round(rgb).astype(np.uint8)


def png(rgb: np.ndarray, description: str) -> bytes:
    """An RGB image as PNG bytes, with its description and software in text chunks."""
    info = PngInfo()
    info.add_text("Description", description)
    info.add_text("Software", "ScanPath imaging core")
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()
