"""The points the network reads from a large scene, and the map from every splat back to one of them.

The network-readable splats (``SplatSet.network_mask``) are carried to the network frame, averaged per
voxel of ``voxel_size`` metres (xyz and RGB means, as ``liftgs.model.voxelize`` does), and, above
``max_points`` voxels, cut to ``max_points`` by farthest-point sampling (fixed seed) with each dropped voxel
joined to its nearest kept one. Every network-readable splat then belongs to exactly one network point;
the others (floaters) to none (-1). Each network point lies inside its voxel, so the model's own
voxelisation at the same voxel size keeps them one point per voxel.
"""

from __future__ import annotations

from dataclasses import dataclass

import fpsample
import numpy as np
from scipy.spatial import cKDTree

DEFAULT_VOXEL_SIZE = 0.05
"""Voxel edge (metres) of the network input: the shipped model's ``LiftGSConfig.voxel_size``."""
DEFAULT_MAX_POINTS = 20000
"""Most network points: the shipped model's ``LiftGSConfig.max_points``."""


@dataclass
class NetworkPoints:
    """A scene's network input and the map back to its splats.

    Attributes:
        points: [V, 3] float32 voxel means, network frame (metres, z up).
        colors: [V, 3] float32 mean RGB in [0, 1].
        splat_to_network_voxel: [N] int64 index into ``points`` of each splat of the ``SplatSet``, -1 for
            splats the network does not read.
        voxel_size: voxel edge in metres.
    """

    points: np.ndarray  # [V, 3]
    colors: np.ndarray  # [V, 3]
    splat_to_network_voxel: np.ndarray  # [N] int64
    voxel_size: float

    def to_splats(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Per-network-point ``values`` [V, ...] -> per-splat [N, ...]; ``fill`` where a splat has none."""
        values = np.asarray(values)
        if values.shape[0] != self.points.shape[0]:
            raise ValueError(f"values has {values.shape[0]} rows for {self.points.shape[0]} network points")
        index = self.splat_to_network_voxel
        out = values[np.maximum(index, 0)]
        out[index < 0] = fill
        return out


def voxel_means(
    points: np.ndarray,  # [M, 3] network frame
    colors: np.ndarray,  # [M, 3]
    voxel_size: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-voxel mean xyz [V, 3] and color [V, 3] (float64), and each point's voxel [M] int64."""
    cells = np.floor(points / voxel_size).astype(np.int64)
    cells -= cells.min(axis=0)
    extent = cells.max(axis=0) + 1
    if float(np.prod(extent.astype(np.float64))) >= 2.0**62:
        raise ValueError(f"scene spans too many voxels of {voxel_size} m to index")
    keys = (cells[:, 0] * extent[1] + cells[:, 1]) * extent[2] + cells[:, 2]
    _, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse).astype(np.float64)
    means = np.stack([np.bincount(inverse, weights=points[:, k]) for k in range(3)], axis=1)
    mean_colors = np.stack([np.bincount(inverse, weights=colors[:, k]) for k in range(3)], axis=1)
    return means / counts[:, None], mean_colors / counts[:, None], inverse


def network_points(
    points: np.ndarray,  # [N, 3] network frame, every splat
    colors: np.ndarray,  # [N, 3] in [0, 1]
    network_mask: np.ndarray,  # [N] bool
    voxel_size: float = DEFAULT_VOXEL_SIZE,
    max_points: int = DEFAULT_MAX_POINTS,
    seed: int = 0,
) -> NetworkPoints:
    """The network input of a scene (module docstring).

    Raises:
        ValueError: no network-readable splat, a non-positive ``voxel_size`` or ``max_points`` < 1.
    """
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    rows = np.flatnonzero(network_mask)
    if rows.size == 0:
        raise ValueError("no splat is opaque enough for the network to read")
    means, mean_colors, inverse = voxel_means(points[rows], colors[rows], voxel_size)
    if means.shape[0] > max_points:
        start = int(np.random.default_rng(seed).integers(means.shape[0]))
        keep = np.sort(
            fpsample.bucket_fps_kdline_sampling(means.astype(np.float32), max_points, h=7, start_idx=start)
        ).astype(np.int64)
        old_to_new = np.full(means.shape[0], -1, dtype=np.int64)
        old_to_new[keep] = np.arange(keep.size)
        dropped = np.flatnonzero(old_to_new < 0)
        old_to_new[dropped] = cKDTree(means[keep]).query(means[dropped])[1]
        means, mean_colors, inverse = means[keep], mean_colors[keep], old_to_new[inverse]
    splat_to_voxel = np.full(points.shape[0], -1, dtype=np.int64)
    splat_to_voxel[rows] = inverse
    return NetworkPoints(
        points=means.astype(np.float32),
        colors=np.clip(mean_colors, 0.0, 1.0).astype(np.float32),
        splat_to_network_voxel=splat_to_voxel,
        voxel_size=float(voxel_size),
    )
