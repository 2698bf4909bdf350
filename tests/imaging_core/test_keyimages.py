"""Key images: valid PNGs of the right size, the right slices, the right overlay colours."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from imaging_core.calcium import score
from imaging_core.keyimages import WEIGHT_COLOURS, key_images
from imaging_core.volume import load_volume
from tests.imaging_core.phantoms import Insert, Phantom, datasets

# The big insert covers slices 3-5 (w 9..15 mm), the small one slices 1-2; slices 3-5 weigh
# most (r=3 mm at weight 4 against r=1.5 mm at weight 1).
BIG = Insert(u=12, v=14, radius=3.0, w0=9, w1=15, hu=500)
SMALL = Insert(u=20, v=12, radius=1.5, w0=3, w1=6, hu=150)
PHANTOM = Phantom(rows=40, cols=48, n_slices=8, inserts=(BIG, SMALL))


def _open(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_key_images_are_pngs_of_the_heaviest_slices() -> None:
    volume = load_volume(datasets(PHANTOM))
    weights = score(volume).weight_map
    assert weights is not None
    images = key_images(volume, weights, count=3)
    assert [i.slice_index for i in images[:3]] == [3, 4, 5]
    assert images[-1].name == "mip-axial" and images[-1].slice_index is None
    for key in images:
        image = _open(key.png)
        assert image.format == "PNG" and image.mode == "RGB"
        assert image.size == (48, 40)  # (columns, rows)


def test_overlay_colour_follows_density_weight() -> None:
    volume = load_volume(datasets(PHANTOM))
    weights = score(volume).weight_map
    assert weights is not None
    images = {k.name: _open(k.png) for k in key_images(volume, weights, count=8)}
    big_centre = (int(BIG.u / 0.5), int(BIG.v / 0.5))  # (x, y) pixel
    small_centre = (int(SMALL.u / 0.5), int(SMALL.v / 0.5))
    # W400/L40 maps >= 240 HU to white and 150 HU to (150 + 160) / 400 * 255 grey.
    white, grey150 = 255.0, (150 + 160) / 400 * 255
    big = 0.4 * white + 0.6 * WEIGHT_COLOURS[4]
    small = 0.4 * grey150 + 0.6 * WEIGHT_COLOURS[1]
    np.testing.assert_allclose(images["axial-004"].getpixel(big_centre), big, atol=1)
    np.testing.assert_allclose(images["axial-001"].getpixel(small_centre), small, atol=1)
    # Background soft tissue (40 HU) is untinted mid-grey: (40 + 160) / 400 * 255.
    np.testing.assert_allclose(images["mip-axial"].getpixel((0, 0)), [127.5] * 3, atol=1)
