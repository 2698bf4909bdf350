"""CTCA QA on the phantom's variants: each failure says why, the good cases pass.

Expected values are the phantom's design: blood pool and root 400 HU with
contrast, 40 HU without; 0.75 mm slices; 3 mm for the thick variant.
"""

from __future__ import annotations

import pytest

from imaging_core.ctca import qa
from imaging_core.volume import Volume
from tests.imaging_core.ctca import phantom as P


def _checked(ctca: P.Ctca, **kwargs: object) -> qa.QaResult:
    return qa.check(P.volume(P.build(ctca)), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def default() -> tuple[P.CtcaImage, Volume]:
    image = P.build(P.ctca_default())
    return image, P.volume(image)


def test_good_ctca_is_analysable_with_the_painted_root_hu(
        default: tuple[P.CtcaImage, Volume]) -> None:
    image, volume = default
    result = qa.check(volume)
    assert result.analysable and result.reason is None, result.reasons
    assert result.measured["root_mean_hu"] == pytest.approx(P.CONTRAST_HU, rel=0.10)
    assert result.measured["slice_increment_mm"] == pytest.approx(0.75)
    assert result.measured["slice_thickness_mm"] == pytest.approx(0.75)
    assert result.root_mm is not None
    assert set(result.known) >= {"root_mean_hu", "slice_increment_mm", "ventricles_lowest_z_mm"}


def test_a_given_root_point_is_measured_there(default: tuple[P.CtcaImage, Volume]) -> None:
    image, volume = default
    centre = image.truth.root_centre_mm
    result = qa.check(volume, root_mm=(float(centre[0]), float(centre[1]), float(centre[2])))
    assert result.analysable
    assert result.measured["root_mean_hu"] == pytest.approx(image.truth.root_hu, rel=0.10)


@pytest.mark.parametrize("ctca", [P.ctca_healthy(), P.ctca_left_main(), P.noisy(P.ctca_default())],
                         ids=["healthy", "left-main", "noise-25"])
def test_other_good_variants_pass(ctca: P.Ctca) -> None:
    result = _checked(ctca)
    assert result.analysable, result.reasons
    assert result.measured["root_mean_hu"] == pytest.approx(P.CONTRAST_HU, rel=0.10)


@pytest.mark.parametrize("make", [P.no_contrast, P.mistagged_no_contrast],
                         ids=["untagged", "tagged-but-unenhanced"])
def test_no_contrast_is_not_analysable_whatever_the_tag(make: object) -> None:
    image = P.build(make(P.ctca_default()))  # type: ignore[operator]
    volume = P.volume(image)
    result = qa.check(volume)
    assert not result.analysable
    assert "no contrast in the aortic root" in (result.reason or "")
    assert result.measured["root_mean_hu"] == pytest.approx(40.0, abs=10.0)  # unenhanced blood
    assert result.measured["ventricles_lowest_z_mm"] is None  # coverage not checked: no contrast
    assert any("not checked" in caveat for caveat in result.caveats)


def test_thick_slices_are_not_analysable() -> None:
    result = _checked(P.thick_slices(P.ctca_default()))
    assert not result.analysable
    assert "slices 3 mm apart" in (result.reason or "")
    assert "slices 3 mm thick" in (result.reason or "")


def test_apex_cut_off_is_not_analysable() -> None:
    result = _checked(P.coverage_cut(P.ctca_default()))
    assert not result.analysable
    assert "the heart is cut off below" in (result.reason or "")
    assert "apex is not in view" in (result.reason or "")


def test_volume_starting_below_the_root_is_not_analysable() -> None:
    result = _checked(P.ctca_default(above_root_mm=-15.0))
    assert not result.analysable
    assert "aortic root was not found" in (result.reason or "")


def test_spacing_is_judged_from_the_slice_positions_not_the_tag() -> None:
    # thin slices recorded (0.75 mm), but reconstructed only every 3 mm
    result = _checked(P.scan_changed(P.ctca_default(), increment=3.0, thickness=0.75))
    assert not result.analysable
    assert "slices 3 mm apart (from their positions)" in (result.reason or "")
    assert "thick" not in (result.reason or "")


def test_weak_contrast_is_not_analysable() -> None:
    result = _checked(P.ctca_default(contrast_hu=220.0))
    assert not result.analysable
    assert "too little contrast in the aortic root" in (result.reason or "")
    assert result.measured["root_mean_hu"] == pytest.approx(220.0, rel=0.10)
