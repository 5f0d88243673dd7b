"""Space-filling-curve serialisation of integer voxel coordinates (z-order/Morton and Hilbert).

A serialisation order sorts points so that neighbours along the curve are (mostly) neighbours in space;
the point encoder attends within consecutive windows of such an order. ``"-trans"`` variants swap the x and
y axes before encoding, giving differently shaped windows, so that alternating orders between blocks mixes
information across window borders (Point Transformer v3's idea).

Codes are int64: each axis uses at most ``MAX_BITS`` bits.
"""

from __future__ import annotations

import torch
from torch import Tensor

MAX_BITS = 16
ORDERS = ("z", "z-trans", "hilbert", "hilbert-trans")

# Masks for spreading 21 bits with two zero bits between each ("part1by2").
_SPREAD = (
    (32, 0x1F00000000FFFF),
    (16, 0x1F0000FF0000FF),
    (8, 0x100F00F00F00F00F),
    (4, 0x10C30C30C30C30C3),
    (2, 0x1249249249249249),
)


def _spread_bits(v: Tensor) -> Tensor:
    """Inserts two zero bits between the low 21 bits of ``v`` (int64)."""
    v = v & 0x1FFFFF
    for shift, mask in _SPREAD:
        v = (v | (v << shift)) & mask
    return v


def interleave(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Bit interleaving ``a_k b_k c_k ... a_0 b_0 c_0`` of three int64 tensors (``a`` most significant)."""
    return (_spread_bits(a) << 2) | (_spread_bits(b) << 1) | _spread_bits(c)


def morton_code(grid: Tensor) -> Tensor:
    """[N] int64 z-order codes of non-negative integer coordinates ``grid`` [N, 3] (x most significant)."""
    return interleave(grid[:, 0], grid[:, 1], grid[:, 2])


def hilbert_code(grid: Tensor, bits: int = MAX_BITS) -> Tensor:
    """[N] int64 Hilbert-curve indices of non-negative integer coordinates ``grid`` [N, 3] < ``2**bits``.

    Skilling's transpose algorithm ("Programming the Hilbert curve", 2004), vectorised over points:
    consecutive indices are face-adjacent cells.
    """
    x = [grid[:, i].clone() for i in range(3)]
    q = 1 << (bits - 1)
    while q > 1:  # undo excess work: per axis, invert or exchange the low bits
        p = q - 1
        for i in range(3):
            high = (x[i] & q) != 0
            if i == 0:
                x[0] = torch.where(high, x[0] ^ p, x[0])
                continue
            t = (x[0] ^ x[i]) & p
            x[0] = torch.where(high, x[0] ^ p, x[0] ^ t)
            x[i] = torch.where(high, x[i], x[i] ^ t)
        q >>= 1
    for i in range(1, 3):  # Gray encode
        x[i] = x[i] ^ x[i - 1]
    t = torch.zeros_like(x[0])
    q = 1 << (bits - 1)
    while q > 1:
        t = torch.where((x[2] & q) != 0, t ^ (q - 1), t)
        q >>= 1
    return interleave(x[0] ^ t, x[1] ^ t, x[2] ^ t)


def serialization_code(grid: Tensor, order: str) -> Tensor:
    """[N] int64 code of ``grid`` [N, 3] (non-negative ints) for one of ``ORDERS``."""
    if order.endswith("-trans"):
        grid = grid[:, [1, 0, 2]]
    curve = order.removesuffix("-trans")
    if curve == "z":
        return morton_code(grid)
    if curve == "hilbert":
        return hilbert_code(grid)
    raise ValueError(f"unknown serialisation order {order!r}; choose from {ORDERS}")


def serialize(grid: Tensor, order: str) -> tuple[Tensor, Tensor]:
    """Sorting permutation of points ``grid`` [N, 3] (any ints) along ``order``.

    Returns:
        perm: [N] int64, ``x[perm]`` is in curve order.
        inverse: [N] int64, ``x_sorted[inverse]`` restores the original order.
    Raises:
        ValueError: coordinates span more than ``2**MAX_BITS`` cells.
    """
    grid = grid - grid.min(dim=0).values
    if int(grid.max()) >= 1 << MAX_BITS:
        raise ValueError(f"grid spans {int(grid.max()) + 1} cells; at most {1 << MAX_BITS} per axis")
    perm = torch.argsort(serialization_code(grid, order))
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel(), device=perm.device)
    return perm, inverse
