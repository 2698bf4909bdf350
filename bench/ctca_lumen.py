"""Coronary tree time and accuracy on the CTCA phantom: the unit tests' crop and full size.

``imaging_core.ctca.lumen.coronary_tree`` on the small phantom (160 x 160 x
~150 at 0.75 mm) and the full one (512 x 512 x ~226 at 0.625 x 0.625 x
0.5 mm, the whole chest in view). Target (issue 14): well under 30 s at full
size, the whole CTCA analysis under 60 s. skan compiles its graph code with
numba on the first call in a process; that is timed apart ("jit"). The
baseline measured in the same run is one Gaussian pass over the same volume
(``scipy.ndimage.gaussian_filter``, the cheapest whole-image step of the
method), so the ratio says how many such passes the tree costs. Accuracy is
checked against the phantom's geometric truth: ostia (mm), mean distance
of each centreline to the truth and the share of the truth within 2 mm.
Run: ``python bench/ctca_lumen.py [--small-only]``.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skan import Skeleton

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # so `tests.imaging_core.ctca.phantom` imports as a script
    sys.path.insert(0, str(ROOT))

from imaging_core.ctca.lumen import coronary_tree  # noqa: E402
from tests.imaging_core.ctca import phantom as ph  # noqa: E402

TARGET_S = 30.0


def run(name: str, ctca: ph.Ctca) -> None:
    image = ph.build(ctca)
    volume = ph.volume(image)
    start = time.perf_counter()
    ndimage.gaussian_filter(volume.hu, 1.0)
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    tree = coronary_tree(volume)
    took = time.perf_counter() - start
    print(f"{name}: {volume.shape} voxels, coronary_tree {took:.1f} s "
          f"({took / baseline:.1f} x one Gaussian pass of {baseline:.2f} s), "
          f"target {TARGET_S:g} s, missing {tree.missing}")
    truth = image.truth
    for side, point in tree.ostia.items():
        print(f"  ostium {side}: {np.linalg.norm(point - truth.ostia[side]):.2f} mm off")
    for sid, vessel in truth.vessels.items():
        found = tree.segments.get(sid)
        if found is None:
            print(f"  {sid}: not found")
            continue
        mean = cKDTree(vessel.points_mm).query(found.points_mm)[0].mean()
        covered = (cKDTree(found.points_mm).query(vessel.points_mm)[0] <= 2.0).mean()
        print(f"  {sid}: mean distance {mean:.2f} mm, truth within 2 mm {covered:.0%}, "
              f"length {found.length_mm:.1f} of {vessel.length_mm:.1f} mm")


def main() -> None:
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    start = time.perf_counter()
    Skeleton(np.pad(np.ones((1, 1, 5), dtype=bool), 1))
    print(f"jit (skan's numba compile, once per process): {time.perf_counter() - start:.1f} s")
    run("small", ph.ctca_default())
    if "--small-only" not in sys.argv:
        run("full", ph.ctca_full())


if __name__ == "__main__":
    main()
