"""Point encoder: a serialised point transformer in the spirit of Point Transformer v3, sized for CPU.

Points (voxel centres, world metres) are ordered along space-filling curves; each attention block attends
within consecutive windows of ``patch_size`` points of one order, the order alternating between blocks.
Queries and keys carry a 3D rotary encoding of the points' positions (so attention logits depend on
relative xyz). Stages form a U-Net: grid pooling merges the points of each 2x2x2 cell of the coarser grid
(max over a linear projection), unpooling copies coarse features back to their fine points and adds a
projection of the skip connection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liftgs.model.config import EncoderConfig
from liftgs.model.serialization import serialize
from liftgs.model.voxelize import unique_cells


@dataclass
class Level:
    """Points of one U-Net stage and their serialisation orders.

    Attributes:
        grid: [N, 3] int64 cell coordinates at this stage (input voxel grid // 2**stage).
        pos: [N, 3] float positions in units of this stage's cell size (for the rotary encoding).
        order_names: the serialisation curves blocks cycle through.
        parent: [N] int64 index of each point's cell in the next (coarser) level, or None for the last.
    """

    grid: Tensor  # [N, 3]
    pos: Tensor  # [N, 3]
    order_names: tuple[str, ...]
    parent: Tensor | None = None  # [N]
    _orders: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)

    def order(self, block_index: int) -> tuple[Tensor, Tensor]:
        """(perm [N], inverse [N]) of the curve of the stage's ``block_index``-th block (cached)."""
        name = self.order_names[block_index % len(self.order_names)]
        if name not in self._orders:
            self._orders[name] = serialize(self.grid, name)
        return self._orders[name]


def build_levels(
    grid: Tensor, xyz: Tensor, voxel_size: float, num_levels: int, orders: tuple[str, ...]
) -> list[Level]:
    """Pooling hierarchy of a voxel cloud: ``grid`` [N, 3] int64 voxel coordinates, ``xyz`` [N, 3] metres."""
    levels = []
    pos = xyz / voxel_size
    for stage in range(num_levels):
        level = Level(grid=grid, pos=pos, order_names=orders)
        levels.append(level)
        if stage + 1 < num_levels:
            grid, parent = unique_cells(torch.div(grid, 2, rounding_mode="floor"))
            level.parent = parent
            counts = torch.bincount(parent, minlength=grid.shape[0]).unsqueeze(1).to(pos.dtype)
            pos = torch.zeros(grid.shape[0], 3, dtype=pos.dtype, device=pos.device).index_add_(0, parent, pos)
            pos = pos / counts / 2.0
    return levels


class Rotary3D(nn.Module):
    """Rotary position encoding over x, y, z: the first ``6 * (head_dim // 6)`` channels of each head are
    rotated in pairs by angles ``position * frequency`` (a third of the pairs per axis)."""

    def __init__(self, head_dim: int, max_wavelength: float = 200.0) -> None:
        super().__init__()
        self.pairs_per_axis = head_dim // 6
        freqs = max_wavelength ** (
            -torch.arange(self.pairs_per_axis, dtype=torch.float32) / max(self.pairs_per_axis, 1)
        )
        self.register_buffer("freqs", freqs, persistent=False)

    def angles(self, pos: Tensor) -> tuple[Tensor, Tensor]:
        """cos, sin of [..., 3 * pairs_per_axis] rotation angles for positions ``pos`` [..., 3]."""
        theta = (pos.unsqueeze(-1) * self.freqs).flatten(-2)
        return theta.cos(), theta.sin()

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """Rotates ``x`` [..., H, K, head_dim] with ``cos``/``sin`` [..., 1, K, 3 * pairs_per_axis]."""
        n = cos.shape[-1]
        pairs = x[..., : 2 * n].unflatten(-1, (n, 2))
        a, b = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
        return torch.cat((rotated, x[..., 2 * n :]), dim=-1)


class PatchAttention(nn.Module):
    """Multi-head self-attention within windows of ``patch_size`` consecutive points of a serialisation."""

    def __init__(self, channels: int, head_dim: int, patch_size: int) -> None:
        super().__init__()
        if channels % head_dim:
            raise ValueError(f"encoder channels {channels} not divisible by head_dim {head_dim}")
        self.heads = channels // head_dim
        self.patch_size = patch_size
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.rotary = Rotary3D(head_dim)

    def forward(self, x: Tensor, pos: Tensor, order: tuple[Tensor, Tensor]) -> Tensor:
        """``x`` [N, C] features, ``pos`` [N, 3] positions (cells), ``order`` (perm, inverse) -> [N, C]."""
        perm, inverse = order
        n, c = x.shape
        k = min(self.patch_size, n)
        patches = math.ceil(n / k)
        pad = patches * k - n
        xs = F.pad(x[perm], (0, 0, 0, pad))
        ps = F.pad(pos[perm], (0, 0, 0, pad))
        qkv = self.qkv(xs).view(patches, k, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        cos, sin = self.rotary.angles(ps.view(patches, 1, k, 3))
        q, key = self.rotary(qkv[0], cos, sin), self.rotary(qkv[1], cos, sin)  # [P, H, K, hd]
        valid = None  # [P, 1, 1, K] keys that are real points (only the last patch has padding)
        if pad:
            valid = torch.arange(patches * k, device=x.device).view(patches, 1, 1, k) < n
        out = F.scaled_dot_product_attention(q, key, qkv[2], attn_mask=valid)  # [P, H, K, hd]
        out = out.transpose(1, 2).reshape(patches * k, c)[:n]
        return self.proj(out)[inverse]


class Block(nn.Module):
    """Pre-norm transformer block: patch attention then MLP, both residual."""

    def __init__(self, channels: int, config: EncoderConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(channels)
        self.attn = PatchAttention(channels, config.head_dim, config.patch_size)
        self.norm2 = nn.LayerNorm(channels)
        hidden = int(channels * config.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))

    def forward(self, x: Tensor, level: Level, block_index: int) -> Tensor:
        x = x + self.attn(self.norm1(x), level.pos, level.order(block_index))
        return x + self.mlp(self.norm2(x))


class GridPool(nn.Module):
    """Fine -> coarse: max over each coarse cell's points of a linear projection, then norm + GELU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_channels, out_channels)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: Tensor, parent: Tensor, num_coarse: int) -> Tensor:
        """``x`` [N, Cin], ``parent`` [N] -> [num_coarse, Cout]."""
        y = self.proj(x)
        index = parent.unsqueeze(1).expand_as(y)
        pooled = y.new_zeros(num_coarse, y.shape[1]).scatter_reduce(0, index, y, "amax", include_self=False)
        return F.gelu(self.norm(pooled))


class GridUnpool(nn.Module):
    """Coarse -> fine: each fine point gets its cell's projected features plus a projected skip input."""

    def __init__(self, coarse_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(coarse_channels, out_channels)
        self.proj_skip = nn.Linear(skip_channels, out_channels)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, coarse: Tensor, skip: Tensor, parent: Tensor) -> Tensor:
        """``coarse`` [M, Cc], ``skip`` [N, Cs], ``parent`` [N] -> [N, Cout]."""
        return F.gelu(self.norm(self.proj(coarse)[parent] + self.proj_skip(skip)))


class PointEncoder(nn.Module):
    """Voxel points (xyz, rgb, optional extra features) -> per-point features [N, dec_channels[0]]."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        stages = len(config.enc_channels)
        if len(config.enc_depths) != stages or len(config.dec_channels) != stages - 1:
            raise ValueError(
                "encoder config: need len(enc_depths) == len(enc_channels) == len(dec_channels) + 1"
            )
        if len(config.dec_depths) != stages - 1:
            raise ValueError("encoder config: need len(dec_depths) == len(dec_channels)")
        self.config = config
        c0 = config.enc_channels[0]
        self.embed = nn.Sequential(nn.Linear(6 + config.extra_channels, c0), nn.LayerNorm(c0), nn.GELU())
        self.enc_blocks = nn.ModuleList(
            nn.ModuleList(Block(ch, config) for _ in range(depth))
            for ch, depth in zip(config.enc_channels, config.enc_depths, strict=True)
        )
        self.pools = nn.ModuleList(
            GridPool(config.enc_channels[s], config.enc_channels[s + 1]) for s in range(stages - 1)
        )
        coarse = [*config.dec_channels[1:], config.enc_channels[-1]]
        self.unpools = nn.ModuleList(
            GridUnpool(coarse[s], config.enc_channels[s], config.dec_channels[s]) for s in range(stages - 1)
        )
        self.dec_blocks = nn.ModuleList(
            nn.ModuleList(Block(ch, config) for _ in range(depth))
            for ch, depth in zip(config.dec_channels, config.dec_depths, strict=True)
        )
        self.out_channels = config.dec_channels[0] if stages > 1 else c0
        self.norm = nn.LayerNorm(self.out_channels)

    def forward(
        self,
        xyz: Tensor,  # [N, 3] voxel centres, world metres
        colors: Tensor,  # [N, 3] RGB in [0, 1]
        grid: Tensor,  # [N, 3] int64 voxel coordinates
        voxel_size: float,
        extra: Tensor | None = None,  # [N, extra_channels]
    ) -> Tensor:
        """Per-point features [N, out_channels]. Input xyz is centred on the scene's mean x, y (z kept)."""
        if (extra is None) != (self.config.extra_channels == 0):
            raise ValueError(f"extra: expected {self.config.extra_channels} channels per point")
        if extra is not None and extra.shape != (xyz.shape[0], self.config.extra_channels):
            raise ValueError(f"extra: expected shape [{xyz.shape[0]}, {self.config.extra_channels}]")
        levels = build_levels(grid, xyz, voxel_size, len(self.config.enc_channels), self.config.orders)
        centre = torch.cat([xyz[:, :2].mean(0), xyz.new_zeros(1)])
        inputs = [xyz - centre, colors - 0.5] + ([extra] if extra is not None else [])
        x = self.embed(torch.cat(inputs, dim=1))
        skips = []
        for stage, blocks in enumerate(self.enc_blocks):
            if stage > 0:
                skips.append(x)
                x = self.pools[stage - 1](x, levels[stage - 1].parent, levels[stage].grid.shape[0])
            for i, block in enumerate(blocks):
                x = block(x, levels[stage], i)
        for stage in reversed(range(len(self.dec_blocks))):
            x = self.unpools[stage](x, skips[stage], levels[stage].parent)
            for i, block in enumerate(self.dec_blocks[stage]):  # orders continue where the encoder's stopped
                x = block(x, levels[stage], self.config.enc_depths[stage] + i)
        return self.norm(x)
