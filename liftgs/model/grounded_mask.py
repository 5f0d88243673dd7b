"""From a query's per-voxel probabilities to the grounded object: its voxels and its box.

A mask trained through 2D renders is trustworthy where the views saw it, and can leave stray voxels above
the threshold elsewhere in the room (occluded or rarely seen ones). One stray voxel across the room is
enough to ruin an axis-aligned box, so the grounded object is one connected part of the thresholded mask:
voxels closer than ``link`` metres are neighbours.

The link must follow the cloud's own spacing (``link_distance``), not the voxel edge: a scene with more
voxels than ``LiftGSConfig.max_points`` is farthest-point subsampled, and its kept voxels lie 0.10-0.14 m
apart (median nearest neighbour; up to 0.28 m) on a 0.1 m grid, so a link of two voxel edges split tables
and desks into fragments whose boxes miss the object (on the synthetic val split, with the same weights:
Acc@0.25 / 0.5 68.5 / 54.3 at 0.2 m, 77.8 / 69.0 at ``link_distance``).

Which part: of the parts holding at least ``MASS_FLOOR`` of the heaviest part's summed probability, the one
with the highest mean probability. The heaviest part alone favours size: a relation ("the ball farthest from
the nightstand") can paint the target at 0.95 and a look-alike twice its size at 0.7 (46 of a trained
checkpoint's 180 test failures boxed a look-alike although the target had the higher mean probability: kC0
in the README). The mean alone favours a single stray confident voxel; the floor keeps those out (on the
synthetic val split, thirteen trained checkpoints gained 0.2-3.0 points of Acc@0.25 and up to 2.5 of
Acc@0.5, none lost; kC0 84.9 / 75.6 -> 86.0 / 76.2).

That part then grows into the voxels connected to it whose probability is at least ``GROW_FRACTION`` times
the threshold (hysteresis, as in edge detection): a relation such as "closest to the door" lowers the logits
of a long desk's far end along with the other desks', and the threshold alone kept only the near end
(on the synthetic val split, five trained checkpoints gained 0.3-1.7 points of Acc@0.25 and 0.3-2.3 of
Acc@0.5; kC0 83.3 / 73.3 -> 84.9 / 75.6).

``grounded_voxels`` grounds nothing when no voxel reaches the threshold (the viewer says so and offers its
slider); ``answer_voxels``, which ``LiftGS.predict`` and so ``liftgs eval`` / ``liftgs ground`` use, then
grounds again at a threshold relative to the largest probability (``EMPTY_FALLBACK``) and says it did.
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
"""A connected part competes for the grounded object if its summed probability is at least this fraction of
the heaviest part's; the most confident (highest mean probability) competitor wins. 1.0 keeps the heaviest
part. Chosen on the synthetic val split over thirteen checkpoints (0.5-0.7 within 0.3 points of each other on
average; 0.25 and 0.4 lower)."""

GROW_FRACTION = 0.4
"""The grounded part grows into connected voxels with probability >= this times the threshold (0.2 at the
default 0.5); 1.0 turns the growth off. Chosen on the synthetic val split (0.3-0.5 of the threshold were
within 0.5 points of each other)."""

EMPTY_FALLBACK = 0.1
"""When no voxel reaches the threshold, ``answer_voxels`` grounds at this fraction of the largest probability.
Chosen on the synthetic val split: over thirteen trained checkpoints 70 expressions grounded nothing (0-15
per checkpoint); fractions 0.05 / 0.1 / 0.2 / 0.3 / 0.5 / 1.0 made 48 / 49 / 47 / 45 / 41 / 30 of them right
at IoU 0.25 (43 / 43 / 39 / 37 / 33 / 23 at 0.5), where an empty answer scores none."""

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
    """The voxels of the grounded object (none when no voxel has ``probs >= threshold``).

    The voxels with ``probs >= threshold`` are grouped into connected parts (neighbours closer than ``link``
    metres); of the parts whose summed probability is at least ``mass_floor`` times the largest part's, the
    one with the highest mean probability is kept, together with every voxel of
    ``probs >= grow_fraction * threshold`` connected to it through such voxels.
    """
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
    """(``grounded_voxels`` [P] bool, never empty; whether it fell back): a referring expression names an
    object, so when no voxel reaches ``threshold`` the object is grounded again at ``EMPTY_FALLBACK`` times
    the largest probability."""
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
