"""A sensor-like camera trajectory through a synthetic room.

The camera walks once around the room on its outline inset towards the middle (skipping spots that stand
in furniture), at 1.2-1.7 m height (a hand-held sensor bobbing), and looks into the room. Every object is
the look-at target of one view (assigned with Hungarian matching to views at a comfortable distance);
the other views look at the middle of the furniture. Poses are OpenCV camera-to-world.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from liftgs.data.synthetic.geometry import perimeter_samples, points_in_polygon
from liftgs.data.synthetic.layout import Layout

HEIGHT_RANGE = (1.2, 1.7)
_INSET = 0.7  # metres from the walls to the walking loop
_SPACING = 0.05  # candidate spacing along the loop
_OBJECT_MARGIN = 0.25  # the camera keeps this far from any floor object's footprint
_PREFERRED_DISTANCE = 2.2  # metres from camera to the object a view is aimed at


def intrinsics(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """[3, 3] pinhole K with square pixels and the principal point at the image centre."""
    f = 0.5 * width / np.tan(np.deg2rad(hfov_deg) / 2)
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[4, 4] OpenCV camera-to-world at ``eye`` looking at ``target`` (world z up, no roll)."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([right, down, forward], axis=1)
    c2w[:3, 3] = eye
    return c2w


def _walking_loop(layout: Layout) -> np.ndarray:
    """[M, 2] candidate camera positions along the outline inset by ``_INSET``, away from furniture."""
    room = layout.room
    normals = room.inward_normals()
    # For a rectilinear outline, moving a vertex along the sum of its two edges' inward normals insets it.
    inset = room.polygon + _INSET * (normals + np.roll(normals, 1, axis=0))
    candidates = perimeter_samples(inset, _SPACING)
    free = points_in_polygon(candidates, room.polygon) & (room.wall_distance(candidates) > _INSET * 0.9)
    for obj in layout.objects:
        if obj.support_id is None:
            free &= ~points_in_polygon(candidates, obj.footprint(grow=_OBJECT_MARGIN))
    return candidates[free]


def camera_path(layout: Layout, rng: np.random.Generator, num_views: int) -> np.ndarray:
    """[num_views, 4, 4] OpenCV camera-to-world poses; raises ValueError if the room has no walkable loop."""
    loop = _walking_loop(layout)
    if len(loop) < num_views:
        raise ValueError(f"only {len(loop)} free camera spots for {num_views} views")
    start = rng.integers(len(loop))
    picks = (start + np.round(np.arange(num_views) * len(loop) / num_views).astype(int)) % len(loop)
    phase = rng.uniform(0, 2 * np.pi)
    low, high = HEIGHT_RANGE
    heights = low + (high - low) * (
        0.5 + 0.5 * np.sin(phase + 2 * np.pi * 1.5 * np.arange(num_views) / num_views)
    )
    eyes = np.concatenate([loop[picks], heights[:, None]], axis=1)

    centers = np.array([(o.box[:3] + o.box[3:]) / 2 for o in layout.objects])
    targets = np.tile(centers.mean(axis=0), (num_views, 1)) + rng.normal(0, 0.3, size=(num_views, 3))
    targets[:, 2] = rng.uniform(0.3, 0.8, size=num_views)
    distance = np.linalg.norm(centers[:, None, :2] - eyes[None, :, :2], axis=2)  # [objects, views]
    rows, cols = linear_sum_assignment(np.abs(distance - _PREFERRED_DISTANCE))
    targets[cols] = centers[rows]
    return np.stack([look_at(eye, target) for eye, target in zip(eyes, targets, strict=True)])
