"""The phantoms are valid DICOM: dicom3tools' dciodvfy finds no error in them.

dciodvfy is the independent IOD checker (Debian package ``dicom3tools``); the
test skips with a reason where it is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from pydicom.uid import JPEG2000Lossless, RLELossless

from tests.imaging_core.phantoms import (
    Insert,
    Phantom,
    compressed,
    datasets,
    enhanced_dataset,
    write,
)
from tests.imaging_core.thorax import (
    build,
    contrast,
    padded,
    scan_changed,
    thorax_42,
    thorax_a0,
    with_metal,
)
from tests.imaging_core.thorax import datasets as thorax_datasets

PHANTOM = Phantom(n_slices=3, inserts=(Insert(u=10, v=10, radius=2, w0=0, w1=6, hu=300),))
DCIODVFY = shutil.which("dciodvfy")
pytestmark = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (dicom3tools) not installed")


def _errors(path: Path) -> list[str]:
    assert DCIODVFY is not None
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]


@pytest.mark.parametrize("variant", ["plain", "contrast", "rle", "j2k"])
def test_ct_image_iod(tmp_path: Path, variant: str) -> None:
    phantom = replace(PHANTOM, contrast_agent="Iohexol") if variant == "contrast" else PHANTOM
    instances = datasets(phantom)
    if variant in ("rle", "j2k"):
        instances = compressed(instances, RLELossless if variant == "rle" else JPEG2000Lossless)
    path = write(instances[:1], tmp_path)[0]
    assert _errors(path) == []


@pytest.mark.parametrize("contrast", [None, "Iohexol"])
def test_enhanced_ct_image_iod(tmp_path: Path, contrast: str | None) -> None:
    path = write([enhanced_dataset(replace(PHANTOM, contrast_agent=contrast))], tmp_path)[0]
    assert _errors(path) == []


THORAX_VARIANTS = {
    "thorax": lambda: thorax_42(),
    "unsigned-padding-range": lambda: padded(thorax_42(), range_limit=65535),
    "signed-padding": lambda: padded(thorax_42(), signed=True),
    "contrast-tagged-metal": lambda: with_metal(contrast(thorax_42(), tagged=True)),
}


@pytest.mark.parametrize("variant", THORAX_VARIANTS)
def test_thorax_ct_image_iod(tmp_path: Path, variant: str) -> None:
    thorax = scan_changed(THORAX_VARIANTS[variant](), noise_sigma=5.0)
    instances = thorax_datasets(build(thorax))
    path = write(instances[len(instances) // 2:][:1], tmp_path)[0]
    assert _errors(path) == []


def test_thorax_enhanced_ct_image_iod(tmp_path: Path) -> None:
    image = build(scan_changed(padded(thorax_a0(), range_limit=65535), n_slices=8))
    path = write([enhanced_dataset(image.scan, thorax_datasets(image))], tmp_path)[0]
    assert _errors(path) == []
