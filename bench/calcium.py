"""Calcium pipeline time on 512 x 512 phantoms of 64 and 300 slices.

Stages: load the series from disk, score it (Agatston, volume, lesion
counts), build the calcium and context meshes as GLB, render the key images.
Targets: under 3 s for 64 slices, under 10 s for 300. The baseline measured
in the same run is a plain read of the same files with ``pydicom.dcmread``
and ``pixel_array``, so the ratio shows what the analysis adds to I/O.
Run: ``python bench/calcium.py``.
"""

from __future__ import annotations

import platform
import sys
import tempfile
import time
from pathlib import Path

import pydicom
from _imaging_phantom import cardiac_phantom, write_series

from imaging_core.calcium import score
from imaging_core.keyimages import key_images
from imaging_core.mesh import calcium_mesh, context_mesh, to_glb
from imaging_core.volume import load_volume

TARGETS_S = {64: 3.0, 300: 10.0}


def _timed(stages: dict[str, float], name: str, start: float) -> float:
    now = time.perf_counter()
    stages[name] = now - start
    return now


def pipeline(paths: list[Path]) -> dict[str, float]:
    stages: dict[str, float] = {}
    t = time.perf_counter()
    volume = load_volume(paths)
    t = _timed(stages, "load", t)
    result = score(volume)
    t = _timed(stages, "score", t)
    assert result.scorable and result.weight_map is not None, result.reason
    to_glb([calcium_mesh(volume, result.weight_map), context_mesh(volume, result.weight_map)])
    t = _timed(stages, "glb", t)
    key_images(volume, result.weight_map)
    _timed(stages, "key images", t)
    stages["total"] = sum(stages.values())
    return stages


def baseline(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        pydicom.dcmread(path).pixel_array  # noqa: B018 (decoding is the work measured)
    return time.perf_counter() - start


def main() -> int:
    print(f"machine: {platform.machine()} python {platform.python_version()}")
    for slices, target in TARGETS_S.items():
        with tempfile.TemporaryDirectory() as tmp:
            paths = write_series(cardiac_phantom(slices), Path(tmp))
            pipeline(paths)  # warm caches and imports
            stages = pipeline(paths)
            read = baseline(paths)
        detail = "  ".join(f"{k} {v:.3f}s" for k, v in stages.items() if k != "total")
        verdict = "ok" if stages["total"] < target else "OVER TARGET"
        print(f"512x512x{slices}: total {stages['total']:.3f} s (target < {target:g} s, {verdict})")
        print(f"    {detail}")
        print(f"    baseline dcmread+pixel_array {read:.3f} s; "
              f"pipeline/baseline {stages['total'] / read:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
