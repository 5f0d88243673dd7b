"""Hungarian matching of decoder queries to target objects (Mask2Former-style costs on masks).

Masks are compared as flat vectors over "mask elements": pixels of the rendered views for the
render-supervised path (``[V * H * W]``), voxel points for the 3D baseline (``[Pv]``). Predictions are
probabilities in [0, 1]; targets are {0, 1} (floats or bools).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

EPS = 1e-6
"""Probabilities are clamped to [EPS, 1 - EPS] before taking logs."""


def pairwise_bce_cost(
    probs: Tensor,  # [Q, N] predicted probabilities
    targets: Tensor,  # [M, N] {0, 1}
) -> Tensor:  # [Q, M]
    """Mean binary cross-entropy of every prediction against every target."""
    probs = probs.clamp(EPS, 1.0 - EPS)
    targets = targets.to(probs.dtype)
    positive = -torch.log(probs)  # cost of a pixel where the target is 1
    negative = -torch.log1p(-probs)  # cost of a pixel where the target is 0
    return (positive @ targets.T + negative @ (1.0 - targets).T) / probs.shape[-1]


def pairwise_dice_cost(
    probs: Tensor,  # [Q, N]
    targets: Tensor,  # [M, N]
) -> Tensor:  # [Q, M]
    """``1 - dice`` of every prediction against every target (soft dice with +1 smoothing)."""
    targets = targets.to(probs.dtype)
    numerator = 2.0 * probs @ targets.T
    denominator = probs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1.0 - (numerator + 1.0) / (denominator + 1.0)


def hungarian_match(cost: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:  # cost [Q, M]
    """Minimum-cost one-to-one assignment of queries (rows) to targets (columns).

    With ``Q >= M`` every target gets exactly one query; with ``Q < M`` only ``Q`` targets are matched.

    Returns:
        ``(rows, cols)``: [K] int64 tensors, ``K = min(Q, M)``, query ``rows[k]`` matches target ``cols[k]``,
        sorted by row.

    Raises:
        ValueError: ``cost`` is not 2D or holds NaN/inf.
    """
    matrix = cost.detach().cpu().double().numpy() if isinstance(cost, Tensor) else np.asarray(cost, float)
    if matrix.ndim != 2:
        raise ValueError(f"cost: expected a [Q, M] matrix, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("cost: matrix holds NaN or inf")
    rows, cols = linear_sum_assignment(matrix)
    return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)
