"""CTCA media: the coronary tree as a GLB coloured by FFR-CT, and straightened views as PNG.

The model is one tube per tree segment along its centreline, its radius half
the measured lumen diameter (gaps where it could not be measured are bridged
from the nearest measured points; a segment with none is drawn 0.5 mm thin
and grey), its vertex colours the FFR-CT bands of
``ctca_reports.FFR_BANDS`` (grey where FFR-CT is unknown).

A straightened view per main vessel (``imaging_core.ctca.straightened``): the
LAD and LCX begin at the left main ostium, so their views include the left
main. Distance from the ostium runs left to right with a scale in mm; each
reported lesion is boxed and labelled with its stenosis and position. Grey
uses a vascular window W800/L250 (contrast-filled lumen bright, soft plaque
and wall grey; a common CTA setting, no guideline value found: unverified).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from imaging_core.ctca.straightened import Straightened, frames, resample, straighten
from imaging_core.ctca.tree import VESSELS, CtcaResult, Lesion, Segment, Tree
from imaging_core.ctca_reports import (
    COLOUR_SCALE_TEXT,
    FFR_BANDS,
    FFR_UNKNOWN_COLOUR,
    reported_lesions,
)
from imaging_core.keyimages import KeyImage, png, windowed
from imaging_core.mesh import Mesh, to_glb, tube_mesh
from imaging_core.volume import Volume

GLB_TITLE = f"3D model of the coronary tree coloured by FFR-CT. {COLOUR_SCALE_TEXT}"
VESSEL_WINDOW = (800.0, 250.0)  # (width, level) HU; unverified, see the module docstring
TUBE_STEP_MM = 0.5
THIN_RADIUS_MM = 0.5
PIXELS_PER_MM = 6  # the view is enlarged so labels and a 1 mm narrowing are legible
MARGIN_PX = 22  # above the image for the title, below for the scale
MIN_WIDTH_PX = 360  # room for the title on a short vessel
LESION_RED = (230, 40, 40)


def ffr_colours(values: np.ndarray) -> np.ndarray:
    """RGB (n, 3) in 0..1 for FFR-CT values by ``FFR_BANDS``; NaN gets the unknown grey."""
    out = np.tile(np.asarray(FFR_UNKNOWN_COLOUR, dtype=np.float32), (len(values), 1))
    known = np.isfinite(values)
    for lower, colour, _ in reversed(FFR_BANDS):
        out[known & (values > lower)] = colour
    return out


def tree_glb(result: CtcaResult) -> bytes | None:
    """The coronary tree as GLB, one tube per segment coloured by FFR-CT; None without a tree."""
    if result.tree is None or not result.tree.segments:
        return None
    meshes = [_segment_tube(result, segment) for segment in result.tree.segments.values()]
    return to_glb(meshes, generator="ScanPath imaging core (CTCA)")


def _segment_tube(result: CtcaResult, segment: Segment) -> Mesh | None:
    centres, along = resample(segment.points_mm, segment.from_ostium_mm, TUBE_STEP_MM)
    if len(centres) < 2:
        return None
    _, normals, binormals = frames(centres)
    ffr = np.full(len(along), np.nan)
    if result.ffr is not None and segment.id in result.ffr.along:
        ffr = np.interp(along, segment.from_ostium_mm, result.ffr.along[segment.id])
    name = f"{segment.id} ({segment.vessel}), radius = measured lumen, colour = FFR-CT"
    return tube_mesh(name, centres, _radii(segment, along), normals, binormals,
                     ffr_colours(ffr))


def _radii(segment: Segment, along: np.ndarray) -> np.ndarray:
    diameter = segment.diameter_mm
    known = np.isfinite(diameter) if diameter is not None else np.zeros(0, dtype=bool)
    if diameter is None or not known.any():
        return np.full(len(along), THIN_RADIUS_MM)
    return np.asarray(np.interp(along, segment.from_ostium_mm[known], diameter[known]) / 2)


# --- straightened views -----------------------------------------------------------

def viewed_vessels(tree: Tree) -> list[str]:
    """Main vessels to show: each present one, the LM only when neither LAD nor LCX is."""
    present: list[str] = [v for v in VESSELS if v in tree.segments]
    if "LAD" in present or "LCX" in present:
        present = [v for v in present if v != "LM"]
    return present


def path(tree: Tree, segment_id: str) -> list[Segment]:
    """The segments from the ostium to ``segment_id``, proximal first."""
    chain = [tree.segments[segment_id]]
    while chain[0].parent is not None and chain[0].parent in tree.segments:
        chain.insert(0, tree.segments[chain[0].parent])
    return chain


def straightened_images(volume: Volume, result: CtcaResult) -> list[KeyImage]:
    """One straightened view per main vessel, lesions marked; none without a tree."""
    if result.tree is None:
        return []
    images = []
    for vessel in viewed_vessels(result.tree):
        chain = path(result.tree, vessel)
        points = np.concatenate([s.points_mm for s in chain])
        along = np.concatenate([s.from_ostium_mm for s in chain])
        keep = np.concatenate([[True], np.diff(along) > 0])  # shared branch points once
        view = straighten(volume, points[keep], along[keep])
        ids = {s.id for s in chain}
        lesions = [x for x in reported_lesions(result) if x.segment in ids]
        title = f"{vessel} straightened" + (" (with the left main)" if len(chain) > 1 else "")
        images.append(KeyImage(f"straightened-{vessel}", straightened_png(view, lesions, title),
                               None, _description(title, lesions)))
    return images


def _description(title: str, lesions: list[Lesion]) -> str:
    marked = "; ".join(f"{x.stenosis_pct:.0f} % at {x.centre_mm:.1f} mm" for x in lesions)
    return (f"{title}, distance from the ostium left to right"
            + (f"; lesions boxed: {marked}" if marked else "; no lesion of 25 % or more"))


def straightened_png(view: Straightened, lesions: list[Lesion], title: str) -> bytes:
    """The view windowed and enlarged, lesions boxed and labelled, a mm scale below."""
    grey = windowed(view.hu, VESSEL_WINDOW).astype(np.uint8)
    body = Image.fromarray(grey).resize(
        (grey.shape[1] * _scale(view), grey.shape[0] * _scale(view)), Image.Resampling.NEAREST)
    canvas = Image.new("RGB", (max(body.width, MIN_WIDTH_PX), body.height + 2 * MARGIN_PX),
                       (0, 0, 0))
    canvas.paste(body.convert("RGB"), (0, MARGIN_PX))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text((4, 4), f"{title}  W{VESSEL_WINDOW[0]:g}/L{VESSEL_WINDOW[1]:g}",
              fill=(255, 255, 255), font=font)
    for lesion in lesions:
        _mark(draw, view, lesion, body.height, font)
    _scale_bar(draw, view, body.height, font)
    return png(np.asarray(canvas), _description(title, lesions))


def _scale(view: Straightened) -> int:
    step = float(view.along_mm[1] - view.along_mm[0]) if len(view.along_mm) > 1 else 1.0
    return max(1, int(round(PIXELS_PER_MM * step)))


def column_of(view: Straightened, from_ostium_mm: float) -> float:
    """The enlarged image's x (pixels) of a distance from the ostium."""
    step = float(view.along_mm[1] - view.along_mm[0])
    return (from_ostium_mm - float(view.along_mm[0])) / step * _scale(view)


def _mark(draw: ImageDraw.ImageDraw, view: Straightened, lesion: Lesion, height: int,
          font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> None:
    left, right = column_of(view, lesion.start_mm), column_of(view, lesion.end_mm)
    draw.rectangle((left, MARGIN_PX + 1, max(right, left + 2), MARGIN_PX + height - 2),
                   outline=LESION_RED, width=2)
    label = f"{lesion.stenosis_pct:.0f} % at {lesion.centre_mm:.1f} mm"
    draw.text((left + 3, MARGIN_PX + 3), label, fill=LESION_RED, font=font)


def _scale_bar(draw: ImageDraw.ImageDraw, view: Straightened, height: int,
               font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> None:
    """Ticks every 10 mm from the ostium, labelled, under the view."""
    top = MARGIN_PX + height
    first = math.ceil(float(view.along_mm[0]) / 10) * 10
    for mm in range(int(first), int(view.along_mm[-1]) + 1, 10):
        x = column_of(view, mm)
        draw.line((x, top, x, top + 5), fill=(255, 255, 255), width=1)
        text = f"{mm} mm" if mm == first else f"{mm}"
        # A label that would run off the right edge is drawn left of its tick instead.
        width = draw.textlength(text, font=font)
        at = x + 2 if x + 2 + width <= draw.im.size[0] else x - 2 - width
        draw.text((at, top + 6), text, fill=(255, 255, 255), font=font)
