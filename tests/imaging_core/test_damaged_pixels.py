"""Damaged Pixel Data is refused on every path and never replaces a good copy.

Each kind of damage is built from a valid phantom slice by hand; the
expected lengths come from PS3.5 §8.1.1 (Rows x Columns x Samples per Pixel
x Bits Allocated / 8 x Number of Frames), not from the code under test.
C-STORE goes through dcmtk's storescu, STOW-RS through the Flask client
with a hand-built multipart body. SQLite and PostgreSQL.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEG2000Lossless, RLELossless
from sqlmodel import Session

from core.db import engine_for
from core.settings import Settings
from imaging_core.errors import DatasetMismatch
from imaging_core.models import DicomInstance
from imaging_core.storage import receive, versions_of
from tests.imaging_core.conftest import (
    encoded,
    needs_dcmtk,
    rows,
    sha256,
    stored_files,
    storescu,
    study,
)
from tests.imaging_core.phantoms import write
from tests.imaging_core.test_dicomweb import (
    FAILED,
    FAILURE_REASON,
    SOP_INSTANCE,
    multipart,
    stow_headers,
)

Headers = Callable[..., dict[str, str]]


def _native_length(ds: Dataset) -> int:
    return int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * int(ds.BitsAllocated) // 8


def short(ds: Dataset) -> None:
    ds.PixelData = ds.PixelData[:_native_length(ds) // 2]


def long(ds: Dataset) -> None:
    ds.PixelData = ds.PixelData + b"\x00\x00" * 64


def missing(ds: Dataset) -> None:
    del ds.PixelData


def two_frames_claimed(ds: Dataset) -> None:
    ds.NumberOfFrames = 2


def no_rows(ds: Dataset) -> None:
    del ds.Rows


def rle_frames_claimed(ds: Dataset) -> None:
    _rle(ds)
    ds.NumberOfFrames = 3


def rle_junk(ds: Dataset) -> None:
    _rle(ds)
    ds.PixelData = encapsulate([b"not an RLE segment header" * 8])


def rle_cut(ds: Dataset) -> None:
    _rle(ds)
    [frame] = generate_frames(ds.PixelData, number_of_frames=1)
    ds.PixelData = encapsulate([frame[:len(frame) // 3]])


def _rle(ds: Dataset) -> None:
    ds.compress(RLELossless, generate_instance_uid=False)


def j2k_cut(ds: Dataset) -> None:
    ds.compress(JPEG2000Lossless, generate_instance_uid=False)
    [frame] = generate_frames(ds.PixelData, number_of_frames=1)
    ds.PixelData = encapsulate([frame[:len(frame) // 2]])


def j2k_of_another_image(ds: Dataset) -> None:
    other = copy.deepcopy(ds)
    other.Rows, other.Columns = 32, 32
    other.PixelData = ds.PixelData[:32 * 32 * 2]
    other.compress(JPEG2000Lossless, generate_instance_uid=False)
    ds.compress(JPEG2000Lossless, generate_instance_uid=False)
    ds.PixelData = other.PixelData


def j2k_junk(ds: Dataset) -> None:
    ds.compress(JPEG2000Lossless, generate_instance_uid=False)
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51 but then nothing of a codestream"])


DAMAGE = [short, long, missing, two_frames_claimed, no_rows, rle_frames_claimed, rle_junk,
          rle_cut, j2k_cut, j2k_of_another_image, j2k_junk]
OPTIONS = {RLELossless: ["-xr"], JPEG2000Lossless: ["-xv"]}  # storescu proposes the syntax


def damaged(accession: str, damage: Callable[[Dataset], None]) -> tuple[Dataset, Dataset]:
    """A good slice and a copy with the same SOP Instance UID, damaged."""
    good = study(accession, n_slices=1)[0]
    bad = copy.deepcopy(good)
    damage(bad)
    return good, bad


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__ for d in DAMAGE])
def test_damaged_pixels_are_refused_by_stow_and_replace_nothing(
        settings: Settings, client: FlaskClient, auth_headers: Headers,
        damage: Callable[[Dataset], None]) -> None:
    good, bad = damaged("ACC-DAMAGE-STOW", damage)
    fresh = client.post("/dicomweb/studies", data=multipart(encoded(bad)),
                        headers=stow_headers(auth_headers))
    assert fresh.status_code == 409  # nothing stored
    [failed] = fresh.get_json()[FAILED]["Value"]
    assert failed[SOP_INSTANCE]["Value"] == [good.SOPInstanceUID]
    assert failed[FAILURE_REASON]["Value"][0] in (0xA900, *range(0xC000, 0xD000))
    assert stored_files(settings) == [] and rows(settings, DicomInstance) == []

    assert client.post("/dicomweb/studies", data=multipart(encoded(good)),
                       headers=stow_headers(auth_headers)).status_code == 200
    again = client.post("/dicomweb/studies", data=multipart(encoded(bad)),
                        headers=stow_headers(auth_headers))
    assert again.status_code == 409
    [row] = rows(settings, DicomInstance)
    assert row.content_hash == sha256(encoded(good))
    served = client.get(f"/dicomweb/studies/{good.StudyInstanceUID}/series/"
                        f"{good.SeriesInstanceUID}/instances/{good.SOPInstanceUID}",
                        headers={**stow_headers(auth_headers),
                                 "Accept": "application/dicom; transfer-syntax=*"})
    assert served.status_code == 200 and served.data == encoded(good)


@needs_dcmtk
@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__ for d in DAMAGE])
def test_damaged_pixels_are_refused_over_c_store_and_replace_nothing(
        settings: Settings, scp: int, tmp_path: Path, damage: Callable[[Dataset], None]) -> None:
    good, bad = damaged("ACC-DAMAGE-SCU", damage)
    [good_path] = write([good], tmp_path / "good")
    [bad_path] = write([bad], tmp_path / "bad")
    option = OPTIONS.get(bad.file_meta.TransferSyntaxUID, [])
    first = storescu(scp, [bad_path], *option)
    assert "Received Store Response (Success)" not in first.stderr
    assert "DataSetDoesNotMatchSOPClass" in first.stderr or "CannotUnderstand" in first.stderr
    assert rows(settings, DicomInstance) == [] and stored_files(settings) == []

    assert "Received Store Response (Success)" in storescu(scp, [good_path]).stderr
    [kept] = rows(settings, DicomInstance)
    assert "Received Store Response (Success)" not in storescu(scp, [bad_path], *option).stderr
    [row] = rows(settings, DicomInstance)
    assert row.content_hash == kept.content_hash
    assert dcmread(settings.var_dir / row.path).PixelData == good.PixelData


def test_whole_pixel_data_with_its_pad_byte_is_kept(settings: Settings) -> None:
    ds = study("ACC-ODD", n_slices=1)[0]
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 3, 3, 8, 8, 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(9)) + b"\x00"  # 9 bytes of pixels, padded to even (PS3.5 7.1.1)
    ds.pop("PixelPaddingValue", None)
    ds.pop("WindowCenter", None)
    assert receive(settings, encoded(ds), "c-store").outcome == "new"


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_whole_compressed_pixel_data_is_kept(settings: Settings, syntax: str) -> None:
    ds = study("ACC-WHOLE", n_slices=1)[0]
    ds.compress(syntax, generate_instance_uid=False)
    assert receive(settings, encoded(ds), "stow").outcome == "new"


def test_a_damaged_copy_is_refused_directly_too(settings: Settings) -> None:
    good, bad = damaged("ACC-DAMAGE-DIRECT", short)
    receive(settings, encoded(good), "c-store")
    with pytest.raises(DatasetMismatch):
        receive(settings, encoded(bad), "c-store")
    [row] = rows(settings, DicomInstance)
    assert row.content_hash == sha256(encoded(good))


def test_every_replaced_version_is_kept_and_the_current_one_named(settings: Settings) -> None:
    ds = study("ACC-VERSIONS", n_slices=1)[0]
    first = encoded(ds)
    receive(settings, first, "c-store")
    ds.ImageComments = "corrected at the modality"
    second = encoded(ds)
    ds.ImageComments = "corrected again"
    third = encoded(ds)
    for data in (second, third):
        assert receive(settings, data, "stow").outcome == "replaced"
    with Session(engine_for(settings.database_url)) as session:
        versions = versions_of(session, ds.SOPInstanceUID)
    assert [v.content_hash for v in versions] == [sha256(first), sha256(second), sha256(third)]
    assert [v.version for v in versions] == [1, 2, 3]
    assert [v.superseded_at is None for v in versions] == [False, False, True]
    assert [v.source for v in versions] == ["c-store", "stow", "stow"]
    for version in versions:  # every file is still there, as it was received
        assert sha256((settings.var_dir / version.path).read_bytes()) == version.content_hash
    [row] = rows(settings, DicomInstance)
    assert row.content_hash == sha256(third)
