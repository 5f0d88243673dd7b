"""Tests of the camera helpers ``viewmat_from_c2w`` and ``scale_intrinsics``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from liftgs.render import project_gaussians, scale_intrinsics, viewmat_from_c2w


def random_c2w(batch: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rotation, _ = torch.linalg.qr(torch.randn(*batch, 3, 3, generator=g, dtype=torch.float64))
    c2w = torch.zeros(*batch, 4, 4, dtype=torch.float64)
    c2w[..., :3, :3] = rotation
    c2w[..., :3, 3] = torch.randn(*batch, 3, generator=g, dtype=torch.float64)
    c2w[..., 3, 3] = 1.0
    return c2w


def test_viewmat_inverts_batched_poses():
    c2w = random_c2w((2, 3))
    viewmats = viewmat_from_c2w(c2w)
    assert viewmats.shape == (2, 3, 4, 4) and viewmats.dtype == torch.float64
    torch.testing.assert_close(viewmats @ c2w, torch.eye(4, dtype=torch.float64).expand(2, 3, 4, 4))
    # The camera centre maps to the camera-frame origin.
    centres = torch.cat([c2w[..., :3, 3], torch.ones(2, 3, 1, dtype=torch.float64)], -1)
    torch.testing.assert_close(
        (viewmats @ centres[..., None])[..., :3, 0], torch.zeros(2, 3, 3, dtype=torch.float64)
    )


def test_viewmat_accepts_numpy_and_puts_points_in_front_in_opencv_axes():
    # Camera at (0, -3, 1) looking along +y (world), OpenCV axes: x right = +x, y down = -z, z forward = +y.
    c2w = np.array([[1.0, 0, 0, 0], [0, 0, 1, -3], [0, -1, 0, 1], [0, 0, 0, 1]])
    viewmat = viewmat_from_c2w(c2w)
    point = viewmat @ torch.tensor([0.5, 2.0, 1.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(point[:3], torch.tensor([0.5, -0.5, 5.0], dtype=torch.float64))


@pytest.mark.parametrize(
    ("c2w", "match"),
    [
        (torch.eye(3), r"\[\.\.\., 4, 4\]"),
        (torch.full((4, 4), math.nan), "NaN"),
        (torch.diag(torch.tensor([2.0, 1.0, 1.0, 1.0])), "rigid"),
        (torch.eye(4).index_fill(0, torch.tensor([3]), 0.5), "rigid"),
    ],
)
def test_viewmat_rejects_bad_poses(c2w, match):
    with pytest.raises(ValueError, match=match):
        viewmat_from_c2w(c2w)


def test_scale_intrinsics_scales_projected_means_exactly():
    g = torch.Generator().manual_seed(0)
    n = 50
    means = torch.cat(
        [
            torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5,
            2 + torch.rand(n, 1, generator=g, dtype=torch.float64),
        ],
        1,
    )
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64)
    scales = torch.full((n, 3), 0.01, dtype=torch.float64)
    K = torch.tensor([[[80.0, 0.0, 40.0], [0.0, 70.0, 30.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    viewmats = torch.eye(4, dtype=torch.float64)[None]
    full = project_gaussians(means, quats, scales, viewmats, K, 80, 60)
    small = project_gaussians(means, quats, scales, viewmats, scale_intrinsics(K, 0.5, 0.25), 40, 15)
    torch.testing.assert_close(small.means2d, full.means2d * torch.tensor([0.5, 0.25], dtype=torch.float64))


def test_scale_intrinsics_keeps_the_last_row_and_accepts_numpy():
    K = np.array([[100.0, 0.5, 64.0], [0.0, 90.0, 48.0], [0.0, 0.0, 1.0]])
    scaled = scale_intrinsics(K, 0.5, 2.0)
    expected = torch.tensor([[50.0, 0.25, 32.0], [0.0, 180.0, 96.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(scaled, expected)


@pytest.mark.parametrize(
    ("K", "sx", "sy"), [(torch.eye(4), 1.0, 1.0), (torch.eye(3), 0.0, 1.0), (torch.eye(3), 1.0, math.inf)]
)
def test_scale_intrinsics_rejects_bad_input(K, sx, sy):
    with pytest.raises(ValueError):
        scale_intrinsics(K, sx, sy)
