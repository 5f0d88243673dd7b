"""Writing a grounding answer back into a scene's own file format (atomic writes, ``liftgs.atomic``).

- ``write_scored_scene``: the whole source file with two vertex properties added, ``liftgs_score``
  (float32) and ``liftgs_mask`` (uint8, 0/1). Every original property keeps its type and values, other
  elements (a mesh's faces) are kept; 3DGS viewers ignore unknown vertex properties. Rows dropped on
  reading (non-finite values) get score 0 and mask 0. A nerfstudio run is written as a 3DGS file in its
  capture frame. Written again over such a file, the two properties are replaced, not repeated.
- ``write_selected_splats``: only the selected rows, every original vertex property (without the two
  added ones): a standard 3DGS PLY for a 3DGS file or run, a point cloud for a point cloud or mesh.

Files are binary little-endian PLY.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from plyfile import PlyData

from liftgs.atomic import write_with_atomic
from liftgs.scene_files.ply import ADDED_PROPERTIES, vertex_element
from liftgs.scene_files.splats import SplatSet


def _per_splat(splats: SplatSet, values: np.ndarray, name: str, dtype) -> np.ndarray:
    values = np.asarray(values).reshape(-1)
    if values.shape[0] != len(splats):
        raise ValueError(f"{name} has {values.shape[0]} values for {len(splats)} splats")
    if not np.isfinite(values.astype(np.float64)).all():
        raise ValueError(f"{name} has non-finite values")
    return values.astype(dtype)


def _original_fields(vertices: np.ndarray) -> list[str]:
    return [name for name in vertices.dtype.names if name not in ADDED_PROPERTIES]


def _write(path: Path, ply: PlyData) -> None:
    write_with_atomic(path, lambda temporary: ply.write(str(temporary)))


def write_scored_scene(
    splats: SplatSet,
    path: str | Path,
    scores: np.ndarray,  # [N] per splat (float)
    mask: np.ndarray,  # [N] per splat (bool)
) -> None:
    """The source file with ``liftgs_score`` and ``liftgs_mask`` per vertex (module docstring), atomically.

    Raises:
        ValueError: ``scores`` or ``mask`` of the wrong length, or non-finite scores.
    """
    scores = _per_splat(splats, scores, "scores", np.float32)
    mask = _per_splat(splats, mask, "mask", bool)
    source = splats.ply
    vertices = source["vertex"].data
    fields = _original_fields(vertices)
    dtype = [(name, vertices.dtype[name]) for name in fields] + [
        ("liftgs_score", "<f4"),
        ("liftgs_mask", "u1"),
    ]
    out = np.empty(vertices.shape[0], dtype=dtype)
    for name in fields:
        out[name] = vertices[name]
    out["liftgs_score"] = 0.0
    out["liftgs_mask"] = 0
    out["liftgs_score"][splats.file_rows] = scores
    out["liftgs_mask"][splats.file_rows] = mask
    others = [element for element in source.elements if element.name != "vertex"]
    ply = PlyData(
        [vertex_element(out), *others],
        byte_order="<",
        comments=list(source.comments),
        obj_info=list(source.obj_info),
    )
    _write(Path(path), ply)


def write_selected_splats(splats: SplatSet, path: str | Path, mask: np.ndarray) -> int:
    """The selected splats (``mask`` [N] bool) with all their original properties, atomically; returns how
    many.

    Raises:
        ValueError: a mask of the wrong length, or an empty selection.
    """
    mask = _per_splat(splats, mask, "mask", bool)
    if not mask.any():
        raise ValueError("the selection is empty: nothing to write")
    vertices = splats.ply["vertex"].data
    fields = _original_fields(vertices)
    selected = np.asarray(vertices[splats.file_rows[mask]])[fields]
    out = np.empty(selected.shape[0], dtype=[(name, vertices.dtype[name]) for name in fields])
    for name in fields:
        out[name] = selected[name]
    _write(Path(path), PlyData([vertex_element(out)], byte_order="<", comments=list(splats.ply.comments)))
    return int(out.shape[0])
