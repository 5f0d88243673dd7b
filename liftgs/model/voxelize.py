"""Voxelisation of a scene point cloud into the model's input points.

Voxels are the cells of the axis-aligned grid ``floor(xyz / voxel_size)`` (world frame, metres). Each
occupied voxel becomes one point at the mean xyz and mean color of its source points. A ``max_points`` cap
keeps a fixed-seed subset of voxels (farthest-point or uniform random); source points of dropped voxels are
mapped to the nearest kept voxel so that every input point has a voxel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import fpsample
import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

MIN_POINTS = 16
"""Fewest voxels a scene may have; fewer is an error (nothing sensible to attend over)."""


@dataclass
class Voxels:
    """Result of ``voxelize``.

    Attributes:
        points: [V, 3] float32 mean xyz per kept voxel (metres).
        colors: [V, 3] float32 mean RGB per kept voxel.
        source_to_voxel: [P] int64 kept-voxel index of every source point.
        grid: [V, 3] int64 integer voxel coordinates ``floor(xyz / voxel_size)``.
        extra: [V, E] float32 mean extra per-point features per kept voxel, or None.
    """

    points: Tensor  # [V, 3]
    colors: Tensor  # [V, 3]
    source_to_voxel: Tensor  # [P] int64
    grid: Tensor  # [V, 3] int64
    extra: Tensor | None = None  # [V, E]


def grid_coords(points: Tensor, voxel_size: float) -> Tensor:
    """[N, 3] int64 voxel coordinates ``floor(points / voxel_size)``."""
    return torch.floor(points / voxel_size).to(torch.int64)


def unique_cells(grid: Tensor) -> tuple[Tensor, Tensor]:
    """Distinct rows of int64 ``grid`` [N, 3] (sorted) and each row's index among them ([N] int64).

    Same result as ``torch.unique(grid, dim=0, return_inverse=True)``, through one scalar key per row
    (much faster on CPU).
    """
    shifted = grid - grid.min(dim=0).values
    extent = shifted.max(dim=0).values + 1
    key = (shifted[:, 0] * extent[1] + shifted[:, 1]) * extent[2] + shifted[:, 2]
    unique_keys, inverse = torch.unique(key, return_inverse=True)
    first = torch.empty_like(unique_keys).scatter_(
        0, inverse, torch.arange(grid.shape[0], device=grid.device)
    )
    return grid[first], inverse


def voxelize(
    points: Tensor | np.ndarray,  # [P, 3]
    colors: Tensor | np.ndarray,  # [P, 3] in [0, 1]
    voxel_size: float,
    max_points: int | None = None,
    method: Literal["fps", "random"] = "fps",
    seed: int = 0,
    extra: Tensor | np.ndarray | None = None,  # [P, E]
) -> Voxels:
    """Averages points, colors (and ``extra`` features) per voxel, then caps the voxels at ``max_points``.

    Raises:
        ValueError: bad shapes, non-finite points, a non-positive ``voxel_size`` or fewer than
            ``MIN_POINTS`` voxels.
    """
    points = torch.as_tensor(points, dtype=torch.float32)
    colors = torch.as_tensor(colors, dtype=torch.float32, device=points.device)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points: expected shape [P, 3], got {list(points.shape)}")
    if colors.shape != points.shape:
        raise ValueError(f"colors: expected shape {list(points.shape)}, got {list(colors.shape)}")
    values = colors
    if extra is not None:
        extra = torch.as_tensor(extra, dtype=torch.float32, device=points.device)
        if extra.ndim != 2 or extra.shape[0] != points.shape[0]:
            raise ValueError(f"extra: expected shape [{points.shape[0]}, E], got {list(extra.shape)}")
        values = torch.cat([colors, extra], dim=1)
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    if not torch.isfinite(points).all():
        raise ValueError("points: contains NaN or infinite coordinates")
    grid_all = grid_coords(points, voxel_size)
    grid, inverse = unique_cells(grid_all)
    num_voxels = grid.shape[0]
    if num_voxels < MIN_POINTS:
        raise ValueError(
            f"scene has {num_voxels} voxel(s) at voxel_size={voxel_size} (from {points.shape[0]} points); "
            f"need at least {MIN_POINTS}"
        )
    counts = torch.bincount(inverse, minlength=num_voxels).unsqueeze(1).float()
    sums = torch.zeros(num_voxels, 3 + values.shape[1], device=points.device)
    means = sums.index_add_(0, inverse, torch.cat([points, values], dim=1)) / counts
    if max_points is None or num_voxels <= max_points:
        return _voxels(means, inverse, grid, extra is not None)
    if max_points < MIN_POINTS:
        raise ValueError(f"max_points must be >= {MIN_POINTS}, got {max_points}")
    keep = _subsample(means[:, :3], max_points, method, seed).to(points.device)
    old_to_new = torch.full((num_voxels,), -1, dtype=torch.int64, device=points.device)
    old_to_new[keep] = torch.arange(keep.numel(), device=points.device)
    dropped = old_to_new < 0
    if dropped.any():
        xyz = means[:, :3].cpu().numpy()
        _, nearest = cKDTree(xyz[keep.cpu().numpy()]).query(xyz[dropped.cpu().numpy()])
        old_to_new[dropped] = torch.as_tensor(nearest, dtype=torch.int64, device=points.device)
    return _voxels(means[keep], old_to_new[inverse], grid[keep], extra is not None)


def _voxels(means: Tensor, source_to_voxel: Tensor, grid: Tensor, has_extra: bool) -> Voxels:
    """Splits per-voxel means [V, 3 + 3 + E] (xyz, rgb, extra) into a ``Voxels``."""
    extra = means[:, 6:] if has_extra else None
    return Voxels(means[:, :3], means[:, 3:6], source_to_voxel, grid, extra)


def _subsample(points: Tensor, count: int, method: str, seed: int) -> Tensor:
    """Sorted int64 indices of ``count`` of ``points`` [N, 3], chosen deterministically from ``seed``."""
    if method == "random":
        generator = torch.Generator().manual_seed(seed)
        index = torch.randperm(points.shape[0], generator=generator)[:count]
    elif method == "fps":
        xyz = points.detach().cpu().numpy().astype(np.float32)
        start = int(np.random.default_rng(seed).integers(points.shape[0]))
        index = torch.as_tensor(
            fpsample.bucket_fps_kdline_sampling(xyz, count, h=7, start_idx=start).astype(np.int64)
        )
    else:
        raise ValueError(f"method must be 'fps' or 'random', got {method!r}")
    return torch.sort(index).values
