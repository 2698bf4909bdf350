"""The image QA gate (issue 10 item 4) on synthetic chests with hand-drawn anatomy.

The scene, in mm from the centre of voxel (0, 0, 0): a reconstruction
circle of radius 55 mm (pixel padding outside it), soft tissue at 40 HU, a
spherical heart of radius 22 mm holding a spherical blood pool of radius
16 mm, and a descending aorta (a cylinder of radius 9 mm, lumen 7 mm) beside
it. Expected verdicts follow from that geometry and the rules' stated limits.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from imaging_core.anatomy import Anatomy
from imaging_core.scanqa import (
    CONTRAST_HU,
    METAL_NEAR_HEART_MM,
    QA_BLOOD_DENSE,
    QA_CONTRAST_UNCHECKED,
    QA_FOV_UNCHECKED,
    QA_KERNEL_UNKNOWN,
    QA_METAL_FAR,
    ImageQA,
    image_qa,
)
from imaging_core.volume import PADDING_HU, QA_SHEAR, Volume

SPACING = (3.0, 0.7, 0.7)
SHAPE = (24, 160, 160)
CENTRE = (36.0, 56.0, 56.0)  # heart centre, mm (z, y, x)
HEART_MM, POOL_MM = 22.0, 16.0
AORTA_YX, AORTA_MM, LUMEN_MM = (35.0, 88.0), 9.0, 7.0
CIRCLE_MM = 55.0
TISSUE_HU, BLOOD_HU = 40.0, 40.0


def grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z, y, x = np.indices(SHAPE).astype(np.float64)
    return z * SPACING[0], y * SPACING[1], x * SPACING[2]


def ball(centre: tuple[float, float, float], radius: float) -> np.ndarray:
    z, y, x = grid()
    return np.asarray(np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2
                              + (x - centre[2]) ** 2) <= radius)


def cylinder(yx: tuple[float, float], radius: float) -> np.ndarray:
    _, y, x = grid()
    return np.asarray(np.hypot(y - yx[0], x - yx[1]) <= radius)


def outside_circle() -> np.ndarray:
    _, y, x = grid()
    middle = (SHAPE[1] - 1) * SPACING[1] / 2
    return np.asarray(np.hypot(y - middle, x - middle) > CIRCLE_MM)


def chest(blood_hu: float = BLOOD_HU, aorta_hu: float | None = None, seed: int = 0,
          centre: tuple[float, float, float] = CENTRE, padding: bool = True,
          **tags: object) -> tuple[Volume, Anatomy]:
    """The synthetic chest (σ = 5 HU noise) and its anatomy, drawn from the same shapes."""
    heart, pool = ball(centre, HEART_MM), ball(centre, POOL_MM)
    aorta, lumen = cylinder(AORTA_YX, AORTA_MM), cylinder(AORTA_YX, LUMEN_MM)
    rng = np.random.default_rng(seed)
    hu = TISSUE_HU + rng.normal(0.0, 5.0, SHAPE)
    hu[pool] += blood_hu - TISSUE_HU
    hu[lumen] += (blood_hu if aorta_hu is None else aorta_hu) - TISSUE_HU
    pad = outside_circle() if padding else np.zeros(SHAPE, dtype=bool)
    hu[pad] = PADDING_HU
    fields: dict[str, object] = {"convolution_kernel": "B35f", "manufacturer": "SIEMENS",
                                 "gantry_tilt_deg": 0.0, **tags}
    volume = Volume(
        hu=hu.astype(np.float32), spacing=SPACING, origin=np.zeros(3),
        orientation=np.eye(3), slice_positions=np.arange(SHAPE[0]) * SPACING[0],
        slice_thickness=3.0, series_uid="1.2.3", study_uid="1.2", frame_of_reference_uid="1.4",
        accession_number="ACC-QA", modality="CT", kvp=120.0, contrast=False,
        sop_instance_uids=[], padding=pad, **fields)  # type: ignore[arg-type]
    empty = np.zeros(SHAPE, dtype=bool)
    anatomy = Anatomy(body=~pad, lungs=empty, bone=empty, aorta=aorta, aortic_root=empty,
                      heart=heart, epicardial_fat=empty, blood_pool=pool | lumen)
    return volume, anatomy


def with_metal(volume: Volume, centre: tuple[float, float, float], hu: float = 3000.0,
               radius: float = 1.5) -> Volume:
    metal = volume.hu.copy()
    metal[ball(centre, radius)] = hu
    return replace(volume, hu=metal)


def codes(qa: ImageQA) -> list[str]:
    return [c.split(":", 1)[0] for c in qa.caveats]


def test_a_clean_unenhanced_chest_passes_without_caveats() -> None:
    qa = image_qa(*chest())
    assert qa.refusal is None and qa.scorable
    assert qa.caveats == []
    assert qa.measured["blood_pool_heart_hu"] == pytest.approx(BLOOD_HU, abs=2)
    assert qa.measured["blood_pool_aorta_hu"] == pytest.approx(BLOOD_HU, abs=2)


def test_untagged_contrast_in_the_blood_pool_is_not_scorable() -> None:
    """The issue's case: iodinated blood (300 HU), no ContrastBolusAgent tag."""
    volume, anatomy = chest(blood_hu=300.0)
    assert not volume.contrast  # the tags say nothing
    qa = image_qa(volume, anatomy)
    assert not qa.scorable
    assert "contrast in the blood pool" in (qa.refusal or "")


def test_contrast_in_the_aorta_alone_is_enough() -> None:
    """Early arterial phase: enhanced aorta, heart chambers not yet measured as bright."""
    qa = image_qa(*chest(aorta_hu=250.0))
    assert qa.refusal is not None and "aorta" in qa.refusal


def test_just_below_the_contrast_limit_is_scored_with_a_caveat() -> None:
    qa = image_qa(*chest(blood_hu=CONTRAST_HU - 15))
    assert qa.scorable
    assert codes(qa) == [QA_BLOOD_DENSE, QA_BLOOD_DENSE]


def test_a_missing_blood_pool_is_a_caveat_never_a_pass() -> None:
    volume, anatomy = chest(blood_hu=300.0)  # contrast there, but the pool was not found
    anatomy = replace(anatomy, blood_pool=np.zeros(SHAPE, dtype=bool), missing=["blood_pool"])
    qa = image_qa(volume, anatomy)
    assert qa.scorable
    assert QA_CONTRAST_UNCHECKED in codes(qa)
    assert qa.measured["blood_pool_heart_hu"] is None


def test_a_pool_too_small_to_measure_is_a_caveat() -> None:
    """A pool of radius 4 mm is under 1 mL once eroded by 3 mm."""
    volume, anatomy = chest()
    anatomy = replace(anatomy, blood_pool=ball(CENTRE, 4.0) | cylinder(AORTA_YX, LUMEN_MM))
    qa = image_qa(volume, anatomy)
    assert qa.scorable
    assert codes(qa) == [QA_CONTRAST_UNCHECKED]
    assert "heart" in qa.caveats[0]


def test_3000_hu_metal_near_the_heart_is_not_scorable() -> None:
    """The issue's case: a 3000 HU bead 5 mm outside the heart's surface."""
    volume, anatomy = chest()
    bead = (CENTRE[0], CENTRE[1], CENTRE[2] + HEART_MM + 5 + 1.5)
    qa = image_qa(with_metal(volume, bead), anatomy)
    assert not qa.scorable
    assert "metal" in (qa.refusal or "")
    assert qa.measured["metal_to_heart_mm"] == pytest.approx(5.0, abs=1.5)


def test_metal_inside_the_heart_is_not_scorable() -> None:
    volume, anatomy = chest()
    qa = image_qa(with_metal(volume, (CENTRE[0], CENTRE[1], CENTRE[2] + 10)), anatomy)
    assert qa.refusal is not None and "0 mm from the heart" in qa.refusal


FAR_BEAD = (CENTRE[0], CENTRE[1], 6.0)  # 50 mm from the heart's centre: 26.5 mm off its surface


def test_metal_far_from_the_heart_is_a_caveat() -> None:
    volume, anatomy = chest()
    qa = image_qa(with_metal(volume, FAR_BEAD), anatomy)
    assert qa.scorable
    assert codes(qa) == [QA_METAL_FAR]
    assert (qa.measured["metal_to_heart_mm"] or 99) > METAL_NEAR_HEART_MM


def test_far_metal_whose_streaks_cross_the_heart_is_not_scorable() -> None:
    volume, anatomy = chest()
    volume = with_metal(volume, FAR_BEAD)
    k = round(FAR_BEAD[0] / SPACING[0])
    row = round(CENTRE[1] / SPACING[1])
    volume.hu[k, row - 1:row + 2, :] = np.where(anatomy.heart[k, row - 1:row + 2, :], -700.0,
                                                volume.hu[k, row - 1:row + 2, :])
    qa = image_qa(volume, anatomy)
    assert qa.refusal is not None and "streaks" in qa.refusal


def test_bone_density_is_not_metal() -> None:
    """Dense cortical bone (1800 HU) beside the heart is no reason to refuse."""
    volume, anatomy = chest()
    bead = (CENTRE[0], CENTRE[1], CENTRE[2] + HEART_MM + 3)
    qa = image_qa(with_metal(volume, bead, hu=1800.0, radius=2.0), anatomy)
    assert qa.scorable and qa.caveats == []


def test_metal_with_no_heart_to_measure_from_is_not_scorable() -> None:
    volume, anatomy = chest()
    anatomy = replace(anatomy, heart=np.zeros(SHAPE, dtype=bool), missing=["heart"])
    qa = image_qa(with_metal(volume, FAR_BEAD), anatomy)
    assert qa.refusal is not None and "heart was not found" in qa.refusal


def test_gantry_tilt_is_not_scorable() -> None:
    qa = image_qa(*chest(gantry_tilt_deg=12.0))
    assert qa.refusal is not None and "tilt" in qa.refusal


def test_sheared_slices_are_not_scorable() -> None:
    volume, anatomy = chest()
    volume.qa.append(f"{QA_SHEAR}: slice origins drift up to 9.00 mm off the slice normal")
    qa = image_qa(volume, anatomy)
    assert qa.refusal is not None and "sheared" in qa.refusal


@pytest.mark.parametrize(("centre", "padding", "where"), [
    ((18.0, 56.0, 56.0), True, "the first slice"),  # heart from -4 mm: above the scan
    ((54.0, 56.0, 56.0), True, "the last slice"),  # heart to 76 mm, the last slice at 69 mm
    ((36.0, 80.0, 80.0), True, "reconstruction circle"),  # 34.4 + 22 mm > the 55 mm circle
    ((36.0, 56.0, 92.0), False, "the image edge"),  # 92 + 22 mm > the 111 mm image
])
def test_a_field_of_view_that_cuts_the_heart_is_not_scorable(
        centre: tuple[float, float, float], padding: bool, where: str) -> None:
    qa = image_qa(*chest(centre=centre, padding=padding))
    assert qa.refusal is not None and "cuts the heart" in qa.refusal
    assert where in qa.refusal


def test_a_heart_that_was_not_found_leaves_the_field_of_view_unchecked() -> None:
    volume, anatomy = chest()
    anatomy = replace(anatomy, heart=np.zeros(SHAPE, dtype=bool), missing=["heart"])
    qa = image_qa(volume, anatomy)
    assert QA_FOV_UNCHECKED in codes(qa)


@pytest.mark.parametrize(("manufacturer", "kernel"), [
    ("SIEMENS", "B35f"), ("GE MEDICAL SYSTEMS", "STANDARD"), ("Philips", "B"),
    ("TOSHIBA", "FC12"), ("CANON_MEC", "FC12"),
])
def test_standard_calcium_kernels_pass(manufacturer: str, kernel: str) -> None:
    qa = image_qa(*chest(manufacturer=manufacturer, convolution_kernel=kernel))
    assert qa.scorable and qa.caveats == []


@pytest.mark.parametrize(("manufacturer", "kernel"), [
    ("SIEMENS", "B70f"), ("SIEMENS", "Br64d"), ("GE MEDICAL SYSTEMS", "BONE"),
    ("GE MEDICAL SYSTEMS", "LUNG"), ("Philips", "D"), ("TOSHIBA", "FC52"),
])
def test_sharp_kernels_are_not_scorable(manufacturer: str, kernel: str) -> None:
    qa = image_qa(*chest(manufacturer=manufacturer, convolution_kernel=kernel))
    assert qa.refusal is not None and "sharp reconstruction kernel" in qa.refusal


@pytest.mark.parametrize(("manufacturer", "kernel"), [
    ("SIEMENS", "Qr36d"), ("Acme CT", "B35f"), ("SIEMENS", None),
])
def test_unknown_or_unrecorded_kernels_are_a_caveat(manufacturer: str,
                                                    kernel: str | None) -> None:
    qa = image_qa(*chest(manufacturer=manufacturer, convolution_kernel=kernel))
    assert qa.scorable
    assert codes(qa) == [QA_KERNEL_UNKNOWN]


def test_anatomy_of_another_shape_is_refused_loudly() -> None:
    volume, anatomy = chest()
    with pytest.raises(ValueError, match="heart"):
        image_qa(volume, replace(anatomy, heart=anatomy.heart[:-1]))
