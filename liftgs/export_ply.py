"""Write Gaussians as a standard 3D Gaussian Splatting ``.ply`` (the INRIA layout every 3DGS viewer reads).

One binary little-endian ``vertex`` element with float32 properties, in this order::

    x y z  nx ny nz  f_dc_0 f_dc_1 f_dc_2  f_rest_0 .. f_rest_44  opacity  scale_0 scale_1 scale_2
    rot_0 rot_1 rot_2 rot_3

stored in the *pre-activation* parametrisation the viewers expect: ``f_dc = (rgb - 0.5) / C0`` (degree-0
spherical harmonics, ``C0 = 0.28209479177387814``), ``opacity = logit(alpha)``, ``scale = log(sigma)``
and ``rot`` a wxyz quaternion (normalised here). Normals are zeros and the 45 higher-order SH
coefficients (degree 3) are zeros: the Gaussians are view-independent, but viewers that assume degree 3
(the reference SIBR viewer) still open the file.

Shared by ``liftgs ground --ply`` and the viewer's Export button.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from plyfile import PlyData, PlyElement

from liftgs.atomic import atomic_path

SH_C0 = 0.28209479177387814
"""Degree-0 real spherical-harmonics constant: ``rgb = 0.5 + SH_C0 * f_dc``."""
NUM_SH_REST = 45
"""Higher-order SH coefficients of a degree-3 3DGS file (15 per color channel), written as zeros."""
_EPS = 1e-6
_WIDTHS = {"quats": 4, "scales": 3, "opacities": 1, "colors": 3}
"""Values per Gaussian of each field besides ``means``."""


class GaussiansLike(Protocol):
    """What ``write_gaussians_ply`` reads (``liftgs.model.Gaussians`` satisfies it; torch or numpy).

    Activated values: ``means [G,3]`` world metres, ``quats [G,4]`` wxyz (any norm), ``scales [G,3]``
    standard deviations in metres (> 0), ``opacities [G]`` in (0, 1), ``colors [G,3]`` RGB in [0, 1].
    """

    means: object
    quats: object
    scales: object
    opacities: object
    colors: object


def _numpy(value: object) -> np.ndarray:
    """float64 numpy copy of a torch tensor (any device, with or without grad) or an array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()  # type: ignore[attr-defined]
    return np.asarray(value, dtype=np.float64)


def gaussian_property_names(include_sh_rest: bool = True) -> list[str]:
    """The vertex property names in file order."""
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    if include_sh_rest:
        names += [f"f_rest_{i}" for i in range(NUM_SH_REST)]
    return names + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


def write_gaussians_ply(
    path: str | Path,
    gaussians: GaussiansLike,
    mask: np.ndarray | None = None,  # [G] bool: which Gaussians to write (all when None)
    include_sh_rest: bool = True,
) -> int:
    """Write (the masked subset of) ``gaussians`` to ``path`` in the 3DGS layout (atomically); returns how
    many.

    Raises:
        ValueError: inconsistent shapes, a mask of the wrong length, non-finite values, or ``path`` is a
            folder.
    """
    means = _numpy(gaussians.means).reshape(-1, 3)
    count = means.shape[0]
    fields = {name: _numpy(getattr(gaussians, name)).reshape(count, -1) for name in _WIDTHS}
    for name, array in fields.items():
        if array.shape[1] != _WIDTHS[name]:
            raise ValueError(
                f"gaussians.{name} has {array.shape[1]} values per Gaussian, need {_WIDTHS[name]}"
            )
    if mask is not None:
        mask = np.asarray(mask, dtype=bool).reshape(-1)
        if mask.shape[0] != count:
            raise ValueError(f"mask has {mask.shape[0]} entries for {count} Gaussians")
        means = means[mask]
        fields = {name: array[mask] for name, array in fields.items()}
    for name, array in {"means": means, **fields}.items():
        if not np.isfinite(array).all():
            raise ValueError(f"gaussians.{name} has non-finite values")

    quats = fields["quats"] / np.clip(np.linalg.norm(fields["quats"], axis=1, keepdims=True), _EPS, None)
    alpha = np.clip(fields["opacities"], _EPS, 1.0 - _EPS)
    columns = [
        means,
        np.zeros_like(means),  # normals
        (fields["colors"] - 0.5) / SH_C0,
    ]
    if include_sh_rest:
        columns.append(np.zeros((means.shape[0], NUM_SH_REST)))
    columns += [np.log(alpha / (1.0 - alpha)), np.log(np.clip(fields["scales"], _EPS, None)), quats]
    values = np.concatenate(columns, axis=1).astype(np.float32)  # [G', num properties]

    names = gaussian_property_names(include_sh_rest)
    vertices = np.empty(values.shape[0], dtype=[(name, "f4") for name in names])
    for index, name in enumerate(names):
        vertices[name] = values[:, index]
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a .ply file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        PlyData([PlyElement.describe(vertices, "vertex")], byte_order="<").write(str(temporary))
    return int(values.shape[0])
