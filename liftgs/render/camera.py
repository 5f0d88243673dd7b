"""Camera helpers for rendering: poses to view matrices, intrinsics at another resolution.

Conventions (``liftgs.scene``): ``c2w`` is a rigid 4x4 camera-to-world transform with OpenCV axes;
``K`` is in pixels with pixel centres at integer + 0.5, so a resolution change by ``(sx, sy)`` scales
every continuous pixel coordinate, principal point included, without a half-pixel shift.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_RIGID_TOLERANCE = 1e-3


def viewmat_from_c2w(c2w: Tensor | np.ndarray) -> Tensor:
    """World-to-camera matrices [..., 4, 4] (``rasterize``'s ``viewmats``) from rigid camera-to-world
    poses [..., 4, 4] (torch or numpy; the result is a tensor of the same dtype).

    Raises:
        ValueError: if ``c2w`` is not [..., 4, 4], not finite, or not a rigid transform (orthonormal
            rotation, last row ``0 0 0 1``) within 1e-3.
    """
    c2w = torch.as_tensor(c2w)
    if c2w.dim() < 2 or c2w.shape[-2:] != (4, 4) or not c2w.is_floating_point():
        raise ValueError(f"c2w must be a floating-point [..., 4, 4] array, got shape {list(c2w.shape)}")
    if not bool(torch.isfinite(c2w).all()):
        raise ValueError("c2w contains NaN or inf")
    rotation, translation = c2w[..., :3, :3], c2w[..., :3, 3:]
    identity = torch.eye(3, dtype=c2w.dtype, device=c2w.device)
    bottom = c2w.new_tensor([0.0, 0.0, 0.0, 1.0])
    orthonormal = (rotation.transpose(-1, -2) @ rotation - identity).abs().amax() <= _RIGID_TOLERANCE
    if not bool(orthonormal) or not bool(((c2w[..., 3, :] - bottom).abs() <= _RIGID_TOLERANCE).all()):
        raise ValueError("c2w must be rigid: an orthonormal rotation and a last row of 0 0 0 1")
    viewmat = torch.zeros_like(c2w)
    viewmat[..., :3, :3] = rotation.transpose(-1, -2)
    viewmat[..., :3, 3:] = -rotation.transpose(-1, -2) @ translation
    viewmat[..., 3, 3] = 1.0
    return viewmat


def scale_intrinsics(K: Tensor | np.ndarray, sx: float, sy: float) -> Tensor:
    """Intrinsics [..., 3, 3] for an image resized by ``sx`` horizontally and ``sy`` vertically (e.g.
    ``sx = new_width / width``): the first row is multiplied by ``sx``, the second by ``sy``.

    Raises:
        ValueError: if ``K`` is not [..., 3, 3] or a factor is not a positive finite number.
    """
    K = torch.as_tensor(K)
    if K.dim() < 2 or K.shape[-2:] != (3, 3) or not K.is_floating_point():
        raise ValueError(f"K must be a floating-point [..., 3, 3] array, got shape {list(K.shape)}")
    if not all(0 < float(s) < float("inf") for s in (sx, sy)):
        raise ValueError(f"sx and sy must be positive finite numbers, got sx={sx}, sy={sy}")
    factors = K.new_tensor([sx, sy, 1.0])
    return K * factors[:, None]
