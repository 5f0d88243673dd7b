"""Lifting RGB-D frames: back-projection geometry, voxel reduction, majority instance ids."""

from collections import Counter

import numpy as np
import pytest

from liftgs.data import lifting
from liftgs.data.lifting import backproject_depth, lift_frames
from liftgs.scene import NO_INSTANCE, Frame

H, W = 24, 32
K = np.array([[30.0, 0.0, W / 2], [0.0, 30.0, H / 2], [0.0, 0.0, 1.0]])


def look_down_c2w(height: float) -> np.ndarray:
    """A camera at (1, 2, height) looking straight down (-z world), image x along world +x."""
    c2w = np.eye(4)
    c2w[:3, :3] = np.array([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]])  # columns: cam x, y, z in world
    c2w[:3, 3] = [1.0, 2.0, height]
    return c2w


def plane_frame(height: float = 2.0, instance_value: int = 5) -> Frame:
    image = np.zeros((H, W, 3), np.uint8)
    image[..., 1] = 200
    instance = np.full((H, W), NO_INSTANCE, np.int32)
    instance[:, W // 2 :] = instance_value
    return Frame("0", image, np.full((H, W), height, np.float32), K, look_down_c2w(height), instance)


def test_backprojected_floor_plane_lands_at_z0_under_the_camera():
    frame = plane_frame()
    xyz, index = backproject_depth(frame.depth, K, frame.c2w)
    assert len(xyz) == H * W
    np.testing.assert_allclose(xyz[:, 2], 0.0, atol=1e-9)
    # Pixel centres are at integer + 0.5, so the image centre maps exactly below the camera.
    centre = xyz.reshape(H, W, 3)[H // 2 - 1 : H // 2 + 1, W // 2 - 1 : W // 2 + 1].mean(axis=(0, 1))
    np.testing.assert_allclose(centre[:2], [1.0, 2.0], atol=1e-9)
    # Footprint of the frustum on the plane: half-width = depth * (W/2) / fx.
    np.testing.assert_allclose(xyz[:, 0].max() - xyz[:, 0].min(), 2.0 * (W - 1) / 30.0, atol=1e-9)
    # Image rows go down = world -y for this camera.
    assert xyz[index == 0, 1] > xyz[index == (H - 1) * W, 1]


def test_invalid_depth_pixels_are_dropped():
    depth = np.full((H, W), 1.0, np.float32)
    depth[0, :5] = 0
    depth[1, 0] = np.nan
    xyz, index = backproject_depth(depth, K, np.eye(4))
    assert len(xyz) == H * W - 6
    assert 0 not in index and W not in index


def test_lift_frames_voxel_means_colors_and_majority_instance():
    points, colors, instance = lift_frames([plane_frame()], voxel_size=0.1)
    np.testing.assert_allclose(points[:, 2], 0.0, atol=1e-6)
    np.testing.assert_allclose(colors, np.tile([0, 200 / 255, 0], (len(points), 1)), atol=1e-6)
    # One point per occupied 10 cm voxel, and nothing off the imaged footprint.
    assert len(np.unique(np.floor(points[:, :2] / 0.1), axis=0)) == len(points)
    assert set(np.unique(instance)) == {NO_INSTANCE, 5}
    # The right half of the image (u >= W/2) is world x >= 1 for this camera.
    assert (points[instance == 5, 0] > 0.95).all() and (points[instance == NO_INSTANCE, 0] < 1.05).all()


def test_lift_frames_merges_views_and_handles_depth_resolution():
    low = plane_frame()
    low_depth = low.depth[::2, ::2]
    K_depth = K.copy()
    K_depth[:2] /= 2
    half = Frame("1", low.image, low_depth, K, low.c2w, low.instance, K_depth=K_depth)
    points, _, _ = lift_frames([low, half], voxel_size=0.05)
    np.testing.assert_allclose(points[:, 2], 0.0, atol=1e-6)


def test_lift_frames_rejects_bad_arguments():
    with pytest.raises(ValueError, match="voxel_size"):
        lift_frames([plane_frame()], voxel_size=0)
    empty = plane_frame()
    empty.depth[:] = 0
    with pytest.raises(ValueError, match="no valid depth"):
        lift_frames([empty], voxel_size=0.1)


@pytest.mark.parametrize(
    "settings",
    [{}, {"_DENSE_MIN_KEYS": 0, "_DENSE_KEYS_PER_ITEM": 0}, {"_ROWS_PER_MERGE": 1}],
    ids=["default", "sorted-keys", "merge-after-every-frame"],
)
def test_lift_frames_matches_a_brute_force_reference(settings, monkeypatch):
    for name, value in settings.items():  # the fast paths' switches: every path must give the same answer
        monkeypatch.setattr(lifting, name, value)
    rng = np.random.default_rng(0)
    frames = []
    for k in range(3):
        c2w = np.eye(4)
        c2w[:3, 3] = rng.normal(size=3) * 0.1
        image = rng.integers(0, 256, (H, W, 3)).astype(np.uint8)
        depth = rng.uniform(0.5, 1.0, (H, W)).astype(np.float32)
        frames.append(Frame(str(k), image, depth, K, c2w, rng.integers(-1, 3, (H, W)).astype(np.int32)))
    points, colors, instance = lift_frames(frames, voxel_size=0.1)
    voxels: dict[tuple, list] = {}
    for frame in frames:
        xyz, index = backproject_depth(frame.depth, K, frame.c2w)
        for x, i in zip(xyz, index, strict=True):
            key = tuple(np.floor(x / 0.1).astype(int))
            voxels.setdefault(key, []).append(
                (x, frame.image.reshape(-1, 3)[i] / 255, frame.instance.ravel()[i])
            )
    assert len(points) == len(voxels)
    cells = [tuple(np.floor(p / 0.1).astype(int)) for p in points]
    assert cells == sorted(voxels)  # one point per voxel, in lexicographic voxel order
    for p, c, label in zip(points, colors, instance, strict=True):
        members = voxels[tuple(np.floor(p / 0.1).astype(int))]
        np.testing.assert_allclose(p, np.mean([m[0] for m in members], axis=0), atol=1e-6)
        np.testing.assert_allclose(c, np.mean([m[1] for m in members], axis=0), atol=1e-6)
        votes = Counter(int(m[2]) for m in members)
        assert label == min(k for k, v in votes.items() if v == max(votes.values()))
