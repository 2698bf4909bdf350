"""Rendered images and native frames of stored instances (DICOM PS3.18 §9.5, §10.4).

Pure functions over a pydicom ``Dataset``; the DICOMweb views call them.

- :func:`rendered` turns one frame into an 8-bit PNG or JPEG: the Modality
  LUT (rescale), then the VOI window asked for with ``window=center,width,
  function`` (PS3.18 §8.3.5.1.4; functions as PS3.3 C.11.2.1.2), else the
  instance's own window, else its full range; MONOCHROME1 is inverted; pixel
  padding (PS3.3 C.7.5.1.1.2, read by :func:`imaging_core.volume.padding_mask`)
  is not image: it is left out of the full range and shown black; a
  ``viewport=width,height`` scales it to fit (Pillow). Colour images are
  passed through.
- :func:`frame_bytes` gives frames in their native (uncompressed) encoding,
  for ``frames/{list}`` and Pixel Data's BulkDataURI.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_windowing

from core.errors import BadRequest
from core.params import whole_number
from imaging_core.volume import padding_mask

FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}
# Largest rendered width or height in pixels: a larger viewport would only spend the
# worker's memory (a 4096 x 4096 RGB PNG is 48 MiB before compression).
MAX_VIEWPORT = 4096
VOI_FUNCTIONS = {"linear": "LINEAR", "linear_exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: str = "LINEAR"


# A decimal as DICOM DS writes it (PS3.5 §6.2): ASCII digits, optional exponent.
_DECIMAL = re.compile(r"[+-]?([0-9]{1,16}(\.[0-9]{0,16})?|\.[0-9]{1,16})([eE][+-]?[0-9]{1,3})?")


def parse_window(value: str | None) -> Window | None:
    """``window=center,width[,function]`` (PS3.18 §8.3.5.1.4), or None when absent.

    Center and width are finite ASCII decimals; the width at least 1. Raises
    ``BadRequest`` (400) otherwise.
    """
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) not in (2, 3) or not all(_DECIMAL.fullmatch(p) for p in parts[:2]) or \
            not all(math.isfinite(float(p)) for p in parts[:2]):
        raise BadRequest(f"window must be center,width[,function] in decimals, not "
                         f"'{value[:60]}'", ["window"])
    center, width = float(parts[0]), float(parts[1])
    function = VOI_FUNCTIONS.get(parts[2].lower() if len(parts) > 2 else "linear")
    if function is None or width < 1:
        raise BadRequest(f"window function must be linear, linear_exact or sigmoid and the "
                         f"width at least 1, not '{value[:60]}'", ["window"])
    return Window(center, width, function)


def parse_quality(value: str | None) -> int | None:
    """``quality=1..100`` (PS3.18 §8.3.5.1.3) for lossy media, or None when absent."""
    return None if value is None else whole_number(value, "quality", 100, minimum=1)


def parse_viewport(value: str | None) -> tuple[int, int] | None:
    """``viewport=width,height`` in pixels (source-region parts are not supported)."""
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) != 2:
        raise BadRequest(f"viewport must be width,height in pixels, not '{value[:40]}'",
                         ["viewport"])
    width, height = (whole_number(p, "viewport", MAX_VIEWPORT + 1, minimum=1) for p in parts)
    if max(width, height) > MAX_VIEWPORT:
        raise BadRequest(f"viewport is at most {MAX_VIEWPORT} pixels each way", ["viewport"])
    return width, height


def frame_count(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames") or 1)


def frame_array(ds: Dataset, number: int) -> np.ndarray:
    """Frame ``number`` (1-based) as stored values, decompressed."""
    frames = frame_count(ds)
    if not 1 <= number <= frames:
        raise BadRequest(f"Frame {number} does not exist; the instance has {frames}",
                         ["frames"])
    pixels = ds.pixel_array
    return pixels[number - 1] if frames > 1 else pixels  # type: ignore[no-any-return]


def rendered(ds: Dataset, number: int, media: str, window: Window | None,
             viewport: tuple[int, int] | None, quality: int | None = None) -> bytes:
    """Frame ``number`` as an 8-bit image in ``media`` (image/png or image/jpeg), JPEG
    at ``quality`` (1-100; Pillow's default when None)."""
    pixels = frame_array(ds, number)
    if ds.get("SamplesPerPixel", 1) == 1:
        pixels = _grey(ds, pixels, window)
    image = Image.fromarray(np.ascontiguousarray(pixels).astype(np.uint8))
    if viewport:
        image.thumbnail(viewport)
    buffer = io.BytesIO()
    options = {"quality": quality} if quality and media == "image/jpeg" else {}
    image.save(buffer, format=FORMATS[media], **options)
    return buffer.getvalue()


def _grey(ds: Dataset, pixels: np.ndarray, window: Window | None) -> np.ndarray:
    """Stored values to 0-255 grey: Modality LUT, then the VOI window (pydicom), else
    the full range of the unpadded pixels; MONOCHROME1 inverted; padding black."""
    padding = padding_mask(ds, pixels)
    values = apply_modality_lut(pixels, ds).astype(np.float64)
    chosen = window or _own_window(ds)
    if chosen is not None:
        voi = Dataset()  # an 8-bit unsigned output range for pydicom's windowing
        voi.WindowCenter, voi.WindowWidth = chosen.center, chosen.width
        voi.VOILUTFunction, voi.BitsStored, voi.PixelRepresentation = chosen.function, 8, 0
        voi.PhotometricInterpretation = "MONOCHROME2"
        scaled = apply_windowing(values, voi)
    else:
        image = values[~padding]
        low, high = (float(image.min()), float(image.max())) if image.size else (0.0, 1.0)
        scaled = (values - low) / max(high - low, 1e-9) * 255.0
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        scaled = 255.0 - scaled
    scaled[padding] = 0.0
    return np.clip(np.rint(scaled), 0, 255)


def _own_window(ds: Dataset) -> Window | None:
    """The instance's first VOI window (PS3.3 C.11.2), if it has one."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    return Window(float(_first(ds.WindowCenter)), max(float(_first(ds.WindowWidth)), 1.0),
                  str(ds.get("VOILUTFunction") or "LINEAR"))


def _first(value: Any) -> Any:
    """The first of a multi-valued attribute (several windows may be given)."""
    return value[0] if isinstance(value, MultiValue) else value


def frame_bytes(ds: Dataset, numbers: list[int]) -> list[bytes]:
    """The frames' native pixel data: stored values, little endian, uncompressed."""
    allocated = int(ds.BitsAllocated)
    dtype = np.dtype(f"<{'i' if ds.get('PixelRepresentation', 0) else 'u'}{allocated // 8}") \
        if allocated in (8, 16, 32) else None
    if dtype is None:
        raise BadRequest(f"Frames of {allocated}-bit pixels are not served", ["frames"])
    return [np.ascontiguousarray(frame_array(ds, n)).astype(dtype).tobytes() for n in numbers]
