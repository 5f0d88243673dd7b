"""Per-scene training tensors at render resolution, built once per scene and kept in memory.

``SceneTensors.from_scene`` converts a ``liftgs.scene.Scene`` (numpy) into what training batches need:
the point cloud, every frame's world-to-camera matrix, intrinsics scaled to the render resolution
(H, W), the image (area-downsampled), the depth (nearest depth pixel, resampled through the depth
camera's own intrinsics) and the 2D instance map at twice the render resolution (so target masks can be
area-pooled into soft per-pixel coverage). Per-object pixel counts per frame let the sampler pick views
that see an expression's target.

The render-supervised path builds it with ``point_labels=False``: ``Scene.point_instance`` is then never
read and the tensors carry no 3D label. Only the 3D baseline asks for ``point_labels=True``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from liftgs.render import scale_intrinsics, viewmat_from_c2w
from liftgs.scene import NO_INSTANCE, Frame, PointFeatureSpace, Scene

Item = TypeVar("Item")

LABEL_UPSAMPLE = 2
"""Instance maps are kept at this multiple of the render resolution; masks are area-pooled from it."""


def _pixel_grid(
    K_from: np.ndarray, K_to: np.ndarray, hw_from: tuple[int, int], hw_to: tuple[int, int]
) -> Tensor:
    """grid_sample grid [1, h, w, 2]: for every pixel of the ``K_to`` image, the same ray's pixel in the
    ``K_from`` image (same camera centre and orientation, different intrinsics)."""
    h, w = hw_to
    v, u = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    x = (u - K_to[0, 2]) / K_to[0, 0]
    y = (v - K_to[1, 2]) / K_to[1, 1]
    u_from = K_from[0, 0] * x + K_from[0, 2]
    v_from = K_from[1, 1] * y + K_from[1, 2]
    grid = np.stack([2.0 * u_from / hw_from[1] - 1.0, 2.0 * v_from / hw_from[0] - 1.0], axis=-1)
    return torch.as_tensor(grid, dtype=torch.float32)[None]


def resample_depth(frame: Frame, K_render: np.ndarray, hw: tuple[int, int]) -> Tensor:  # [h, w]
    """The frame's depth seen through the render camera ``K_render`` (nearest depth pixel; 0 outside)."""
    depth = torch.as_tensor(np.asarray(frame.depth, dtype=np.float32))[None, None]
    grid = _pixel_grid(frame.depth_intrinsics, K_render, tuple(depth.shape[-2:]), hw)
    return F.grid_sample(depth, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0]


@dataclass
class SceneTensors:
    """One scene's training tensors (F frames, render resolution H x W).

    Attributes:
        scene_id: the scene's id.
        points: [P, 3] float32 world xyz (metres).
        colors: [P, 3] float32 RGB in [0, 1].
        viewmats: [F, 4, 4] float32 world-to-camera (OpenCV).
        Ks: [F, 3, 3] float32 intrinsics at H x W.
        images: [F, H, W, 3] float32 in [0, 1] (area-downsampled).
        depths: [F, H, W] float32 metres, 0 = none.
        instance: [F, 2H, 2W] int16 object ids (-1 = none), or None when the frames have no 2D labels.
        object_pixels: object id -> [F] int64 pixel count in ``instance`` (empty without 2D labels).
        object_names: object id -> category name.
        point_instance: [P] int64 object id per point (3D labels), None unless built with point_labels.
        point_features: [P, C] float16 lifted per-point features (``Scene.point_features``), or None.
        point_feature_space: ``Scene.point_feature_space``.
    """

    scene_id: str
    points: Tensor
    colors: Tensor
    viewmats: Tensor
    Ks: Tensor
    images: Tensor
    depths: Tensor
    instance: Tensor | None
    object_pixels: dict[int, Tensor]
    object_names: dict[int, str]
    point_instance: Tensor | None = None
    point_features: Tensor | None = None
    point_feature_space: PointFeatureSpace | None = None

    @property
    def num_frames(self) -> int:
        return int(self.viewmats.shape[0])

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    @classmethod
    def from_scene(cls, scene: Scene, height: int, width: int, point_labels: bool = False) -> SceneTensors:
        """Builds the tensors; reads ``scene.point_instance`` only when ``point_labels`` is True.

        Raises:
            ValueError: the scene has no frames, or frames disagree on having 2D instance maps.
        """
        if not scene.frames:
            raise ValueError(f"scene {scene.scene_id}: has no frames to render-supervise with")
        if scene.objects and max(scene.objects) > torch.iinfo(torch.int16).max:
            raise ValueError(f"scene {scene.scene_id}: object ids above 32767 do not fit int16 label maps")
        labelled = [frame.instance is not None for frame in scene.frames]
        if any(labelled) and not all(labelled):
            raise ValueError(f"scene {scene.scene_id}: only some frames have 2D instance maps")
        hw, label_hw = (height, width), (LABEL_UPSAMPLE * height, LABEL_UPSAMPLE * width)
        Ks, viewmats, images, depths, instances = [], [], [], [], []
        for frame in scene.frames:
            K = scale_intrinsics(np.asarray(frame.K, np.float64), width / frame.width, height / frame.height)
            K = K.numpy()
            Ks.append(K)
            viewmats.append(viewmat_from_c2w(np.asarray(frame.c2w, dtype=np.float64)).numpy())
            image = torch.tensor(frame.image).permute(2, 0, 1)[None].float() / 255.0
            images.append(F.interpolate(image, size=hw, mode="area")[0].permute(1, 2, 0))
            depths.append(resample_depth(frame, K, hw))
            if frame.instance is not None:
                instances.append(resample_labels(frame.instance, label_hw))
        instance = torch.stack(instances) if instances else None
        return cls(
            scene_id=scene.scene_id,
            points=torch.as_tensor(scene.points, dtype=torch.float32),
            colors=torch.as_tensor(scene.colors, dtype=torch.float32),
            viewmats=torch.as_tensor(np.stack(viewmats), dtype=torch.float32),
            Ks=torch.as_tensor(np.stack(Ks), dtype=torch.float32),
            images=torch.stack(images),
            depths=torch.stack(depths),
            instance=instance,
            object_pixels=_object_pixels(instance),
            object_names={object_id: obj.name for object_id, obj in scene.objects.items()},
            point_instance=(
                torch.as_tensor(np.asarray(scene.point_instance), dtype=torch.int64) if point_labels else None
            ),
            point_features=(
                None
                if scene.point_features is None
                else torch.as_tensor(np.asarray(scene.point_features), dtype=torch.float16)
            ),
            point_feature_space=scene.point_feature_space,
        )

    def target_masks(self, object_ids: list[int], frame_ids: list[int]) -> Tensor:  # [M, V, H, W] float
        """Soft 2D masks (fraction of each render pixel covered by the object) in the chosen frames."""
        if self.instance is None:
            raise ValueError(f"scene {self.scene_id}: has no 2D instance maps to build target masks from")
        labels = self.instance[frame_ids]  # [V, 2H, 2W]
        hits = torch.stack([(labels == object_id).float() for object_id in object_ids])  # [M, V, 2H, 2W]
        return label_coverage(hits.flatten(0, 1)).unflatten(0, hits.shape[:2])


def resample_labels(labels: np.ndarray, label_hw: tuple[int, int]) -> Tensor:  # [h, w] int16
    """An [H, W] integer id map (instances, segments; -1 = none) resampled to ``label_hw`` (nearest)."""
    ids = torch.as_tensor(np.asarray(labels, dtype=np.int64))[None, None].float()
    return F.interpolate(ids, size=label_hw, mode="nearest-exact")[0, 0].short()


def label_coverage(values: Tensor) -> Tensor:  # [N, 2H, 2W] -> [N, H, W]
    """Render-resolution means of values kept at ``LABEL_UPSAMPLE`` x the render resolution (a binary map
    becomes the fraction of each render pixel it covers)."""
    return F.avg_pool2d(values.float()[:, None], LABEL_UPSAMPLE)[:, 0]


def _object_pixels(instance: Tensor | None) -> dict[int, Tensor]:
    """object id -> [F] pixel counts per frame (objects absent from every frame are left out)."""
    if instance is None:
        return {}
    counts: dict[int, Tensor] = {}
    for object_id in torch.unique(instance).tolist():
        if object_id != NO_INSTANCE:
            counts[int(object_id)] = (instance == object_id).flatten(1).sum(-1)
    return counts


class SceneTensorCache(Generic[Item]):
    """LRU cache of per-scene items (``SceneTensors``, ``PseudoScene``) keyed by scene id, built on first use
    by ``build(scene_id)``."""

    def __init__(self, build: Callable[[str], Item], capacity: int = 512) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._build = build
        self._capacity = capacity
        self._items: OrderedDict[str, Item] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, scene_id: str) -> Item:
        if scene_id in self._items:
            self._items.move_to_end(scene_id)
            return self._items[scene_id]
        tensors = self._build(scene_id)
        self._items[scene_id] = tensors
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)
        return tensors
