"""From a query's per-voxel probabilities to the grounded object: its voxels and its box.

The grounding rule (the one place it is described; everything else points here):

1. The voxels with probability >= ``threshold`` are grouped into connected parts: voxels closer than
   ``link_distance`` (``LINK_SPACINGS`` times the cloud's own spacing, not the voxel edge, since a
   farthest-point subsampled cloud is sparser than its grid) are neighbours. A mask trained through 2D
   renders can leave stray voxels above the threshold where the views rarely saw the room, and one stray
   voxel ruins an axis-aligned box, so the object is one part.
2. The parts whose summed probability is at least ``MASS_FLOOR`` times the heaviest part's compete; the one
   with the highest mean probability wins (the heaviest alone favours a bigger, fainter look-alike; the
   mean alone a single stray confident voxel).
3. The winner grows into the voxels connected to it whose probability is at least ``GROW_FRACTION`` times
   the threshold (hysteresis: a relation such as "closest to the door" also lowers the logits of a long
   desk's far end).
4. ``grounded_voxels`` grounds nothing when no voxel reaches the threshold (the viewer says so and offers
   its slider); ``answer_voxels`` (``LiftGS.predict``, so ``liftgs eval`` / ``liftgs ground``) then grounds
   again at ``EMPTY_FALLBACK`` times the largest probability and says it did: a referring expression names
   an object.

The constants were chosen on the synthetic val split (see docs/experiments.md).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from torch import Tensor

LINK_SPACINGS = 2.0
"""Neighbour link in units of the cloud's spacing (``link_distance``)."""
MASS_FLOOR = 0.6
"""Fraction of the heaviest part's summed probability a part needs to compete (rule 2); 1.0 keeps the
heaviest part. Chosen on val, see docs/experiments.md."""
GROW_FRACTION = 0.4
"""The grounded part grows into connected voxels with probability >= this times the threshold (rule 3);
1.0 turns the growth off. Chosen on val, see docs/experiments.md."""
EMPTY_FALLBACK = 0.1
"""Fraction of the largest probability ``answer_voxels`` grounds at when no voxel reaches the threshold
(rule 4). Chosen on val, see docs/experiments.md."""

SPACING_SAMPLES = 2048
"""At most this many voxels (every k-th) are asked for their nearest neighbour to estimate the spacing."""


def link_distance(xyz: Tensor, voxel_size: float) -> float:
    """Metres within which two voxels of ``xyz`` [P, 3] are neighbours: ``LINK_SPACINGS`` times the larger of
    the voxel edge and the median distance from a voxel to its nearest other voxel (estimated on every
    k-th voxel, at most ``SPACING_SAMPLES`` of them)."""
    points = xyz.detach().cpu().double().numpy()
    spacing = voxel_size
    if len(points) > 1:
        sample = points[:: -(-len(points) // SPACING_SAMPLES)]
        spacing = max(spacing, float(np.median(cKDTree(points).query(sample, k=2)[0][:, 1])))
    return LINK_SPACINGS * spacing


def grounded_voxels(
    xyz: Tensor,  # [P, 3] metres
    probs: Tensor,  # [P] in [0, 1]
    threshold: float = 0.5,
    link: float = 0.2,
    grow_fraction: float = GROW_FRACTION,
    mass_floor: float = MASS_FLOOR,
) -> Tensor:  # [P] bool
    """The voxels of the grounded object by rules 1-3 of the module docstring (neighbours closer than
    ``link`` metres); none when no voxel has ``probs >= threshold``."""
    candidates = (probs >= min(grow_fraction, 1.0) * threshold).nonzero().squeeze(1)
    grounded = torch.zeros_like(probs, dtype=torch.bool)
    candidate_probs = probs[candidates].detach().cpu().double().numpy()
    seeds = candidate_probs >= threshold  # [N] bool, the candidates that reach the threshold
    if not seeds.any():
        return grounded
    points = xyz[candidates].detach().cpu().double().numpy()
    pairs = cKDTree(points).query_pairs(link, output_type="ndarray")  # [E, 2], one tree for both steps
    seed_pairs = pairs[seeds[pairs[:, 0]] & seeds[pairs[:, 1]]]
    seed_labels = _connected_parts(seed_pairs, len(points))  # other candidates: parts of their own
    mass = np.bincount(seed_labels, weights=np.where(seeds, candidate_probs, 0.0))
    size = np.bincount(seed_labels, weights=seeds)  # parts of non-seed candidates have size and mass 0
    competes = (size > 0) & (mass >= mass_floor * mass.max())
    mean = np.where(competes, mass / np.maximum(size, 1), -1.0)
    labels = _connected_parts(pairs, len(points))
    kept = np.isin(labels, labels[seed_labels == mean.argmax()])
    grounded[candidates[torch.as_tensor(kept, device=probs.device)]] = True
    return grounded


def _connected_parts(pairs: np.ndarray, count: int) -> np.ndarray:
    """[count] int labels of the connected parts of the graph on ``count`` nodes whose edges are ``pairs``."""
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(count, count))
    return connected_components(graph, directed=False)[1]


def answer_voxels(
    xyz: Tensor,  # [P, 3] metres
    probs: Tensor,  # [P] in [0, 1]
    threshold: float = 0.5,
    link: float = 0.2,
) -> tuple[Tensor, bool]:
    """(``grounded_voxels`` [P] bool, never empty; whether it fell back to ``EMPTY_FALLBACK``, rule 4 of the
    module docstring)."""
    grounded = grounded_voxels(xyz, probs, threshold, link)
    if grounded.any():
        return grounded, False
    return grounded_voxels(xyz, probs, EMPTY_FALLBACK * float(probs.max()), link), True


def mask_box(
    xyz: Tensor,  # [P, 3] metres
    mask: Tensor,  # [P] bool, not empty
) -> Tensor:  # [6]
    """Axis-aligned box ``(min xyz, max xyz)`` of the masked points."""
    if not mask.any():
        raise ValueError("mask_box: the mask is empty (answer_voxels never returns an empty one)")
    chosen = xyz[mask]
    return torch.cat([chosen.min(dim=0).values, chosen.max(dim=0).values])
