"""Thoracic anatomy from a non-contrast chest CT, checked against the thorax phantom's own shapes.

Expected masks and landmarks are the phantom's geometry (tests/imaging_core/
thorax.py), never the segmentation's output. Overlap is the Dice coefficient
(2|A and B| / (|A| + |B|)); 0.8 is asked where the phantom's structure is
visible in a non-contrast image. The aortic root is not: its wall, lumen and
the atria around it are all about 40 HU, so only its place is checked.
"""

from __future__ import annotations

import numpy as np
import pytest

from imaging_core.anatomy import (
    STEPS,
    Anatomy,
    lung_threshold,
    segment,
    working_grid,
)
from imaging_core.volume import Volume
from tests.imaging_core.conftest import noisy, scanned
from tests.imaging_core.thorax import (
    BLOOD,
    CONTRAST_HU,
    DESCENDING_CENTRE,
    DESCENDING_RADIUS,
    ThoraxImage,
    contrast,
    fov_cut,
    scan_changed,
    thorax_311,
)

# Variants the segmentation must hold on: pixel spacing across the 0.35-0.7 mm,
# a cardiac field of view cutting the chest wall, the heart moved and turned.
VARIANTS = {
    "0.7 mm": thorax_311(),
    "0.35 mm": scan_changed(thorax_311(), pixel_spacing=(0.35, 0.35)),
    "heart moved and turned": thorax_311(heart_offset_mm=(8.0, -6.0, 10.0),
                                         heart_rotation_deg=(8.0, 5.0, 0.0)),
    "field of view cuts the chest wall": fov_cut(thorax_311(), 280.0),
}
VISIBLE = ("body", "lungs", "bone", "aorta", "heart")
MIN_DICE = 0.8
FAT_MIN_DICE = 0.7  # a 3 mm fat layer: one working block (2 mm) of margin costs a lot of Dice
LANDMARK_MM = 10.0  # about a quarter of the heart's transverse radius (45 mm)
# The aortic root sits under the heart's silhouette, where a non-contrast image shows no
# edge: it is placed below the last aortic circle seen, to within half a root diameter.
ROOT_MM = 15.0
AXIS_DEGREES = 10.0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1))


@pytest.fixture(scope="module", params=list(VARIANTS), ids=list(VARIANTS))
def case(request: pytest.FixtureRequest) -> tuple[ThoraxImage, Volume, Anatomy]:
    image, volume = scanned(noisy(VARIANTS[request.param]))
    return image, volume, segment(volume)


def test_every_visible_structure_overlaps_the_phantom(
        case: tuple[ThoraxImage, Volume, Anatomy]) -> None:
    image, _, anatomy = case
    assert anatomy.missing == []
    for name in VISIBLE:
        assert dice(getattr(anatomy, name), image.masks[name]) >= MIN_DICE, name
    assert dice(anatomy.epicardial_fat, image.masks["epicardial_fat"]) >= FAT_MIN_DICE


def test_landmarks_lie_where_the_phantom_put_them(
        case: tuple[ThoraxImage, Volume, Anatomy]) -> None:
    image, _, anatomy = case
    for name in ("aortic_root", "av_plane_centre", "apex", "heart_centre"):
        gap = np.linalg.norm(np.subtract(anatomy.landmarks[name], image.landmarks[name]))
        assert gap <= (ROOT_MM if name == "aortic_root" else LANDMARK_MM), (name, gap)
    cosine = float(np.dot(anatomy.landmarks["long_axis"], image.landmarks["long_axis"]))
    assert np.degrees(np.arccos(min(cosine, 1.0))) <= AXIS_DEGREES


def test_the_aortic_root_mask_holds_the_valve(case: tuple[ThoraxImage, Volume, Anatomy]) -> None:
    image, _, anatomy = case
    valve = image.root.valve
    inside = anatomy.aortic_root & image.masks["aortic_root"]
    assert inside.any()
    assert np.linalg.norm(np.subtract(anatomy.landmarks["aortic_root"], valve)) <= 2 * ROOT_MM


def test_the_blood_pool_reads_unenhanced_blood_and_iodine() -> None:
    plain_image, plain = scanned(noisy(thorax_311()))
    enhanced_image, enhanced = scanned(noisy(contrast(thorax_311())))
    for image, volume, expected in ((plain_image, plain, 40.0),
                                    (enhanced_image, enhanced, CONTRAST_HU)):
        pool = segment(volume).blood_pool
        assert pool.any()
        assert np.median(volume.hu[pool]) == pytest.approx(expected, abs=15.0)
        if image is plain_image:  # mostly chambers and lumen
            assert np.isin(image.labels[pool], BLOOD).mean() >= 0.6


def test_the_descending_aorta_is_found_on_every_slice() -> None:
    image, volume = scanned(noisy(thorax_311()))
    anatomy = segment(volume)
    dy, dx = image.scan.pixel_spacing
    for k in range(volume.shape[0]):
        rows, cols = np.nonzero(anatomy.aorta[k])
        x = image.scan.origin[0] + cols * dx
        y = image.scan.origin[1] + rows * dy
        cx, cy = DESCENDING_CENTRE
        near = np.hypot(x - cx, y - cy) <= 2 * DESCENDING_RADIUS  # not the root, in front
        assert np.hypot(x[near].mean() - cx, y[near].mean() - cy) <= 3.0, k
        radius = np.sqrt(near.sum() * dx * dy / np.pi)
        assert radius == pytest.approx(DESCENDING_RADIUS, abs=2.5), k


def test_lung_threshold_is_the_mean_of_the_class_means() -> None:
    # Hu et al. 2001: T = (mean below T + mean above T) / 2, from any start between.
    sample = np.concatenate([np.full(600, -850.0), np.full(400, 40.0)])
    assert lung_threshold(sample) == pytest.approx((-850.0 + 40.0) / 2, abs=1.0)


def test_the_working_grid_keeps_the_mean_hu() -> None:
    _, volume = scanned(noisy(thorax_311()))
    grid = working_grid(volume)
    assert 1.5 <= grid.spacing[1] <= 2.5 and grid.spacing[0] == volume.spacing[0]
    assert float(grid.hu.mean()) == pytest.approx(float(volume.hu.mean()), abs=5.0)


def _volume(hu: np.ndarray) -> Volume:
    _, template = scanned(noisy(thorax_311()))
    return Volume(hu=hu, spacing=template.spacing, origin=template.origin,
                  orientation=template.orientation, slice_positions=template.slice_positions,
                  slice_thickness=template.slice_thickness, series_uid="s", study_uid="t",
                  frame_of_reference_uid="f", accession_number="a", modality="CT", kvp=120.0,
                  contrast=False, sop_instance_uids=[])


def test_air_gives_every_structure_missing_never_empty_and_found() -> None:
    anatomy = segment(_volume(np.full((8, 64, 64), -1000, dtype=np.int16)))
    for name in STEPS:
        assert not getattr(anatomy, name).any()
        assert any(line.startswith(name) for line in anatomy.missing), name
    assert anatomy.landmarks == {}


def test_a_block_of_soft_tissue_has_a_body_but_no_lungs_or_heart() -> None:
    anatomy = segment(_volume(np.full((8, 64, 64), 40, dtype=np.int16)))
    assert anatomy.body.all()
    assert not anatomy.lungs.any() and not anatomy.heart.any()
    missing = " ".join(anatomy.missing)
    assert "lungs:" in missing and "heart:" in missing


def test_every_step_names_its_method() -> None:
    _, volume = scanned(noisy(thorax_311()))
    anatomy = segment(volume)
    assert set(STEPS) <= set(anatomy.method)
    assert "Hu" in anatomy.method["lungs"] and "Dey" in anatomy.method["epicardial_fat"]
