"""``load_scene_file``: any supported scene file or run folder -> a ``UserScene`` ready for the network.

The reader is chosen by content: a file starting with the PLY magic line is a PLY (3DGS or colored point
cloud / mesh, by its vertex properties, ``ply.py``); a folder with a ``config.yml``, or a ``config.yml``
itself, is a nerfstudio run (``splatfacto.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liftgs.scene_files.frame import SceneTransform, estimate_scene_transform
from liftgs.scene_files.ply import is_ply, read_ply, splats_from_ply
from liftgs.scene_files.splatfacto import CONFIG_NAME, is_run_config, splats_from_run
from liftgs.scene_files.splats import OPACITY_FLOOR, SceneFileError, SplatSet
from liftgs.scene_files.subsample import (
    DEFAULT_MAX_POINTS,
    DEFAULT_VOXEL_SIZE,
    NetworkPoints,
    network_points,
)


@dataclass
class UserScene:
    """A scene a user brought: its splats in the file's frame, the transform to the network frame, and
    the network's input with the map back to every splat.

    Attributes:
        splats: the file's splats or points (file frame) and its content for exports.
        transform: file frame -> network frame (z up, metres).
        network: the subsampled network input (network frame) and ``splat_to_network_voxel``.
    """

    splats: SplatSet
    transform: SceneTransform
    network: NetworkPoints

    @property
    def network_points(self) -> np.ndarray:
        """[V, 3] float32 network input points (network frame)."""
        return self.network.points

    @property
    def network_colors(self) -> np.ndarray:
        """[V, 3] float32 RGB in [0, 1] of the network input points."""
        return self.network.colors

    @property
    def splat_to_network_voxel(self) -> np.ndarray:
        """[N] int64 network point of each splat, -1 for splats the network does not read."""
        return self.network.splat_to_network_voxel


def read_scene_splats(path: str | Path, opacity_floor: float = OPACITY_FLOOR) -> SplatSet:
    """The splats of a PLY file, a run's ``config.yml`` or a run folder (chosen by content).

    Raises:
        SceneFileError: a missing path, an unsupported file, or any reader's error (one line each).
    """
    path = Path(path)
    if not 0.0 <= opacity_floor < 1.0:
        raise ValueError(f"opacity_floor must be in [0, 1), got {opacity_floor}")
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise SceneFileError(f"{path}: a folder without {CONFIG_NAME} (expected a nerfstudio run folder)")
        return splats_from_run(path / CONFIG_NAME, opacity_floor)
    if not path.is_file():
        raise SceneFileError(f"{path}: no such file or folder")
    if is_ply(path):
        return splats_from_ply(path, read_ply(path), opacity_floor)
    if is_run_config(path):
        return splats_from_run(path, opacity_floor)
    raise SceneFileError(f"{path}: neither a PLY file nor a nerfstudio config.yml")


def load_scene_file(
    path: str | Path,
    up: str = "auto",
    scale: str | float = "auto",
    voxel_size: float = DEFAULT_VOXEL_SIZE,
    max_points: int = DEFAULT_MAX_POINTS,
    opacity_floor: float = OPACITY_FLOOR,
) -> UserScene:
    """Reads a scene file (``read_scene_splats``), places it in the network frame (``frame.py``'s ``up`` and
    ``scale`` rules) and subsamples the network input (``subsample.py``).

    Raises:
        SceneFileError: unreadable input (one line naming the path), or no splat opaque enough to read.
        ValueError: a bad ``up``, ``scale``, ``voxel_size``, ``max_points`` or ``opacity_floor``.
    """
    splats = read_scene_splats(path, opacity_floor)
    readable = splats.means[splats.network_mask]
    if readable.shape[0] < 3:
        raise SceneFileError(
            f"{splats.path}: {readable.shape[0]} of {len(splats)} splats reach the opacity floor "
            f"{opacity_floor}; too few to place the scene"
        )
    transform = estimate_scene_transform(readable, up, scale)
    network = network_points(
        transform.to_network(splats.means), splats.colors, splats.network_mask, voxel_size, max_points
    )
    return UserScene(splats, transform, network)
