"""``labelled_subset``: the fixed per-scene subsample behind ``--pipeline.datamanager.labelled-fraction``."""

from __future__ import annotations

import pytest

from liftgs.scene import Expression
from liftgs.train.subset import labelled_subset


def _expressions(counts: dict[str, int]) -> list[Expression]:
    return [
        Expression(scene_id, i % 3, "chair", i, f"the chair number {i} of {scene_id}", [], "unique")
        for scene_id, count in counts.items()
        for i in range(count)
    ]


COUNTS = {"scan0000": 20, "scan0001": 7, "scan0002": 1}


def test_every_scene_keeps_its_share_and_at_least_one():
    expressions = _expressions(COUNTS)
    kept = labelled_subset(expressions, 0.1)
    per_scene = {s: sum(e.scene_id == s for e in kept) for s in COUNTS}
    assert per_scene == {"scan0000": 2, "scan0001": 1, "scan0002": 1}
    assert labelled_subset(expressions, 1.0) == expressions


def test_subsets_are_fixed_nested_and_in_input_order():
    expressions = _expressions(COUNTS)
    small, large = labelled_subset(expressions, 0.2), labelled_subset(expressions, 0.5)
    assert small == labelled_subset(list(expressions), 0.2)  # deterministic
    assert {(e.scene_id, e.ann_id) for e in small} < {(e.scene_id, e.ann_id) for e in large}
    assert small == sorted(small, key=expressions.index)
    other_seed = labelled_subset(expressions, 0.5, seed=1)
    assert other_seed != large and len(other_seed) == len(large)
    # a scene's choice does not depend on the other scenes
    alone = labelled_subset([e for e in expressions if e.scene_id == "scan0000"], 0.5)
    assert alone == [e for e in large if e.scene_id == "scan0000"]


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_bad_fraction_is_a_clear_error(fraction):
    with pytest.raises(ValueError, match="labelled_fraction must be in"):
        labelled_subset(_expressions(COUNTS), fraction)
