"""Is an image's Pixel Data whole? Checked before an instance is kept.

A well-formed file can carry damaged pixels: Pixel Data shorter or longer
than its own Image Pixel module says, frames missing from an encapsulated
(compressed) stream, or fragments that do not decode. Such an instance is
refused, never stored and never allowed to replace a good copy
(PS3.4 B.2.3: success only for what is stored whole).

- **Native** (uncompressed) Pixel Data must be exactly Rows x Columns x
  Samples per Pixel x Bits Allocated / 8 x Number of Frames bytes
  (PS3.3 C.7.6.3, PS3.5 §8.1.1), plus the one pad byte that keeps an
  odd length even (PS3.5 §7.1.1). This is a length comparison: free.
- **Encapsulated** Pixel Data (PS3.5 §8.2, Annex A.4) must split into
  Number of Frames frames (Basic or Extended Offset Table, or one fragment
  per frame), and every frame must decode with pydicom's pixel handlers to
  Rows x Columns x Samples per Pixel. Decoding is what Orthanc's and
  dcm4chee's "is it readable" checks amount to; its cost was measured with
  ``bench/dicom_ingest.py`` (docs/benchmarks.md).

Raises :class:`imaging_core.errors.DatasetMismatch` (0xA900, "Data Set does
not match SOP Class") for every damaged case, and
:class:`imaging_core.errors.UnsupportedTransferSyntax` (0xC122) when no
decoder for the stream's syntax is installed, so the check cannot be made.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import get_expected_length

from imaging_core.errors import DatasetMismatch, UnsupportedTransferSyntax

_IMAGE_PIXEL = ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel")


def check_pixel_data(ds: Dataset, known: dict[str, Any]) -> None:
    """Refuse ``ds`` unless its Pixel Data is whole; ``known`` names the instance in errors."""
    if "PixelData" not in ds:
        return  # an SR document; an image without Pixel Data is refused by its SOP Class check
    frames = number_of_frames(ds, known)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        _check_encapsulated(ds, frames, known)
    else:
        _check_native(ds, known)


def number_of_frames(ds: Dataset, known: dict[str, Any]) -> int:
    """Number of Frames (0028,0008), 1 when absent (PS3.3 C.7.6.6); refused unless >= 1."""
    missing = [keyword for keyword in _IMAGE_PIXEL if ds.get(keyword) in (None, "")]
    if missing:
        raise DatasetMismatch(f"Pixel Data without {', '.join(missing)} (PS3.3 C.7.6.3)",
                              **known)
    value = ds.get("NumberOfFrames")
    try:
        frames = 1 if value in (None, "") else int(value)
    except (TypeError, ValueError):
        frames = 0
    if frames < 1:
        raise DatasetMismatch(f"Number of Frames '{value}' is not a positive integer", **known)
    return frames


def _check_native(ds: Dataset, known: dict[str, Any]) -> None:
    expected = int(get_expected_length(ds, unit="bytes"))
    actual = len(ds.PixelData)
    if actual != expected and not (expected % 2 and actual == expected + 1):
        raise DatasetMismatch(f"Pixel Data holds {actual} bytes; Rows, Columns, Samples per "
                              f"Pixel, Bits Allocated and Number of Frames make {expected} "
                              "(PS3.5 8.1.1): the image is damaged", **known)


def _check_encapsulated(ds: Dataset, frames: int, known: dict[str, Any]) -> None:
    syntax = ds.file_meta.TransferSyntaxUID
    decoder = get_decoder(syntax)
    if not decoder.is_available:
        raise UnsupportedTransferSyntax(f"No decoder for {syntax.name} is installed, so its "
                                        "Pixel Data cannot be checked", **known)
    try:
        found = sum(1 for _ in generate_frames(ds.PixelData, number_of_frames=frames))
    except (ValueError, TypeError, KeyError) as error:
        raise DatasetMismatch(f"The encapsulated Pixel Data cannot be split into frames "
                              f"(PS3.5 A.4): {error}", **known) from error
    if found != frames:
        raise DatasetMismatch(f"The encapsulated Pixel Data holds {found} frames, Number of "
                              f"Frames says {frames}", **known)
    _decode_every_frame(ds, frames, known)


def _decode_every_frame(ds: Dataset, frames: int, known: dict[str, Any]) -> None:
    decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
    try:
        for index in range(frames):
            decoder.as_array(ds, index=index)
    except Exception as error:  # each plugin raises its own types on a bad codestream
        raise DatasetMismatch(f"Frame {index + 1} of the compressed Pixel Data does not "
                              f"decode: {error}", **known) from error
