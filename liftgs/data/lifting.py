"""Lifting posed RGB-D frames into one voxel-downsampled, instance-labelled point cloud.

Conventions (see ``liftgs.scene``): depth is z-depth in metres along the camera's optical axis (0 = no
measurement), ``K`` is in pixels with pixel centres at integer + 0.5, ``c2w`` is camera-to-world with
OpenCV axes. A pixel at row ``v``, column ``u`` therefore back-projects through the camera point
``((u + 0.5 - cx) / fx * d, (v + 0.5 - cy) / fy * d, d)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from liftgs.scene import NO_INSTANCE, Frame

_KEY_BITS = 21
"""Bits per axis of a packed voxel key: +-2**20 voxels per axis (about 42 km at 4 cm)."""

_POINTS_PER_CHUNK = 4_000_000
"""Points gathered before they are reduced to voxels, which bounds memory on long (ScanNet) sequences."""


def backproject_depth(
    depth: np.ndarray,  # [H, W] float metres, 0 = invalid
    K: np.ndarray,  # [3, 3] pixels
    c2w: np.ndarray,  # [4, 4] camera-to-world, OpenCV axes
) -> tuple[np.ndarray, np.ndarray]:
    """Back-projects the valid pixels of a depth map into world space.

    Returns:
        xyz: [M, 3] float64 world points, one per valid pixel (finite depth > 0).
        pixel_index: [M] int64 row-major flat index ``v * W + u`` of each point's pixel.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must be [H, W], got shape {depth.shape}")
    K = np.asarray(K, dtype=np.float64)
    c2w = np.asarray(c2w, dtype=np.float64)
    if K.shape != (3, 3) or c2w.shape != (4, 4):
        raise ValueError(f"K must be [3, 3] and c2w [4, 4], got {K.shape} and {c2w.shape}")
    flat = depth.reshape(-1).astype(np.float64)
    pixel_index = np.flatnonzero(np.isfinite(flat) & (flat > 0))
    d = flat[pixel_index]
    v, u = np.divmod(pixel_index, depth.shape[1])
    cam = np.stack(
        [(u + 0.5 - K[0, 2]) / K[0, 0] * d, (v + 0.5 - K[1, 2]) / K[1, 1] * d, d],
        axis=1,
    )
    xyz = cam @ c2w[:3, :3].T + c2w[:3, 3]
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
    """World xyz [M, 3], colours [M, 3] in [0, 1] and instance ids [M] of one frame's valid depth pixels.

    When the depth map has its own resolution, each point is projected into the colour image (same pose)
    to read its colour; depth pixels that fall outside the colour image are dropped. Instance masks are
    read at the colour image's pixel, rescaled when the mask has another resolution.
    """
    xyz, pixel_index = backproject_depth(frame.depth, frame.depth_intrinsics, frame.c2w)
    height, width = frame.height, frame.width
    if frame.K_depth is None and frame.depth.shape == (height, width):
        color_index = pixel_index
    else:
        color_index, inside = _project_to_pixels(xyz, frame.K, frame.c2w, height, width)
        xyz, color_index = xyz[inside], color_index[inside]
    colors = frame.image.reshape(-1, 3)[color_index].astype(np.float32) / 255.0
    if frame.instance is None:
        instance = np.full(len(xyz), NO_INSTANCE, dtype=np.int64)
    else:
        mask_h, mask_w = frame.instance.shape
        v, u = np.divmod(color_index, width)
        mask_index = (v * mask_h // height) * mask_w + (u * mask_w // width)
        instance = frame.instance.reshape(-1)[mask_index].astype(np.int64)
    return xyz, colors, instance


def _sum_by_key(
    keys: np.ndarray,  # [N] int64
    values: np.ndarray,  # [N, D] float64
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys [G] and the sums [G, D] of ``values`` over each key."""
    unique, inverse = np.unique(keys, return_inverse=True)
    sums = np.stack(
        [np.bincount(inverse, weights=column, minlength=len(unique)) for column in values.T], axis=1
    )
    return unique, sums


def _count_pairs(
    voxel: np.ndarray,  # [N] int64 voxel index (>= 0)
    instance: np.ndarray,  # [N] int64
    weights: np.ndarray,  # [N] counts
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (voxel, instance) pairs sorted by voxel then instance, with their summed weights."""
    offset = int(instance.min())
    span = int(instance.max()) - offset + 1
    unique, inverse = np.unique(voxel * span + (instance - offset), return_inverse=True)
    return unique // span, unique % span + offset, np.bincount(inverse, weights=weights)


def _voxel_keys(xyz: np.ndarray, voxel_size: float) -> np.ndarray:
    """Packs each point's integer voxel coordinates into one int64 key."""
    coords = np.floor(xyz / voxel_size).astype(np.int64)
    half = 1 << (_KEY_BITS - 1)
    if coords.size and (coords.min() < -half or coords.max() >= half):
        raise ValueError(f"points span more than {2 * half} voxels of {voxel_size} m along an axis")
    coords += half
    return (coords[:, 0] << (2 * _KEY_BITS)) | (coords[:, 1] << _KEY_BITS) | coords[:, 2]


class _VoxelAccumulator:
    """Running per-voxel sums (xyz, rgb, count) and per-(voxel, instance) pixel counts, in parts."""

    def __init__(self, voxel_size: float) -> None:
        self.voxel_size = voxel_size
        self.keys: list[np.ndarray] = []  # per part: [V] voxel keys
        self.sums: list[np.ndarray] = []  # per part: [V, 7] xyz sum, rgb sum, count
        self.pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (voxel key, instance, count)

    def add(self, xyz: np.ndarray, colors: np.ndarray, instance: np.ndarray) -> None:
        if len(xyz) == 0:
            return
        keys = _voxel_keys(xyz, self.voxel_size)
        unique, sums = _sum_by_key(keys, np.concatenate([xyz, colors, np.ones((len(xyz), 1))], axis=1))
        voxel, pair_instance, counts = _count_pairs(
            np.searchsorted(unique, keys), instance, np.ones(len(keys))
        )
        self.keys.append(unique)
        self.sums.append(sums)
        self.pairs.append((unique[voxel], pair_instance, counts))

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keys, sums = _sum_by_key(np.concatenate(self.keys), np.concatenate(self.sums))
        points = (sums[:, :3] / sums[:, 6:]).astype(np.float32)
        colors = (sums[:, 3:6] / sums[:, 6:]).astype(np.float32)
        pair_keys, pair_instance, pair_counts = (
            np.concatenate(parts) for parts in zip(*self.pairs, strict=True)
        )
        voxel, instance, counts = _count_pairs(np.searchsorted(keys, pair_keys), pair_instance, pair_counts)
        # Majority vote: within each voxel take the instance with the largest count (ties: smallest id).
        order = np.lexsort((instance, -counts, voxel))
        first = np.ones(len(order), dtype=bool)
        first[1:] = voxel[order][1:] != voxel[order][:-1]
        return points, colors, instance[order[first]].astype(np.int64)


def lift_frames(
    frames: Sequence[Frame], voxel_size: float = 0.04
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Back-projects every frame's valid depth and voxel-downsamples the union.

    Each occupied voxel of edge ``voxel_size`` metres (world-aligned grid) becomes one point: the mean xyz
    and mean colour of the pixels that fell in it, and their majority instance id (``NO_INSTANCE`` counts
    as a label; ties go to the smallest id). Frames without instance masks contribute ``NO_INSTANCE``.

    Returns:
        points: [P, 3] float32 world xyz, ordered by voxel.
        colors: [P, 3] float32 RGB in [0, 1].
        instance: [P] int64 object ids.
    """
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    accumulator = _VoxelAccumulator(voxel_size)
    chunk: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    chunk_points = 0
    for frame in frames:
        part = _frame_points(frame)
        chunk.append(part)
        chunk_points += len(part[0])
        if chunk_points >= _POINTS_PER_CHUNK:
            accumulator.add(*(np.concatenate(arrays) for arrays in zip(*chunk, strict=True)))
            chunk, chunk_points = [], 0
    if chunk:
        accumulator.add(*(np.concatenate(arrays) for arrays in zip(*chunk, strict=True)))
    if sum(len(k) for k in accumulator.keys) == 0:
        raise ValueError(f"no valid depth in {len(frames)} frame(s): nothing to lift")
    return accumulator.result()
