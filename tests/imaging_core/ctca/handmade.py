"""A hand-made CTCA result over a small CT with one straight contrast-filled vessel.

The CT (a 40 x 48 x 48 phantom series, 0.5 mm voxels) holds a straight tube of
400 HU along the slice axis through the centre of each slice, radius 1.5 mm,
narrowed to 0.6 mm between 8 and 11 mm from its start: a 60 % diameter
stenosis (1 - 1.2 / 3.0). Background is 40 HU.

The tree: LM from 0 to 4 mm along the tube, LAD continuing to 17 mm; an LCX
branching off sideways (outside the tube); the RCA was not found
(``Tree.missing``). Every number the report must carry is stated here, from
this geometry, not from the code under test.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydicom.dataset import Dataset

from imaging_core.ctca.tree import CtcaResult, Ffr, Lesion, Segment, Stent, Tree
from imaging_core.volume import Volume, load_volume
from tests.imaging_core.phantoms import Phantom, datasets

PHANTOM = Phantom(rows=48, cols=48, n_slices=40, increment=0.5, thickness=0.5,
                  pixel_spacing=(0.5, 0.5), accession="CTCA0001", name="ctca-handmade")
LUMEN_HU, RADIUS_MM, NARROW_RADIUS_MM = 400.0, 1.5, 0.6
START_SLICE = 2  # the tube's start (0 mm) is slice 2
NARROW_MM = (8.0, 11.0)
STEP = 0.5

LAD_LESION = Lesion(segment="LAD", vessel="LAD", start_mm=8.0, centre_mm=9.5, end_mm=11.0,
                    stenosis_pct=60.0, reference_diameter_mm=3.0, proximal_reference_mm=3.0,
                    distal_reference_mm=3.0, minimal_lumen_diameter_mm=1.2)
LCX_LESION = Lesion(segment="LCX", vessel="LCX", start_mm=6.0, centre_mm=7.0, end_mm=8.0,
                    stenosis_pct=30.0, reference_diameter_mm=2.5, proximal_reference_mm=2.5,
                    distal_reference_mm=2.5, minimal_lumen_diameter_mm=1.75)
MINOR = Lesion(segment="LAD", vessel="LAD", start_mm=14.0, centre_mm=14.5, end_mm=15.0,
               stenosis_pct=20.0, reference_diameter_mm=3.0, proximal_reference_mm=3.0,
               distal_reference_mm=3.0, minimal_lumen_diameter_mm=2.4)
STENT = Stent(segment="LAD", vessel="LAD", diameter_mm=3.0, length_mm=12.0, start_mm=3.5,
              end_mm=15.5)
FFR_AFTER_LAD_LESION = 0.74  # the LAD profile below at 11 mm
LAD_DISTAL, LCX_DISTAL, LM_DISTAL = 0.72, 0.85, 0.99


def sources() -> list[Dataset]:
    return datasets(PHANTOM)


def volume(series: list[Dataset]) -> Volume:
    """The phantom series loaded, its HU replaced by the tube (geometry kept)."""
    loaded = load_volume(series)
    z, y, x = np.meshgrid(*[np.arange(n) for n in loaded.shape], indexing="ij")
    along = (z - START_SLICE) * PHANTOM.increment
    off_axis = np.hypot((y - 24) * 0.5, (x - 24) * 0.5)
    narrow = (along >= NARROW_MM[0]) & (along <= NARROW_MM[1])
    radius = np.where(narrow, NARROW_RADIUS_MM, RADIUS_MM)
    inside = (off_axis <= radius) & (along >= 0)
    return replace(loaded, hu=np.where(inside, LUMEN_HU, 40.0).astype(np.float32))


def _line(volume: Volume, start_mm: float, end_mm: float,
          sideways: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Points every 0.5 mm along the tube axis (or off to the side, for the LCX)."""
    along = np.arange(start_mm, end_mm + STEP / 2, STEP)
    z = START_SLICE + along / PHANTOM.increment
    x = np.full_like(z, 24.0) + (along - start_mm) / 0.5 if sideways else np.full_like(z, 24.0)
    zyx = np.stack([z if not sideways else np.full_like(z, START_SLICE + start_mm / 0.5),
                    np.full_like(z, 24.0), x], axis=1)
    return volume.voxel_to_patient(zyx), along


def tree(volume: Volume) -> Tree:
    lm_points, lm_along = _line(volume, 0.0, 4.0)
    lad_points, lad_along = _line(volume, 4.0, 17.0)
    lcx_points, lcx_along = _line(volume, 4.0, 14.0, sideways=True)
    lad_diameter = np.where((lad_along >= 8) & (lad_along <= 11), 1.2, 3.0)
    segments = {
        "LM": Segment("LM", "LM", None, lm_points, lm_along, np.full(len(lm_along), 7.07),
                      np.full(len(lm_along), 3.0), ["LAD", "LCX"]),
        "LAD": Segment("LAD", "LAD", "LM", lad_points, lad_along,
                       np.pi * (lad_diameter / 2) ** 2, lad_diameter),
        "LCX": Segment("LCX", "LCX", "LM", lcx_points, lcx_along, None,
                       np.full(len(lcx_along), np.nan)),
    }
    return Tree(segments, {"left": lm_points[0]}, missing=["RCA"])


def ffr(tree: Tree) -> Ffr:
    """LM 1.00 to 0.99; LAD 0.98 to 8 mm, 0.74 from 11 mm falling to 0.72; LCX to 0.85."""
    lad = tree.segments["LAD"].from_ostium_mm
    lad_ffr = np.interp(lad, [4, 8, 11, 17], [0.99, 0.98, FFR_AFTER_LAD_LESION, LAD_DISTAL])
    lcx = tree.segments["LCX"].from_ostium_mm
    return Ffr({"LM": np.linspace(1.0, LM_DISTAL, len(tree.segments["LM"].from_ostium_mm)),
                "LAD": lad_ffr, "LCX": np.interp(lcx, [4, 14], [0.99, LCX_DISTAL])},
               {"model": "hand-made profile for tests"})


def result(volume: Volume) -> CtcaResult:
    """The analysable case: CAD-RADS 3 (maximal stenosis 60 %, Cury 2022 50-69 %)."""
    made = tree(volume)
    return CtcaResult(True, qa={"root_mean_hu": 420.0}, tree=made,
                      lesions=[LAD_LESION, LCX_LESION, MINOR], stents=[STENT], ffr=ffr(made),
                      cad_rads="3", timings_s={"qa": 0.1, "coronary-tree": 1.0})
