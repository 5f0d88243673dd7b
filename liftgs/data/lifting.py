"""Lifting posed RGB-D frames into one voxel-downsampled, instance-labelled point cloud.

Conventions (see ``liftgs.scene``): depth is z-depth in metres along the camera's optical axis (0 = no
measurement), ``K`` is in pixels with pixel centres at integer + 0.5, ``c2w`` is camera-to-world with
OpenCV axes. A pixel at row ``v``, column ``u`` therefore back-projects through the camera point
``((u + 0.5 - cx) / fx * d, (v + 0.5 - cy) / fy * d, d)``.

How ``lift_frames`` reduces millions of pixels quickly: each frame is first reduced to its own occupied
voxels (per-voxel sums of xyz, color and count, and per-(voxel, instance) pixel counts), then the frames'
voxels are merged the same way. Both reductions group integer keys with ``_unique_inverse``, which indexes
a small key space directly (linear time) and sorts only a large one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from liftgs.scene import NO_INSTANCE, Frame

_MAX_VOXEL_COORD = 1 << 20
"""Voxel coordinates must lie in [-2**20, 2**20) per axis (about 42 km at 4 cm), so keys fit in int64."""

_ROWS_PER_MERGE = 1_000_000
"""Voxel rows of reduced frames gathered before they are merged, which bounds memory on long sequences."""

_DENSE_KEYS_PER_ITEM = 8
"""``_unique_inverse`` indexes a key space directly when it is at most this many times the number of keys
(or at most ``_DENSE_MIN_KEYS``); a larger one is sorted."""

_DENSE_MIN_KEYS = 1 << 20

_UINT8_TO_UNIT = np.arange(256, dtype=np.float32) / 255.0
"""[256] float32: a uint8 color value -> [0, 1] (the same numbers as ``value.astype(float32) / 255``)."""


def backproject_depth(
    depth: np.ndarray,  # [H, W] float metres, 0 = invalid
    K: np.ndarray,  # [3, 3] pixels
    c2w: np.ndarray,  # [4, 4] camera-to-world, OpenCV axes
) -> tuple[np.ndarray, np.ndarray]:
    """Back-projects the valid pixels of a depth map into world space.

    Returns:
        xyz: [M, 3] float64 world points, one per valid pixel (finite depth > 0), in row-major pixel order.
        pixel_index: [M] int64 row-major flat index ``v * W + u`` of each point's pixel.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must be [H, W], got shape {depth.shape}")
    K = np.asarray(K, dtype=np.float64)
    c2w = np.asarray(c2w, dtype=np.float64)
    if K.shape != (3, 3) or c2w.shape != (4, 4):
        raise ValueError(f"K must be [3, 3] and c2w [4, 4], got {K.shape} and {c2w.shape}")
    height, width = depth.shape
    pixel_index = np.flatnonzero(np.isfinite(depth) & (depth > 0))
    d = depth.reshape(-1)[pixel_index].astype(np.float64)
    v, u = np.divmod(pixel_index, width)
    ray_x = (np.arange(width) + 0.5 - K[0, 2]) / K[0, 0]  # [W] camera x per unit depth
    ray_y = (np.arange(height) + 0.5 - K[1, 2]) / K[1, 1]  # [H] camera y per unit depth
    xyz = np.stack([ray_x[u] * d, ray_y[v] * d, d], axis=1) @ c2w[:3, :3].T
    xyz += c2w[:3, 3]
    return xyz, pixel_index


def _project_to_pixels(
    xyz: np.ndarray,  # [M, 3] world
    K: np.ndarray,  # [3, 3]
    c2w: np.ndarray,  # [4, 4]
    height: int,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Row-major pixel index of each world point in an image, and a mask of points that land inside it."""
    w2c = np.linalg.inv(c2w)
    cam = xyz @ w2c[:3, :3].T + w2c[:3, 3]
    z = np.where(cam[:, 2] > 0, cam[:, 2], np.inf)
    u = np.floor(cam[:, 0] / z * K[0, 0] + K[0, 2]).astype(np.int64)
    v = np.floor(cam[:, 1] / z * K[1, 1] + K[1, 2]).astype(np.int64)
    inside = (cam[:, 2] > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    return np.where(inside, v * width + u, 0), inside


def _frame_points(frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World xyz [M, 3], colors [3, M] (rows r, g, b in [0, 1]) and instance ids [M] of a frame's valid
    depth pixels.

    When the depth map has its own resolution, each point is projected into the color image (same pose)
    to read its color; depth pixels that fall outside the color image are dropped. Instance masks are
    read at the color image's pixel, rescaled when the mask has another resolution.
    """
    xyz, pixel_index = backproject_depth(frame.depth, frame.depth_intrinsics, frame.c2w)
    height, width = frame.height, frame.width
    if frame.K_depth is None and frame.depth.shape == (height, width):
        color_index = pixel_index
    else:
        color_index, inside = _project_to_pixels(xyz, frame.K, frame.c2w, height, width)
        xyz, color_index = xyz[inside], color_index[inside]
    planes = np.ascontiguousarray(frame.image.reshape(-1, 3).T)  # [3, H * W] uint8
    colors = _UINT8_TO_UNIT[np.take(planes, color_index, axis=1)]
    if frame.instance is None:
        instance = np.full(len(xyz), NO_INSTANCE, dtype=np.int64)
    elif frame.instance.shape == (height, width):
        instance = frame.instance.reshape(-1)[color_index].astype(np.int64)
    else:
        mask_h, mask_w = frame.instance.shape
        v, u = np.divmod(color_index, width)
        mask_index = (v * mask_h // height) * mask_w + (u * mask_w // width)
        instance = frame.instance.reshape(-1)[mask_index].astype(np.int64)
    return xyz, colors, instance


def _unique_inverse(
    keys: np.ndarray,  # [N] int64 in [0, bound)
    bound: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys [G] and each key's index among them [N] (as ``np.unique(return_inverse)``).

    A key space small next to the number of keys is indexed directly (linear time); a larger one is
    sorted. Both give the same answer.
    """
    if bound > max(_DENSE_MIN_KEYS, _DENSE_KEYS_PER_ITEM * len(keys)):
        return np.unique(keys, return_inverse=True)
    present = np.zeros(bound, dtype=bool)
    present[keys] = True
    unique = np.flatnonzero(present)
    rank = np.empty(bound, dtype=np.int64)
    rank[unique] = np.arange(len(unique))
    return unique, rank[keys]


def _count_pairs(
    voxel: np.ndarray,  # [N] int64 voxel index (>= 0)
    instance: np.ndarray,  # [N] int64
    weights: np.ndarray,  # [N] counts
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (voxel, instance) pairs sorted by voxel then instance, with their summed weights."""
    offset = int(instance.min())
    span = int(instance.max()) - offset + 1
    unique, inverse = _unique_inverse(voxel * span + (instance - offset), (int(voxel.max()) + 1) * span)
    return unique // span, unique % span + offset, np.bincount(inverse, weights=weights)


def _majority_instance(
    voxel: np.ndarray,  # [Q] int64, sorted, every index in [0, V) present
    instance: np.ndarray,  # [Q] int64, ascending within each voxel
    counts: np.ndarray,  # [Q] pixel counts of each (voxel, instance) pair
) -> np.ndarray:
    """[V] the instance with the largest count in each voxel; ties go to the smallest id (listed first)."""
    starts = np.flatnonzero(np.r_[True, voxel[1:] != voxel[:-1]])
    best = np.maximum.reduceat(counts, starts)
    winners = np.flatnonzero(counts == best[voxel])
    first = np.r_[True, voxel[winners[1:]] != voxel[winners[:-1]]]
    return instance[winners[first]]


def _voxel_coords(xyz: np.ndarray, voxel_size: float) -> np.ndarray:
    """[3, M] int64 voxel coordinates ``floor(xyz / voxel_size)`` of world points given as [3, M] rows."""
    scaled = xyz / voxel_size
    coords = np.floor(scaled, out=scaled).astype(np.int64)
    if coords.size and (coords.min() < -_MAX_VOXEL_COORD or coords.max() >= _MAX_VOXEL_COORD):
        raise ValueError(
            f"points span more than {2 * _MAX_VOXEL_COORD} voxels of {voxel_size} m along an axis"
        )
    return coords


@dataclass
class _Voxels:
    """Voxels with running sums, and pixel counts per (voxel, instance) pair.

    Per-voxel arrays are stored as rows (one per axis or sum) so that numpy reduces contiguous memory.

    Attributes:
        cells: [3, V] int64 voxel coordinates; distinct and in lexicographic order once ``reduced``.
        sums: [7, V] float64 sums of x, y, z, r, g, b and the pixel count.
        pair_voxel: [Q] int64 column of ``cells`` of each pair.
        pair_instance: [Q] int64 instance id of each pair.
        pair_count: [Q] float64 pixels of each pair.
    """

    cells: np.ndarray
    sums: np.ndarray
    pair_voxel: np.ndarray
    pair_instance: np.ndarray
    pair_count: np.ndarray

    @property
    def num_cells(self) -> int:
        return int(self.cells.shape[1])

    @classmethod
    def of_frame(cls, frame: Frame, voxel_size: float) -> _Voxels:
        """One unreduced voxel per valid depth pixel of ``frame`` (see ``_frame_points``)."""
        xyz, colors, instance = _frame_points(frame)
        sums = np.empty((7, len(xyz)))
        sums[:3] = xyz.T
        sums[3:6] = colors
        sums[6] = 1.0
        coords = _voxel_coords(sums[:3], voxel_size)
        return cls(coords, sums, np.arange(len(xyz)), instance, sums[6])

    @classmethod
    def concatenate(cls, parts: Sequence[_Voxels]) -> _Voxels:
        offsets = np.cumsum([0] + [part.num_cells for part in parts[:-1]])
        return cls(
            np.concatenate([part.cells for part in parts], axis=1),
            np.concatenate([part.sums for part in parts], axis=1),
            np.concatenate([part.pair_voxel + offset for part, offset in zip(parts, offsets, strict=True)]),
            np.concatenate([part.pair_instance for part in parts]),
            np.concatenate([part.pair_count for part in parts]),
        )

    def reduced(self) -> _Voxels:
        """The same voxels with equal cells merged (sums and pair counts added), in lexicographic order."""
        lo = self.cells.min(axis=1)
        extent = self.cells.max(axis=1) - lo + 1
        x, y, z = self.cells - lo[:, None]
        unique, inverse = _unique_inverse(
            (x * extent[1] + y) * extent[2] + z,  # mixed-radix key: lexicographic order
            int(extent[0]) * int(extent[1]) * int(extent[2]),
        )
        sums = np.stack([np.bincount(inverse, weights=row, minlength=len(unique)) for row in self.sums])
        rest, z = np.divmod(unique, extent[2])
        x, y = np.divmod(rest, extent[1])
        pairs = _count_pairs(inverse[self.pair_voxel], self.pair_instance, self.pair_count)
        return _Voxels(np.stack([x, y, z]) + lo[:, None], sums, *pairs)


def lift_frames(
    frames: Sequence[Frame], voxel_size: float = 0.04
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Back-projects every frame's valid depth and voxel-downsamples the union.

    Each occupied voxel of edge ``voxel_size`` metres (world-aligned grid) becomes one point: the mean xyz
    and mean color of the pixels that fell in it, and their majority instance id (``NO_INSTANCE`` counts
    as a label; ties go to the smallest id). Frames without instance masks contribute ``NO_INSTANCE``.

    Returns:
        points: [P, 3] float32 world xyz, ordered by voxel (lexicographic in the voxel's x, y, z index).
        colors: [P, 3] float32 RGB in [0, 1].
        instance: [P] int64 object ids.
    """
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    parts: list[_Voxels] = []
    unmerged_rows = 0
    for frame in frames:
        voxels = _Voxels.of_frame(frame, voxel_size)
        if voxels.num_cells == 0:
            continue
        parts.append(voxels.reduced())
        unmerged_rows += parts[-1].num_cells
        if unmerged_rows >= _ROWS_PER_MERGE and len(parts) > 1:
            parts, unmerged_rows = [_Voxels.concatenate(parts).reduced()], 0
    if not parts:
        raise ValueError(f"no valid depth in {len(frames)} frame(s): nothing to lift")
    voxels = _Voxels.concatenate(parts).reduced() if len(parts) > 1 else parts[0]
    points = (voxels.sums[:3] / voxels.sums[6]).T.astype(np.float32)
    colors = (voxels.sums[3:6] / voxels.sums[6]).T.astype(np.float32)
    return points, colors, _majority_instance(voxels.pair_voxel, voxels.pair_instance, voxels.pair_count)
