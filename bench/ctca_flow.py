"""FFR-CT flow model time on a four-vessel coronary tree of about 2000 samples.

The tree is built by hand (``LM`` 10 mm, ``LAD`` 150 mm, ``LCX`` 100 mm,
``RCA`` 150 mm, eleven 50 mm side branches, all sampled every 0.5 mm,
tapering) with three lesions of 50-80 %. The baseline measured in the same
run is the same tree without lesions: only Poiseuille losses, so the network
is linear and the fixed-point iteration stops after two passes; the ratio
shows what the quadratic stenosis losses add. The distal FFR behind the 80 %
lesion is checked to be below 0.80, so a fast wrong answer does not pass.
Run: ``python bench/ctca_flow.py``.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time

import numpy as np

from imaging_core.ctca import flow
from imaging_core.ctca.tree import Lesion, Segment, Tree

REPEATS = 7


def _segment(sid: str, parent: str | None, start: float, length: float, d0: float, d1: float,
             children: list[str]) -> Segment:
    x = start + np.arange(0, length + 1e-9, 0.5)
    d = np.interp(x, [start, start + length], [d0, d1])
    vessel = sid.split(".")[0]
    return Segment(id=sid, vessel=vessel, parent=parent,  # type: ignore[arg-type]
                   points_mm=np.column_stack([x, 0 * x, 0 * x]), from_ostium_mm=x,
                   area_mm2=np.pi * d**2 / 4, diameter_mm=d, children=children)


def four_vessel_tree() -> Tree:
    segs = [_segment("LM", None, 0, 10, 4.5, 4.4, ["LAD", "LCX"])]
    for vessel, start, length, d0, d1, n_side in [("LAD", 10, 150, 3.7, 1.8, 4),
                                                   ("LCX", 10, 100, 3.4, 2.0, 3),
                                                   ("RCA", 0, 150, 3.9, 2.2, 4)]:
        side = [f"{vessel}.{i + 1}" for i in range(n_side)]
        segs.append(_segment(vessel, None if vessel == "RCA" else "LM", start, length, d0, d1,
                             side))
        for i, sid in enumerate(side):
            at = start + length * (i + 1) / (n_side + 1)
            segs.append(_segment(sid, vessel, at, 50, 2.2, 1.2, []))
    return Tree(segments={s.id: s for s in segs}, ostia={})


def lesions() -> list[Lesion]:
    def les(seg: str, start: float, ref: float, pct: float) -> Lesion:
        mld = ref * (1 - pct / 100)
        return Lesion(seg, seg.split(".")[0], start, start + 5, start + 10,  # type: ignore[arg-type]
                      pct, ref, ref, ref, mld)
    return [les("LAD", 40, 3.3, 80), les("LCX", 60, 2.8, 50), les("RCA", 30, 3.6, 60)]


def _time(tree: Tree, found: list[Lesion]) -> float:
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        flow.ffr_ct(tree, found)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> int:
    tree = four_vessel_tree()
    samples = sum(len(s.from_ostium_mm) for s in tree.segments.values())
    found = lesions()
    ffr = flow.ffr_ct(tree, found)
    assert ffr.distal("LAD") < 0.80, ffr.distal("LAD")
    iterations = flow.solve(tree, found).iterations
    base, full = _time(tree, []), _time(tree, found)
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {platform.machine()}")
    print(f"tree: {len(tree.segments)} segments, {samples} samples, {len(found)} lesions")
    distal = ", ".join(f"{v} {ffr.distal(v):.2f}" for v in ("LAD", "LCX", "RCA"))
    print(f"distal FFR-CT: {distal}")
    print(f"baseline (no lesions, linear): {base * 1e3:.1f} ms (median of {REPEATS})")
    print(f"ffr_ct with lesions: {full * 1e3:.1f} ms, {iterations} iterations, "
          f"ratio {full / base:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
