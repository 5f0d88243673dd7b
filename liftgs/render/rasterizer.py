"""``rasterize``: gsplat 1.4's ``rasterization`` for colors of any width, on any device.

Stages of the torch backend: projection (``projection.py``, autograd) -> binning of Gaussians to pixel
blocks (``binning.py``, no gradient) -> compositing (``composite.py``, a custom autograd Function that
recomputes instead of storing per-pixel-per-Gaussian values). The ``dense`` backend swaps the last two
stages for the all-pairs reference (``reference.py``); the ``gsplat`` backend calls gsplat's CUDA kernels.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from liftgs.render.binning import bin_gaussians
from liftgs.render.composite import TileComposite
from liftgs.render.projection import project_gaussians
from liftgs.render.reference import composite_dense
from liftgs.render.validation import Backend, RenderMode, check_inputs

PREFERRED_BLOCK = 8
"""Pixel-block edge of the torch backend's bins (taken as gcd with ``tile_size``)."""


@functools.cache
def gsplat_cuda_available() -> bool:
    """True when a CUDA device exists and gsplat's CUDA kernels load (they may JIT-compile once).

    Never imports gsplat's CUDA backend on a machine without a GPU: with nvcc present its import starts
    a JIT build that cannot succeed there.
    """
    if not torch.cuda.is_available():
        return False
    try:
        from gsplat.cuda._backend import _C
    except Exception:  # any build or load failure means "not available"
        return False
    return _C is not None


def resolve_backend(backend: Backend, device: torch.device, dtype: torch.dtype) -> str:
    """The backend that will run: ``auto`` is ``gsplat`` for float32 CUDA tensors whose kernels load, else
    ``torch``. Raises ``ValueError`` when ``gsplat`` is requested for tensors it cannot take."""
    if backend == "gsplat":
        if device.type != "cuda" or dtype != torch.float32:
            raise ValueError(f"backend='gsplat' needs float32 CUDA tensors, got {dtype} on {device}")
        if not gsplat_cuda_available():
            raise ValueError("backend='gsplat' requested but gsplat's CUDA kernels do not load here")
        return "gsplat"
    if backend == "auto":
        usable = device.type == "cuda" and dtype == torch.float32 and gsplat_cuda_available()
        return "gsplat" if usable else "torch"
    return backend


def _rasterize_gsplat(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor, viewmats: Tensor,
    Ks: Tensor, width: int, height: int, near_plane: float, far_plane: float, eps2d: float,
    render_mode: RenderMode, backgrounds: Tensor | None, tile_size: int,
) -> tuple[Tensor, Tensor, dict]:  # fmt: skip
    """gsplat's own ``rasterization`` (CUDA kernels), unpacked so that ``meta`` has [C, N] shapes."""
    from gsplat.rendering import rasterization

    render_colors, render_alphas, meta = rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, packed=False, tile_size=tile_size,
        backgrounds=backgrounds, render_mode=render_mode,
    )  # fmt: skip
    return render_colors, render_alphas, meta | {"backend": "gsplat"}


def rasterize(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D] or [C, N, D]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    render_mode: RenderMode = "RGB",
    backgrounds: Tensor | None = None,  # [C, D]
    tile_size: int = 16,
    backend: Backend = "auto",
) -> tuple[Tensor, Tensor, dict]:
    """Renders N 3D Gaussians into C pinhole cameras; gsplat 1.4's ``rasterization`` conventions and maths.

    Args:
        means: [N, 3] world positions.
        quats: [N, 4] rotations as unnormalised ``wxyz`` quaternions (non-zero norm).
        scales: [N, 3] standard deviations along the rotated axes, >= 0, world units.
        opacities: [N] in [0, 1].
        colors: [N, D] or per-camera [C, N, D] values to composite; any D >= 1 (RGB, features, mask
            logits: each channel is alpha-composited independently).
        viewmats: [C, 4, 4] world-to-camera transforms, OpenCV axes (x right, y down, z forward).
        Ks: [C, 3, 3] intrinsics in pixels; pixel ``(i, j)`` has its centre at ``(j + 0.5, i + 0.5)``.
        width, height: image size in pixels.
        near_plane, far_plane: Gaussians whose camera-space depth is outside ``(near_plane, far_plane)``
            are culled (not rendered, zero gradient): this includes everything behind the camera.
        eps2d: added to the diagonal of each 2D covariance (low-pass filter, pixels^2).
        render_mode: "RGB" renders ``colors``; "D" the accumulated z-depth ``sum_i w_i z_i``; "ED" the
            expected depth (accumulated depth / alpha, alpha clamped at 1e-10); "RGB+D" and "RGB+ED"
            append that channel to the colors.
        backgrounds: [C, D] color behind the Gaussians, blended with the final transmittance. Depth
            channels always get a zero background (gsplat's convention).
        tile_size: gsplat's tile edge in pixels: a Gaussian affects only pixels of the tiles its 3-sigma
            radius box touches.
        backend: "torch" (any device, float32 or float64; first-order gradients w.r.t. means, quats,
            scales, opacities, colors and backgrounds; memory independent of N x pixels), "gsplat"
            (float32 CUDA tensors; gsplat's kernels), "dense" (the all-pairs reference: slow, for tests)
            or "auto" (gsplat for float32 CUDA tensors when its kernels load, else torch).

    Returns:
        ``(render_colors [C, H, W, D'], render_alphas [C, H, W, 1], meta)`` where D' is D, 1 or D + 1
        depending on ``render_mode``. ``meta`` holds ``radii`` [C, N] (0 = culled), ``means2d`` [C, N, 2],
        ``depths`` [C, N], ``conics`` [C, N, 3], ``opacities`` [C, N], ``width``, ``height``,
        ``tile_size``, ``n_cameras`` and ``backend``; the torch backend adds ``n_isects`` (block-level
        intersections) and the gsplat backend gsplat's own keys.

    Raises:
        ValueError: naming the argument, for NaN/inf values, wrong shapes, devices or types, negative
            scales, zero quaternions, opacities outside [0, 1], non-positive focal lengths or sizes.
    """
    check_inputs(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane, far_plane, eps2d,
        render_mode, backgrounds, tile_size, backend,
    )  # fmt: skip
    dtype = means.dtype
    quats, scales, opacities, colors, viewmats, Ks = (
        t.to(dtype) for t in (quats, scales, opacities, colors, viewmats, Ks)
    )
    backgrounds = None if backgrounds is None else backgrounds.to(dtype)
    chosen = resolve_backend(backend, means.device, dtype)
    if chosen == "gsplat":
        return _rasterize_gsplat(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane, far_plane,
            eps2d, render_mode, backgrounds, tile_size,
        )  # fmt: skip

    C, N = viewmats.shape[0], means.shape[0]
    proj = project_gaussians(means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, eps2d)
    opacities = opacities.expand(C, N)
    colors = colors.expand(C, N, colors.shape[-1]) if colors.dim() == 2 else colors
    depth_channel = proj.depths[..., None]
    if render_mode in ("D", "ED"):
        colors, backgrounds = depth_channel, None
    elif render_mode in ("RGB+D", "RGB+ED"):
        colors = torch.cat([colors, depth_channel], dim=-1)
        if backgrounds is not None:
            backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(C, 1)], dim=-1)

    meta = {
        "radii": proj.radii,
        "means2d": proj.means2d,
        "depths": proj.depths,
        "conics": proj.conics,
        "opacities": opacities,
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "n_cameras": C,
        "backend": chosen,
    }
    if chosen == "dense":
        render_colors, render_alphas = composite_dense(
            proj.means2d, proj.conics, opacities, colors, proj.depths, proj.radii, width, height, tile_size,
            backgrounds,
        )  # fmt: skip
    else:
        bins = bin_gaussians(
            proj.means2d, proj.conics, opacities, proj.depths, proj.radii, width, height, tile_size,
            math.gcd(tile_size, PREFERRED_BLOCK),
        )  # fmt: skip
        meta["n_isects"] = bins.num_intersections
        render_colors, render_alphas = TileComposite.apply(
            proj.means2d, proj.conics, opacities, colors, backgrounds, bins, width, height
        )
    if render_mode in ("ED", "RGB+ED"):
        expected = render_colors[..., -1:] / render_alphas.clamp(min=1e-10)
        render_colors = torch.cat([render_colors[..., :-1], expected], dim=-1)
    return render_colors, render_alphas, meta
