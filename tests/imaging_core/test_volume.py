"""Volume loading: geometry from ImagePositionPatient, grouping, QA findings, codecs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, RLELossless

from imaging_core.errors import MixedSeriesError, VolumeError
from imaging_core.volume import (
    QA_GAP,
    QA_IRREGULAR,
    QA_NONCONTIGUOUS,
    QA_OVERLAP,
    QA_SHEAR,
    load_volume,
    load_volumes,
)
from tests.imaging_core.phantoms import (
    Insert,
    Phantom,
    compressed,
    datasets,
    enhanced_dataset,
    hu_slice,
    oblique,
    shuffled,
    write,
)

PHANTOM = Phantom(inserts=(Insert(u=10, v=12, radius=2, w0=3, w1=21, hu=350),
                           Insert(u=22, v=20, radius=1.5, w0=9, w1=15, hu=180, peak=420)),
                  accession="ACC-42")


def _truth(phantom: Phantom) -> np.ndarray:
    """Noise-free HU of the written slices, ascending along the normal."""
    return np.stack([hu_slice(phantom, k) for k in range(phantom.n_slices)
                     if k not in phantom.missing])


def test_shuffled_files_load_in_geometric_order(tmp_path: Path) -> None:
    volume = load_volume(write(datasets(PHANTOM), tmp_path, seed=3))
    assert volume.shape == (12, 64, 64)
    assert volume.hu.dtype == np.int16
    np.testing.assert_array_equal(volume.hu, _truth(PHANTOM))
    assert volume.spacing == (3.0, 0.5, 0.5)
    np.testing.assert_allclose(volume.origin, PHANTOM.position(0))
    assert volume.accession_number == "ACC-42"
    assert volume.study_uid == PHANTOM.study_uid
    assert volume.kvp == 120.0 and volume.slice_thickness == 3.0 and not volume.contrast
    assert volume.qa == []


def test_reversed_z_order_ignores_instance_number() -> None:
    phantom = replace(PHANTOM, reversed_z=True)
    instances = datasets(phantom)
    assert instances[0].InstanceNumber == 1 and instances[0].ImagePositionPatient[2] > 120
    volume = load_volume(instances)
    np.testing.assert_array_equal(volume.hu, _truth(phantom))
    np.testing.assert_allclose(volume.origin, phantom.position(0))


def test_oblique_orientation_geometry() -> None:
    phantom = oblique(PHANTOM, 25)
    volume = load_volume(shuffled(datasets(phantom)))
    np.testing.assert_array_equal(volume.hu, _truth(phantom))
    np.testing.assert_allclose(volume.orientation[0], phantom.row_dir, atol=1e-9)
    np.testing.assert_allclose(volume.orientation[1], phantom.col_dir, atol=1e-9)
    np.testing.assert_allclose(volume.orientation[2], phantom.normal, atol=1e-9)
    # Pixel (r=7, c=5) of slice 4: origin + c*dx*row + r*dy*col + w(4)*normal.
    expected = (np.asarray(phantom.origin) + 5 * 0.5 * np.asarray(phantom.row_dir)
                + 7 * 0.5 * np.asarray(phantom.col_dir) + phantom.w(4) * phantom.normal)
    np.testing.assert_allclose(volume.voxel_to_patient(np.array([[4, 7, 5]]))[0], expected,
                               atol=1e-4)
    assert not volume.has_qa(QA_SHEAR)


def test_missing_slice_is_reported_and_geometry_kept() -> None:
    phantom = replace(PHANTOM, missing=(5,))
    volume = load_volume(shuffled(datasets(phantom)))
    assert volume.shape[0] == 11
    assert volume.has_qa(QA_GAP)
    assert "1 missing slice" in volume.qa[0]
    # Index 5 is now the slice written at k=6: its true position is kept.
    assert volume.slice_positions[5] == pytest.approx(phantom.w(6) - phantom.w(0))
    np.testing.assert_allclose(volume.voxel_to_patient(np.array([[5, 0, 0]]))[0],
                               phantom.position(6), atol=1e-6)


def test_overlapping_reconstruction_is_reported() -> None:
    phantom = replace(PHANTOM, increment=1.5, thickness=3.0, n_slices=20)
    volume = load_volume(datasets(phantom))
    assert volume.spacing[0] == pytest.approx(1.5)
    assert volume.has_qa(QA_OVERLAP)


def test_slices_thinner_than_their_increment_are_reported() -> None:
    volume = load_volume(datasets(replace(PHANTOM, increment=4.0, thickness=3.0)))
    assert volume.has_qa(QA_NONCONTIGUOUS)


def test_an_irregular_step_is_reported() -> None:
    instances = datasets(PHANTOM)
    instances[6].ImagePositionPatient = [*instances[6].ImagePositionPatient[:2],
                                         float(instances[6].ImagePositionPatient[2]) + 1.0]
    volume = load_volume(instances)
    assert volume.has_qa(QA_IRREGULAR) and not volume.has_qa(QA_GAP)


def test_sheared_stack_is_reported() -> None:
    instances = datasets(PHANTOM)
    for k, ds in enumerate(instances):  # table drifting 0.5 mm sideways per slice
        ds.ImagePositionPatient = [float(ds.ImagePositionPatient[0]) + 0.5 * k,
                                   *ds.ImagePositionPatient[1:]]
    assert load_volume(instances).has_qa(QA_SHEAR)


def test_two_series_in_one_study_are_grouped_separately() -> None:
    first = replace(PHANTOM, series_number=1, name="a")
    second = replace(PHANTOM, series_number=2, name="b", n_slices=8,
                     inserts=(Insert(u=16, v=16, radius=3, w0=0, w1=9, hu=500),))
    volumes = load_volumes(shuffled(datasets(first) + datasets(second)))
    by_series = {v.series_uid: v for v in volumes}
    assert set(by_series) == {first.series_uid, second.series_uid}
    np.testing.assert_array_equal(by_series[first.series_uid].hu, _truth(first))
    np.testing.assert_array_equal(by_series[second.series_uid].hu, _truth(second))
    with pytest.raises(MixedSeriesError, match="expected one volume, found 2"):
        load_volume(datasets(first) + datasets(second))


def test_one_series_with_two_orientations_splits() -> None:
    axial = datasets(PHANTOM)
    tilted = datasets(replace(oblique(PHANTOM, 30), name=PHANTOM.name))
    for ds in tilted:
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
    assert len(load_volumes(axial + tilted)) == 2


def test_a_resent_instance_is_not_a_second_slice() -> None:
    instances = datasets(PHANTOM)
    volume = load_volume(instances + [instances[4].copy()])
    np.testing.assert_array_equal(volume.hu, _truth(PHANTOM))


def test_duplicate_positions_raise() -> None:
    instances = datasets(PHANTOM)
    instances[3].ImagePositionPatient = instances[4].ImagePositionPatient
    with pytest.raises(VolumeError, match="share the position"):
        load_volume(instances)


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_lossless_compressed_copies_load_identically(tmp_path: Path, syntax: str) -> None:
    plain = load_volume(datasets(PHANTOM))
    paths = write(compressed(datasets(PHANTOM), syntax), tmp_path)
    assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID == syntax
    loaded = load_volume(paths)
    np.testing.assert_array_equal(loaded.hu, plain.hu)
    assert loaded.spacing == plain.spacing


def test_enhanced_multiframe_loads_like_single_frame(tmp_path: Path) -> None:
    single = load_volume(datasets(PHANTOM))
    enhanced = load_volume(write([enhanced_dataset(PHANTOM)], tmp_path))
    np.testing.assert_array_equal(enhanced.hu, single.hu)
    assert enhanced.spacing == single.spacing
    np.testing.assert_allclose(enhanced.origin, single.origin)
    np.testing.assert_allclose(enhanced.orientation, single.orientation)
    assert (enhanced.kvp, enhanced.slice_thickness, enhanced.contrast) == (120.0, 3.0, False)
    assert enhanced.accession_number == "ACC-42"


def test_enhanced_contrast_is_detected() -> None:
    volume = load_volume([enhanced_dataset(replace(PHANTOM, contrast_agent="Iohexol"))])
    assert volume.contrast


def test_non_integer_rescale_gives_float32_hu() -> None:
    phantom = replace(PHANTOM, rescale_slope=0.5)
    volume = load_volume(datasets(phantom))
    assert volume.hu.dtype == np.float32
    np.testing.assert_array_equal(volume.hu, _truth(phantom).astype(np.float32))


def test_unsigned_stored_values_give_int16_hu() -> None:
    phantom = replace(PHANTOM, signed=False)
    volume = load_volume(datasets(phantom))
    assert datasets(phantom)[0].PixelRepresentation == 0
    assert volume.hu.dtype == np.int16
    np.testing.assert_array_equal(volume.hu, _truth(phantom))


def test_hu_beyond_int16_falls_back_to_float32() -> None:
    phantom = replace(PHANTOM, signed=False, n_slices=3)
    instances = datasets(phantom)
    pixels = np.frombuffer(instances[1].PixelData, dtype="<u2").copy()
    pixels[0] = 65535  # 65535 - 1024 HU does not fit int16
    instances[1].PixelData = pixels.tobytes()
    volume = load_volume(instances)
    assert volume.hu.dtype == np.float32
    assert volume.hu[1, 0, 0] == 65535 - 1024
    np.testing.assert_array_equal(volume.hu[0], _truth(phantom)[0])


def test_not_dicom_is_a_volume_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    with pytest.raises(VolumeError, match="cannot read DICOM"):
        load_volume([junk])


def test_acquisition_tags_for_the_qa_gate_are_read() -> None:
    """Gantry/Detector Tilt, Convolution Kernel (several values) and Manufacturer."""
    tagged = replace(PHANTOM, gantry_tilt=-7.5, convolution_kernel="Qr36d\\3",
                     reconstruction_diameter=32.0)
    volume = load_volume(datasets(tagged))
    assert volume.gantry_tilt_deg == -7.5
    assert volume.reconstruction_diameter_mm == 32.0
    assert volume.convolution_kernel == "Qr36d\\3"
    assert volume.manufacturer == "ScanPath"
    untagged = load_volume(datasets(PHANTOM))
    assert (untagged.gantry_tilt_deg, untagged.convolution_kernel) == (None, None)


def test_enhanced_ct_acquisition_tags_come_from_the_functional_groups() -> None:
    """The phantom's shared CT Acquisition Details and CT Reconstruction groups."""
    volume = load_volume([enhanced_dataset(PHANTOM)])
    assert volume.gantry_tilt_deg == 0.0
    assert volume.convolution_kernel == "B35f"
    assert volume.reconstruction_diameter_mm == PHANTOM.cols * PHANTOM.pixel_spacing[1]
