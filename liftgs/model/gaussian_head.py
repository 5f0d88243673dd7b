"""Gaussian head: ``k`` 3D Gaussians around every voxel point, predicted from its encoder features.

Parameterisation (all bounded, so the reconstruction stays tied to the input cloud):

- mean = point xyz + ``tanh(.) * max_offset * voxel_size``,
- scales = ``voxel_size * (min_scale + (max_scale - min_scale) * sigmoid(.))`` per axis,
- quaternion (wxyz) = normalise(``(1, 0, 0, 0) + .``),
- opacity = ``sigmoid(logit(init_opacity) + .)``,
- color = ``sigmoid(logit(input color) + .)`` (a residual on the point's color in logit space),
- optional features [F] = linear.

The output layer starts with tiny weights and zero bias, so at step 0 the Gaussians sit on the points with
scale ``init_scale * voxel_size``, opacity ``init_opacity`` and the input colors: they already render the
point cloud.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liftgs.model.config import GaussianConfig
from liftgs.model.types import Gaussians

_FIELDS = {"offset": 3, "scale": 3, "quat": 4, "opacity": 1, "color": 3}


class GaussianHead(nn.Module):
    """Point features [Pv, D] (+ xyz, colors) -> ``Gaussians`` with ``Pv * gaussians_per_point`` entries."""

    def __init__(self, config: GaussianConfig, point_dim: int) -> None:
        super().__init__()
        if not config.min_scale < config.init_scale < config.max_scale:
            raise ValueError("gaussian config: need min_scale < init_scale < max_scale")
        self.config = config
        self.k = config.gaussians_per_point
        self.widths = {**_FIELDS, "features": config.feature_dim}
        per_gaussian = sum(self.widths.values())
        self.net = nn.Sequential(
            nn.Linear(point_dim, config.hidden), nn.GELU(), nn.Linear(config.hidden, self.k * per_gaussian)
        )
        out = self.net[-1]
        nn.init.normal_(out.weight, std=1e-3)
        nn.init.zeros_(out.bias)
        fraction = (config.init_scale - config.min_scale) / (config.max_scale - config.min_scale)
        self.scale_bias = math.log(fraction / (1 - fraction))
        self.opacity_bias = math.log(config.init_opacity / (1 - config.init_opacity))

    def forward(
        self,
        features: Tensor,  # [Pv, D]
        xyz: Tensor,  # [Pv, 3] metres
        colors: Tensor,  # [Pv, 3] in [0, 1]
        voxel_size: float,
    ) -> Gaussians:
        """Gaussian ``g`` belongs to point ``g // k`` (``point_index``)."""
        cfg = self.config
        num_points = features.shape[0]
        raw = self.net(features).view(num_points * self.k, -1)
        parts = dict(zip(self.widths, raw.split(list(self.widths.values()), dim=-1), strict=True))
        point_index = torch.arange(num_points, device=features.device).repeat_interleave(self.k)
        means = xyz[point_index] + torch.tanh(parts["offset"]) * (cfg.max_offset * voxel_size)
        scales = voxel_size * (
            cfg.min_scale + (cfg.max_scale - cfg.min_scale) * torch.sigmoid(parts["scale"] + self.scale_bias)
        )
        identity = torch.tensor([1.0, 0.0, 0.0, 0.0], device=features.device)
        quats = F.normalize(parts["quat"] + identity, dim=-1)
        opacities = torch.sigmoid(parts["opacity"].squeeze(-1) + self.opacity_bias)
        color_logit = torch.logit(colors[point_index].clamp(1e-3, 1 - 1e-3))
        return Gaussians(
            means=means,
            quats=quats,
            scales=scales,
            opacities=opacities,
            colors=torch.sigmoid(color_logit + parts["color"]),
            features=parts["features"] if cfg.feature_dim > 0 else None,
            point_index=point_index,
        )
