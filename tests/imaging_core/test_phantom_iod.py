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
