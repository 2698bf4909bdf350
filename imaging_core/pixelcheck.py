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
  per frame). RLE frames are decoded in full with pydicom's handler, which
  checks every segment yields Rows x Columns bytes (about 10 ms per 512 x 512
  slice). JPEG and JPEG 2000 frames are checked by their structure: each is
  one whole codestream, from its start marker (SOI FFD8, ITU T.81 B.2.1; SOC
  FF4F then SIZ FF51, ITU T.800 A.4.1) to its end marker (EOI FFD9), and a
  JPEG 2000 SIZ segment states the image's own Columns and Rows. Decoding a
  512 x 512 JPEG 2000 slice costs about 120 ms, four times a whole C-STORE
  of an uncompressed slice; a cut or a foreign frame, the damage seen in
  practice, is caught by the markers (measurements in docs/benchmarks.md).

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
from pydicom.uid import RLELossless

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
    if syntax == RLELossless:
        _decode_every_frame(ds, frames, known)
        return
    for number, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=frames), 1):
        problem = codestream_problem(frame, int(ds.Columns), int(ds.Rows))
        if problem:
            raise DatasetMismatch(f"Frame {number} of the compressed Pixel Data is damaged: "
                                  f"{problem}", **known)


_SOI, _SOC_SIZ, _EOI = b"\xff\xd8", b"\xff\x4f\xff\x51", b"\xff\xd9"


def codestream_problem(frame: bytes, columns: int, rows: int) -> str | None:
    """Why ``frame`` is not one whole JPEG or JPEG 2000 codestream of this size, or None.

    A fragment is padded to even length with one 00 byte (PS3.5 A.4), so the
    end marker may be followed by it.
    """
    body = frame[:-1] if frame.endswith(b"\x00") and not frame.endswith(_EOI) else frame
    if not (frame.startswith(_SOI) or frame.startswith(_SOC_SIZ)):
        return "it does not start with a JPEG SOI or JPEG 2000 SOC marker"
    if not body.endswith(_EOI):
        return "it does not end with the end-of-image marker (FFD9): truncated"
    if frame.startswith(_SOC_SIZ) and len(frame) >= 24:
        # SIZ: Lsiz, Rsiz (2 bytes each), then Xsiz, Ysiz, XOsiz, YOsiz (4 each).
        x, y, x0, y0 = (int.from_bytes(frame[i:i + 4], "big") for i in (8, 12, 16, 20))
        if (x - x0, y - y0) != (columns, rows):
            return f"its SIZ segment says {x - x0} x {y - y0}, not {columns} x {rows}"
    return None


def _decode_every_frame(ds: Dataset, frames: int, known: dict[str, Any]) -> None:
    decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
    try:
        for index in range(frames):
            decoder.as_array(ds, index=index)
    except Exception as error:  # each plugin raises its own types on a bad codestream
        raise DatasetMismatch(f"Frame {index + 1} of the compressed Pixel Data does not "
                              f"decode: {error}", **known) from error
