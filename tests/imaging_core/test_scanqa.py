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
    QA_POOL_MISSING,
    ImageQA,
    image_qa,
)
from imaging_core.volume import PADDING_HU, QA_SHEAR, Volume, load_volume
from tests.imaging_core import thorax

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
          pool_mm: float = POOL_MM, **tags: object) -> tuple[Volume, Anatomy]:
    """The synthetic chest (σ = 5 HU noise) and its anatomy, drawn from the same shapes."""
    heart, pool = ball(centre, HEART_MM), ball(centre, pool_mm)
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
    assert "contrast in the blood" in (qa.refusal or "")


def test_contrast_in_the_aorta_alone_is_enough() -> None:
    """Early arterial phase: enhanced aorta, heart chambers not yet measured as bright."""
    qa = image_qa(*chest(aorta_hu=250.0))
    assert qa.refusal is not None and "aorta" in qa.refusal


def test_just_below_the_contrast_limit_is_scored_with_a_caveat() -> None:
    qa = image_qa(*chest(blood_hu=CONTRAST_HU - 15))
    assert qa.scorable
    assert codes(qa) == [QA_BLOOD_DENSE, QA_BLOOD_DENSE]


def test_a_missing_blood_pool_is_a_caveat_and_the_interior_still_shows_contrast() -> None:
    volume, anatomy = chest(blood_hu=300.0)
    anatomy = replace(anatomy, blood_pool=np.zeros(SHAPE, dtype=bool),
                      missing=["blood_pool: no chamber seed"])
    qa = image_qa(volume, anatomy)
    assert QA_POOL_MISSING in codes(qa)
    assert qa.refusal is not None and "interior" in qa.refusal
    assert qa.measured["blood_pool_heart_hu"] is None


def test_nothing_to_measure_contrast_in_is_a_caveat_never_a_pass() -> None:
    volume, anatomy = chest()
    empty = np.zeros(SHAPE, dtype=bool)
    anatomy = replace(anatomy, blood_pool=empty, aorta=empty, heart=empty,
                      missing=["blood_pool: x", "aorta: x", "heart: x"])
    qa = image_qa(volume, anatomy)
    assert QA_CONTRAST_UNCHECKED in codes(qa)


def test_iodine_the_anatomy_missed_is_still_refused() -> None:
    """A confused segmentation (no pool, aorta or heart) and 300 HU blood in a 20 mm
    radius pool (33.5 mL, over the 20 mL limit): the cortex-free bright region refuses."""
    volume, anatomy = chest(blood_hu=300.0, pool_mm=20.0)
    empty = np.zeros(SHAPE, dtype=bool)
    anatomy = replace(anatomy, blood_pool=empty, aorta=empty, heart=empty,
                      missing=["blood_pool: x", "aorta: x", "heart: x"])
    qa = image_qa(volume, anatomy)
    assert qa.refusal is not None and "no cortical bone" in qa.refusal
    assert qa.measured["cortex_free_bright_ml"] == pytest.approx(
        4 / 3 * np.pi * 20.0 ** 3 / 1000, rel=0.15)


def test_bone_with_its_cortex_is_not_taken_for_iodine() -> None:
    """A vertebral body: 250 HU cancellous core in a 2 mm 800 HU cortex, 51 mL."""
    volume, anatomy = chest()
    body, core = cylinder((95.0, 56.0), 15.0), cylinder((95.0, 56.0), 13.0)
    hu = volume.hu.copy()
    hu[body] = 800.0
    hu[core] = 250.0
    qa = image_qa(replace(volume, hu=hu), replace(anatomy, bone=body))
    assert qa.scorable and qa.caveats == []


def test_a_blood_pool_that_leaves_the_iodinated_blood_out_does_not_hide_it() -> None:
    """A segmentation tuned to unenhanced blood may draw its pool round 40 HU tissue only."""
    volume, anatomy = chest(blood_hu=300.0)
    shell = anatomy.heart & ~ball(CENTRE, POOL_MM)
    qa = image_qa(volume, replace(anatomy, blood_pool=shell | cylinder(AORTA_YX, LUMEN_MM)))
    assert qa.refusal is not None and "contrast in the blood" in qa.refusal


def test_a_mask_the_anatomy_flags_as_failed_is_not_used() -> None:
    volume, anatomy = chest()
    qa = image_qa(volume, replace(anatomy, missing=["blood_pool: seed outside the heart"]))
    assert qa.scorable and codes(qa) == [QA_POOL_MISSING]
    assert qa.measured["blood_pool_heart_hu"] is None


def test_a_pool_too_small_to_measure_leaves_the_interior_to_judge() -> None:
    """A pool of radius 4 mm is under 1 mL once eroded by 3 mm."""
    volume, anatomy = chest()
    anatomy = replace(anatomy, blood_pool=ball(CENTRE, 4.0) | cylinder(AORTA_YX, LUMEN_MM))
    qa = image_qa(volume, anatomy)
    assert qa.scorable and qa.caveats == []
    assert qa.measured["blood_pool_heart_hu"] is None
    assert qa.measured["interior_heart_hu"] == pytest.approx(TISSUE_HU, abs=2)


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


def test_the_reconstruction_diameter_marks_the_circle_without_padding() -> None:
    """No padding tags, but a 110 mm Reconstruction Diameter: the heart at (80, 80) mm
    reaches 56.4 mm from the image centre, beyond the 55 mm radius."""
    clear = image_qa(*chest(padding=False, reconstruction_diameter_mm=110.0))
    assert clear.scorable
    cut = image_qa(*chest(centre=(36.0, 80.0, 80.0), padding=False,
                          reconstruction_diameter_mm=110.0))
    assert cut.refusal is not None and "(Reconstruction Diameter)" in cut.refusal


def test_a_heart_that_was_not_found_leaves_the_field_of_view_unchecked() -> None:
    volume, anatomy = chest()
    anatomy = replace(anatomy, heart=np.zeros(SHAPE, dtype=bool), missing=["heart"])
    qa = image_qa(volume, anatomy)
    assert QA_FOV_UNCHECKED in codes(qa)


@pytest.mark.parametrize(("manufacturer", "kernel"), [
    ("SIEMENS", "B35f"), ("SIEMENS", "Qr36d\\3"), ("GE MEDICAL SYSTEMS", "STANDARD"),
    ("Philips", "B"), ("TOSHIBA", "FC12"), ("CANON_MEC", "FC12"),
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
    ("SIEMENS", "Bv40d"), ("Acme CT", "B35f"), ("SIEMENS", None),
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


# --- the issue's cases on the whole-thorax phantom, with its own structure masks ----

def thorax_qa(chest: thorax.Thorax) -> tuple[ImageQA, Volume, thorax.ThoraxImage]:
    image = thorax.build(chest)
    volume = load_volume(thorax.datasets(image))
    return image_qa(volume, Anatomy(**image.masks)), volume, image


def test_an_unenhanced_thorax_is_scorable() -> None:
    qa, _, _ = thorax_qa(thorax.thorax_311())
    assert qa.scorable
    assert codes(qa) == [QA_KERNEL_UNKNOWN]  # the phantom's Manufacturer is "ScanPath"


def test_an_untagged_contrast_thorax_is_not_scorable() -> None:
    qa, volume, _ = thorax_qa(thorax.contrast(thorax.thorax_311(), tagged=False))
    assert not volume.contrast
    assert qa.refusal is not None and "contrast in the blood" in qa.refusal


@pytest.mark.parametrize("streaks", [True, False])
def test_a_thorax_with_a_3000_hu_clip_in_front_of_the_heart_is_not_scorable(
        streaks: bool) -> None:
    qa, _, _ = thorax_qa(thorax.with_metal(thorax.thorax_311(), streaks=streaks))
    assert qa.refusal is not None and "metal" in qa.refusal


def test_a_padded_thorax_is_scorable_and_its_circle_is_known() -> None:
    qa, volume, image = thorax_qa(thorax.padded(thorax.thorax_311(), signed=False))
    assert qa.scorable
    assert image.outside_fov is not None
    np.testing.assert_array_equal(volume.padding, np.broadcast_to(image.outside_fov,
                                                                  volume.shape))
