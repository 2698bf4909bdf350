"""A still picture of the 3D heart model, for browsers without WebGL or JavaScript.

The GLB the imaging core attaches (``imaging_core.mesh``: calcified plaque, and soft tissue
around it as context) is drawn server-side as an orthographic view from the front, as
if facing the patient: their left on the right of the picture, head at the top. Calcium
is shaded by its surface's angle to a light from the viewer (Lambert); the context is a
faint silhouette behind it. Painter's algorithm with Pillow (triangles far to near), no
3D library: the picture only shows where the calcium lies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from imaging_core.keyimages import png
from imaging_core.mesh import Mesh

SIZE = 480  # pixels, square; the page scales it to the phone's width
MARGIN = 0.08  # of the picture, on each side
BACKGROUND = (240, 244, 245)  # NHS identity "Pale grey" #F0F4F5
CONTEXT_ALPHA = 0.35
# Light from the viewer and a little above, in patient LPS (-Y anterior, +Z superior).
LIGHT = np.array([0.0, -1.0, 0.5]) / np.linalg.norm([0.0, -1.0, 0.5])
AMBIENT = 0.35


def render_still(meshes: Sequence[Mesh], size: int = SIZE) -> bytes | None:
    """The meshes (patient LPS mm) drawn from the front as PNG; None when there are none."""
    drawn = [m for m in meshes if len(m.faces)]
    if not drawn:
        return None
    project = _projection(np.vstack([m.vertices for m in drawn]), size)
    canvas = Image.new("RGB", (size, size), BACKGROUND)
    for mesh in sorted(drawn, key=lambda m: m.colour[3]):  # translucent context first
        layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        _draw(ImageDraw.Draw(layer), mesh, project)
        if mesh.colour[3] < 1:
            layer.putalpha(layer.getchannel("A").point(lambda a: int(a * CONTEXT_ALPHA)))
        canvas.paste(layer, (0, 0), layer)
    return png(np.asarray(canvas), "3D model of calcified plaque, front view")


def _projection(vertices: np.ndarray, size: int):  # type: ignore[no-untyped-def]
    """Patient (x, z) to picture (column, row): x to the right, superior up, fitted."""
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    span = max(float(high[0] - low[0]), float(high[2] - low[2]), 1.0)
    scale = size * (1 - 2 * MARGIN) / span
    centre = (low + high) / 2

    def project(points: np.ndarray) -> np.ndarray:
        column = size / 2 + (points[..., 0] - centre[0]) * scale
        row = size / 2 - (points[..., 2] - centre[2]) * scale
        return np.stack([column, row], axis=-1)
    return project


def _draw(draw: ImageDraw.ImageDraw, mesh: Mesh, project) -> None:  # type: ignore[no-untyped-def]
    """Each triangle filled with its shade, the most posterior (farthest) first."""
    triangles = mesh.vertices[mesh.faces]  # (m, 3, 3)
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    facing = np.abs(normals @ LIGHT / np.maximum(lengths[:, 0], 1e-9))  # double-sided
    shade = AMBIENT + (1 - AMBIENT) * facing
    colours = np.clip(np.outer(shade, mesh.colour[:3]) * 255, 0, 255).astype(int)
    points = project(triangles)
    for index in np.argsort(-triangles[:, :, 1].mean(axis=1)):  # +Y is posterior: far first
        red, green, blue = colours[index]
        draw.polygon([tuple(p) for p in points[index].tolist()],
                     fill=(int(red), int(green), int(blue), 255))
