"""PLY scene files, told apart by their vertex properties (never by the file name).

- **3DGS** (nerfstudio's ``ns-export gaussian-splat``, the original 3DGS code, gsplat's examples): ``x y z``,
  color as ``f_dc_0..2`` (degree-0 SH, ``rgb = 0.5 + SH_C0 * f_dc`` clipped to [0, 1]) or as ``red green
  blue`` (nerfstudio's ``--ply-color-mode rgb``), optional ``f_rest_*`` and normals, ``opacity`` (logit),
  ``scale_0..2`` (log standard deviations), ``rot_0..3`` (wxyz quaternion, any norm).
- **Colored point cloud or mesh** (a ScanNet ``_vh_clean_2.ply`` too: its vertices are read, its faces
  ignored): ``x y z`` and ``red green blue``, ``r g b`` or ``diffuse_red diffuse_green diffuse_blue``.
  Integer colors are divided by their type's maximum (255 for uchar); float colors are taken as [0, 1]
  when none exceeds 1, as [0, 255] when none exceeds 255, and refused otherwise.

Binary files are memory-mapped (``PlyData.read(mmap=True)``): only the columns used are read into memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement, PlyParseError

from liftgs.export_ply import SH_C0
from liftgs.scene_files.splats import OPACITY_FLOOR, SceneFileError, SplatSet, keep_finite_rows

GAUSSIAN_PROPERTIES = ("opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
"""Besides ``x y z`` and a color, what makes a vertex element a 3DGS layout."""
SH_DC_PROPERTIES = ("f_dc_0", "f_dc_1", "f_dc_2")
COLOR_PROPERTIES = (
    ("red", "green", "blue"),
    ("r", "g", "b"),
    ("diffuse_red", "diffuse_green", "diffuse_blue"),
)
"""Vertex color spellings of point clouds and meshes, in order of preference."""
ADDED_PROPERTIES = ("liftgs_score", "liftgs_mask")
"""Per-splat properties LIFT-GS adds on export (ignored when such a file is read again)."""


def is_ply(path: Path) -> bool:
    """Whether ``path`` is a file that starts with the PLY magic line."""
    with open(path, "rb") as file:
        return file.read(4) in (b"ply\n", b"ply\r")


def read_ply(path: Path) -> PlyData:
    """The PLY at ``path``, memory-mapped where its layout allows.

    Raises:
        SceneFileError: unreadable, malformed, or without a non-empty ``vertex`` element with ``x y z``.
    """
    try:
        ply = PlyData.read(str(path), mmap=True)
    except (PlyParseError, ValueError, OSError) as error:
        raise SceneFileError(f"{path}: not a readable PLY file: {' '.join(str(error).split())}") from None
    if "vertex" not in [element.name for element in ply.elements]:
        raise SceneFileError(f"{path}: the PLY has no vertex element")
    names = vertex_property_names(ply)
    missing = [name for name in ("x", "y", "z") if name not in names]
    if missing:
        raise SceneFileError(f"{path}: vertex element lacks {' '.join(missing)} (has {' '.join(names)})")
    if ply["vertex"].count == 0:
        raise SceneFileError(f"{path}: the PLY has zero vertices")
    return ply


def vertex_property_names(ply: PlyData) -> list[str]:
    return [prop.name for prop in ply["vertex"].properties]


def splats_from_ply(path: Path, ply: PlyData, opacity_floor: float = OPACITY_FLOOR) -> SplatSet:
    """The splats (3DGS layout) or points (colored point cloud / mesh) of a PLY read by ``read_ply``.

    Raises:
        SceneFileError: a partial 3DGS layout (names the missing properties), no vertex colors, color
            values out of range, or no finite row.
    """
    names = set(vertex_property_names(ply))
    gaussian_markers = names & {*GAUSSIAN_PROPERTIES, *SH_DC_PROPERTIES}
    if gaussian_markers:
        required = [*GAUSSIAN_PROPERTIES, *(SH_DC_PROPERTIES if "f_dc_0" in names else COLOR_PROPERTIES[0])]
        missing = [name for name in required if name not in names]
        if missing:
            raise SceneFileError(f"{path}: a 3DGS PLY needs {' '.join(missing)} (vertex properties missing)")
        return gaussians_from_ply(path, ply, "3dgs", opacity_floor)
    return points_from_ply(path, ply)


def _columns(vertices: np.ndarray, names: tuple[str, ...] | list[str], dtype=np.float32) -> np.ndarray:
    """[N, len(names)] copy of the named fields of a structured vertex array."""
    return np.stack([np.asarray(vertices[name], dtype=dtype) for name in names], axis=1)


def _xyz(vertices: np.ndarray) -> np.ndarray:
    return _columns(vertices, ("x", "y", "z"), np.float64)


def gaussians_from_ply(path: Path, ply: PlyData, layout: str, opacity_floor: float) -> SplatSet:
    """Activated Gaussians of a 3DGS vertex element (see the module docstring); non-finite rows dropped."""
    vertices = ply["vertex"].data
    means = _xyz(vertices)
    if "f_dc_0" in vertices.dtype.names:
        colors = np.clip(0.5 + SH_C0 * _columns(vertices, SH_DC_PROPERTIES), 0.0, 1.0)
    else:
        colors = _colors_01(path, vertices, COLOR_PROPERTIES[0])
    logits = np.asarray(vertices["opacity"], dtype=np.float32)
    log_scales = _columns(vertices, ("scale_0", "scale_1", "scale_2"))
    quats = _columns(vertices, ("rot_0", "rot_1", "rot_2", "rot_3"))
    norms = np.linalg.norm(quats, axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        quats = quats / norms  # zero-norm rows become NaN and are dropped with the non-finite ones
        scales = np.exp(log_scales)
    keep = keep_finite_rows(path, means, colors, logits, scales, quats)
    opacities = 1.0 / (1.0 + np.exp(-np.clip(logits[keep], -60.0, 60.0)))
    return SplatSet(
        path=path,
        layout=layout,  # type: ignore[arg-type]
        means=means[keep],
        colors=colors[keep],
        opacities=opacities,
        scales=scales[keep],
        quats=quats[keep],
        network_mask=opacities >= opacity_floor,
        file_rows=np.flatnonzero(keep),
        ply=ply,
    )


def points_from_ply(path: Path, ply: PlyData) -> SplatSet:
    """Colored points of a point-cloud or mesh vertex element; non-finite rows dropped."""
    vertices = ply["vertex"].data
    names = set(vertices.dtype.names)
    spelling = next((triple for triple in COLOR_PROPERTIES if set(triple) <= names), None)
    if spelling is None:
        what = "a mesh" if len(ply.elements) > 1 else "a point cloud"
        raise SceneFileError(
            f"{path}: {what} without vertex colors (no red/green/blue or r/g/b properties); LIFT-GS needs "
            "an RGB color per point"
        )
    means = _xyz(vertices)
    colors = _colors_01(path, vertices, spelling)
    keep = keep_finite_rows(path, means, colors)
    return SplatSet(
        path=path,
        layout="point_cloud",
        means=means[keep],
        colors=colors[keep],
        opacities=None,
        scales=None,
        quats=None,
        network_mask=np.ones(int(keep.sum()), dtype=bool),
        file_rows=np.flatnonzero(keep),
        ply=ply,
    )


def _colors_01(path: Path, vertices: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """[N, 3] float32 RGB in [0, 1] from color fields of any numeric type (module docstring's rule)."""
    dtype = vertices.dtype[names[0]]
    values = _columns(vertices, names)
    if np.issubdtype(dtype, np.integer):
        return np.clip(values / np.float32(np.iinfo(dtype).max), 0.0, 1.0)
    finite = values[np.isfinite(values)]
    largest = float(finite.max()) if finite.size else 0.0
    if largest > 255.0:
        raise SceneFileError(f"{path}: float colors reach {largest:g}; expected values in [0, 1] or [0, 255]")
    if largest > 1.0:
        values = values / np.float32(255.0)
    return np.clip(values, 0.0, 1.0)


def vertex_element(vertices: np.ndarray) -> PlyElement:
    """A ``vertex`` element of a structured array (the types of its fields kept)."""
    return PlyElement.describe(vertices, "vertex")
