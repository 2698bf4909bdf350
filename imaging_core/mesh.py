"""Surface meshes of calcified lesions and their surroundings, written as binary glTF 2.0.

Meshes come from ``skimage.measure.marching_cubes`` on binary masks at level
0.5, so a surface lies half a voxel outside the outermost voxel centres.
Vertices are DICOM patient coordinates (LPS, millimetres), mapped through the
true slice positions. The glTF root node carries the matrix that turns them
into glTF's convention (metres, +Y up = superior, +Z = anterior), so a viewer
shows the patient upright while accessors keep patient millimetres.

The second mesh is honest context, not anatomy: soft-tissue voxels
(-100 to 129 HU) within a margin of the calcium. It is **not** a heart or
vessel segmentation and is named so in the file.

Tubes (:func:`tube_mesh`) follow a centreline with a radius per point, for
the coronary tree of a CTCA; they may carry per-vertex colours, written as
the ``COLOR_0`` attribute (glTF 2.0 "Meshes", float RGB in linear space),
which the material's base colour (white for them) multiplies.

GLB layout (glTF 2.0 specification, "Binary glTF Layout"): a 12-byte header
(magic ``glTF``, version 2, total length), a JSON chunk padded with spaces
and a BIN chunk padded with zeros, every chunk 4-byte aligned.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from skimage import measure

from imaging_core.errors import MeshError
from imaging_core.volume import Volume

GLB_MAGIC = 0x46546C67  # "glTF"
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_FLOAT, _UNSIGNED_INT = 5126, 5125

CONTEXT_HU = (-100.0, 130.0)  # soft tissue, below the calcium threshold
CALCIUM_COLOUR = (0.95, 0.92, 0.80, 1.0)
CONTEXT_COLOUR = (0.80, 0.30, 0.30, 0.25)

# Patient LPS millimetres -> glTF metres: X = left, Y = superior, Z = anterior (-posterior).
LPS_MM_TO_GLTF = np.array([[0.001, 0, 0, 0],
                           [0, 0, 0.001, 0],
                           [0, -0.001, 0, 0],
                           [0, 0, 0, 1]])


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh in patient (LPS) mm with per-vertex unit normals."""

    name: str
    vertices: np.ndarray  # (n, 3) float32
    faces: np.ndarray  # (m, 3) uint32
    normals: np.ndarray  # (n, 3) float32
    colour: tuple[float, float, float, float]
    vertex_colours: np.ndarray | None = None  # (n, 3) float RGB in 0..1, or None


def calcium_mesh(volume: Volume, weight_map: np.ndarray) -> Mesh | None:
    """The surface of all accepted calcified lesions, or None when there are none."""
    return mask_mesh(volume, weight_map > 0, "calcified lesions (Agatston, >=130 HU)",
                     CALCIUM_COLOUR)


def context_mesh(volume: Volume, weight_map: np.ndarray, margin_mm: float = 10.0,
                 cell_mm: float = 2.0) -> Mesh | None:
    """Soft tissue (-100 to 129 HU) within ``margin_mm`` of calcium: context, not anatomy.

    Built on a coarse grid of about ``cell_mm`` in-plane (slices kept), since
    it only situates the lesions and a full-resolution distance map of a
    whole chest costs seconds.
    """
    calcified = weight_map > 0
    if not calcified.any():
        return None
    step = max(1, int(round(cell_mm / min(volume.spacing[1:]))))
    coarse = _block_any(calcified, step)
    spacing = (volume.spacing[0], volume.spacing[1] * step, volume.spacing[2] * step)
    box = _bounding_box(coarse, spacing, margin_mm)
    distance = ndimage.distance_transform_edt(~coarse[box], sampling=spacing)
    hu = volume.hu[:, ::step, ::step][box]
    region = np.zeros_like(coarse)
    region[box] = (distance <= margin_mm) & (hu >= CONTEXT_HU[0]) & (hu < CONTEXT_HU[1])
    name = f"soft tissue {CONTEXT_HU[0]:g}..{CONTEXT_HU[1] - 1:g} HU within {margin_mm:g} mm " \
           "of calcium (context, not a heart segmentation)"
    return mask_mesh(volume, region, name, CONTEXT_COLOUR, step=step)


def mask_mesh(volume: Volume, mask: np.ndarray, name: str,
              colour: tuple[float, float, float, float], step: int = 1) -> Mesh | None:
    """Marching-cubes surface of a boolean mask on the volume's grid, in patient mm.

    Parameters
    ----------
    step : int
        The mask samples every ``step``-th row and column of the volume
        (slices are never skipped); 1 means the full grid.
    """
    expected = (volume.shape[0], -(-volume.shape[1] // step), -(-volume.shape[2] // step))
    if mask.shape != expected:
        raise MeshError(f"mask shape {mask.shape} differs from the grid shape {expected}")
    if not mask.any():
        return None
    box = _bounding_box(mask, (1.0, 1.0, 1.0), 1.0)
    padded = np.pad(mask[box], 1).astype(np.float32)  # closes surfaces at the box edges
    verts, faces, _, _ = measure.marching_cubes(padded, level=0.5)
    offset = np.array([s.start - 1 for s in box], dtype=np.float64)
    fine = (verts + offset) * np.array([1.0, step, step])
    vertices = volume.voxel_to_patient(fine).astype(np.float32)
    faces = faces.astype(np.uint32)
    return Mesh(name, vertices, faces, _vertex_normals(vertices, faces), colour)


def tube_mesh(name: str, centres: np.ndarray, radii: np.ndarray, normals: np.ndarray,
              binormals: np.ndarray, colours: np.ndarray, sides: int = 12) -> Mesh | None:
    """A tube round a centreline, open at both ends, coloured per centreline point.

    Parameters
    ----------
    centres : (n, 3) patient mm; radii : (n,) mm
    normals, binormals : (n, 3) unit vectors perpendicular to the centreline (a
        rotation-minimising frame keeps the tube from twisting)
    colours : (n, 3) RGB in 0..1, given to every vertex of that point's ring
    """
    if len(centres) < 2:
        return None
    angles = np.linspace(0.0, 2 * np.pi, sides, endpoint=False)
    ring = np.cos(angles)[None, :, None] * normals[:, None, :] \
        + np.sin(angles)[None, :, None] * binormals[:, None, :]
    vertices = (centres[:, None, :] + radii[:, None, None] * ring).reshape(-1, 3)
    here = np.arange(len(centres) - 1)[:, None] * sides + np.arange(sides)[None, :]
    nxt = here - np.arange(sides)[None, :] + (np.arange(sides)[None, :] + 1) % sides
    quads = np.stack([here, here + sides, nxt + sides, here, nxt + sides, nxt], axis=-1)
    faces = quads.reshape(-1, 3).astype(np.uint32)
    vertices = vertices.astype(np.float32)
    return Mesh(name, vertices, faces, ring.reshape(-1, 3).astype(np.float32),
                (1.0, 1.0, 1.0, 1.0), np.repeat(colours, sides, axis=0).astype(np.float32))


def _block_any(mask: np.ndarray, step: int) -> np.ndarray:
    """In-plane max-pooling of a boolean mask by ``step`` pixels (no lesion is lost)."""
    if step == 1:
        return mask
    z, y, x = mask.shape
    padded = np.pad(mask, ((0, 0), (0, -y % step), (0, -x % step)))
    blocks = padded.reshape(z, padded.shape[1] // step, step, padded.shape[2] // step, step)
    return np.asarray(blocks.any(axis=(2, 4)))


def _bounding_box(mask: np.ndarray, spacing: Sequence[float],
                  margin_mm: float) -> tuple[slice, ...]:
    """The mask's bounding box grown by ``margin_mm`` (at least one voxel) on every axis."""
    box = []
    for axis, step in enumerate(spacing):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        grow = max(1, int(np.ceil(margin_mm / step)))
        box.append(slice(max(0, present[0] - grow), min(mask.shape[axis], present[-1] + grow + 1)))
    return tuple(box)


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals computed in patient space (so anisotropy is respected)."""
    v = vertices.astype(np.float64)
    face_normals = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    normals = np.zeros_like(v)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.where(length == 0, 1.0, length)).astype(np.float32)


def to_glb(meshes: Sequence[Mesh | None], generator: str = "ScanPath imaging core") -> bytes:
    """Serialise meshes (None entries are skipped) to a GLB byte string."""
    present = [m for m in meshes if m is not None and len(m.faces)]
    blob = bytearray()
    document: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": generator,
                  "extras": {"units": "mm", "coordinates": "DICOM patient LPS"}},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [_root_node(len(present))],
    }
    for index, mesh in enumerate(present):
        _append_mesh(document, blob, mesh, index)
    if blob:
        document["buffers"] = [{"byteLength": len(blob)}]
    return _pack_glb(document, bytes(blob))


def write_glb(meshes: Sequence[Mesh | None], path: str | Path) -> Path:
    """Write :func:`to_glb` output to ``path`` and return it."""
    target = Path(path)
    target.write_bytes(to_glb(meshes))
    return target


def _root_node(children: int) -> dict[str, Any]:
    node: dict[str, Any] = {"name": "patient LPS mm -> glTF metres, Y up",
                            "matrix": LPS_MM_TO_GLTF.T.ravel().tolist()}  # column-major
    if children:
        node["children"] = list(range(1, children + 1))
    return node


def _append_mesh(document: dict[str, Any], blob: bytearray, mesh: Mesh, index: int) -> None:
    position = _accessor(document, blob, mesh.vertices, "VEC3", _FLOAT, _ARRAY_BUFFER, True)
    normal = _accessor(document, blob, mesh.normals, "VEC3", _FLOAT, _ARRAY_BUFFER, False)
    indices = _accessor(document, blob, mesh.faces.reshape(-1), "SCALAR", _UNSIGNED_INT,
                        _ELEMENT_ARRAY_BUFFER, False)
    attributes = {"POSITION": position, "NORMAL": normal}
    if mesh.vertex_colours is not None:
        attributes["COLOR_0"] = _accessor(document, blob, mesh.vertex_colours, "VEC3", _FLOAT,
                                          _ARRAY_BUFFER, False)
    document.setdefault("materials", []).append(_material(mesh))
    document.setdefault("meshes", []).append({"name": mesh.name, "primitives": [{
        "attributes": attributes,
        "indices": indices, "material": index, "mode": 4}]})
    document["nodes"].append({"name": mesh.name, "mesh": index})


def _accessor(document: dict[str, Any], blob: bytearray, data: np.ndarray, kind: str,
              component: int, target: int, bounds: bool) -> int:
    """Append ``data`` as a bufferView plus accessor; return the accessor index."""
    dtype = "<f4" if component == _FLOAT else "<u4"
    raw = np.ascontiguousarray(data, dtype=dtype)
    views = document.setdefault("bufferViews", [])
    views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": raw.nbytes,
                  "target": target})
    blob.extend(raw.tobytes())  # 4-byte components keep every view 4-byte aligned
    accessor: dict[str, Any] = {"bufferView": len(views) - 1, "componentType": component,
                                "count": int(raw.shape[0]), "type": kind}
    if bounds:
        accessor["min"] = raw.min(axis=0).astype(float).tolist()
        accessor["max"] = raw.max(axis=0).astype(float).tolist()
    accessors = document.setdefault("accessors", [])
    accessors.append(accessor)
    return len(accessors) - 1


def _material(mesh: Mesh) -> dict[str, Any]:
    return {"name": mesh.name, "doubleSided": True,
            "alphaMode": "OPAQUE" if mesh.colour[3] >= 1 else "BLEND",
            "pbrMetallicRoughness": {"baseColorFactor": list(mesh.colour),
                                     "metallicFactor": 0.0, "roughnessFactor": 0.8}}


def _pack_glb(document: dict[str, Any], blob: bytes) -> bytes:
    text = json.dumps(document, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<II", len(text), CHUNK_JSON) + text
    if blob:
        padded = blob + b"\0" * (-len(blob) % 4)
        chunks += struct.pack("<II", len(padded), CHUNK_BIN) + padded
    return struct.pack("<III", GLB_MAGIC, 2, 12 + len(chunks)) + chunks


def read_glb(data: bytes) -> list[Mesh]:
    """The meshes of a GLB that :func:`to_glb` wrote (patient LPS mm), in file order.

    Raises MeshError when ``data`` is not such a GLB (bad header, chunks or accessors).
    """
    try:
        magic, version, length = struct.unpack_from("<III", data, 0)
        text_length, kind = struct.unpack_from("<II", data, 12)
        document = json.loads(data[20:20 + text_length])
        blob = data[28 + text_length:] if len(data) > 20 + text_length else b""
        if magic != GLB_MAGIC or version != 2 or length != len(data) or kind != CHUNK_JSON:
            raise ValueError("not a glTF 2.0 binary")
        return [_read_mesh(document, blob, index) for index in
                range(len(document.get("meshes", [])))]
    except (struct.error, ValueError, KeyError, IndexError, TypeError) as error:
        raise MeshError(f"unreadable GLB: {error}") from error


def _read_mesh(document: dict[str, Any], blob: bytes, index: int) -> Mesh:
    primitive = document["meshes"][index]["primitives"][0]
    material = document["materials"][primitive["material"]]
    colour = tuple(material["pbrMetallicRoughness"]["baseColorFactor"])
    return Mesh(document["meshes"][index]["name"],
                _read_accessor(document, blob, primitive["attributes"]["POSITION"]),
                _read_accessor(document, blob, primitive["indices"]).reshape(-1, 3),
                _read_accessor(document, blob, primitive["attributes"]["NORMAL"]),
                colour)  # type: ignore[arg-type]


def _read_accessor(document: dict[str, Any], blob: bytes, index: int) -> np.ndarray:
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    dtype = "<f4" if accessor["componentType"] == _FLOAT else "<u4"
    width = {"SCALAR": 1, "VEC3": 3}[accessor["type"]]
    raw = np.frombuffer(blob, dtype=dtype, count=accessor["count"] * width,
                        offset=view.get("byteOffset", 0))
    return raw.reshape(-1, width) if width > 1 else raw
