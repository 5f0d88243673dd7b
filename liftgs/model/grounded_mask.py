"""From a query's per-voxel probabilities to the grounded object: its voxels and its box.

A mask trained through 2D renders is trustworthy where the views saw it, and can leave stray voxels above
the threshold elsewhere in the room (occluded or rarely seen ones). One stray voxel across the room is
enough to ruin an axis-aligned box, so the grounded object is the connected part of the thresholded mask
that holds the most probability: voxels closer than ``link`` metres are neighbours.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from torch import Tensor


def grounded_voxels(
    xyz: Tensor,  # [P, 3] metres
    probs: Tensor,  # [P] in [0, 1]
    threshold: float = 0.5,
    link: float = 0.2,
) -> Tensor:  # [P] bool
    """The voxels of the grounded object (none when no voxel has ``probs >= threshold``).

    The voxels with ``probs >= threshold`` are grouped into connected parts (neighbours closer than ``link``
    metres); the part with the largest summed probability is kept.
    """
    selected = probs >= threshold
    index = selected.nonzero().squeeze(1)
    if index.numel() <= 1:
        return selected
    points = xyz[index].detach().cpu().double().numpy()
    pairs = cKDTree(points).query_pairs(link, output_type="ndarray")  # [E, 2]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(points), len(points)))
    _, labels = connected_components(graph, directed=False)
    mass = np.bincount(labels, weights=probs[index].detach().cpu().double().numpy())
    keep = torch.as_tensor(labels == mass.argmax(), device=probs.device)
    grounded = torch.zeros_like(selected)
    grounded[index[keep]] = True
    return grounded


def mask_box(
    xyz: Tensor,  # [P, 3] metres
    mask: Tensor,  # [P] bool
    probs: Tensor,  # [P] in [0, 1]
    fallback_points: int = 16,
) -> Tensor:  # [6]
    """Axis-aligned box ``(min xyz, max xyz)`` of the masked points; of the ``fallback_points`` most
    probable points when the mask is empty."""
    if not mask.any():
        mask = torch.zeros_like(mask)
        mask[probs.topk(min(fallback_points, probs.numel())).indices] = True
    chosen = xyz[mask]
    return torch.cat([chosen.min(dim=0).values, chosen.max(dim=0).values])
