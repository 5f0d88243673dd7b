"""Render predicted Gaussians, their RGB, expected depth, features and mask probabilities, into views.

Every quantity rides as a color channel of ONE ``liftgs.render.rasterize`` call per scene: per-Gaussian
mask probabilities are the sigmoid of the per-point mask logits gathered through
``Gaussians.point_index``, for all decoder layers, texts and queries at once, so the rendered mask of a
pixel is the alpha-composited probability of the Gaussians it sees (background 0 = "not the object").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from liftgs.losses.targets import Views
from liftgs.model.types import Gaussians


@dataclass
class RenderedViews:
    """What the predicted Gaussians look like from V views (H x W).

    Attributes:
        rgb: [V, H, W, 3] composited color (black background).
        depth: [V, H, W] expected depth in metres (alpha-normalised, gsplat's "ED").
        alpha: [V, H, W] accumulated opacity.
        features: [V, H, W, F] rendered Gaussian features, or None when the Gaussians have none.
        masks: [L, B, Q, V, H, W] rendered mask probabilities (decoder layers x texts x queries), or None.
    """

    rgb: Tensor  # [V, H, W, 3]
    depth: Tensor  # [V, H, W]
    alpha: Tensor  # [V, H, W]
    features: Tensor | None  # [V, H, W, F]
    masks: Tensor | None  # [L, B, Q, V, H, W]


def render_views(
    gaussians: Gaussians,
    views: Views,
    mask_logits: Tensor | None = None,  # [L, B, Q, Pv] per-point logits, or None for RGB/depth only
    backend: str = "auto",
) -> RenderedViews:
    """Renders RGB, expected depth, features and (optionally) mask probabilities in one rasterize call."""
    from liftgs.render import rasterize

    channels = [gaussians.colors]
    feature_dim = 0 if gaussians.features is None else int(gaussians.features.shape[-1])
    if feature_dim:
        channels.append(gaussians.features)
    mask_shape: tuple[int, ...] = ()
    if mask_logits is not None:
        mask_shape = tuple(mask_logits.shape[:-1])  # (L, B, Q)
        per_gaussian = gaussians.take(torch.sigmoid(mask_logits), dim=-1)  # [L, B, Q, G]
        channels.append(per_gaussian.reshape(-1, len(gaussians)).T)  # [G, L*B*Q]
    colors, alphas, _ = rasterize(
        means=gaussians.means,
        quats=gaussians.quats,
        scales=gaussians.scales,
        opacities=gaussians.opacities,
        colors=torch.cat(channels, dim=-1),
        viewmats=views.viewmats,
        Ks=views.Ks,
        width=views.width,
        height=views.height,
        render_mode="RGB+ED",
        backend=backend,
    )  # colors [V, H, W, 3 + F + L*B*Q + 1]
    masks = None
    if mask_logits is not None:
        flat = colors[..., 3 + feature_dim : -1]  # [V, H, W, L*B*Q]
        masks = flat.permute(3, 0, 1, 2).reshape(*mask_shape, *flat.shape[:3])
    return RenderedViews(
        rgb=colors[..., :3],
        depth=colors[..., -1],
        alpha=alphas[..., 0],
        features=colors[..., 3 : 3 + feature_dim] if feature_dim else None,
        masks=masks,
    )
