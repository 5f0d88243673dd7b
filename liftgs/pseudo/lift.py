"""Lifting 2D pseudo-label embeddings onto a scene's points: the encoder's optional per-point input features.

Locate 3D featurises its point clouds with 2D foundation features before the 3D encoder sees them
(ConceptFusion-style lifting). ``lift_segment_embeddings`` does that with pseudo-labels
(``liftgs.pseudo.segments``): every point is projected into every labelled frame; where the frame's depth
confirms the point is the visible surface (``|z - depth| <= depth_tolerance``) and a segment covers the
pixel, the point collects that segment's embedding. A point's feature is the normalised mean of what it
collected (zeros when no frame saw it inside a segment), mapped to the encoder's width by a fixed random
projection (``liftgs.model.projection.feature_projection``).

The file they are stored in is the data layer's (``liftgs.data.point_features``); ``liftgs lift-features``
(``liftgs.pseudo.lift_dataset``) writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import sparse

from liftgs.data.point_features import LiftedFeaturesError
from liftgs.model.projection import feature_projection
from liftgs.pseudo.segments import PseudoLabels
from liftgs.scene import Frame, Scene

DEFAULT_DIM = 32
"""Width of stored lifted features (the encoder's ``extra_channels``)."""
DEFAULT_DEPTH_TOLERANCE = 0.08
"""Metres between a point's camera depth and the frame's depth for the point to count as seen."""


def _visible_pixels(
    points: np.ndarray,  # [P, 3] world metres
    frame: Frame,
    label_shape: tuple[int, int],
    depth_tolerance: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(indices [M] of the points the frame sees as its visible surface, their flat pixel index [M] in a
    label map of ``label_shape`` whose pixels cover the color image)."""
    w2c = np.linalg.inv(np.asarray(frame.c2w, dtype=np.float64))
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    ahead = np.flatnonzero(z > 1e-6)
    cam, z = cam[ahead], z[ahead]

    def pixels(K: np.ndarray, shape: tuple[int, int], image_shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
        sx, sy = shape[1] / image_shape[1], shape[0] / image_shape[0]
        u = np.floor((K[0, 0] * cam[:, 0] / z + K[0, 2]) * sx).astype(np.int64)
        v = np.floor((K[1, 1] * cam[:, 1] / z + K[1, 2]) * sy).astype(np.int64)
        return u, v, (u >= 0) & (u < shape[1]) & (v >= 0) & (v < shape[0])

    depth = np.asarray(frame.depth)
    du, dv, in_depth = pixels(np.asarray(frame.depth_intrinsics), depth.shape, depth.shape)
    lu, lv, in_label = pixels(np.asarray(frame.K), label_shape, (frame.height, frame.width))
    seen = np.zeros(len(z), dtype=bool)
    measured = depth[dv[in_depth], du[in_depth]]
    seen[in_depth] = (measured > 0) & (np.abs(measured - z[in_depth]) <= depth_tolerance)
    keep = seen & in_label
    return ahead[keep], lv[keep] * label_shape[1] + lu[keep]


def lift_segment_embeddings(
    points: np.ndarray,  # [P, 3] world metres
    frames: Sequence[Frame],
    labels: Sequence[PseudoLabels | None],  # one per frame; None = the frame has no labels
    depth_tolerance: float = DEFAULT_DEPTH_TOLERANCE,
) -> tuple[np.ndarray, np.ndarray]:
    """Per point, the L2-normalised mean of the embeddings of the segments it is seen in.

    Returns:
        features: [P, D] float32 (zero rows for points no labelled frame sees inside a segment).
        views: [P] int32 number of frames whose segments the point was seen in.

    Raises:
        LiftedFeaturesError: frames and labels differ in number, or embeddings differ in width.
    """
    if len(frames) != len(labels):
        raise LiftedFeaturesError(f"{len(frames)} frames but {len(labels)} label sets")
    widths = {lab.embedding_dim for lab in labels if lab is not None}
    if len(widths) > 1:
        raise LiftedFeaturesError(f"segment embeddings of different widths {sorted(widths)}")
    dim = widths.pop() if widths else 0
    points = np.asarray(points, dtype=np.float64)
    rows, cols, tables = [], [], []
    offset = 0
    for frame, lab in zip(frames, labels, strict=True):
        if lab is None or lab.num_segments == 0:
            continue
        index, pixel = _visible_pixels(points, frame, lab.segment_map.shape, depth_tolerance)
        segment = lab.segment_map.reshape(-1)[pixel]
        inside = segment >= 0
        rows.append(index[inside])
        cols.append(segment[inside] + offset)
        tables.append(lab.embeddings)
        offset += lab.num_segments
    if not tables:
        return np.zeros((len(points), dim), np.float32), np.zeros(len(points), np.int32)
    row, col = np.concatenate(rows), np.concatenate(cols)
    hits = sparse.csr_matrix((np.ones(len(row), np.float32), (row, col)), shape=(len(points), offset))
    sums = np.asarray(hits @ np.concatenate(tables).astype(np.float32))
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    features = np.where(norms > 0, sums / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    views = np.bincount(row, minlength=len(points)).astype(np.int32)  # a point hits one segment per frame
    return features, views


def project_features(features: np.ndarray, dim: int, seed: int = 0) -> np.ndarray:
    """[P, D] -> [P, dim] float32 through ``feature_projection`` (zero rows stay zero)."""
    projection = feature_projection(features.shape[1], dim, seed)
    if projection is None:
        raise LiftedFeaturesError("dim must be >= 1")
    return features @ projection.numpy()


def lift_scene(
    scene: Scene,
    labels_for: Callable[[Frame], PseudoLabels | None],
    dim: int = DEFAULT_DIM,
    seed: int = 0,
    depth_tolerance: float = DEFAULT_DEPTH_TOLERANCE,
) -> tuple[np.ndarray, dict]:
    """The scene's lifted features [P, dim] and their meta (frames labelled, points seen)."""
    labels = [labels_for(frame) for frame in scene.frames]
    features, views = lift_segment_embeddings(scene.points, scene.frames, labels, depth_tolerance)
    if features.shape[1] == 0:
        raise LiftedFeaturesError(f"scene {scene.scene_id}: no frame has pseudo-labels to lift")
    meta = {
        "embedding_dim": int(features.shape[1]),
        "dim": dim,
        "projection_seed": seed,
        "depth_tolerance": depth_tolerance,
        "frames_labelled": sum(lab is not None for lab in labels),
        "points_seen": int((views > 0).sum()),
        "points": int(len(views)),
    }
    return project_features(features, dim, seed), meta
