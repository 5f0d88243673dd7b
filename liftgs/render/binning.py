"""Which Gaussians can touch which pixels: gsplat's tile rule, refined to small pixel blocks.

gsplat 1.4 lets a Gaussian contribute to every pixel of every ``tile_size`` tile that its radius box
touches (``tile_rects``), and skips a Gaussian at a pixel where its alpha is below ``ALPHA_MIN``. The tile
backend exploits the second rule to bin at a finer granularity without changing a single value: a
Gaussian is listed for a ``block x block`` pixel block (``block`` divides ``tile_size``) only when the
block lies in one of its gsplat tiles *and* its pixel centres' rectangle meets the ``alpha >= ALPHA_MIN``
ellipse ``0.5 d^T conic d <= log(255 opacity)`` (first its bounding box, then the ellipse itself). Pixels
outside that ellipse would skip the Gaussian anyway.

Lists are sorted by (camera, block, depth), front to back, ties broken by Gaussian index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

ALPHA_MAX = 0.999
"""Alphas are clamped to this value (gsplat)."""
ALPHA_MIN = 1.0 / 255.0
"""A Gaussian whose alpha at a pixel is below this is skipped there (gsplat)."""
T_MIN = 1e-4
"""A pixel stops compositing before the Gaussian that would bring its transmittance to <= T_MIN (gsplat)."""

_SUPPORT_MARGIN = 1e-3
"""Relative + absolute (pixels) slack on the alpha-support box so that rounding never drops a pixel."""


def tile_rects(
    means2d: Tensor,  # [C, N, 2]
    radii: Tensor,  # [C, N]
    tile_size: int,
    tiles_x: int,
    tiles_y: int,
) -> tuple[Tensor, Tensor]:
    """gsplat's tile range of each Gaussian: ``(lo [C, N, 2], hi [C, N, 2])`` int64 tile coordinates
    (x, y), ``lo`` inclusive and ``hi`` exclusive, clamped to the tile grid."""
    tile_means = means2d.detach() / tile_size
    tile_radii = (radii / tile_size).to(tile_means.dtype)[..., None]
    limit = torch.tensor([tiles_x, tiles_y], device=means2d.device, dtype=tile_means.dtype)
    lo = torch.floor(tile_means - tile_radii).clamp(min=0).minimum(limit).long()
    hi = torch.ceil(tile_means + tile_radii).clamp(min=0).minimum(limit).long()
    return lo, hi


@dataclass(frozen=True)
class BlockBins:
    """Per-block, depth-sorted Gaussian lists for all cameras.

    Blocks are numbered camera-major, then row-major: ``block_id = (c * blocks_y + by) * blocks_x + bx``.

    Attributes:
        block: block edge in pixels.
        blocks_x, blocks_y: blocks per image row / column (the last ones may stick out of the image).
        gauss_ids: [M] int64 flat Gaussian index ``c * N + n`` of each (block, Gaussian) intersection.
        block_ids: [M] int64 block of each intersection; sorted, depth order within a block.
        starts: [C * blocks_y * blocks_x] int64 first intersection of each block.
        counts: [C * blocks_y * blocks_x] int64 number of intersections of each block.
    """

    block: int
    blocks_x: int
    blocks_y: int
    gauss_ids: Tensor
    block_ids: Tensor
    starts: Tensor
    counts: Tensor

    @property
    def num_intersections(self) -> int:
        return int(self.gauss_ids.shape[0])


def _support_level(opacities: Tensor) -> Tensor:
    """``level`` such that alpha >= ALPHA_MIN exactly where ``d^T conic d <= level`` (with rounding slack)."""
    return 2.0 * torch.log((opacities / ALPHA_MIN).clamp(min=1.0)) * (1 + _SUPPORT_MARGIN) + _SUPPORT_MARGIN


def _alpha_support_blocks(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    opacities: Tensor,  # [C, N]
    block: int,
    limit: Tensor,  # [2] blocks_x, blocks_y as floats
) -> tuple[Tensor, Tensor]:
    """Block range ``(lo, hi)`` [C, N, 2] (hi exclusive) whose pixel centres may see alpha >= ALPHA_MIN."""
    a, b, c = conics.unbind(-1)
    det = a * c - b * b
    var = torch.stack([c, a], dim=-1) / det[..., None]  # diagonal of the 2D covariance
    extent = torch.sqrt(_support_level(opacities)[..., None] * var) * (1 + _SUPPORT_MARGIN) + _SUPPORT_MARGIN
    extent = torch.where(det[..., None] > 0, extent, torch.full_like(extent, math.inf))
    # Pixel j (centre j + 0.5) is inside when mean - extent <= j + 0.5 <= mean + extent.
    first = torch.ceil(means2d - extent - 0.5)
    last = torch.floor(means2d + extent - 0.5)
    lo = torch.floor(first / block).clamp(min=0).minimum(limit)
    hi = (torch.floor(last / block) + 1).clamp(min=0).minimum(limit)
    return lo.nan_to_num(0).long(), hi.nan_to_num(0).long()


def _ellipse_meets_block(
    shape: Tensor,  # [M, 6] per pair: (a, b, c, level, -b / c, -b / a) of the Gaussian
    corner: Tensor,  # [M, 2] block's first pixel centre (x, y) minus the Gaussian's mean
    block: int,
) -> Tensor:
    """[M] False where the ellipse ``d^T conic d <= level`` misses the rectangle spanned by the block's
    pixel centres, i.e. the minimum of ``d^T conic d`` over the rectangle exceeds ``level``.

    That minimum lies on an edge that faces the mean (KKT), so two candidates suffice: the vertical edge
    nearest the mean in x and the horizontal edge nearest in y, each minimised in closed form (the 1D
    vertex clamped to the edge). When the mean's x lies within the rectangle, the "vertical edge" at
    x = 0 crosses the rectangle and only gives an upper bound, which the other candidate undercuts.
    """
    a, b, c, level, slope_y, slope_x = shape.unbind(-1)
    x_lo, y_lo = corner.unbind(-1)
    x_hi, y_hi = x_lo + (block - 1), y_lo + (block - 1)
    x_edge = torch.clamp(torch.zeros_like(x_lo), x_lo, x_hi)
    y_edge = torch.clamp(torch.zeros_like(y_lo), y_lo, y_hi)
    y_on_x_edge = torch.clamp(slope_y * x_edge, y_lo, y_hi)
    x_on_y_edge = torch.clamp(slope_x * y_edge, x_lo, x_hi)
    first = (a * x_edge + 2 * b * y_on_x_edge) * x_edge + c * y_on_x_edge * y_on_x_edge
    second = (a * x_on_y_edge + 2 * b * y_edge) * x_on_y_edge + c * y_edge * y_edge
    return ~(torch.minimum(first, second) > level)  # NaN (degenerate conic) keeps the pair


@torch.no_grad()
def bin_gaussians(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    opacities: Tensor,  # [C, N]
    depths: Tensor,  # [C, N]
    radii: Tensor,  # [C, N]
    width: int,
    height: int,
    tile_size: int,
    block: int,
) -> BlockBins:
    """Lists, for each pixel block of each camera, the Gaussians that may contribute there, front to back."""
    if tile_size % block:
        raise ValueError(f"block ({block}) must divide tile_size ({tile_size})")
    C, N = radii.shape
    device = means2d.device
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    per_tile = tile_size // block
    blocks_x, blocks_y = math.ceil(width / block), math.ceil(height / block)
    limit = torch.tensor([blocks_x, blocks_y], device=device, dtype=means2d.dtype)

    tile_lo, tile_hi = tile_rects(means2d, radii, tile_size, tiles_x, tiles_y)
    alpha_lo, alpha_hi = _alpha_support_blocks(
        means2d.detach(), conics.detach(), opacities.detach(), block, limit
    )
    lo = torch.maximum(tile_lo * per_tile, alpha_lo)
    hi = torch.minimum(tile_hi * per_tile, alpha_hi).minimum(limit.long())
    size = (hi - lo).clamp(min=0)
    counts = size[..., 0] * size[..., 1] * ((radii > 0) & (opacities >= ALPHA_MIN))  # [C, N]

    # Enumerate (Gaussian, block) pairs with Gaussians in depth order, then stable-sort by block.
    order = torch.sort(depths.detach(), dim=1, stable=True).indices  # [C, N]
    flat = (order + torch.arange(C, device=device)[:, None] * N).reshape(-1)
    counts = counts.reshape(-1).index_select(0, flat)
    total = int(counts.sum())
    gauss = torch.repeat_interleave(flat, counts, output_size=total)
    first = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts, output_size=total)
    local = torch.arange(total, device=device) - first
    first_block = torch.cat([lo, size[..., :1]], dim=-1).reshape(-1, 3).index_select(0, gauss)
    corner_x, corner_y, width_blocks = first_block.unbind(-1)
    bx = corner_x + local % width_blocks
    by = corner_y + local // width_blocks
    a, b, c = conics.detach().unbind(-1)
    shape = torch.stack([a, b, c, _support_level(opacities.detach()), -b / c, -b / a], dim=-1)
    pair_shape = shape.reshape(-1, 6).index_select(0, gauss)
    pair_means = means2d.detach().reshape(-1, 2).index_select(0, gauss)
    corner = torch.stack([bx, by], dim=-1).to(pair_means.dtype) * block + 0.5 - pair_means
    meets = _ellipse_meets_block(pair_shape, corner, block)
    kept = torch.nonzero(meets).squeeze(1)
    gauss, bx, by = gauss.index_select(0, kept), bx.index_select(0, kept), by.index_select(0, kept)
    keys = (gauss // N * blocks_y + by) * blocks_x + bx
    keys, perm = torch.sort(keys, stable=True)

    num_blocks = C * blocks_y * blocks_x
    block_counts = torch.bincount(keys, minlength=num_blocks)
    return BlockBins(
        block=block,
        blocks_x=blocks_x,
        blocks_y=blocks_y,
        gauss_ids=gauss.index_select(0, perm),
        block_ids=keys,
        starts=torch.cumsum(block_counts, 0) - block_counts,
        counts=block_counts,
    )
