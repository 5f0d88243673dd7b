"""What the losses compare against: posed views at render resolution and per-expression targets.

Both are plain tensor containers built by ``liftgs.train``. Conventions follow ``liftgs.scene``: world
z-up metres, ``viewmats`` are world-to-camera with OpenCV axes (``inverse(c2w)``), ``Ks`` in pixels of the
render resolution (pixel centres at integer + 0.5), depth in metres with 0 = no measurement.

The render-supervised path builds ``ExpressionTargets(kind="views")`` from 2D instance masks only; the
3D-supervised baseline builds ``kind="points"`` masks over the scene's source points from
``Scene.point_instance``. Nothing else in a batch carries 3D labels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor


@dataclass
class Views:
    """V posed views of one scene at render resolution (H, W).

    Attributes:
        viewmats: [V, 4, 4] float32 world-to-camera (OpenCV axes).
        Ks: [V, 3, 3] float32 intrinsics in pixels of the H x W render.
        images: [V, H, W, 3] float32 RGB in [0, 1].
        depths: [V, H, W] float32 metres, 0 = no measurement.
        features: [V, H, W, F] float32 2D feature maps for distillation, or None.
    """

    viewmats: Tensor  # [V, 4, 4]
    Ks: Tensor  # [V, 3, 3]
    images: Tensor  # [V, H, W, 3]
    depths: Tensor  # [V, H, W]
    features: Tensor | None = None  # [V, H, W, F]

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    def __len__(self) -> int:
        return int(self.viewmats.shape[0])

    def to(self, device: torch.device | str) -> Views:
        return replace(
            self,
            viewmats=self.viewmats.to(device),
            Ks=self.Ks.to(device),
            images=self.images.to(device),
            depths=self.depths.to(device),
            features=None if self.features is None else self.features.to(device),
        )


@dataclass
class ExpressionTargets:
    """The objects E texts of one scene refer to.

    Attributes:
        kind: "views" (masks are 2D, per sampled view) or "points" (masks over the scene's source points).
        masks: per text, [M, V, H, W] bool (kind "views") or [M, P] bool (kind "points"), one row per target
            object (M = 1 for a referring expression; pseudo-labels may have many).
        names: per text, the M target object names (positives of the token alignment loss).
        anchor_names: per text, the names of the other objects it relates its target to ("the chair closest
            to *the door*"; the anchor-word loss), or None when no annotation says.
        relations: per text, the kind of reference that singles its target out (``Expression.relation``:
            "closest", "color", ...; the relation loss), None for a text whose annotation does not say; or
            None for the whole batch.
    """

    kind: Literal["views", "points"]
    masks: list[Tensor]
    names: list[list[str]]
    anchor_names: list[list[str]] | None = None
    relations: list[str | None] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("views", "points"):
            raise ValueError(f"kind: expected 'views' or 'points', got {self.kind!r}")
        if len(self.masks) != len(self.names):
            raise ValueError(f"masks: {len(self.masks)} entries but names has {len(self.names)}")
        if self.anchor_names is not None and len(self.anchor_names) != len(self.names):
            raise ValueError(f"anchor_names: {len(self.anchor_names)} entries for {len(self.names)} texts")
        if self.relations is not None and len(self.relations) != len(self.names):
            raise ValueError(f"relations: {len(self.relations)} entries for {len(self.names)} texts")
        expected_dims = 4 if self.kind == "views" else 2
        for index, (mask, names) in enumerate(zip(self.masks, self.names, strict=True)):
            if mask.dim() != expected_dims or mask.shape[0] != len(names):
                raise ValueError(
                    f"masks[{index}]: expected [M={len(names)}, ...] with {expected_dims} dims for kind "
                    f"{self.kind!r}, got shape {tuple(mask.shape)}"
                )

    def __len__(self) -> int:
        return len(self.masks)

    def to(self, device: torch.device | str) -> ExpressionTargets:
        return replace(self, masks=[mask.to(device) for mask in self.masks])
