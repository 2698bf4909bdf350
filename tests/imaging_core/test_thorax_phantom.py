"""The whole-thorax phantom: anatomy where and as dense as specified, truth from geometry.

Expected sizes and HU come from the anatomy the phantom claims to model
(adult chest; unenhanced HU: fat about -100, soft tissue 40, lung -850,
cortical bone 700-1000) and from Agatston 1990's rules, not from the
generator's output.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from imaging_core.volume import load_volume
from tests.imaging_core.phantoms import agatston_weight, write
from tests.imaging_core.thorax import (
    ARTERIES,
    CORONARY,
    EPICARDIAL_FAT,
    THRESHOLD_HU,
    Plaque,
    Thorax,
    ThoraxImage,
    build,
    contrast,
    datasets,
    fov_cut,
    padded,
    scan_changed,
    thorax_42,
    thorax_311,
    thorax_a0,
    with_metal,
    with_plaques,
)


@pytest.fixture(scope="module")
def chest() -> ThoraxImage:
    return build(thorax_311())


def _slice_of(image: ThoraxImage, z: float) -> int:
    return int(np.argmin(np.abs(image.scan.w_start + np.arange(image.scan.n_slices)
                                * image.scan.increment - z)))


def _pixel(image: ThoraxImage, x: float, y: float) -> tuple[int, int]:
    """(row, col) of the pixel nearest patient (x, y) mm."""
    dy, dx = image.scan.pixel_spacing
    return (int(round((y - image.scan.origin[1]) / dy)),
            int(round((x - image.scan.origin[0]) / dx)))


def _at(image: ThoraxImage, k: int, x: float, y: float) -> int:
    """Noise-free HU at patient (x, y) mm on slice k."""
    return int(image.hu[k][_pixel(image, x, y)])


def _diameter_mm(mask2d: np.ndarray, image: ThoraxImage) -> float:
    dy, dx = image.scan.pixel_spacing
    return 2 * math.sqrt(float(mask2d.sum()) * dx * dy / math.pi)


def test_tissues_have_their_unenhanced_hu(chest: ThoraxImage) -> None:
    k = chest.scan.n_slices - 5  # above the heart
    assert _at(chest, k, 0, -200) == -1000  # air in front of the chest
    assert _at(chest, k, 0, -112) == -100  # subcutaneous fat under the anterior skin
    assert _at(chest, k, -110, 0) == -850  # right lung
    assert _at(chest, k, 110, 0) == -850  # left lung
    assert 700 <= chest.hu[k][chest.masks["bone"][k]].max() <= 1000  # cortical bone
    # The trachea: air in the mediastinum, part of the body but not of the lungs.
    trachea = _pixel(chest, -3, 12)
    assert chest.hu[k][trachea] == -1000 and chest.masks["body"][k][trachea]
    assert not chest.masks["lungs"][k][trachea]
    lumen = chest.labels == CORONARY
    assert set(np.unique(chest.hu[lumen])) == {40}
    assert set(np.unique(chest.hu[chest.masks["epicardial_fat"]])) == {-100}


def test_spine_and_sternum_are_in_the_midline(chest: ThoraxImage) -> None:
    k = chest.scan.n_slices // 2
    bone = chest.masks["bone"][k]
    labels, n = ndimage.label(bone)
    dy, dx = chest.scan.pixel_spacing
    centres = [(chest.scan.origin[0] + c * dx, chest.scan.origin[1] + r * dy)
               for r, c in ndimage.center_of_mass(bone, labels, range(1, n + 1))]
    midline = [(x, y) for x, y in centres if abs(x) < 5]
    assert any(y < -80 for _, y in midline)  # sternum, anterior
    assert any(40 < y < 100 for _, y in midline)  # vertebral body and arch, posterior
    vertebral_core = _at(chest, k, 0, 58)
    assert vertebral_core in (250, 80)  # cancellous bone, or a disc
    assert -20 < _at(chest, k, 0, 86) < 30  # spinal canal: fluid, not bone


def test_ribs_recur_at_adult_intervals(chest: ThoraxImage) -> None:
    # Along the left lateral chest wall a rib is met every 20-30 mm (adult intercostal pitch).
    dy, dx = chest.scan.pixel_spacing
    row = int(round(-chest.scan.origin[1] / dy))  # y = 0: the lateral wall
    x = chest.scan.origin[0] + np.arange(chest.scan.cols) * dx
    column = chest.masks["bone"][:, row, (x > 120) & (x < 150)].any(axis=1)
    starts = np.flatnonzero(np.diff(column.astype(int)) == 1)
    gaps = np.diff(starts) * chest.scan.increment
    assert len(gaps) >= 4
    assert 20 <= float(np.median(gaps)) <= 30


def test_aortas_have_their_calibres_and_places(chest: ThoraxImage) -> None:
    k = chest.scan.n_slices - 3  # above the root: two round vessels
    labels, n = ndimage.label(chest.masks["aorta"][k])
    assert n == 2
    dy, dx = chest.scan.pixel_spacing
    vessels = []
    for i in range(1, n + 1):
        r, c = ndimage.center_of_mass(labels == i)
        vessels.append((chest.scan.origin[0] + c * dx, chest.scan.origin[1] + r * dy,
                        _diameter_mm(labels == i, chest)))
    ascending = min(vessels, key=lambda v: v[0])
    descending = max(vessels, key=lambda v: v[0])
    assert ascending[0] < 0 and ascending[1] < 0  # anterior-right
    assert abs(ascending[2] - 32) < 2  # about 32 mm across
    assert descending[0] > 0 and 0 < descending[1] < 58  # left, in front of the spine's centre
    assert abs(descending[2] - 25) < 2  # about 25 mm across


def test_heart_is_12_by_9_by_9_cm_pointing_anterior_left_inferior(chest: ThoraxImage) -> None:
    heart = chest.masks["heart"]
    k, r, c = (a.astype(float) for a in np.nonzero(heart))
    dy, dx = chest.scan.pixel_spacing
    points = np.stack([chest.scan.origin[0] + c * dx, chest.scan.origin[1] + r * dy,
                       chest.scan.w_start + k * chest.scan.increment], axis=1)
    centred = points - points.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(centred.T))
    extents = [float(np.ptp(centred @ vectors[:, i])) for i in range(3)]
    assert 105 <= extents[2] <= 135  # long axis about 12 cm
    assert all(80 <= e <= 100 for e in extents[:2])  # about 9 cm across
    apexwards = chest.frame.axis
    long_axis = vectors[:, 2] * np.sign(vectors[:, 2] @ apexwards)
    assert long_axis[0] > 0.3 and long_axis[1] < -0.3 and long_axis[2] < -0.3


def test_epicardial_fat_wraps_the_heart_inside_the_pericardium(chest: ThoraxImage) -> None:
    heart, fat = chest.masks["heart"], chest.masks["epicardial_fat"]
    assert (fat & ~heart).sum() == 0
    assert 0.05 < fat.sum() / heart.sum() < 0.4


def test_coronary_arteries_are_3_to_5_mm_tubes_from_the_sinuses(chest: ThoraxImage) -> None:
    for artery in ARTERIES:
        line = chest.lines[artery]
        length = float(np.linalg.norm(np.diff(line, axis=0), axis=1).sum())
        assert length > (5 if artery == "LM" else 60), artery
    assert 5 <= np.linalg.norm(chest.lines["LM"][-1] - chest.lines["LM"][0]) <= 25
    # The LM starts at the left coronary sinus, the RCA at the right one.
    assert np.allclose(chest.lines["LM"][0], chest.root.ostia["left"])
    assert np.allclose(chest.lines["RCA"][0], chest.root.ostia["right"])
    assert chest.root.ostia["left"][0] > chest.root.ostia["right"][0]  # left is patient-left
    # The LAD ends near the apex (inferior-left-anterior), the RCA on the inferior wall.
    apex = chest.frame.origin + 80 * chest.frame.axis
    assert np.linalg.norm(chest.lines["LAD"][-1] - apex) < 30
    assert chest.lines["RCA"][-1][2] < chest.frame.origin[2]


@pytest.mark.parametrize("thorax", [thorax_311(), with_plaques(thorax_311(), 11),
                                    thorax_311(heart_offset_mm=(10.0, -5.0, 8.0),
                                               heart_rotation_deg=(8.0, -5.0, 10.0))],
                         ids=["311", "11-plaques", "moved-heart"])
def test_plaques_lie_in_epicardial_fat_round_their_artery(thorax: Thorax) -> None:
    image = build(thorax)
    for i in range(len(image.thorax.plaques)):
        own, labels = image.plaque_mask(i, 2), image.labels[image.near(i, 2)]
        # In-plane neighbours and the voxels straight above and below.
        cross = np.zeros((3, 3, 3), bool)
        cross[1], cross[:, 1, 1] = True, True
        shell = ndimage.binary_dilation(own, cross) & ~own
        assert set(np.unique(labels[shell])) <= {EPICARDIAL_FAT, CORONARY}, i
        assert (labels[shell] == CORONARY).any()  # on the artery


def test_truth_per_artery_is_the_sum_of_its_plaques(chest: ThoraxImage) -> None:
    arteries = chest.arteries
    assert set(arteries) == set(ARTERIES)
    for artery, truth in arteries.items():
        mine = [t for t in chest.plaque_truths if t.plaque.artery == artery]
        assert truth.agatston == pytest.approx(sum(t.agatston for t in mine))
        assert truth.volume_mm3 == pytest.approx(sum(t.volume_mm3 for t in mine))
        assert truth.lesion_count == len(mine)
    assert chest.truth().agatston == pytest.approx(sum(a.agatston for a in arteries.values()))
    assert 290 <= chest.truth().agatston <= 330  # the "about 311"


def test_a_plaque_truth_is_its_area_times_weight_per_slice() -> None:
    # A disc-like plaque seen on one slice: area from counting pixel centres in the
    # ellipse cut by that slice, weight 2 for 250 HU (Agatston 1990).
    image = build(thorax_42())
    truth = image.plaque_truths[0]
    mask = image.plaque_mask(0)
    dy, dx = image.scan.pixel_spacing
    per_slice = mask.sum(axis=(1, 2)) * dx * dy
    assert truth.agatston == pytest.approx(float(per_slice[per_slice >= 1.0].sum()) * 2)
    assert 30 <= truth.agatston <= 60  # the "about 42", CAC-DRS A1


@pytest.mark.parametrize("thorax", [thorax_311(), scan_changed(with_plaques(thorax_311(), 11),
                                                                pixel_spacing=(0.45, 0.45))],
                         ids=["311", "11-plaques-0.45mm"])
def test_noise_cannot_move_the_truth(thorax: Thorax) -> None:
    # With sigma = 5 HU every plaque voxel stays in its weight band and nothing else
    # near it reaches 130 HU, so thresholding the noisy image gives the plaque mask.
    image = build(scan_changed(thorax, noise_sigma=5.0))
    volume = load_volume(datasets(image))
    for i, plaque in enumerate(image.thorax.plaques):
        own, hu = image.plaque_mask(i, 3), volume.hu[image.near(i, 3)]
        near = ndimage.binary_dilation(own, np.ones((3, 7, 7), bool))
        calcium = (hu >= THRESHOLD_HU) & near
        assert np.array_equal(calcium, own), i
        weights = {agatston_weight(float(v)) for v in hu[own]}
        assert weights == {agatston_weight(plaque.hu)}


def test_no_coronary_calcium_but_calcified_aorta_valve_and_annulus() -> None:
    image = build(thorax_a0())
    assert image.truth().agatston == 0 and image.arteries == {}
    calcium = image.hu >= THRESHOLD_HU
    assert (calcium & image.masks["aortic_root"] & ~image.masks["bone"]).any()  # valve
    assert (calcium & image.masks["aorta"] & ~image.masks["aortic_root"]).any()  # wall
    assert (calcium & image.masks["heart"]).any()  # mitral annulus


def test_a_plaque_touching_other_calcium_is_refused() -> None:
    near_twin = (Plaque("LAD", 0.2, 6.0, 2.0, 350.0), Plaque("LAD", 0.22, 6.0, 2.0, 350.0))
    with pytest.raises(AssertionError, match="touches other calcium"):
        build(thorax_42(plaques=near_twin))
    with pytest.raises(ValueError, match="artery must be one of"):
        build(thorax_42(plaques=(Plaque("PDA", 0.2, 6.0, 2.0, 350.0),)))
    with pytest.raises(AssertionError, match="too near a bound"):
        build(scan_changed(thorax_42(plaques=(Plaque("LAD", 0.2, 6, 2, 210.0),)),
                           noise_sigma=5.0))


@pytest.mark.parametrize("signed", [False, True])
def test_padding_is_written_outside_the_reconstruction_circle(tmp_path: Path,
                                                              signed: bool) -> None:
    image = build(padded(thorax_42(), signed=signed, fov_mm=300.0))
    paths = write(datasets(image), tmp_path)
    ds = pydicom.dcmread(paths[0])
    value = -2000 if signed else 63536
    assert ds.PixelRepresentation == (1 if signed else 0)
    assert ds.PixelPaddingValue == value
    written_vr = ds.data_element("PixelPaddingValue").VR  # type: ignore[union-attr]
    assert written_vr == ("SS" if signed else "US")
    stored = ds.pixel_array
    dy, dx = image.scan.pixel_spacing
    rows, cols = np.indices(stored.shape)
    x = image.scan.origin[0] + cols * dx
    y = image.scan.origin[1] + rows * dy
    outside = np.hypot(x, y) > 150.0
    assert outside.any() and (stored[outside] == value).all()
    assert not (stored[~outside] == value).any()
    volume = load_volume(paths)
    assert volume.shape == image.hu.shape
    assert np.allclose(volume.origin, image.scan.position(0))


def test_a_padding_range_fills_its_whole_range(tmp_path: Path) -> None:
    image = build(padded(thorax_a0(), fov_mm=300.0, range_limit=65535))
    ds = pydicom.dcmread(write(datasets(image)[:1], tmp_path)[0])
    assert ds.PixelPaddingRangeLimit == 65535
    values = np.unique(ds.pixel_array[ds.pixel_array >= 63536])
    assert values.min() == 63536 and values.max() == 65535


def test_untagged_contrast_fills_the_blood_pool() -> None:
    image = build(contrast(thorax_311()))
    volume = load_volume(datasets(image))
    assert not volume.contrast  # no ContrastBolusAgent tag
    assert float(np.median(volume.hu[image.masks["blood_pool"]])) == 300
    tagged = load_volume(datasets(build(contrast(thorax_a0(), tagged=True))))
    assert tagged.contrast


def test_metal_near_the_heart_is_3000_hu_with_streaks() -> None:
    image = build(with_metal(thorax_42()))
    metal = image.hu >= 2500
    assert metal.any()
    k = int(np.flatnonzero(metal.any(axis=(1, 2)))[0])
    heart = image.masks["heart"][k]
    assert heart.any()
    # Streaks raise some heart voxels of that slice above 130 HU and lower others.
    assert (image.hu[k][heart] >= THRESHOLD_HU).any() and (image.hu[k][heart] < -200).any()
    quiet = build(with_metal(thorax_42(), streaks=False))
    assert not (quiet.hu[k][quiet.masks["heart"][k] & (quiet.hu[k] < 1000)] > 130).any()


def test_scan_tags_and_geometry_load(chest: ThoraxImage) -> None:
    image = build(scan_changed(thorax_311(), pixel_spacing=(0.35, 0.35), gantry_tilt=0.0,
                               convolution_kernel="B35f"))
    instances = datasets(image)
    assert instances[0].KVP == 120 and instances[0].ConvolutionKernel == "B35f"
    volume = load_volume(instances)
    assert volume.spacing == (3.0, 0.35, 0.35)
    assert volume.kvp == 120
    # The heart lies inside the smaller field of view: its mask stays off the edges.
    heart = image.masks["heart"].any(axis=0)
    assert not (heart[0].any() or heart[-1].any() or heart[:, 0].any() or heart[:, -1].any())
    assert replace(image.scan).n_slices == volume.shape[0]


@pytest.mark.parametrize(("fov_mm", "cuts_heart"), [(280.0, False), (120.0, True)])
def test_a_small_reconstruction_circle_cuts_the_body(fov_mm: float, cuts_heart: bool) -> None:
    image = build(scan_changed(fov_cut(thorax_42(), fov_mm), n_slices=40))
    outside = image.outside_fov
    assert outside is not None
    body, heart = image.masks["body"].any(axis=0), image.masks["heart"].any(axis=0)
    assert (body & outside).any()  # the circle is smaller than the chest
    assert bool((heart & outside).any()) is cuts_heart
    instances = datasets(image)
    ds = instances[len(instances) // 2]
    assert float(ds.ReconstructionDiameter) == fov_mm
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert (hu[outside] == -1024).all()


def test_landmarks_sit_on_the_anatomy(chest: ThoraxImage) -> None:
    marks = chest.landmarks
    root = np.asarray(marks["aortic_root"])
    # The root centre lies in the root's lumen, above the AV plane centre, right of the apex.
    assert chest.masks["aortic_root"][_slice_of(chest, root[2])][_pixel(chest, root[0], root[1])]
    assert root[2] > marks["av_plane_centre"][2] > marks["apex"][2]
    assert marks["apex"][0] > root[0]
    assert np.linalg.norm(marks["long_axis"]) == pytest.approx(1.0)
