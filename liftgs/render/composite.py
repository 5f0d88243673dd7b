"""Front-to-back alpha compositing over pixel blocks, vectorised in chunks, with an analytic backward.

The maths is gsplat 1.4's (``rasterize_to_pixels_fwd.cu``): at pixel centre ``p`` a Gaussian has
``sigma = 0.5 d^T conic d`` with ``d = mean2d - p``, ``alpha = min(ALPHA_MAX, opacity exp(-sigma))``;
it is skipped when ``alpha < ALPHA_MIN``; a pixel stops before the Gaussian that would bring its
transmittance to ``<= T_MIN``; ``color = sum_i alpha_i T_i c_i + T_final background`` and
``render_alpha = 1 - T_final``.

How it is vectorised: every (block, Gaussian) intersection gets the 6 coefficients of its log-alpha as
a quadratic in block-local pixel coordinates (``log_alpha = [u^2, uv, v^2, u, v, 1] . coef``), so the
alphas of a chunk of K list entries for A blocks of P pixels are one matmul ``[P, 6] @ [A, 6, K]``.
All blocks advance through their lists together, K entries per step (K grows as blocks finish);
blocks whose pixels are all saturated, or whose list is exhausted, drop out.

The backward replays the same sweep (recomputing alphas, never storing anything per pixel and
Gaussian) and uses the front-to-back form of the 3DGS gradient:
``dL/dalpha_i = T_i <c_i, g> - (<C_final - C_{<=i}, g> + T_final (<bg, g> - g_alpha)) / (1 - alpha_i)``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from liftgs.render.binning import ALPHA_MAX, ALPHA_MIN, T_MIN, BlockBins

CHUNK_ELEMENTS = 1 << 20
"""Upper bound on (pixel, list entry) pairs processed at once: bounds the temporary memory (about six
tensors of this size, ~25 MB in float32) independently of the numbers of Gaussians and pixels."""
MIN_STEP_ELEMENTS = 1 << 16
"""When few blocks remain active, each step takes more list entries so that it still does this much work."""
K_BASE, K_MAX = 32, 1024
"""List entries per block and step (powers of two): K_BASE while many blocks are active, up to K_MAX
when few are; blocks with fewer entries left take the next power of two above their count."""
_PAD_LOG_ALPHA = -1e4
"""Log-alpha of the padding entry that fills ragged chunks (alpha = 0)."""
_LOG_ALPHA_FLOOR = math.log(ALPHA_MIN) - 1.0
"""Log-alphas are raised to this before ``exp``: the result is still below ALPHA_MIN (so skipped), and
``exp`` avoids its underflow path, which is ~30x slower on CPU."""


def pixel_features(block: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """[P, 6] monomials ``(u^2, uv, v^2, u, v, 1)`` of the block's pixel centres relative to the block
    centre, row-major (P = block^2)."""
    offsets = torch.arange(block, dtype=dtype, device=device) + 0.5 - block / 2
    v, u = torch.meshgrid(offsets, offsets, indexing="ij")
    u, v = u.reshape(-1), v.reshape(-1)
    return torch.stack([u * u, u * v, v * v, u, v, torch.ones_like(u)], dim=-1)


def _item_parameters(gaussians: Tensor, bins: BlockBins) -> tuple[Tensor, ...]:
    """Per intersection: ``(mu, mv, a, b, c, opacity)`` [M] each, the mean relative to its block's centre."""
    params = gaussians.index_select(0, bins.gauss_ids)  # [M, 6]
    local_block = bins.block_ids % (bins.blocks_x * bins.blocks_y)
    centre_x = (local_block % bins.blocks_x).to(params.dtype) * bins.block + bins.block / 2
    centre_y = (local_block // bins.blocks_x).to(params.dtype) * bins.block + bins.block / 2
    mx, my, a, b, c, opacity = params.unbind(-1)
    return mx - centre_x, my - centre_y, a, b, c, opacity


def intersection_coefficients(gaussians: Tensor, bins: BlockBins) -> Tensor:
    """[M + 1, 6] log-alpha coefficients of each intersection in its block's frame (last row: padding).

    ``gaussians`` [C * N, 6] holds ``(mean x, mean y, conic a, b, c, opacity)``. Then
    ``log_alpha(u, v) = log(opacity) - sigma`` expanded in ``(u^2, uv, v^2, u, v, 1)``, where ``(u, v)``
    is the pixel centre minus the block centre.
    """
    mu, mv, a, b, c, opacity = _item_parameters(gaussians, bins)
    lin_u = a * mu + b * mv
    lin_v = b * mu + c * mv
    constant = torch.log(opacity) - 0.5 * (mu * lin_u + mv * lin_v)
    coef = torch.stack([-0.5 * a, -b, -0.5 * c, lin_u, lin_v, constant], dim=-1)
    pad = coef.new_tensor([[0.0, 0.0, 0.0, 0.0, 0.0, _PAD_LOG_ALPHA]])
    return torch.cat([coef, pad], dim=0)


def intersection_coefficients_backward(gaussians: Tensor, bins: BlockBins, grad_coef: Tensor) -> Tensor:
    """Chain rule of ``intersection_coefficients``: [M + 1, 6] coefficient gradients -> [C * N, 6]."""
    mu, mv, a, b, c, opacity = _item_parameters(gaussians, bins)
    k0, k1, k2, k3, k4, k5 = grad_coef[:-1].unbind(-1)
    lin_u = a * mu + b * mv
    lin_v = b * mu + c * mv
    per_item = torch.stack(
        [
            a * k3 + b * k4 - lin_u * k5,
            b * k3 + c * k4 - lin_v * k5,
            -0.5 * k0 + mu * k3 - 0.5 * mu * mu * k5,
            -k1 + mv * k3 + mu * k4 - mu * mv * k5,
            -0.5 * k2 + mv * k4 - 0.5 * mv * mv * k5,
            k5 / opacity,
        ],
        dim=-1,
    )
    return torch.zeros_like(gaussians).index_add_(0, bins.gauss_ids, per_item)


class _Workspace:
    """Reusable flat buffers, so that chunks do not allocate (and page-fault) fresh memory each time."""

    def __init__(self, dtype: torch.dtype, device: torch.device):
        self.dtype, self.device = dtype, device
        self.buffers: dict[str, Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> Tensor:
        size = math.prod(shape)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.numel() < size:
            buffer = self.buffers[name] = torch.empty(size, dtype=self.dtype, device=self.device)
        return buffer[:size].view(shape)


_THREAD_STATE = threading.local()


def _workspace(dtype: torch.dtype, device: torch.device) -> _Workspace:
    """This thread's workspace for (dtype, device), kept between calls (about 6 x CHUNK_ELEMENTS values).
    Forward and backward sweeps never interleave within a thread, so they can share it."""
    workspaces = _THREAD_STATE.__dict__.setdefault("workspaces", {})
    key = (dtype, device)
    if key not in workspaces:
        workspaces[key] = _Workspace(dtype, device)
    return workspaces[key]


@dataclass
class _Chunk:
    """K consecutive list entries of A blocks (P pixels each); its tensors live in the workspace and are
    overwritten by the next chunk.

    Attributes:
        blocks: [A] block ids.
        items: [A, K] intersection ids (M = padding).
        alpha: [A, P, K] alphas after the clamp and the ALPHA_MIN skip (0 = skipped).
        trans: [A, P, K + 1] transmittance: ``trans[..., i]`` in front of entry i, ``trans[..., i + 1]``
            behind it; constant from a pixel's T_MIN stop on (0 for pixels stopped in earlier chunks).
        weight: [A, P, K] ``alpha_i T_i`` of composited entries, else 0.
    """

    blocks: Tensor
    items: Tensor
    alpha: Tensor
    trans: Tensor
    weight: Tensor


def _freeze_stopped(trans: Tensor, stopping: Tensor) -> None:
    """In place: in the rows [..., K + 1] of ``trans`` flagged by ``stopping`` [...], raise the values
    <= T_MIN (from the pixel's stop on) to the last value above T_MIN, so those entries get zero weight."""
    rows = torch.nonzero(stopping.reshape(-1)).squeeze(1)
    if rows.numel():
        values = trans.view(-1, trans.shape[-1]).index_select(0, rows)
        last_kept = (values > T_MIN).sum(-1, keepdim=True) - 1  # >= 0: a stopping row starts above T_MIN
        floor = torch.zeros(stopping.numel(), dtype=trans.dtype, device=trans.device)
        floor.index_copy_(0, rows, values.gather(-1, last_kept).squeeze(-1))
        trans.clamp_min_(floor.view(stopping.shape + (1,)))


def _sweep(
    bins: BlockBins, coef: Tensor, features: Tensor, transmittance: Tensor, clamp: bool, work: _Workspace
) -> Iterator[_Chunk]:
    """Walks all block lists front to back; updates ``transmittance`` [num_blocks, P] in place (0 once a
    pixel has stopped). ``clamp=False`` skips the ALPHA_MAX clamp when no opacity exceeds it."""
    pixels = features.shape[0]
    position = 0
    active = torch.nonzero(bins.counts > 0).squeeze(1)
    while active.numel():
        wanted = max(K_BASE, MIN_STEP_ELEMENTS // (active.numel() * pixels))
        step = min(K_MAX, 1 << (wanted - 1).bit_length())  # a power of two, like every chunk width
        # Blocks with fewer entries left take the next power of two >= their count, not the full step;
        # width classes too small to be worth a chunk of their own join the next wider one.
        left = (bins.counts[active] - position).clamp(max=step)
        widths = torch.exp2(torch.ceil(torch.log2(left.to(torch.float64)))).long()
        classes = torch.unique(widths).tolist()
        pending = []
        for k in classes:
            pending.append(active[widths == k])
            if k < classes[-1] and sum(len(p) for p in pending) * k * pixels < MIN_STEP_ELEMENTS:
                continue
            steps = torch.arange(position, position + k, device=coef.device)
            for blocks in torch.cat(pending).split(max(1, CHUNK_ELEMENTS // (k * pixels))):
                yield _chunk(bins, coef, features, transmittance, clamp, work, blocks, steps)
            pending = []
        position += step
        still = (bins.counts[active] > position) & (transmittance[active] > T_MIN).any(dim=-1)
        active = active[still]


def _chunk(
    bins: BlockBins,
    coef: Tensor,
    features: Tensor,
    transmittance: Tensor,
    clamp: bool,
    work: _Workspace,
    blocks: Tensor,  # [A]
    steps: Tensor,  # [K] list positions
) -> _Chunk:
    """Alphas, transmittance and weights of list entries ``steps`` of ``blocks``; updates
    ``transmittance`` of those blocks in place."""
    a, k, pixels = blocks.numel(), steps.numel(), features.shape[0]
    items = bins.starts[blocks, None] + steps
    items = torch.where(steps < bins.counts[blocks, None], items, coef.shape[0] - 1)  # [A, K], M = padding
    block_coef = coef.index_select(0, items.reshape(-1)).view(a, k, 6).transpose(1, 2)
    alpha = torch.matmul(features, block_coef, out=work.get("alpha", (a, pixels, k)))
    alpha.clamp_min_(_LOG_ALPHA_FLOOR).exp_()
    if clamp:
        alpha.clamp_max_(ALPHA_MAX)
    # Keep alpha >= ALPHA_MIN exactly: threshold() keeps values strictly above its threshold.
    below_min = torch.nextafter(coef.new_tensor(ALPHA_MIN), coef.new_tensor(0.0)).item()
    torch.nn.functional.threshold_(alpha, below_min, 0.0)
    trans = work.get("trans", (a, pixels, k + 1))
    front = transmittance.index_select(0, blocks)
    trans[..., 0] = front
    torch.sub(coef.new_ones(()), alpha, out=trans[..., 1:])
    torch.cumprod(trans, dim=-1, out=trans)
    last = trans[..., -1].clone()
    stopped = last <= T_MIN
    transmittance.index_copy_(0, blocks, last.masked_fill_(stopped, 0.0))
    _freeze_stopped(trans, stopped & (front > T_MIN))
    weight = torch.sub(trans[..., :-1], trans[..., 1:], out=work.get("weight", (a, pixels, k)))
    return _Chunk(blocks, items, alpha, trans, weight)


def image_to_blocks(image: Tensor, bins: BlockBins) -> Tensor:
    """[C, H, W, D] -> [C * blocks_y * blocks_x, P, D], zero-padded at the right and bottom."""
    C, H, W, D = image.shape
    b, bx, by = bins.block, bins.blocks_x, bins.blocks_y
    padded = torch.nn.functional.pad(image, (0, 0, 0, bx * b - W, 0, by * b - H))
    return padded.reshape(C, by, b, bx, b, D).permute(0, 1, 3, 2, 4, 5).reshape(C * by * bx, b * b, D)


def blocks_to_image(blocks: Tensor, bins: BlockBins, height: int, width: int) -> Tensor:
    """[C * blocks_y * blocks_x, P, D] -> [C, H, W, D] (inverse of ``image_to_blocks``)."""
    b, bx, by = bins.block, bins.blocks_x, bins.blocks_y
    D = blocks.shape[-1]
    image = blocks.reshape(-1, by, bx, b, b, D).permute(0, 1, 3, 2, 4, 5).reshape(-1, by * b, bx * b, D)
    return image[:, :height, :width]


@dataclass
class _Prepared:
    """What both passes derive from the inputs.

    Attributes:
        gaussians: [C * N, 6] ``(mean x, mean y, conic a, b, c, opacity)``.
        coef: [M + 1, 6] log-alpha coefficients per intersection (+ padding row).
        features: [P, 6] pixel monomials of a block.
        inside: [num_blocks, P] 1 for pixels inside the image, else 0 (initial transmittance).
        ids: [M + 1] Gaussian of each intersection; the padding row points at row C * N.
    """

    gaussians: Tensor
    coef: Tensor
    features: Tensor
    inside: Tensor
    ids: Tensor


def _prepare(
    means2d: Tensor, conics: Tensor, opacities: Tensor, bins: BlockBins, height: int, width: int
) -> _Prepared:
    C, N = opacities.shape
    dtype, device = means2d.dtype, means2d.device
    gaussians = torch.cat([means2d.reshape(-1, 2), conics.reshape(-1, 3), opacities.reshape(-1, 1)], dim=1)
    ones = torch.ones(C, height, width, 1, dtype=dtype, device=device)
    return _Prepared(
        gaussians=gaussians,
        coef=intersection_coefficients(gaussians, bins),
        features=pixel_features(bins.block, dtype, device),
        inside=image_to_blocks(ones, bins)[..., 0],
        ids=torch.cat([bins.gauss_ids, bins.gauss_ids.new_tensor([C * N])]),
    )


class TileComposite(torch.autograd.Function):
    """Differentiable compositing of binned screen-space Gaussians (see the module docstring)."""

    @staticmethod
    def forward(
        ctx,
        means2d: Tensor,  # [C, N, 2]
        conics: Tensor,  # [C, N, 3]
        opacities: Tensor,  # [C, N]
        colors: Tensor,  # [C, N, D]
        backgrounds: Tensor | None,  # [C, D]
        bins: BlockBins,
        width: int,
        height: int,
    ) -> tuple[Tensor, Tensor]:
        C, N, D = colors.shape
        prep = _prepare(means2d, conics, opacities, bins, height, width)
        # Colors with a constant channel (its composite is the alpha), plus a zero padding row.
        table = torch.cat([colors.reshape(C * N, D), colors.new_ones(C * N, 1)], dim=1)
        table = torch.cat([table, table.new_zeros(1, D + 1)], dim=0)

        clamp = bool((opacities > ALPHA_MAX).any())
        accum = colors.new_zeros(prep.inside.shape + (D + 1,))  # [num_blocks, P, D + 1]
        work = _workspace(colors.dtype, colors.device)
        for chunk in _sweep(bins, prep.coef, prep.features, prep.inside, clamp, work):
            a, k = chunk.items.shape
            entry_ids = prep.ids[chunk.items.reshape(-1)]
            entry_colors = torch.index_select(table, 0, entry_ids, out=work.get("c", (a * k, D + 1)))
            blend_shape = (a,) + accum.shape[1:]
            blended = torch.bmm(
                chunk.weight, entry_colors.view(a, k, D + 1), out=work.get("blend", blend_shape)
            )
            accum.index_add_(0, chunk.blocks, blended)

        composite = blocks_to_image(accum, bins, height, width)  # [C, H, W, D + 1]
        render_colors, render_alphas = composite[..., :D], composite[..., D:]
        ctx.save_for_backward(means2d, conics, opacities, colors, backgrounds, render_colors, render_alphas)
        ctx.bins, ctx.clamp = bins, clamp
        if backgrounds is not None:
            render_colors = render_colors + (1.0 - render_alphas) * backgrounds[:, None, None, :]
        return render_colors.contiguous(), render_alphas.contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_colors: Tensor, grad_alphas: Tensor):
        means2d, conics, opacities, colors, backgrounds, composite, alphas = ctx.saved_tensors
        bins: BlockBins = ctx.bins
        C, N, D = colors.shape
        H, W = alphas.shape[1:3]

        transmittance = 1.0 - alphas  # [C, H, W, 1], T_final
        # dL/dT_final through the background and the alpha output.
        grad_t = -grad_alphas
        if backgrounds is not None:
            grad_t = grad_t + (grad_colors * backgrounds[:, None, None, :]).sum(-1, keepdim=True)
        remainder = (composite * grad_colors).sum(-1, keepdim=True) + transmittance * grad_t
        remainder = image_to_blocks(remainder, bins)[..., 0]  # [num_blocks, P]
        grad_blocks = image_to_blocks(grad_colors, bins)  # [num_blocks, P, D]

        prep = _prepare(means2d, conics, opacities, bins, H, W)
        table = torch.cat([colors.reshape(C * N, D), colors.new_zeros(1, D)], dim=0)

        grad_coef = torch.zeros_like(prep.coef)
        grad_table = torch.zeros_like(table)
        # remainder - <C_{<=i}, g>: what is left of the remainder behind the entries seen so far.
        behind = remainder
        work = _workspace(colors.dtype, colors.device)
        for chunk in _sweep(bins, prep.coef, prep.features, prep.inside, ctx.clamp, work):
            a, k = chunk.items.shape
            pixels = chunk.weight.shape[1]
            gids = prep.ids[chunk.items.reshape(-1)]  # [A * K]
            g = torch.index_select(grad_blocks, 0, chunk.blocks, out=work.get("g", (a, pixels, D)))
            entry_colors = torch.index_select(table, 0, gids, out=work.get("c", (a * k, D))).view(a, k, D)
            color_dot = torch.bmm(g, entry_colors.transpose(1, 2), out=work.get("dot", (a, pixels, k)))
            left = torch.mul(chunk.weight, color_dot, out=work.get("left", (a, pixels, k)))
            torch.cumsum(left, dim=-1, out=left)
            torch.sub(behind.index_select(0, chunk.blocks)[..., None], left, out=left)
            behind.index_copy_(0, chunk.blocks, left[..., -1].contiguous())
            # alpha dL/dalpha = w (<c, g> - left / T_after); T_after > T_MIN wherever w != 0.
            t_after = chunk.trans[..., 1:].clamp_min_(T_MIN / 2)
            grad_log_alpha = color_dot.addcdiv_(left, t_after, value=-1.0).mul_(chunk.weight)
            if ctx.clamp:
                grad_log_alpha.masked_fill_(chunk.alpha >= ALPHA_MAX, 0.0)
            grad_items = torch.matmul(prep.features.T, grad_log_alpha, out=work.get("items", (a, 6, k)))
            grad_coef.index_add_(0, chunk.items.reshape(-1), grad_items.transpose(1, 2).reshape(-1, 6))
            grad_color = torch.bmm(chunk.weight.transpose(1, 2), g, out=work.get("gc", (a, k, D)))
            grad_table.index_add_(0, gids, grad_color.view(-1, D))

        grad_gaussians = intersection_coefficients_backward(prep.gaussians, bins, grad_coef)
        grad_means, grad_conics, grad_opacities = grad_gaussians.split([2, 3, 1], dim=1)
        grad_backgrounds = None
        if backgrounds is not None and ctx.needs_input_grad[4]:
            grad_backgrounds = (grad_colors * transmittance).sum(dim=(1, 2))
        return (
            grad_means.reshape(means2d.shape),
            grad_conics.reshape(conics.shape),
            grad_opacities.reshape(opacities.shape),
            grad_table[:-1].reshape(colors.shape),
            grad_backgrounds,
            None,
            None,
            None,
        )
