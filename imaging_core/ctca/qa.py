"""Can this series be analysed as a coronary CT angiogram? Judged on the pixels, not the tags.

Three rules, each giving a reason in plain words when it fails and its
measured values either way (``QaResult.measured``, None where not measured):

======================  ================================================================
rule                    not analysable when
======================  ================================================================
thin slices             the slice increment measured from the slice positions, or the
                        recorded SliceThickness, is over ``MAX_SLICE_MM``; slices missing
                        (the loader's gap QA); no thickness recorded is a caveat
contrast                the aortic root was not found, or the mean HU in its lumen is
                        under ``MIN_ROOT_HU`` (whatever ContrastBolusAgent says)
coverage                less than ``ROOT_ABOVE_MM`` of ascending aorta above the root, or
                        the contrast-filled ventricles come closer than
                        ``APEX_MARGIN_MM`` to the lowest slice (the apex is cut off)
======================  ================================================================

Finding the root. A caller that already knows the root (the lumen step's
ostia) passes ``root_mm``; the mean is then taken in a ball of
``ROOT_SAMPLE_MM`` round it. Otherwise the ascending aorta is found by the
lumen steps' own finder, ``ostia.find_ascending`` (Hough circles of aortic
size not over bone, tracked down from the top slices; of the chains the most
anterior-right), first above the contrast floor ``ostia.BRIGHT_HU`` and,
when none is found there, above the soft-tissue floor so that an unenhanced
aorta is still found and measured. Its circles are kept from the top slice
down while their inside is one uniform blood pool (a circle tracked on into
the heart, over walls and chambers, is not; a top circle that is not means
the top slices cut the heart, and no root is found); the lowest kept, about
the sinotubular junction, stands for the root, and the mean is taken over
the inner half of the lowest ``ROOT_SAMPLE_SLICES`` of them. The coverage
rule needs contrast: without it the ventricles cannot be told from the liver, and coverage is
reported as not checked (the contrast rule has already refused).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from imaging_core import anatomy
from imaging_core.ctca import ostia
from imaging_core.errors import SegmentationError
from imaging_core.volume import QA_GAP, Volume

SCCT_2016 = ("Abbara S et al. SCCT guidelines for the performance and acquisition of coronary "
             "computed tomographic angiography. J Cardiovasc Comput Tomogr 2016;10:435-449")
# Minimal lumen attenuation for diagnostic CTCA: the SCCT 2016 guideline's >= 250 HU as the
# issue states it (not checked against the guideline's text here: unverified).
MIN_ROOT_HU = 250.0
# Unenhanced blood is about 30-65 HU; 100 HU is above any of it (the calcium QA gate's
# CONTRAST_HU, imaging_core.scanqa, a project choice there): at or under it, no contrast.
UNENHANCED_MAX_HU = 100.0
# Thin-slice reconstruction: CTCA is read on sub-millimetre slices (SCCT 2016 recommends the
# thinnest reconstruction, typically 0.5-0.75 mm; the 1 mm ceiling is the issue's, unverified).
MAX_SLICE_MM = 1.0
ROOT_SAMPLE_MM = 5.0  # ball round a given root point: inside a ~25-35 mm wide root
ROOT_SAMPLE_SLICES = 2  # lowest tracked circles (working slices, ~3 mm each) sampled
INNER_SHARE = 0.5  # of a circle's radius: the lumen well inside the wall
# Block means (~2 x 2 x 3 mm) of one blood pool vary by a few HU of noise and mixing; a
# circle tracked into the heart, over walls and chambers, spreads by hundreds (project choice).
UNIFORM_SPREAD_HU = 60.0
# Tubular ascending aorta tracked above the root (two working slices): the sinuses below it
# are then wholly in view (project choice).
ROOT_ABOVE_MM = 6.0
# The ventricles' cavity ends about one apical wall (~10 mm, unverified) above the apex;
# 5 mm more below it makes the apex itself in view (project choice).
APEX_MARGIN_MM = 15.0
# Enhanced blood: this share of the root's mean HU or more (cancellous bone ~250 HU stays
# under it at a diagnostic 400 HU bolus; project choice).
ENHANCED_SHARE = 0.7
MIN_CAVITY_ML = 20.0  # a ventricle's cavity holds far more (~50-150 ml); less is a vessel


@dataclass
class QaResult:
    """Whether the series can be analysed as a CTCA, why not, and what was measured.

    ``reasons`` lists every failed rule in plain words (empty when
    analysable); ``caveats`` what could not be checked but did not refuse;
    ``measured`` the values behind the verdict (``root_mean_hu``,
    ``root_sd_hu``, ``slice_increment_mm``, ``slice_thickness_mm``,
    ``root_z_mm``, ``ventricles_lowest_z_mm``, ``volume_lowest_z_mm``,
    ``aorta_above_root_mm``), None where not measured. ``root_mm`` is the
    root centre (LPS mm) used, when found; ``ascending`` the ascending aorta
    it was found on (``ostia.find_ascending``), for the lumen steps to reuse.
    """

    analysable: bool
    reasons: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    measured: dict[str, float | None] = field(default_factory=dict)
    root_mm: tuple[float, float, float] | None = None
    ascending: ostia.Ascending | None = None

    @property
    def reason(self) -> str | None:
        """All reasons as one sentence, or None when analysable."""
        return "; ".join(self.reasons) or None

    @property
    def known(self) -> dict[str, float]:
        """The measured values that were measured (for ``tree.CtcaResult.qa``)."""
        return {name: value for name, value in self.measured.items() if value is not None}


@dataclass
class RootSample:
    """The root centre (LPS mm), its lumen sample (volume-shaped bool) and ascending length."""

    centre_mm: np.ndarray
    sample: np.ndarray
    above_mm: float | None


def check(volume: Volume, root_mm: tuple[float, float, float] | None = None) -> QaResult:
    """Judge ``volume`` for CTCA analysis: thin slices, contrast in the root, root-to-apex coverage.

    ``root_mm`` (LPS mm), when given, is a point inside the root lumen; else
    the root is found (see the module docstring). Never raises for image
    content: what cannot be found is a reason.
    """
    out = QaResult(analysable=True)
    _slices_rule(volume, out)
    grid = anatomy.working_grid(volume)
    root: RootSample | None
    if root_mm is not None:
        root = _given_root(volume, root_mm)
    else:
        out.ascending = _ascending(volume, grid)
        root = None if out.ascending is None else find_root(grid, out.ascending)
    mean = _contrast_rule(volume, root, out)
    _coverage_rule(volume, grid, root, mean, out)
    out.analysable = not out.reasons
    return out


def _slices_rule(volume: Volume, out: QaResult) -> None:
    increment = float(volume.spacing[0])
    thickness = volume.slice_thickness
    out.measured.update(slice_increment_mm=increment, slice_thickness_mm=thickness)
    if increment > MAX_SLICE_MM + 1e-6:
        out.reasons.append(f"slices {increment:.2g} mm apart (from their positions); CTCA "
                           f"needs {MAX_SLICE_MM:g} mm or less")
    if thickness is None:
        out.caveats.append("slice thickness not recorded: judged on the slice spacing only")
    elif thickness > MAX_SLICE_MM + 1e-6:
        out.reasons.append(f"slices {thickness:.2g} mm thick; CTCA needs {MAX_SLICE_MM:g} mm "
                           "or thinner")
    if volume.has_qa(QA_GAP):
        out.reasons.append("slices are missing (a gap in the slice positions)")


def _contrast_rule(volume: Volume, root: RootSample | None, out: QaResult) -> float | None:
    """Mean HU in the root lumen, refusing under MIN_ROOT_HU; None when the root is not found."""
    out.measured.update(root_mean_hu=None, root_sd_hu=None)
    if root is None:
        out.reasons.append("the aortic root was not found (no ascending aorta in the top "
                           "slices: the volume may start below it), so contrast in it could "
                           "not be measured")
        return None
    usable = root.sample & ~volume.padding
    values = volume.hu[usable].astype(np.float64)
    if values.size == 0:
        out.reasons.append("the aortic root lies outside the reconstructed image")
        return None
    mean = float(values.mean())
    out.root_mm = (float(root.centre_mm[0]), float(root.centre_mm[1]), float(root.centre_mm[2]))
    out.measured.update(root_mean_hu=mean, root_sd_hu=float(values.std()),
                        root_z_mm=float(root.centre_mm[2]))
    if mean < MIN_ROOT_HU:
        what = "no contrast" if mean <= UNENHANCED_MAX_HU else "too little contrast"
        out.reasons.append(f"{what} in the aortic root: mean {mean:.0f} HU, under the "
                           f"{MIN_ROOT_HU:g} HU a CTCA needs (SCCT 2016), whatever the "
                           "ContrastBolusAgent tag says")
    return mean


def _coverage_rule(volume: Volume, grid: anatomy.Grid, root: RootSample | None,
                   mean: float | None, out: QaResult) -> None:
    lowest = float(_z_of(volume, 0))
    out.measured.update(volume_lowest_z_mm=lowest, ventricles_lowest_z_mm=None,
                        aorta_above_root_mm=root.above_mm if root else None)
    if root is not None and root.above_mm is not None and root.above_mm < ROOT_ABOVE_MM:
        out.reasons.append(f"the volume starts too close above the aortic root "
                           f"({root.above_mm:.0f} mm of ascending aorta in view, "
                           f"{ROOT_ABOVE_MM:g} mm needed)")
    if mean is None or mean < MIN_ROOT_HU:
        out.caveats.append("coverage of the apex not checked: it needs contrast in the "
                           "ventricles")
        return
    cavity = _ventricles_lowest_z(volume, grid, mean)
    out.measured["ventricles_lowest_z_mm"] = cavity
    if cavity is None:
        out.reasons.append("no contrast-filled ventricle found, so coverage of the heart could "
                           "not be checked")
    elif cavity - lowest < APEX_MARGIN_MM:
        out.reasons.append(f"the heart is cut off below: the contrast-filled ventricles reach "
                           f"{cavity - lowest:.0f} mm from the lowest slice, so the apex is not "
                           f"in view ({APEX_MARGIN_MM:g} mm needed)")


def _ventricles_lowest_z(volume: Volume, grid: anatomy.Grid, root_mean: float
                         ) -> float | None:
    """z (mm) of the lowest voxel of the largest enhanced component that is not bone."""
    enhanced = (grid.hu >= ENHANCED_SHARE * root_mean) & ~anatomy.bone_candidates(grid)
    labels, n = ndimage.label(enhanced)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:] * grid.voxel_ml
    biggest = int(np.argmax(sizes)) + 1
    if sizes[biggest - 1] < MIN_CAVITY_ML:
        return None
    k = int(np.flatnonzero((labels == biggest).any(axis=(1, 2)))[0])
    return float(_z_of(volume, k * grid.factors[0]))


def _z_of(volume: Volume, k: int) -> float:
    return float(volume.voxel_to_patient(np.array([[k, 0.0, 0.0]]))[0, 2])


def _given_root(volume: Volume, root_mm: tuple[float, float, float]) -> RootSample:
    """The ball of ROOT_SAMPLE_MM round a root point given by the caller."""
    centre = np.asarray(root_mm, dtype=np.float64)
    inverse = np.linalg.inv(volume.orientation.T)
    uvw = inverse @ (centre - volume.origin)
    index = np.array([np.interp(uvw[2], volume.slice_positions, np.arange(volume.shape[0])),
                      uvw[1] / volume.spacing[1], uvw[0] / volume.spacing[2]])
    zz, yy, xx = np.ogrid[:volume.shape[0], :volume.shape[1], :volume.shape[2]]
    spacing = volume.spacing
    ball = (((zz - index[0]) * spacing[0]) ** 2 + ((yy - index[1]) * spacing[1]) ** 2
            + ((xx - index[2]) * spacing[2]) ** 2) <= ROOT_SAMPLE_MM ** 2
    return RootSample(centre, np.asarray(ball), None)


def _ascending(volume: Volume, grid: anatomy.Grid) -> ostia.Ascending | None:
    """The ascending aorta above the contrast floor, else above the soft-tissue floor; or None."""
    for floor in (ostia.BRIGHT_HU, anatomy.SOFT_TISSUE_MIN_HU):
        try:
            return ostia.find_ascending(volume, floor, grid)
        except SegmentationError:
            continue
    return None


def find_root(grid: anatomy.Grid, ascending: ostia.Ascending) -> RootSample | None:
    """The aortic root: the lowest of the circles of ``ascending`` that are one blood pool
    from the top slice down without a break.

    ``grid`` is the working grid ``ascending`` was found on. Returns None
    when its top circle is not one blood pool: the top slices cut the heart
    (a chamber's edge), not the aorta, which enters the volume as a uniform lumen.
    """
    kept: list[tuple[anatomy.Circle, np.ndarray]] = []
    for c, centre in reversed(list(zip(ascending.chain, ascending.centres, strict=True))):
        if not _uniform(grid, c):
            break
        kept.insert(0, (c, centre))
    if not kept:
        return None
    sample = np.zeros(grid.hu.shape, dtype=bool)
    for c, _ in kept[:ROOT_SAMPLE_SLICES]:
        sample[c.k][anatomy.circle_disc(grid.hu.shape[1:], c, INNER_SHARE)] = True
    return RootSample(np.asarray(kept[0][1]), anatomy.to_full(grid, sample),
                      (kept[-1][0].k - kept[0][0].k) * grid.spacing[0])


def _uniform(grid: anatomy.Grid, circle: anatomy.Circle) -> bool:
    """Whether the inner disc is one blood pool (a circle that straddles walls is not)."""
    values = grid.hu[circle.k][anatomy.circle_disc(grid.hu.shape[1:], circle, INNER_SHARE)]
    low, high = np.percentile(values, [10, 90])
    return bool(high - low <= UNIFORM_SPREAD_HU)

