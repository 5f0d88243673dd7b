"""A noise model that makes clean 2D segments look like a foundation model's pseudo-labels.

Errors of SAM + CLIP pseudo-labels, each simulated by one component acting on every segment independently
with its own probability:

=========  ==================================================================================  =========
component  what happens to a chosen segment                                                    p at 1.0
=========  ==================================================================================  =========
drop       removed (its pixels become unlabelled): a missed object                             0.15
merge      joined with a random touching segment; the embedding is their area-weighted mean    0.15
split      cut in two by a random line through its centroid; both halves keep the embedding   0.15
erode      loses a ``boundary_px``-wide rim (pixels become unlabelled)                         0.20
dilate     grows a ``boundary_px``-wide rim over its neighbours                                0.20
swap       its embedding is exchanged with another segment's: a wrong label                    0.10
=========  ==================================================================================  =========

``NoiseConfig.scaled(level)`` multiplies every probability by ``level`` (``--noise``, 0 = clean,
1 = the table; clipped to 1). The components run in the table's order. Everything random comes from the
``numpy.random.Generator`` passed in, so a seed makes the result deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
from scipy import ndimage

from liftgs.pseudo.segments import NO_SEGMENT, compact, remap

Labels = tuple[np.ndarray, np.ndarray]
"""(segment_map [H, W] int32 ids 0..S-1 all present, -1 = none; embeddings [S, D] L2-normalised rows):
what every component takes (with its probability and the random generator) and returns."""


@dataclass(frozen=True)
class NoiseConfig:
    """Per-segment probabilities of each error (see the module docstring) and the boundary width."""

    drop: float = 0.15
    merge: float = 0.15
    split: float = 0.15
    erode: float = 0.2
    dilate: float = 0.2
    swap: float = 0.1
    boundary_px: int = 3
    """Width in pixels of the rim that erosion removes and dilation adds."""

    def __post_init__(self) -> None:
        for name in ("drop", "merge", "split", "erode", "dilate", "swap"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"noise {name}: probability must lie in [0, 1], got {value}")
        if self.boundary_px < 1:
            raise ValueError(f"noise boundary_px: must be >= 1, got {self.boundary_px}")

    def scaled(self, level: float) -> NoiseConfig:
        """Every probability times ``level`` (clipped to 1); ``level`` 0 gives clean labels."""
        if not level >= 0.0:
            raise ValueError(f"noise level must be >= 0, got {level}")
        probabilities = {f.name: min(1.0, getattr(self, f.name) * level) for f in fields(self)}
        probabilities.pop("boundary_px")
        return replace(self, **probabilities)

    @property
    def is_clean(self) -> bool:
        return all(getattr(self, f.name) == 0.0 for f in fields(self) if f.name != "boundary_px")


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


def apply_noise(
    segment_map: np.ndarray,  # [H, W] int32 ids 0..S-1, -1 = none
    embeddings: np.ndarray,  # [S, D] float32, L2-normalised rows
    config: NoiseConfig,
    rng: np.random.Generator,
) -> Labels:
    """Applies every component of ``config`` in order; returns the noisy (segment_map, embeddings).

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
