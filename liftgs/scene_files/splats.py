"""What a scene file holds once read: splats (or points) in the file's own frame, and the file's rows.

Conventions (every loader): ``means`` in the file's own units and axes (for a nerfstudio run: the capture
frame, nerfstudio's normalisation undone), ``colors`` RGB in [0, 1] (the SH DC term for Gaussians),
``opacities`` activated in (0, 1), ``scales`` standard deviations in the file's units, ``quats`` unit wxyz
quaternions (local-to-file rotation). Point clouds have no opacities, scales or quaternions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from plyfile import PlyData

log = logging.getLogger(__name__)

SceneLayout = Literal["3dgs", "point_cloud", "splatfacto"]
"""Where splats came from: a 3DGS PLY, a colored point-cloud (or mesh) PLY, a nerfstudio splatfacto run."""

OPACITY_FLOOR = 0.1
"""Splats with ``sigmoid(opacity)`` below this are left out of what the network reads (kept for showing and
exporting): nerfstudio's splatfacto culls below the same value (``cull_alpha_thresh``) while training, so
what stays under it is faint haze and floaters that add little color to any surface."""


class SceneFileError(ValueError):
    """A scene file (or run folder) that cannot be read as a scene; the message is one line naming it."""


@dataclass
class SplatSet:
    """The splats or points of one scene file, in the file's frame (see the module docstring).

    Attributes:
        path: the file or run folder read.
        layout: which reader made it.
        means: [N, 3] float64 positions.
        colors: [N, 3] float32 RGB in [0, 1].
        opacities: [N] float32 in (0, 1), or None for a point cloud.
        scales: [N, 3] float32 standard deviations, or None for a point cloud.
        quats: [N, 4] float32 unit wxyz quaternions, or None for a point cloud.
        network_mask: [N] bool, the splats the network may read (opacity at or above ``OPACITY_FLOOR``;
            every point of a point cloud).
        file_rows: [N] int64 row of each splat in ``ply``'s vertex element (rows with non-finite values are
            dropped on reading, so this is not always ``arange(N)``).
        ply: the file's content for exports: a PLY file read memory-mapped, or, for a nerfstudio run, the
            trained Gaussians as a standard 3DGS vertex element in the capture frame.
    """

    path: Path
    layout: SceneLayout
    means: np.ndarray  # [N, 3] float64
    colors: np.ndarray  # [N, 3] float32
    opacities: np.ndarray | None  # [N] float32
    scales: np.ndarray | None  # [N, 3] float32
    quats: np.ndarray | None  # [N, 4] float32 wxyz
    network_mask: np.ndarray  # [N] bool
    file_rows: np.ndarray  # [N] int64
    ply: PlyData

    def __len__(self) -> int:
        return int(self.means.shape[0])


def keep_finite_rows(path: Path, *columns: np.ndarray) -> np.ndarray:
    """[N] bool, rows where every given column (each [N] or [N, k]) is finite; warns once with the count.

    Non-finite rows (NaN or infinite position, color, opacity, scale or rotation) are dropped, not refused:
    optimisers leave a few in large splat files, and the rest of the scene is sound.

    Raises:
        SceneFileError: no finite row is left.
    """
    finite = np.ones(columns[0].shape[0], dtype=bool)
    for column in columns:
        values = column.reshape(column.shape[0], -1)
        finite &= np.isfinite(values).all(axis=1)
    dropped = int(finite.size - np.count_nonzero(finite))
    if dropped == finite.size:
        raise SceneFileError(f"{path}: all {dropped} rows have non-finite values (NaN or infinity)")
    if dropped:
        log.warning(
            "%s: dropped %d of %d rows with non-finite values (NaN or infinity)", path, dropped, finite.size
        )
    return finite
