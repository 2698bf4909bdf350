"""GLB output: the binary container parses and mesh bounds match the phantom inserts."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from imaging_core.calcium import score
from imaging_core.mesh import calcium_mesh, context_mesh, to_glb, write_glb
from imaging_core.volume import load_volume
from tests.imaging_core.phantoms import (
    Insert,
    Phantom,
    covered_slices,
    datasets,
    disc_mask,
    oblique,
)

# Anisotropic pixels (dy != dx) so a swapped axis would show.
INSERT = Insert(u=14.0, v=18.0, radius=2.6, w0=6, w1=18, hu=420)
PHANTOM = Phantom(rows=64, cols=72, pixel_spacing=(0.6, 0.5), n_slices=10, inserts=(INSERT,))

COMPONENTS = {"SCALAR": 1, "VEC3": 3}
ROOT = Path(__file__).resolve().parents[2]
GLTF_VALIDATOR = ROOT / "tests" / "validator" / "gltf_validate.mjs"


def parse_glb(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Read a GLB by the glTF 2.0 binary layout, checking every length on the way."""
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_length, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A and json_length % 4 == 0
    document = json.loads(data[20:20 + json_length])
    offset = 20 + json_length
    blob = b""
    if offset < len(data):
        bin_length, bin_type = struct.unpack_from("<II", data, offset)
        assert bin_type == 0x004E4942 and bin_length % 4 == 0
        blob = data[offset + 8:offset + 8 + bin_length]
        assert offset + 8 + bin_length == len(data)
        assert document["buffers"][0]["byteLength"] <= bin_length
    return document, blob


def accessor_data(document: dict[str, Any], blob: bytes, index: int) -> np.ndarray:
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    width = COMPONENTS[accessor["type"]]
    assert view["byteLength"] == accessor["count"] * width * 4
    assert view["byteOffset"] % 4 == 0
    dtype = "<f4" if accessor["componentType"] == 5126 else "<u4"
    raw = blob[view["byteOffset"]:view["byteOffset"] + view["byteLength"]]
    return np.frombuffer(raw, dtype=dtype).reshape(accessor["count"], width)


def _meshes(phantom: Phantom):  # type: ignore[no-untyped-def]
    volume = load_volume(datasets(phantom))
    weights = score(volume).weight_map
    assert weights is not None
    return volume, calcium_mesh(volume, weights), context_mesh(volume, weights)


def test_glb_is_consistent(tmp_path: Path) -> None:
    _, calcium, context = _meshes(PHANTOM)
    path = write_glb([calcium, context], tmp_path / "calcium.glb")
    document, blob = parse_glb(path.read_bytes())
    assert document["asset"]["version"] == "2.0"
    assert len(document["meshes"]) == 2
    for mesh in document["meshes"]:
        primitive = mesh["primitives"][0]
        positions = accessor_data(document, blob, primitive["attributes"]["POSITION"])
        normals = accessor_data(document, blob, primitive["attributes"]["NORMAL"])
        indices = accessor_data(document, blob, primitive["indices"]).ravel()
        accessor = document["accessors"][primitive["attributes"]["POSITION"]]
        np.testing.assert_allclose(accessor["min"], positions.min(axis=0))
        np.testing.assert_allclose(accessor["max"], positions.max(axis=0))
        assert len(normals) == len(positions)
        assert len(indices) % 3 == 0 and indices.max() < len(positions)
    assert "not a heart segmentation" in document["meshes"][1]["name"]


def _expected_bounds(phantom: Phantom, insert: Insert) -> tuple[np.ndarray, np.ndarray]:
    """Plane (u, v, w) bounds: outermost voxel centres of the insert plus half a voxel."""
    dy, dx = phantom.pixel_spacing
    mask = disc_mask(phantom, insert)
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    slices = covered_slices(phantom, insert)
    low = np.array([cols[0] * dx - dx / 2, rows[0] * dy - dy / 2,
                    phantom.w(slices[0]) - phantom.increment / 2])
    high = np.array([cols[-1] * dx + dx / 2, rows[-1] * dy + dy / 2,
                     phantom.w(slices[-1]) + phantom.increment / 2])
    return low, high


def test_calcium_mesh_bounds_match_the_insert() -> None:
    _, calcium, _ = _meshes(PHANTOM)
    assert calcium is not None
    low, high = _expected_bounds(PHANTOM, INSERT)
    origin = np.asarray(PHANTOM.origin)  # axis-aligned: patient = origin + (u, v, w)
    document, blob = parse_glb(to_glb([calcium]))
    accessor = document["accessors"][0]
    np.testing.assert_allclose(accessor["min"], origin + low, atol=1e-3)
    np.testing.assert_allclose(accessor["max"], origin + high, atol=1e-3)


def test_oblique_mesh_lies_on_the_insert_in_plane_coordinates() -> None:
    phantom = oblique(PHANTOM, 30)
    _, calcium, _ = _meshes(phantom)
    assert calcium is not None
    axes = np.stack([phantom.row_dir, phantom.col_dir, phantom.normal])
    uvw = (calcium.vertices.astype(np.float64) - np.asarray(phantom.origin)) @ axes.T
    low, high = _expected_bounds(phantom, INSERT)
    np.testing.assert_allclose(uvw.min(axis=0), low, atol=1e-3)
    np.testing.assert_allclose(uvw.max(axis=0), high, atol=1e-3)


def test_no_calcium_gives_a_valid_empty_scene() -> None:
    volume, calcium, context = _meshes(Phantom(n_slices=3))
    assert calcium is None and context is None
    document, blob = parse_glb(to_glb([calcium, context]))
    assert blob == b"" and "meshes" not in document
    assert document["scenes"] == [{"nodes": [0]}]


def test_root_node_maps_lps_mm_to_gltf_metres() -> None:
    _, calcium, _ = _meshes(PHANTOM)
    document, _ = parse_glb(to_glb([calcium]))
    matrix = np.array(document["nodes"][0]["matrix"]).reshape(4, 4).T  # column-major
    superior = matrix @ np.array([0.0, 0.0, 1000.0, 1.0])  # 1 m towards the head
    anterior = matrix @ np.array([0.0, -1000.0, 0.0, 1.0])  # 1 m towards the front
    np.testing.assert_allclose(superior[:3], [0, 1, 0])  # glTF +Y is up
    np.testing.assert_allclose(anterior[:3], [0, 0, 1])  # glTF +Z is the front


@pytest.mark.skipif(shutil.which("node") is None
                    or not (ROOT / "node_modules" / "gltf-validator").is_dir(),
                    reason="Khronos gltf-validator (npm) not installed in node_modules")
def test_glb_passes_the_khronos_validator(tmp_path: Path) -> None:
    _, calcium, context = _meshes(PHANTOM)
    path = write_glb([calcium, context], tmp_path / "calcium.glb")
    run = subprocess.run(["node", str(GLTF_VALIDATOR), str(path)], capture_output=True,
                         text=True, timeout=120, cwd=ROOT, check=True)
    report = json.loads(run.stdout)
    assert (report["errors"], report["warnings"]) == (0, 0), report["messages"]
