"""Dense all-pairs compositing: gsplat 1.4's rasterisation maths written as plainly as possible.

Every pixel looks at every projected Gaussian (depth-sorted, ties by index), with gsplat's rules: the
Gaussian must touch the pixel's ``tile_size`` tile, alpha is clamped to ``ALPHA_MAX``, alphas below
``ALPHA_MIN`` (or a negative ``sigma``) are skipped, and a pixel stops before the Gaussian that would bring
its transmittance to ``<= T_MIN``. Gradients come from autograd. Pixels are processed in chunks under
activation checkpointing so that memory stays bounded, but time is O(pixels x Gaussians): this is the
reference that tests and benchmarks hold the tile backend against, not something to train with.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from liftgs.render.binning import ALPHA_MAX, ALPHA_MIN, T_MIN, tile_rects

PAIRS_PER_CHUNK = 1 << 21
"""(pixels x Gaussians) pairs evaluated at once."""


def _composite_pixels(
    centres: Tensor,  # [P, 2] pixel centres
    tiles: Tensor,  # [P, 2] tile of each pixel
    means2d: Tensor,  # [N, 2] depth-sorted
    conics: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D]
    tile_lo: Tensor,  # [N, 2]
    tile_hi: Tensor,  # [N, 2]
) -> tuple[Tensor, Tensor]:
    """Composite colors [P, D] and final transmittance [P] of a set of pixels."""
    delta = means2d[None] - centres[:, None]  # [P, N, 2]
    dx, dy = delta.unbind(-1)
    a, b, c = conics.unbind(-1)
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    # exp(-sigma) for sigma > 20 is below ALPHA_MIN for any opacity: capping sigma changes no result but
    # keeps exp off its slow underflow path, so that timings against this reference are fair.
    alpha = torch.clamp_max(opacities * torch.exp(-sigma.clamp_max(20.0)), ALPHA_MAX)
    in_tile = ((tiles[:, None] >= tile_lo[None]) & (tiles[:, None] < tile_hi[None])).all(-1)
    alpha = torch.where(in_tile & (sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
    with torch.no_grad():
        composited = torch.cumprod(1.0 - alpha, dim=1) > T_MIN
    alpha = alpha * composited
    t_before = torch.cumprod(1.0 - alpha, dim=1) / (1.0 - alpha)
    return (alpha * t_before) @ colors, torch.prod(1.0 - alpha, dim=1)


def composite_dense(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    opacities: Tensor,  # [C, N]
    colors: Tensor,  # [C, N, D]
    depths: Tensor,  # [C, N]
    radii: Tensor,  # [C, N]
    width: int,
    height: int,
    tile_size: int,
    backgrounds: Tensor | None = None,  # [C, D]
) -> tuple[Tensor, Tensor]:
    """All-pairs compositing: ``(render_colors [C, H, W, D], render_alphas [C, H, W, 1])``."""
    C, N, D = colors.shape
    device, dtype = colors.device, colors.dtype
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    tile_lo, tile_hi = tile_rects(means2d, radii, tile_size, tiles_x, tiles_y)
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij"
    )
    pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)  # [H * W, 2] (x, y)
    centres, tiles = pixels.to(dtype) + 0.5, pixels // tile_size

    images, alphas = [], []
    for cam in range(C):
        order = torch.sort(depths[cam].detach(), stable=True).indices
        order = order[radii[cam, order] > 0]
        gaussians = (means2d[cam, order], conics[cam, order], opacities[cam, order], colors[cam, order])
        rects = (tile_lo[cam, order], tile_hi[cam, order])
        chunk = max(1, PAIRS_PER_CHUNK // max(1, order.numel()))
        color_parts, trans_parts = [], []
        for start in range(0, height * width, chunk):
            part = slice(start, start + chunk)
            color, trans = checkpoint(
                _composite_pixels, centres[part], tiles[part], *gaussians, *rects, use_reentrant=False
            )
            color_parts.append(color)
            trans_parts.append(trans)
        transmittance = torch.cat(trans_parts).reshape(height, width, 1)
        image = torch.cat(color_parts).reshape(height, width, D)
        if backgrounds is not None:
            image = image + transmittance * backgrounds[cam]
        images.append(image)
        alphas.append(1.0 - transmittance)
    return torch.stack(images), torch.stack(alphas)
