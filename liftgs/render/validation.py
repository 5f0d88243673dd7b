"""Input checks for ``rasterize``: every problem is a one-line ``ValueError`` naming the argument."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

RenderMode = Literal["RGB", "D", "ED", "RGB+D", "RGB+ED"]
Backend = Literal["auto", "torch", "gsplat", "dense"]


def _tensor(name: str, value: object, shape: tuple[int | None, ...]) -> Tensor:
    """Checks type, rank, the fixed dims of ``shape`` (None = any) and finiteness."""
    if not isinstance(value, Tensor) or not value.is_floating_point():
        raise ValueError(f"{name} must be a floating-point torch.Tensor, got {type(value).__name__}")
    fits = value.dim() == len(shape) and all(
        want is None or got == want for got, want in zip(value.shape, shape, strict=True)
    )
    if not fits:
        wanted = ", ".join("*" if dim is None else str(dim) for dim in shape)
        raise ValueError(f"{name} must have shape [{wanted}], got {list(value.shape)}")
    if not bool(torch.isfinite(value.detach()).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return value


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_inputs(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float,
    far_plane: float,
    eps2d: float,
    render_mode: str,
    backgrounds: Tensor | None,
    tile_size: int,
    backend: str,
) -> None:
    """Raises ``ValueError`` for any malformed argument of ``rasterize`` (see its docstring)."""
    n = _tensor("means", means, (None, 3)).shape[0]
    c = _tensor("viewmats", viewmats, (None, 4, 4)).shape[0]
    if c == 0:
        raise ValueError("viewmats must hold at least one camera, got shape [0, 4, 4]")
    _tensor("quats", quats, (n, 4))
    _tensor("scales", scales, (n, 3))
    _tensor("opacities", opacities, (n,))
    _tensor("Ks", Ks, (c, 3, 3))
    if not isinstance(colors, Tensor) or colors.dim() not in (2, 3):
        raise ValueError("colors must be a [N, D] or [C, N, D] torch.Tensor")
    _tensor("colors", colors, (n, None) if colors.dim() == 2 else (c, n, None))
    if colors.shape[-1] == 0:
        raise ValueError("colors must have at least one channel, got D = 0")
    if backgrounds is not None:
        _tensor("backgrounds", backgrounds, (c, colors.shape[-1]))
    tensors = {"means": means, "quats": quats, "scales": scales, "opacities": opacities, "colors": colors}
    tensors |= {"viewmats": viewmats, "Ks": Ks, "backgrounds": backgrounds}
    for name, tensor in tensors.items():
        if tensor is not None and tensor.device != means.device:
            raise ValueError(f"{name} is on {tensor.device} but means is on {means.device}")

    if bool((scales.detach() < 0).any()):
        raise ValueError("scales must be >= 0")
    if bool((quats.detach().norm(dim=-1) == 0).any()):
        raise ValueError("quats must have a non-zero norm")
    if bool(((opacities.detach() < 0) | (opacities.detach() > 1)).any()):
        raise ValueError("opacities must lie in [0, 1]")
    if bool((Ks.detach()[:, [0, 1], [0, 1]] <= 0).any()):
        raise ValueError("Ks must have positive focal lengths fx, fy")

    _positive_int("width", width)
    _positive_int("height", height)
    _positive_int("tile_size", tile_size)
    if not 0 < near_plane < far_plane:
        raise ValueError(
            f"need 0 < near_plane < far_plane, got near_plane={near_plane}, far_plane={far_plane}"
        )
    if not 0 <= eps2d < float("inf"):
        raise ValueError(f"eps2d must be finite and >= 0, got {eps2d}")
    if render_mode not in get_args(RenderMode):
        raise ValueError(f"render_mode must be one of {get_args(RenderMode)}, got {render_mode!r}")
    if backend not in get_args(Backend):
        raise ValueError(f"backend must be one of {get_args(Backend)}, got {backend!r}")
