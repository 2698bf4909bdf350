"""The CTCA phantom paints what its truth says: lumen sizes, stenoses, ostia, fat, CAD-RADS.

Diameters are measured on the unblurred label map of fine (0.2 mm) crops:
the lumen voxels within 1 mm along the centreline's tangent of a point,
their volume over the window's length is the mean cross-sectional area, and
the diameter is that of the circle of the same area. Expected values come
from the phantom's design numbers (radii, percentages), never from the
measurement code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from tests.imaging_core import thorax as tx
from tests.imaging_core.ctca import phantom as P


@pytest.fixture(scope="module")
def image() -> P.CtcaImage:
    return P.build(P.ctca_default())


def _tangent(vessel: P.VesselTruth, i: int) -> np.ndarray:
    a, b = max(0, i - 2), min(len(vessel.points_mm) - 1, i + 2)
    step = vessel.points_mm[b] - vessel.points_mm[a]
    return np.asarray(step / np.linalg.norm(step))


def _measured_diameter(image: P.CtcaImage, centre: np.ndarray, tangent: np.ndarray,
                       half_window: float, reach: float) -> float:
    """Area-equivalent diameter (mm) of the painted lumen round ``centre``."""
    g = image.grid
    k, r, c = np.nonzero(image.labels == P.LUMEN)
    offset = np.stack([g.x[c], g.y[r], g.z[k]], axis=1) - centre
    along = offset @ tangent
    radial = np.linalg.norm(offset - along[:, None] * tangent, axis=1)
    inside = (np.abs(along) <= half_window) & (radial <= reach)
    dy, dx = image.scan.pixel_spacing
    area = inside.sum() * dx * dy * image.scan.increment / (2 * half_window)
    return 2.0 * math.sqrt(area / math.pi)


def _healthy_points(truth: P.Truth, name: str) -> list[int]:
    """Indices at 30, 55 and 80 % of a segment, kept when healthy for 3 mm round them and
    at least 7 mm from every other segment's centreline (away from branch points)."""
    vessel = truth.vessels[name]
    out = []
    for fraction in (0.3, 0.55, 0.8):
        i = int(fraction * (len(vessel.points_mm) - 1))
        near = np.abs(vessel.from_ostium_mm - vessel.from_ostium_mm[i]) <= 3.0
        if np.any(vessel.lumen_radius_mm[near] < vessel.radius_mm[near]):
            continue
        others = [v.points_mm for k, v in truth.vessels.items() if k != name]
        gap = min(np.linalg.norm(o - vessel.points_mm[i], axis=1).min() for o in others)
        if gap >= 7.0:
            out.append(i)
    return out


@pytest.mark.parametrize("name", ["LM", "LAD", "LCX", "RCA", "LAD.1"])
def test_painted_lumen_diameter_matches_the_tapering_truth(name: str) -> None:
    ctca = P.ctca_default()
    truth = P.truth(ctca)
    vessel = truth.vessels[name]
    points = _healthy_points(truth, name)
    if name == "LM":  # a short vessel between two branch points: its middle
        points = [len(vessel.points_mm) // 2]
    assert points, f"no healthy point to measure on {name}"
    for i in points:
        crop = P.build(P.fine_crop(ctca, vessel.points_mm[i], size_mm=10.0))
        measured = _measured_diameter(crop, vessel.points_mm[i], _tangent(vessel, i), 1.0,
                                      vessel.radius_mm[i] + 1.0)
        # design: linear taper, e.g. LAD 3.8 mm at its start to 2.0 mm at its end
        assert measured == pytest.approx(2 * vessel.radius_mm[i], abs=0.1), (name, i)


@pytest.mark.parametrize("name", ["LAD", "LCX", "RCA", "LAD.1"])
def test_lumen_on_the_test_grid_follows_the_taper(image: P.CtcaImage, name: str) -> None:
    # the 0.75 mm grid itself: 6 mm windows, a coarser check than the fine crops'
    vessel = image.truth.vessels[name]
    for i in _healthy_points(image.truth, name):
        measured = _measured_diameter(image, vessel.points_mm[i], _tangent(vessel, i), 3.0,
                                      vessel.radius_mm[i] + 1.0)
        assert measured == pytest.approx(2 * vessel.radius_mm[i], rel=0.06), (name, i)


def test_radii_taper_from_about_2_mm_to_1_mm() -> None:
    vessels = P.truth(P.ctca_default()).vessels
    assert vessels["LM"].radius_mm[0] == pytest.approx(2.2)
    for name in ("LAD", "LCX", "RCA"):
        assert 1.8 <= vessels[name].radius_mm[0] <= 2.0
        assert vessels[name].radius_mm[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("ctca", [P.ctca_default(), P.ctca_left_main()],
                         ids=["default", "left-main"])
def test_stenosis_minimal_diameter_is_painted(ctca: P.Ctca) -> None:
    for s in P.truth(ctca).stenoses:
        vessel = P.truth(ctca).vessels[s.segment]
        i = int(np.argmin(np.abs(vessel.from_ostium_mm - s.centre_mm)))
        crop = P.build(P.fine_crop(ctca, s.position_mm, size_mm=8.0, spacing_mm=0.1))
        measured = _measured_diameter(crop, s.position_mm, _tangent(vessel, i), 0.25,
                                      s.reference_diameter_mm)
        # design: MLD = reference * (1 - percent / 100)
        expected = s.reference_diameter_mm * (1 - s.stenosis_pct / 100)
        assert s.minimal_lumen_diameter_mm == pytest.approx(expected)
        assert measured == pytest.approx(expected, abs=0.1), s


def test_eccentric_stenosis_keeps_its_minimal_diameter_and_puts_plaque_outside() -> None:
    ctca = P.ctca_eccentric()
    for s in P.truth(ctca).stenoses[:2]:
        vessel = P.truth(ctca).vessels[s.segment]
        i = int(np.argmin(np.abs(vessel.from_ostium_mm - s.centre_mm)))
        assert s.lumen_centre_mm is not None and not s.concentric
        # design: the lumen centre moves inwards by r0 - r = r0 * p
        shift = s.lumen_centre_mm - s.position_mm
        assert np.linalg.norm(shift) == pytest.approx(
            s.reference_diameter_mm / 2 * s.stenosis_pct / 100, abs=0.02)
        crop = P.build(P.fine_crop(ctca, s.position_mm, size_mm=8.0, spacing_mm=0.1))
        measured = _measured_diameter(crop, s.lumen_centre_mm, _tangent(vessel, i), 0.25,
                                      s.reference_diameter_mm)
        assert measured == pytest.approx(s.minimal_lumen_diameter_mm, abs=0.1), s
        g = crop.grid
        kind = P.CALCIFIED if s.plaque == "calcified" else P.NONCALCIFIED
        k, r, c = np.nonzero(crop.labels == kind)
        plaque = np.stack([g.x[c], g.y[r], g.z[k]], axis=1)
        near = np.linalg.norm(plaque - s.position_mm, axis=1) < 2 * s.reference_diameter_mm
        assert (plaque[near].mean(axis=0) - s.position_mm) @ shift < 0  # the far side


def test_default_stenoses_where_the_issue_puts_them() -> None:
    truth = P.truth(P.ctca_default())
    by_vessel = {s.vessel: s for s in truth.stenoses}
    assert set(by_vessel) == {"LAD", "LCX", "RCA"}
    lm_length = truth.vessels["LM"].length_mm
    assert by_vessel["LAD"].stenosis_pct == 70 and by_vessel["LAD"].plaque == "non-calcified"
    assert by_vessel["LAD"].length_mm == 10
    # counted from the LM ostium: the LM's length plus 15 mm down the LAD
    assert by_vessel["LAD"].centre_mm == pytest.approx(lm_length + 15.0)
    assert by_vessel["LCX"].stenosis_pct == 50 and by_vessel["LCX"].plaque == "calcified"
    assert by_vessel["RCA"].stenosis_pct == 30 and by_vessel["RCA"].centre_mm == 50.0


def test_occlusion_leaves_no_lumen_at_its_centre() -> None:
    ctca = P.ctca_occluded()
    s = P.truth(ctca).stenoses[0]
    crop = P.build(P.fine_crop(ctca, s.position_mm, size_mm=10.0))
    vessel = P.truth(ctca).vessels["RCA"]
    i = int(np.argmin(np.abs(vessel.from_ostium_mm - s.centre_mm)))
    assert _measured_diameter(crop, s.position_mm, _tangent(vessel, i), 0.4, 3.0) == 0.0


def test_plaque_fills_the_wall_with_its_kind(image: P.CtcaImage) -> None:
    g = image.grid
    for s in image.truth.stenoses:
        k = int(np.argmin(np.abs(g.z - s.position_mm[2])))
        r = int(np.argmin(np.abs(g.y - s.position_mm[1])))
        c = int(np.argmin(np.abs(g.x - s.position_mm[0])))
        near = image.labels[k - 3:k + 4, r - 3:r + 4, c - 3:c + 4]
        wanted = P.CALCIFIED if s.plaque == "calcified" else P.NONCALCIFIED
        unwanted = P.NONCALCIFIED if s.plaque == "calcified" else P.CALCIFIED
        assert (near == wanted).sum() > 0 and not (near == unwanted).any(), s


def test_ostia_lie_on_the_root_wall_and_open_into_the_root(image: P.CtcaImage) -> None:
    g = image.grid
    lumen = np.isin(image.labels, (P.LUMEN, tx.ROOT_LUMEN))
    parts, _ = ndimage.label(lumen)
    root_part = set(np.unique(parts[image.labels == tx.ROOT_LUMEN]).tolist()) - {0}
    for side, ostium in image.truth.ostia.items():
        zz, yy, xx = np.meshgrid(g.z, g.y, g.x, indexing="ij")
        near = (xx - ostium[0]) ** 2 + (yy - ostium[1]) ** 2 + (zz - ostium[2]) ** 2 <= 3.0 ** 2
        labels = set(np.unique(image.labels[near]).tolist())
        assert {P.LUMEN, tx.ROOT_LUMEN, tx.ROOT_WALL} <= labels, side
        coronary = set(np.unique(parts[near & (image.labels == P.LUMEN)]).tolist())
        assert coronary & root_part, f"{side} coronary lumen not connected to the root lumen"


def test_vessels_run_in_epicardial_fat(image: P.CtcaImage) -> None:
    vessel = np.isin(image.labels, (P.LUMEN, *P.PLAQUE_LABELS))
    shell = ndimage.binary_dilation(vessel) & ~vessel
    g = image.grid
    k, r, c = np.nonzero(shell)
    points = np.stack([g.x[c], g.y[r], g.z[k]], axis=1)
    ostia = np.stack(list(image.truth.ostia.values()))
    far = np.linalg.norm(points[:, None] - ostia[None], axis=2).min(axis=1) > 6.0
    around = set(np.unique(image.labels[k[far], r[far], c[far]]).tolist())
    assert around == {tx.EPICARDIAL_FAT}


def test_side_branch_leaves_the_lad() -> None:
    truth = P.truth(P.ctca_default())
    parent, at = truth.side_branches["LAD.1"]
    diagonal, lad = truth.vessels["LAD.1"], truth.vessels["LAD"]
    assert parent == "LAD" and diagonal.vessel == "LAD" and diagonal.parent == "LAD"
    assert diagonal.from_ostium_mm[0] == pytest.approx(at)
    start = np.interp(at, lad.from_ostium_mm, lad.points_mm[:, 0]), np.interp(
        at, lad.from_ostium_mm, lad.points_mm[:, 1])
    assert np.allclose(diagonal.points_mm[0, :2], start, atol=0.3)
    assert np.linalg.norm(diagonal.points_mm[-1] - lad.points_mm[-1]) > 15.0


@pytest.mark.parametrize(("stenoses", "expected"), [
    ((), "0"),
    ((P.Stenosis("LAD", 40.0, 6.0, 20.0),), "1"),
    ((P.Stenosis("RCA", 50.0, 8.0, 30.0),), "2"),
    ((P.Stenosis("LCX", 30.0, 8.0, 55.0, "calcified"),), "3"),
    (P.STENOSES_DEFAULT, "4A"),  # LAD 70 %: one vessel 70-99 %
    ((P.Stenosis("LAD", 15.0, 10.0, 70.0), P.Stenosis("RCA", 50.0, 8.0, 90.0)), "4A"),
    (P.STENOSES_LEFT_MAIN, "4B"),  # LM 60 %: left main >= 50 %
    ((P.Stenosis("LM", 9.0, 6.0, 40.0),), "2"),
    (P.STENOSES_THREE_VESSEL, "4B"),  # three vessels >= 70 %
    (P.STENOSES_OCCLUDED, "5"),
    (P.STENOSES_ECCENTRIC, "4A"),
], ids=["0", "1", "2", "3", "4A-one", "4A-two", "4B-LM", "LM-40", "4B-three", "5", "eccentric"])
def test_cad_rads_of_the_variants_follows_cury_2022(stenoses: tuple[P.Stenosis, ...],
                                                    expected: str) -> None:
    # Cury RC et al. J Cardiovasc Comput Tomogr 2022;16:536-557, Table 2 (stated by hand)
    assert P.truth(P.Ctca(stenoses=stenoses)).cad_rads == expected


def test_enhanced_blood_myocardium_and_fat_in_the_image(image: P.CtcaImage) -> None:
    hu, lab = image.hu, image.labels
    core = ndimage.binary_erosion(lab == tx.CHAMBER, iterations=4)
    assert np.median(hu[core]) == pytest.approx(P.CONTRAST_HU, abs=5)
    myo = ndimage.binary_erosion(lab == tx.MYOCARDIUM, iterations=3)
    assert np.median(hu[myo]) == pytest.approx(120.0, abs=5)
    assert np.median(hu[ndimage.binary_erosion(lab == tx.EPICARDIAL_FAT)]) < -60
    noise = image.noisy_hu()[core] - hu[core]
    assert np.std(noise) == pytest.approx(image.scan.noise_sigma, rel=0.1)


def test_calcified_plaque_blooms_and_soft_plaque_stays_dark(image: P.CtcaImage) -> None:
    calcified = image.hu[image.labels == P.CALCIFIED]
    soft = image.hu[image.labels == P.NONCALCIFIED]
    assert calcified.max() > 400  # 750 HU blurred over a thin shell
    assert np.median(soft) < P.CONTRAST_HU - 100


def test_datasets_carry_contrast_and_thin_slices(image: P.CtcaImage) -> None:
    slices = P.datasets(image)
    assert len(slices) == image.scan.n_slices
    assert slices[0].ContrastBolusAgent == "Iopromide"
    assert float(slices[0].SliceThickness) == 0.75
    plain = P.datasets(P.build(P.no_contrast(P.ctca_healthy())))
    assert "ContrastBolusAgent" not in plain[0]


def test_coverage_from_above_the_root_to_below_the_apex(image: P.CtcaImage) -> None:
    z = image.grid.z
    assert z[0] < image.truth.lowest_heart_z_mm < image.truth.apex_mm[2]
    assert z[-1] > image.truth.root_centre_mm[2] + tx.SINUS_RADIUS
    cut = P.placed_scan(P.coverage_cut(P.ctca_default()), image.frame, image.root)
    assert cut.w_start > image.truth.apex_mm[2]


def test_thick_slice_variant_is_3_mm() -> None:
    scan = P.thick_slices(P.ctca_default()).scan
    assert (scan.thickness, scan.increment) == (3.0, 3.0)


def test_truth_as_the_shared_tree_shapes() -> None:
    truth = P.truth(P.ctca_default())
    tree = P.as_tree(truth)
    assert {s.id for s in tree.roots()} == {"LM", "RCA"}
    assert sorted(tree.segments["LM"].children) == ["LAD", "LCX"]
    assert tree.segments["LAD"].children == ["LAD.1"]
    lad = tree.segments["LAD"]
    assert lad.from_ostium_mm[0] == pytest.approx(truth.vessels["LM"].length_mm)
    assert lad.diameter_mm is not None and lad.area_mm2 is not None
    # the narrowest LAD point is the 70 % stenosis: 30 % of the healthy diameter left
    narrowest = int(np.argmin(lad.diameter_mm / (2 * truth.vessels["LAD"].radius_mm)))
    assert lad.diameter_mm[narrowest] / (2 * truth.vessels["LAD"].radius_mm[narrowest]) \
        == pytest.approx(0.3, abs=0.01)
    reported = P.lesions(truth)
    assert [(x.vessel, x.stenosis_pct) for x in reported] == [
        ("LAD", 70.0), ("LCX", 50.0), ("RCA", 30.0)]
    assert reported[0].length_mm == pytest.approx(10.0)


def test_plaque_volume_matches_the_painted_plaque() -> None:
    ctca = P.ctca_default()
    s = next(x for x in P.truth(ctca).stenoses if x.vessel == "LAD")
    crop = P.build(P.fine_crop(ctca, s.position_mm, size_mm=16.0, spacing_mm=0.2))
    painted = (crop.labels == P.NONCALCIFIED).sum() * 0.2 ** 3
    # analytic: integral of pi((r0 + 0.5 b)^2 - (r0 (1 - 0.7 b))^2) over the 10 mm lesion
    assert painted == pytest.approx(s.plaque_volume_mm3, rel=0.05)
