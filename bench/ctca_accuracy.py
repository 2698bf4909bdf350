"""CTCA measurement accuracy per truth stenosis on every phantom preset (no timing).

Not a speed benchmark: a table that says where a stenosis grade goes wrong.
For each truth stenosis of each preset (``tests.imaging_core.ctca.phantom``):
the truth (grade, reference diameter, MLD); the painted lumen's
area-equivalent diameter in the plane across the vessel at the stenosis'
centre (the phantom's partial-volume lumen fraction, trilinearly
interpolated, averaged over +-0.25 mm along; it is smoothed by the voxels
themselves, so a short narrowing reads a little wide here too); the
measurement along the truth's lumen centres without noise and with the preset's
noise (``measure``); and the whole pipeline (grade, reference, MLD, FFR-CT
2 mm beyond the stenosis' end), with CAD-RADS truth vs pipeline.
Run: ``python bench/ctca_accuracy.py [preset,preset ...] [--seeds 1,2,3]`` (a few seconds per
preset and seed).
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # so `tests.imaging_core` imports when run as a script
    sys.path.insert(0, str(ROOT))

from imaging_core.ctca import measure as M  # noqa: E402
from imaging_core.ctca import pipeline  # noqa: E402
from imaging_core.ctca.tree import CtcaResult, Lesion, Segment  # noqa: E402
from imaging_core.volume import Volume  # noqa: E402
from tests.imaging_core import thorax as tx  # noqa: E402
from tests.imaging_core.ctca import phantom as P  # noqa: E402

PRESETS = ["ctca_default", "ctca_left_main", "ctca_three_vessel", "ctca_occluded",
           "ctca_healthy", "ctca_eccentric"]
PLANE_MM, PLANE_STEP_MM = 3.0, 0.05


def lumen_fraction(image: P.CtcaImage) -> np.ndarray:
    """The lumen share of each voxel as the phantom paints it (z, y, x), 0-1."""
    painter = tx.Painter(image.grid)
    painter.labels = image.labels.copy()
    painter.labels[np.isin(painter.labels, (P.LUMEN, *P.PLAQUE_LABELS))] = tx.EPICARDIAL_FAT
    table = np.zeros(256, dtype=np.float32)
    table[P.LUMEN] = 1.0
    canals = P._canals(image.ctca, image.lines, image.frame)
    index, share = P._paint_coronaries(painter, image.scan, canals, table)
    out = table[painter.labels]
    out.ravel()[index] = share
    return out


def painted_diameter(image: P.CtcaImage, fraction: np.ndarray, vessel: P.VesselTruth,
                     at_mm: float) -> float:
    """Area-equivalent diameter (mm) of the painted lumen across the vessel at ``at_mm``."""
    i = int(np.argmin(np.abs(vessel.from_ostium_mm - at_mm)))
    axes = M.section_axes(vessel.points_mm, vessel.from_ostium_mm)[i]
    g = np.arange(-PLANE_MM, PLANE_MM + 1e-9, PLANE_STEP_MM)
    u, v = np.meshgrid(g, g, indexing="ij")
    areas = []
    for along in np.linspace(-0.25, 0.25, 5):
        plane = (vessel.lumen_points_mm[i] + along * axes[0] + u[..., None] * axes[1]
                 + v[..., None] * axes[2])
        zyx = np.stack([(plane[..., 2] - image.grid.z[0]) / image.scan.increment,
                        (plane[..., 1] - image.grid.y[0]) / image.scan.pixel_spacing[0],
                        (plane[..., 0] - image.grid.x[0]) / image.scan.pixel_spacing[1]])
        share = ndimage.map_coordinates(fraction, zyx.reshape(3, -1), order=1)
        areas.append(float(share.sum()) * PLANE_STEP_MM ** 2)
    return 2 * math.sqrt(float(np.mean(areas)) / math.pi)


def _near(lesions: list[Lesion], stenosis: P.StenosisTruth) -> Lesion | None:
    found = [x for x in lesions if x.segment == stenosis.segment
             and x.start_mm - 2 <= stenosis.centre_mm <= x.end_mm + 2]
    return found[0] if found else None


def _cell(lesion: Lesion | None) -> str:
    if lesion is None:
        return f"{'none':>17}"
    return (f"{lesion.stenosis_pct:5.1f} {lesion.reference_diameter_mm:5.2f} "
            f"{lesion.minimal_lumen_diameter_mm:5.2f}")


def _measured(volume: Volume, image: P.CtcaImage) -> list[Lesion]:
    """Lesions measured along the truth's lumen centres (as ``test_measure`` does)."""
    found: list[Lesion] = []
    for v in image.truth.vessels.values():
        segment = Segment(v.id, v.vessel, v.parent, v.lumen_points_mm,  # type: ignore[arg-type]
                          v.from_ostium_mm)
        sections = M.measure(volume, segment)
        found.extend(M.lesions(sections.segment, sections))
    return found


def report(preset: str, seed: int | None) -> None:
    image = P.build(getattr(P, preset)())
    if seed is not None:
        image = replace(image, scan=replace(image.scan, seed=seed))
    truth = image.truth
    quiet = _measured(P.volume(replace(image, scan=replace(image.scan, noise_sigma=0.0))), image)
    noisy = _measured(P.volume(image), image)
    result: CtcaResult = pipeline.analyse(P.volume(image))
    fraction = lumen_fraction(image)
    print(f"\n{preset} (noise seed {image.scan.seed}): CAD-RADS truth {truth.cad_rads}, "
          f"pipeline {result.cad_rads}")
    print("  segment  true%  ref  MLD  painted | truth line, no noise: % ref MLD | "
          "with noise: % ref MLD | pipeline: % ref MLD FFR-beyond")
    for s in truth.stenoses:
        painted = painted_diameter(image, fraction, truth.vessels[s.segment], s.centre_mm)
        ffr = float("nan")
        if result.ffr is not None and result.tree is not None \
                and s.segment in result.tree.segments:
            ffr = result.ffr.at(result.tree, s.segment, s.end_mm + 2.0)
        print(f"  {s.segment:7s} {s.stenosis_pct:5.0f} {s.reference_diameter_mm:5.2f} "
              f"{s.minimal_lumen_diameter_mm:4.2f} {painted:5.2f} | "
              f"{_cell(_near(quiet, s))} | {_cell(_near(noisy, s))} | "
              f"{_cell(_near(result.lesions, s))} {ffr:5.2f}")
    found = ", ".join(f"{x.segment} {x.centre_mm:.0f} mm {x.stenosis_pct:.0f} %"
                      for x in result.lesions)
    print(f"  pipeline lesions: {found or 'none'}")
    if result.ffr is not None:
        distal = ", ".join(f"{k} {v[-1]:.2f}" for k, v in result.ffr.along.items())
        print(f"  distal FFR-CT: {distal}")


def main(argv: list[str]) -> None:
    seeds: list[int | None] = [None]
    if "--seeds" in argv:
        at = argv.index("--seeds")
        seeds = [int(x) for x in argv[at + 1].split(",")]
        argv = argv[:at] + argv[at + 2:]
    presets = argv[0].split(",") if argv else PRESETS
    for preset in presets:
        for seed in seeds:
            report(preset, seed)


if __name__ == "__main__":
    main(sys.argv[1:])
