"""Shared by the imaging benchmarks: a 512 x 512 cardiac-sized phantom series on disk."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pydicom

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # so `tests.imaging_core.phantoms` imports when run as a script
    sys.path.insert(0, str(ROOT))

from tests.imaging_core.phantoms import Insert, Phantom, datasets, write  # noqa: E402
from tests.imaging_core.thorax import Truth, benchmark_thorax, build  # noqa: E402
from tests.imaging_core.thorax import datasets as thorax_datasets  # noqa: E402

PIXEL_MM = 0.39  # a 200 mm cardiac field of view over 512 pixels


def cardiac_phantom(n_slices: int, noise_sigma: float = 15.0) -> Phantom:
    """512 x 512 x n slices at 3 mm, 40 HU with noise, a dozen calcified inserts and "bone".

    The bone rods (spine, sternum, two ribs) run through every slice near the
    edges of the field of view, as in a real chest, so the scorer cannot
    shrink its work to a small box around the coronary inserts.
    """
    depth = 3.0 * n_slices
    inserts = tuple(
        Insert(u=40 + 12 * i, v=60 + 9 * (i % 5), radius=1.0 + 0.4 * (i % 4),
               w0=depth * 0.2 + 2 * i, w1=depth * 0.2 + 2 * i + 12, hu=150 + 60 * i)
        for i in range(12))
    bone = tuple(Insert(u=u, v=v, radius=r, w0=0.0, w1=depth, hu=hu) for u, v, r, hu in (
        (100.0, 175.0, 15.0, 700.0), (100.0, 12.0, 5.0, 600.0),
        (8.0, 100.0, 4.0, 800.0), (192.0, 100.0, 4.0, 800.0)))
    inserts += bone
    return Phantom(rows=512, cols=512, pixel_spacing=(PIXEL_MM, PIXEL_MM), n_slices=n_slices,
                   inserts=inserts, noise_sigma=noise_sigma, seed=1)


def write_series(phantom: Phantom, directory: Path) -> list[Path]:
    return write(datasets(phantom), directory)


def thorax_series(n_slices: int, directory: Path) -> tuple[list[Path], Truth]:
    """A 512 x 512 whole-thorax phantom of ``n_slices`` 3 mm slices on disk, and its truth.

    The thorax of ``tests.imaging_core.thorax.benchmark_thorax``: coronary
    plaques of about 312 Agatston on four arteries, ribs, sternum, spine,
    calcified aorta, valve and mitral annulus, 5 HU noise. Slices are 3 mm
    apart, so 300 of them reach far above the chest's usual range.
    """
    image = build(benchmark_thorax(n_slices))
    return write(thorax_datasets(image), directory), image.truth()


def read_baseline(paths: list[Path]) -> float:
    """Seconds to read and decode ``paths`` with plain ``pydicom``: the imaging benchmarks'
    baseline, so a ratio shows what an analysis adds to I/O."""
    start = time.perf_counter()
    for path in paths:
        pydicom.dcmread(path).pixel_array  # noqa: B018 (decoding is the work measured)
    return time.perf_counter() - start
