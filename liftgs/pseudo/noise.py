"""A noise model that makes clean 2D segments look like a foundation model's pseudo-labels.

Errors of SAM + CLIP pseudo-labels, each simulated by one component acting on every segment independently
with its own probability (``confuse`` and ``jitter`` act on the embeddings alone, before the others, in
``perturb_embeddings``; the rest act on the segments in ``apply_noise``):

=========  ==================================================================================  =========
component  what happens to a chosen segment                                                    at 1.0
=========  ==================================================================================  =========
confuse    its embedding is pulled past the middle towards one of the ``CONFUSABLE`` names     0.19
           nearest to its own: ``normalize((1 - w) e + w e_other)``, ``w ~ U(CONFUSION_MIX)``,
           so another name becomes its nearest: a zero-shot misclassification
jitter     (every segment) a Gaussian vector of expected norm ``jitter`` is added to its       0.25
           embedding, then it is re-normalised: view-to-view variation of a crop's embedding
drop       removed (its pixels become unlabelled): a missed object                             0.15
merge      joined with a random touching segment; the embedding is their area-weighted mean    0.15
split      cut in two by a random line through its centroid; both halves keep the embedding   0.15
erode      loses a ``boundary_px``-wide rim (pixels become unlabelled)                         0.20
dilate     grows a ``boundary_px``-wide rim over its neighbours                                0.20
swap       its embedding is exchanged with another segment's: a wrong label                    0.10
=========  ==================================================================================  =========

``confuse`` is calibrated so that at level 1 (with ``swap``) the share of object segments whose embedding
is nearest to their own category name is ``liftgs.pseudo.calibration.TARGET_RATE``, the stand-in's
counterpart of CLIP's zero-shot accuracy on segment crops. ``jitter`` alone never changes the nearest name:
it makes the views of one object differ (cosine about ``1 / (1 + jitter**2)``, 0.94 at 0.25, above
pretraining's ``tau`` 0.9). The target, why, and the measurement: docs/pseudo_labels.md.

``NoiseConfig.scaled(level)`` multiplies every probability and ``jitter`` by ``level`` (``--noise``,
0 = clean, 1 = the table; probabilities clipped to 1). The components run in the table's order. Everything
random comes from the ``numpy.random.Generator`` passed in, so a seed makes the result deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from liftgs.pseudo.segments import NO_SEGMENT, compact, remap

Labels = tuple[np.ndarray, np.ndarray]
"""(segment_map [H, W] int32 ids 0..S-1 all present, -1 = none; embeddings [S, D] L2-normalised rows):
what every component takes (with its probability and the random generator) and returns."""


CONFUSABLE = 3
"""A confused segment's embedding moves towards one of this many names nearest (cosine) to its own."""
CONFUSION_MIX = (0.5, 1.0)
"""Range of the weight ``w`` of the other name in a confused embedding (above 0.5: the other name wins)."""

PROBABILITIES = ("confuse", "drop", "merge", "split", "erode", "dilate", "swap")


@dataclass(frozen=True)
class NoiseConfig:
    """Per-segment probabilities of each error, the embedding jitter and the boundary width (see the
    module docstring; the defaults are the table's column "at 1.0")."""

    confuse: float = 0.19
    """Probability that a segment's embedding is pulled towards a confusable other name."""
    jitter: float = 0.25
    """Expected norm of the Gaussian vector added to every (unit) embedding before re-normalising."""
    drop: float = 0.15
    merge: float = 0.15
    split: float = 0.15
    erode: float = 0.2
    dilate: float = 0.2
    swap: float = 0.1
    boundary_px: int = 3
    """Width in pixels of the rim that erosion removes and dilation adds."""

    def __post_init__(self) -> None:
        for name in PROBABILITIES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"noise {name}: probability must lie in [0, 1], got {value}")
        if not self.jitter >= 0.0:
            raise ValueError(f"noise jitter: must be >= 0, got {self.jitter}")
        if self.boundary_px < 1:
            raise ValueError(f"noise boundary_px: must be >= 1, got {self.boundary_px}")

    def scaled(self, level: float) -> NoiseConfig:
        """Every probability (clipped to 1) and ``jitter`` times ``level``; ``level`` 0 gives clean labels."""
        if not level >= 0.0:
            raise ValueError(f"noise level must be >= 0, got {level}")
        probabilities = {name: min(1.0, getattr(self, name) * level) for name in PROBABILITIES}
        return replace(self, **probabilities, jitter=self.jitter * level)

    @property
    def is_clean(self) -> bool:
        return self.jitter == 0.0 and all(getattr(self, name) == 0.0 for name in PROBABILITIES)


def _neighbour_pairs(segment_map: np.ndarray) -> np.ndarray:
    """[K, 2] distinct pairs (a < b) of segment ids that touch (4-neighbourhood)."""
    pairs = []
    for a, b in (
        (segment_map[:, :-1], segment_map[:, 1:]),
        (segment_map[:-1, :], segment_map[1:, :]),
    ):
        touching = (a != b) & (a != NO_SEGMENT) & (b != NO_SEGMENT)
        pairs.append(np.stack([np.minimum(a, b)[touching], np.maximum(a, b)[touching]], axis=1))
    return np.unique(np.concatenate(pairs), axis=0)


def drop_segments(
    segment_map: np.ndarray, embeddings: np.ndarray, probability: float, rng: np.random.Generator
) -> Labels:
    """Unlabels each segment with ``probability``. Returns (segment_map [H, W], embeddings [S', D])."""
    dropped = rng.random(len(embeddings)) < probability
    return compact(remap(segment_map, np.where(dropped, NO_SEGMENT, np.arange(len(embeddings)))), embeddings)


def merge_segments(
    segment_map: np.ndarray, embeddings: np.ndarray, probability: float, rng: np.random.Generator
) -> Labels:
    """Joins each segment with ``probability`` to a random touching one (chains allowed).

    The merged segment's embedding is the area-weighted mean of its parts, re-normalised.
    """
    count = len(embeddings)
    parent = np.arange(count)

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    pairs = _neighbour_pairs(segment_map)
    for segment in rng.permutation(count):
        if rng.random() >= probability:
            continue
        touching = pairs[(pairs == segment).any(axis=1)]
        if len(touching) == 0:
            continue
        a, b = touching[rng.integers(len(touching))]
        other = b if a == segment else a
        parent[root(int(other))] = root(int(segment))
    roots = np.array([root(i) for i in range(count)], dtype=np.int64)
    areas = np.bincount(segment_map[segment_map >= 0], minlength=count).astype(np.float64)
    merged = np.zeros_like(embeddings, dtype=np.float64)
    np.add.at(merged, roots, embeddings * areas[:, None])
    merged /= np.maximum(np.linalg.norm(merged, axis=1, keepdims=True), 1e-12)
    return compact(remap(segment_map, roots), merged.astype(embeddings.dtype))


def split_segments(
    segment_map: np.ndarray, embeddings: np.ndarray, probability: float, rng: np.random.Generator
) -> Labels:
    """Cuts each segment with ``probability`` along a random line through its centroid."""
    new_map = segment_map.copy()
    rows = list(embeddings)
    for segment in range(len(embeddings)):
        if rng.random() >= probability:
            continue
        ys, xs = np.nonzero(segment_map == segment)
        angle = rng.uniform(0.0, np.pi)
        side = (xs - xs.mean()) * np.cos(angle) + (ys - ys.mean()) * np.sin(angle) > 0
        if side.all() or not side.any():
            continue
        new_map[ys[side], xs[side]] = len(rows)
        rows.append(embeddings[segment])
    return compact(new_map, np.asarray(rows, dtype=embeddings.dtype).reshape(-1, embeddings.shape[1]))


def _morph_boundaries(
    segment_map: np.ndarray,
    embeddings: np.ndarray,
    probability: float,
    radius: int,
    rng: np.random.Generator,
    grow: bool,
) -> Labels:
    """Erodes (``grow=False``) or dilates each segment with ``probability`` by ``radius`` pixels."""
    structure = ndimage.generate_binary_structure(2, 1)
    new_map = segment_map.copy()
    boxes = ndimage.find_objects(segment_map + 1)  # label l at index l - 1: segment k at index k
    for segment in rng.permutation(len(embeddings)):
        if rng.random() >= probability or boxes[segment] is None:
            continue
        rows, cols = boxes[segment]
        rows = slice(max(rows.start - radius, 0), rows.stop + radius)
        cols = slice(max(cols.start - radius, 0), cols.stop + radius)
        mask = new_map[rows, cols] == segment
        if grow:
            rim = ndimage.binary_dilation(mask, structure, iterations=radius) & ~mask
            new_map[rows, cols][rim] = segment
        else:
            rim = mask & ~ndimage.binary_erosion(mask, structure, iterations=radius, border_value=1)
            new_map[rows, cols][rim] = NO_SEGMENT
    return compact(new_map, embeddings)


def swap_labels(
    segment_map: np.ndarray, embeddings: np.ndarray, probability: float, rng: np.random.Generator
) -> Labels:
    """Exchanges each chosen segment's embedding with a random other segment's (a permutation of rows)."""
    count = len(embeddings)
    if count < 2:
        return segment_map, embeddings
    order = np.arange(count)
    for segment in range(count):
        if rng.random() >= probability:
            continue
        other = (segment + rng.integers(1, count)) % count
        order[[segment, other]] = order[[other, segment]]
    return segment_map, embeddings[order]


def confusable_names(
    embeddings: np.ndarray,  # [S, D] L2-normalised rows
    vocabulary: np.ndarray,  # [V, D] L2-normalised name embeddings
) -> np.ndarray:
    """[S, min(CONFUSABLE, V)] indices into ``vocabulary`` of the names nearest (cosine) to each row,
    nearest first, leaving out names equal to the row itself (cosine > 0.999)."""
    similarity = embeddings @ vocabulary.T  # [S, V]
    similarity = np.where(similarity > 0.999, -np.inf, similarity)
    count = min(CONFUSABLE, vocabulary.shape[0])
    return np.argsort(-similarity, axis=1, kind="stable")[:, :count]


def confuse_embeddings(
    embeddings: np.ndarray,  # [S, D] L2-normalised rows
    vocabulary: np.ndarray,  # [V, D] L2-normalised name embeddings, V >= 2
    probability: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """[S, D]: each row with ``probability`` becomes ``normalize((1 - w) e + w e_other)``, ``e_other`` one of
    its ``confusable_names`` drawn uniformly and ``w ~ U(CONFUSION_MIX)``."""
    chosen = rng.random(len(embeddings)) < probability
    candidates = confusable_names(embeddings, vocabulary)  # [S, C]
    other = candidates[np.arange(len(embeddings)), rng.integers(candidates.shape[1], size=len(embeddings))]
    weight = rng.uniform(*CONFUSION_MIX, size=len(embeddings))[:, None]
    mixed = (1.0 - weight) * embeddings + weight * vocabulary[other]
    mixed /= np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)
    return np.where(chosen[:, None], mixed, embeddings).astype(embeddings.dtype)


def jitter_embeddings(
    embeddings: np.ndarray,  # [S, D] L2-normalised rows
    scale: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """[S, D]: each row plus a Gaussian vector of expected squared norm ``scale**2``, re-normalised."""
    noise = rng.normal(scale=scale / np.sqrt(embeddings.shape[1]), size=embeddings.shape)
    jittered = embeddings + noise
    jittered /= np.maximum(np.linalg.norm(jittered, axis=1, keepdims=True), 1e-12)
    return jittered.astype(embeddings.dtype)


def perturb_embeddings(
    embeddings: np.ndarray,  # [S, D] float32, L2-normalised rows
    vocabulary: np.ndarray,  # [V, D] L2-normalised embeddings of the names a segment may be confused with
    config: NoiseConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """The embedding components of ``config`` (confuse, then jitter); returns [S, D] unit rows.

    Raises:
        ValueError: ``confuse`` > 0 with fewer than two vocabulary names.
    """
    if len(embeddings) == 0:
        return embeddings
    if config.confuse > 0.0:
        if vocabulary.shape[0] < 2:
            raise ValueError(f"noise confuse: needs a vocabulary of >= 2 names, got {vocabulary.shape[0]}")
        embeddings = confuse_embeddings(embeddings, vocabulary, config.confuse, rng)
    if config.jitter > 0.0:
        embeddings = jitter_embeddings(embeddings, config.jitter, rng)
    return embeddings


def apply_noise(
    segment_map: np.ndarray,  # [H, W] int32 ids 0..S-1, -1 = none
    embeddings: np.ndarray,  # [S, D] float32, L2-normalised rows
    config: NoiseConfig,
    rng: np.random.Generator,
) -> Labels:
    """Applies the segment components of ``config`` (drop .. swap) in order; returns the noisy
    (segment_map, embeddings). The embedding components are ``perturb_embeddings``'.

    The result keeps the conventions of the input: ids ``0 .. S'-1`` all present, -1 = none, unit rows.
    """
    radius = config.boundary_px
    stages = [
        (config.drop, drop_segments),
        (config.merge, merge_segments),
        (config.split, split_segments),
        (config.erode, lambda m, e, p, r: _morph_boundaries(m, e, p, radius, r, grow=False)),
        (config.dilate, lambda m, e, p, r: _morph_boundaries(m, e, p, radius, r, grow=True)),
        (config.swap, swap_labels),
    ]
    for probability, stage in stages:
        if probability > 0.0 and len(embeddings) > 0:
            segment_map, embeddings = stage(segment_map, embeddings, probability, rng)
    return segment_map, embeddings
