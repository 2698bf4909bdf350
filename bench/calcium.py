"""Calcium pipeline time on 512 x 512 whole-thorax phantoms of 64 and 300 slices.

Stages: load the series from disk, the chest pipeline
(``imaging_core.chest.analyse_chest``: anatomy, image QA, coronary candidates,
labels, per-artery Agatston), build the calcium and context meshes as GLB,
render the key images. Targets (issue 10): the whole pipeline, anatomy
included, under 3 s for 64 slices and under 10 s for 300. The anatomy's
share is ``anatomy.segment`` timed alone on the same volume, over the chest
pipeline's time. The baseline measured in the same run is a plain read of
the same files with ``pydicom.dcmread`` and ``pixel_array``, so the ratio
shows what the analysis adds to I/O. The score is checked against the
phantom's geometric truth, so a fast wrong answer does not pass.
Run: ``python bench/calcium.py``.
"""

from __future__ import annotations

import platform
import sys
import tempfile
import time
from pathlib import Path

from _imaging_phantom import read_baseline, thorax_series

from imaging_core.anatomy import segment
from imaging_core.chest import analyse_chest
from imaging_core.keyimages import key_images
from imaging_core.mesh import calcium_mesh, context_mesh, to_glb
from imaging_core.volume import load_volume

TARGETS_S = {64: 3.0, 300: 10.0}
WITHIN = 0.02  # the tolerance on the total against the geometric truth


def _timed(stages: dict[str, float], name: str, start: float) -> float:
    now = time.perf_counter()
    stages[name] = now - start
    return now


def pipeline(paths: list[Path], truth: float) -> dict[str, float]:
    stages: dict[str, float] = {}
    t = time.perf_counter()
    volume = load_volume(paths)
    t = _timed(stages, "load", t)
    result = analyse_chest(volume).result
    t = _timed(stages, "chest", t)
    assert result.scorable and result.weight_map is not None, result.reason
    assert abs((result.agatston or 0) - truth) <= WITHIN * truth, (result.agatston, truth)
    to_glb([calcium_mesh(volume, result.weight_map), context_mesh(volume, result.weight_map)])
    t = _timed(stages, "glb", t)
    key_images(volume, result.weight_map)
    _timed(stages, "key images", t)
    stages["total"] = sum(stages.values())
    start = time.perf_counter()
    segment(volume)
    stages["anatomy alone"] = time.perf_counter() - start
    return stages


def main() -> int:
    print(f"machine: {platform.machine()} python {platform.python_version()}")
    for slices, target in TARGETS_S.items():
        with tempfile.TemporaryDirectory() as tmp:
            paths, truth = thorax_series(slices, Path(tmp))
            pipeline(paths, truth.agatston)  # warm caches and imports
            stages = pipeline(paths, truth.agatston)
            read = read_baseline(paths)
        shown = ("load", "chest", "glb", "key images")
        detail = "  ".join(f"{k} {stages[k]:.3f}s" for k in shown)
        verdict = "ok" if stages["total"] < target else "OVER TARGET"
        print(f"512x512x{slices}: total {stages['total']:.3f} s (target < {target:g} s, {verdict});"
              f" Agatston truth {truth.agatston:.1f}")
        print(f"    {detail}")
        print(f"    anatomy alone {stages['anatomy alone']:.3f} s = "
              f"{stages['anatomy alone'] / stages['chest']:.0%} of the chest pipeline, "
              f"{stages['anatomy alone'] / stages['total']:.0%} of the total")
        print(f"    baseline dcmread+pixel_array {read:.3f} s; "
              f"pipeline/baseline {stages['total'] / read:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
