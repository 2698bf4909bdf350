"""Pixel padding is never tissue (PS3.3 C.7.5.1.1.2; issue 10 item 3).

Each case writes real DICOM files, reads them back with pydicom and loads
them: the padded pixels (outside a reconstruction circle drawn here) must
come back as air in ``Volume.hu``, flagged in ``Volume.padding``, and never
reach the calcium score or a rendered image.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian

from imaging_core.calcium import score
from imaging_core.keyimages import key_images
from imaging_core.mesh import calcium_mesh
from imaging_core.rendering import Window, rendered
from imaging_core.volume import load_volume, padding_range
from tests.imaging_core import thorax
from tests.imaging_core.phantoms import (
    INTERCEPT,
    Insert,
    Phantom,
    datasets,
    enhanced_dataset,
    expected_agatston,
    hu_slice,
    series,
    write,
)

PHANTOM = Phantom(rows=64, cols=64, n_slices=6, inserts=(
    Insert(u=12, v=14, radius=2.0, w0=0, w1=15, hu=350),
    Insert(u=20, v=18, radius=1.5, w0=3, w1=9, hu=180, peak=420),
))
AIR_HU = -1024  # what a padded voxel must read as: air, below every threshold


def outside_circle(phantom: Phantom) -> np.ndarray:
    """Pixels whose centre lies outside a circle of 15 mm around the image centre."""
    dy, dx = phantom.pixel_spacing
    rows, cols = np.mgrid[0:phantom.rows, 0:phantom.cols]
    v = (rows - (phantom.rows - 1) / 2) * dy
    u = (cols - (phantom.cols - 1) / 2) * dx
    return np.asarray(np.hypot(u, v) > 15.0)


def padded(phantom: Phantom, value: int, limit: int | None = None) -> list[Dataset]:
    """The phantom's slices with every pixel outside the circle padding (the shared
    builder cycles them through the whole range from ``value`` to ``limit``)."""
    phantom = replace(phantom, padding_value=value, padding_range_limit=limit)
    outside = outside_circle(phantom)

    def hu_of(k: int) -> np.ndarray:
        image = hu_slice(phantom, k)
        image[outside] = np.nan
        return image

    return series(phantom, hu_of)


def reloaded(instances: list[Dataset], directory: Path, implicit: bool = False) -> list[Path]:
    if implicit:
        for ds in instances:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return write(instances, directory)


def assert_padding_is_air(phantom: Phantom, paths: list[Path]) -> None:
    volume = load_volume(paths)
    expected = np.broadcast_to(outside_circle(phantom), volume.shape)
    np.testing.assert_array_equal(volume.padding, expected)
    assert (volume.hu[expected] == AIR_HU).all()
    assert (volume.hu[~expected] >= phantom.background_hu).all()  # the body is untouched


UNSIGNED = replace(PHANTOM, signed=False)


def test_unsigned_padding_63536_outside_the_body_is_masked(tmp_path: Path) -> None:
    """The issue's case: unsigned 63536 (stored 63536 would be 62,512 HU)."""
    paths = reloaded(padded(UNSIGNED, 63536), tmp_path)
    assert_padding_is_air(UNSIGNED, paths)


def test_unsigned_padding_does_not_reach_the_calcium_score(tmp_path: Path) -> None:
    result = score(load_volume(reloaded(padded(UNSIGNED, 63536), tmp_path)))
    assert result.scorable
    assert result.agatston == pytest.approx(expected_agatston(UNSIGNED))
    assert result.lesion_count == len(UNSIGNED.inserts)


def test_signed_padding_value_alone(tmp_path: Path) -> None:
    """Signed padding at a stored value that would read as +31,743 HU, i.e. 'calcium'."""
    paths = reloaded(padded(PHANTOM, 32767), tmp_path)
    assert_padding_is_air(PHANTOM, paths)


def test_signed_negative_padding_alone(tmp_path: Path) -> None:
    paths = reloaded(padded(PHANTOM, -2000), tmp_path)
    assert_padding_is_air(PHANTOM, paths)


@pytest.mark.parametrize(("value", "limit"), [(3000, 3200), (3200, 3000)])
def test_range_limit_is_inclusive_in_either_order(tmp_path: Path, value: int,
                                                  limit: int) -> None:
    """Padding from 3000 to 3200 stored (1976-2176 HU if read as tissue), both ends included."""
    paths = reloaded(padded(PHANTOM, value, limit), tmp_path)
    assert_padding_is_air(PHANTOM, paths)


def test_without_a_range_limit_only_the_value_is_padding(tmp_path: Path) -> None:
    """A stored value one above the Padding Value is image, not padding."""
    phantom = replace(PHANTOM, padding_value=3000)
    outside = outside_circle(phantom)
    pad = np.zeros_like(outside)
    pad[outside] = np.resize(np.array([True, False]), int(outside.sum()))

    def hu_of(k: int) -> np.ndarray:
        image = hu_slice(phantom, k)
        image[outside & ~pad] = 3001 + INTERCEPT
        image[pad] = np.nan
        return image

    volume = load_volume(reloaded(series(phantom, hu_of), tmp_path))
    np.testing.assert_array_equal(volume.padding[0], pad)
    assert (volume.hu[0][outside & ~pad] == 3001 + INTERCEPT).all()


def test_implicit_vr_unsigned_padding(tmp_path: Path) -> None:
    paths = reloaded(padded(UNSIGNED, 63536), tmp_path, implicit=True)
    assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert_padding_is_air(UNSIGNED, paths)


def test_implicit_vr_signed_range(tmp_path: Path) -> None:
    paths = reloaded(padded(PHANTOM, -2000, -1500), tmp_path, implicit=True)
    assert_padding_is_air(PHANTOM, paths)


def test_padding_tag_written_with_the_wrong_vr(tmp_path: Path) -> None:
    """Unsigned pixels whose Padding Value was written as SS -2000: it means 63536."""
    instances = padded(UNSIGNED, 63536)
    for ds in instances:
        ds.add_new(0x00280120, "SS", -2000)
    paths = reloaded(instances, tmp_path)
    assert pydicom.dcmread(paths[0]).PixelPaddingValue == -2000  # as pydicom hands it back
    assert_padding_is_air(UNSIGNED, paths)


def test_enhanced_ct_padding(tmp_path: Path) -> None:
    enhanced = enhanced_dataset(UNSIGNED)
    frames = np.frombuffer(enhanced.PixelData, dtype="<u2").reshape(
        UNSIGNED.n_slices, UNSIGNED.rows, UNSIGNED.cols).copy()
    frames[:, outside_circle(UNSIGNED)] = 63536
    enhanced.PixelData = frames.tobytes()
    enhanced.add_new(0x00280120, "US", 63536)
    volume = load_volume(write([enhanced], tmp_path))
    assert volume.padding[:, outside_circle(UNSIGNED)].all()
    assert not volume.padding[:, ~outside_circle(UNSIGNED)].any()
    assert score(volume).agatston == pytest.approx(expected_agatston(UNSIGNED))


def test_a_series_without_padding_has_an_empty_mask(tmp_path: Path) -> None:
    volume = load_volume(write(datasets(PHANTOM), tmp_path))
    assert volume.padding.shape == volume.shape and not volume.padding.any()


def _grey(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"))


def test_rendered_image_shows_padding_black_and_windows_the_body(tmp_path: Path) -> None:
    """Window W400/L40: padding stored as 32767 (31,743 HU) would otherwise be white."""
    [path] = reloaded(padded(PHANTOM, 32767)[:1], tmp_path)
    image = _grey(rendered(pydicom.dcmread(path), 1, "image/png", Window(40, 400), None))
    outside = outside_circle(PHANTOM)
    assert (image[outside] == 0).all()
    assert (image[~outside] > 0).all()  # 40 HU background is mid-grey, not black


def test_rendered_full_range_ignores_padding(tmp_path: Path) -> None:
    """Without a window the grey scale spans the body's own values (40 to 350 HU here)."""
    instances = padded(UNSIGNED, 63536)[:1]
    for ds in instances:
        del ds.WindowCenter, ds.WindowWidth
    [path] = reloaded(instances, tmp_path)
    image = _grey(rendered(pydicom.dcmread(path), 1, "image/png", None, None))
    inside = image[~outside_circle(UNSIGNED)]
    assert inside.min() == 0 and inside.max() == 255


def test_padding_changes_nothing_in_a_whole_thorax_score() -> None:
    """The issue's case on the whole-thorax phantom: unsigned 63536 outside a 340 mm circle.

    Scored over the whole field of view (no coronary attribution), the padded
    series must score exactly what the same chest scores without padding.
    """
    chest = thorax.thorax_42()
    plain = score(load_volume(thorax.datasets(thorax.build(chest))))
    padded_thorax = score(load_volume(thorax.datasets(thorax.build(
        thorax.padded(chest, signed=False)))))
    assert plain.scorable and padded_thorax.scorable
    assert padded_thorax.agatston == pytest.approx(plain.agatston)
    assert padded_thorax.lesion_count == plain.lesion_count


def test_key_images_and_mesh_of_a_padded_series_show_only_the_body(tmp_path: Path) -> None:
    """Downstream of the volume: padding is black in key images and absent from the mesh."""
    volume = load_volume(reloaded(padded(UNSIGNED, 63536), tmp_path))
    weights = score(volume).weight_map
    assert weights is not None
    outside = outside_circle(UNSIGNED)
    for key in key_images(volume, weights, count=2):
        rgb = np.asarray(Image.open(io.BytesIO(key.png)).convert("RGB"))
        assert (rgb[outside] == 0).all(), key.name
    mesh = calcium_mesh(volume, weights)
    assert mesh is not None
    centre = volume.voxel_to_patient(np.array([[0, (UNSIGNED.rows - 1) / 2,
                                                (UNSIGNED.cols - 1) / 2]]))[0]
    in_plane = np.hypot(mesh.vertices[:, 0] - centre[0], mesh.vertices[:, 1] - centre[1])
    assert in_plane.max() < 15.0  # the inserts lie well inside the 15 mm circle


@pytest.mark.parametrize(("representation", "expected"), [(0, 63536), (1, -2000)])
def test_a_raw_padding_value_is_read_as_pixel_representation_says(
        representation: int, expected: int) -> None:
    """Bytes F830 (little endian) left undecoded: 63536 unsigned, -2000 signed."""
    ds = Dataset()
    ds.PixelRepresentation = representation
    ds.add_new(0x00280120, "OB", b"\x30\xf8")  # Pixel Padding Value, VR unresolved
    assert padding_range(ds) == (expected, expected)
