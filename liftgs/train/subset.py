"""The labelled fraction: a fixed, per-scene subsample of the training expressions (data-efficiency runs).

Every scene keeps ``max(1, round(fraction * n))`` of its n expressions, chosen by a permutation that
depends only on ``(seed, scene id)``: the scenes stay fixed, every scene keeps at least one expression,
and for one seed a smaller fraction's subset is contained in a larger one's (10% within 20% within 50%).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from liftgs.scene import Expression


def labelled_subset(expressions: Sequence[Expression], fraction: float, seed: int = 0) -> list[Expression]:
    """The expressions kept at ``fraction`` (0 < fraction <= 1), in their input order.

    Raises:
        ValueError: ``fraction`` outside (0, 1].
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"labelled_fraction must be in (0, 1], got {fraction}")
    by_scene: dict[str, list[int]] = {}
    for index, expression in enumerate(expressions):
        by_scene.setdefault(expression.scene_id, []).append(index)
    kept: list[int] = []
    for scene_id, indices in by_scene.items():
        rng = np.random.default_rng([seed, zlib.crc32(scene_id.encode())])
        count = max(1, round(fraction * len(indices)))
        kept += [indices[i] for i in rng.permutation(len(indices))[:count]]
    return [expressions[i] for i in sorted(kept)]
