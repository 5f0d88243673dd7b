"""EWA projection of 3D Gaussians into pinhole cameras, with gsplat 1.4's exact conventions.

Conventions (those of ``gsplat.cuda._torch_impl._fully_fused_projection``):

- ``viewmats`` map world to OpenCV camera coordinates (x right, y down, z forward).
- ``means2d`` are in pixels with pixel ``(i, j)``'s centre at ``(j + 0.5, i + 0.5)``.
- The 2D covariance is ``J Sigma_cam J^T + eps2d * I`` (the low-pass filter), where the Jacobian ``J`` is
  evaluated at the camera-space mean with ``x/z`` and ``y/z`` clamped to 1.3x the field of view.
- ``conics`` hold the upper triangle ``(a, b, c)`` of the inverse 2D covariance.
- ``radii`` are ``ceil(3 sqrt(largest eigenvalue))`` in pixels, and 0 for culled Gaussians: those with a
  depth outside ``(near_plane, far_plane)`` (in particular everything behind the camera) and those whose
  radius-box misses the image.

Everything is plain differentiable torch; the culled Gaussians get finite placeholder values (their depth
is replaced by 1 before dividing) so that no NaN can leak into gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Projection:
    """Per-camera screen-space Gaussians.

    Attributes:
        means2d: [C, N, 2] pixel coordinates of the projected means.
        conics: [C, N, 3] inverse 2D covariance upper triangle ``(a, b, c)``.
        depths: [C, N] camera-space z in world units.
        radii: [C, N] int32 3-sigma radius in pixels; 0 marks a culled Gaussian.
    """

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor


def _rotation_entries(quats: Tensor) -> list[list[Tensor]]:
    """Rotation matrix entries ``R[i][j]`` [N] of unnormalised ``wxyz`` quaternions [N, 4]."""
    w, x, y, z = torch.unbind(quats / quats.norm(dim=-1, keepdim=True), dim=-1)
    return [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]


def project_gaussians(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
) -> Projection:
    """Projects 3D Gaussians into C pinhole cameras (see the module docstring for conventions).

    Written entry by entry on [C, N] tensors: tiny batched matrix products and broadcast reductions are
    several times slower on CPU, forward and backward.
    """
    view = [[viewmats[:, i, j, None] for j in range(4)] for i in range(3)]  # [C, 1] entries
    mx, my, mz = means.unbind(-1)
    tx, ty, tz = (view[i][0] * mx + view[i][1] * my + view[i][2] * mz + view[i][3] for i in range(3))
    depth_ok = (tz > near_plane) & (tz < far_plane)
    z = torch.where(depth_ok, tz, torch.ones_like(tz))

    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    lim_x_pos = (width - cx) / fx + 0.15 * width / fx
    lim_x_neg = cx / fx + 0.15 * width / fx
    lim_y_pos = (height - cy) / fy + 0.15 * height / fy
    lim_y_neg = cy / fy + 0.15 * height / fy
    jx = torch.maximum(
        torch.minimum(tx / z, lim_x_pos), -lim_x_neg
    )  # J = [[fx, 0, -fx jx], [0, fy, -fy jy]] / z
    jy = torch.maximum(torch.minimum(ty / z, lim_y_pos), -lim_y_neg)
    # Rows of J W (J: the projection's Jacobian, W: the camera rotation), each entry [C, N].
    jw_x = [fx * (view[0][k] - jx * view[2][k]) / z for k in range(3)]
    jw_y = [fy * (view[1][k] - jy * view[2][k]) / z for k in range(3)]
    # Rows of J W R S; the 2D covariance is their Gram matrix.
    rot = _rotation_entries(quats)
    sx, sy, sz = scales.unbind(-1)
    rs = [[rot[i][0] * sx, rot[i][1] * sy, rot[i][2] * sz] for i in range(3)]
    half_x = [jw_x[0] * rs[0][k] + jw_x[1] * rs[1][k] + jw_x[2] * rs[2][k] for k in range(3)]
    half_y = [jw_y[0] * rs[0][k] + jw_y[1] * rs[1][k] + jw_y[2] * rs[2][k] for k in range(3)]
    cxx = half_x[0] * half_x[0] + half_x[1] * half_x[1] + half_x[2] * half_x[2] + eps2d
    cyy = half_y[0] * half_y[0] + half_y[1] * half_y[1] + half_y[2] * half_y[2] + eps2d
    cxy = half_x[0] * half_y[0] + half_x[1] * half_y[1] + half_x[2] * half_y[2]
    det = (cxx * cyy - cxy * cxy).clamp(min=1e-10)
    conics = torch.stack([cyy / det, -cxy / det, cxx / det], dim=-1)  # [C, N, 3]

    skew_x, skew_y = Ks[:, 0, 1, None], Ks[:, 1, 0, None]
    means2d = torch.stack([(fx * tx + skew_x * ty) / z + cx, (skew_y * tx + fy * ty) / z + cy], dim=-1)

    with torch.no_grad():
        half_trace = (cxx + cyy) / 2
        largest = half_trace + torch.sqrt(torch.clamp(half_trace**2 - det, min=0.01))
        radius = torch.ceil(3.0 * torch.sqrt(largest))
        mx, my = means2d[..., 0], means2d[..., 1]
        inside = (mx + radius > 0) & (mx - radius < width) & (my + radius > 0) & (my - radius < height)
        radii = torch.where(depth_ok & inside, radius, torch.zeros_like(radius)).int()
    return Projection(means2d=means2d, conics=conics, depths=tz, radii=radii)
