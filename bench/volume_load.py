"""Series loading: ScanPath's ``load_volume`` against SimpleITK's ImageSeriesReader.

Both read the same 512 x 512 x 300 uncompressed phantom series from a warm
page cache, sort it geometrically and return a HU array; the ratio is
ScanPath time / SimpleITK time (lower is better). Run: ``python bench/volume_load.py``.
SimpleITK is the ``bench`` extra; without it the benchmark skips with a message.
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _imaging_phantom import cardiac_phantom, write_series

from imaging_core.volume import load_volume

SLICES = 300
REPEATS = 3


def _best(run: Callable[[], np.ndarray]) -> tuple[float, float, np.ndarray]:
    times, result = [], np.empty(0)
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def _simpleitk(directory: Path) -> Callable[[], np.ndarray]:
    import SimpleITK as sitk  # noqa: N813 (the package's own name)

    def run() -> np.ndarray:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(directory)))
        return np.asarray(sitk.GetArrayFromImage(reader.Execute()))
    return run


def main() -> int:
    try:
        import SimpleITK  # noqa: F401
    except ImportError:
        print("skipped: SimpleITK is not installed (pip install -e '.[bench]')")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        paths = write_series(cardiac_phantom(SLICES), directory)
        ours = _best(lambda: load_volume(paths).hu)
        theirs = _best(_simpleitk(directory))
    same = np.array_equal(ours[2].astype(np.float32), theirs[2].astype(np.float32))
    print(f"machine: {platform.machine()} python {platform.python_version()}")
    print(f"series: 512 x 512 x {SLICES} uncompressed CT, {REPEATS} runs each (best, median)")
    print(f"scanpath load_volume     {ours[0]:.3f} s  {ours[1]:.3f} s")
    print(f"SimpleITK SeriesReader   {theirs[0]:.3f} s  {theirs[1]:.3f} s")
    print(f"ratio scanpath/simpleitk {ours[0] / theirs[0]:.2f} (best)  arrays identical: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
