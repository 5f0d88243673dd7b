"""The synthetic benchmark's ``eval_type`` is ScanRefer's: "unique" exactly when no other annotated object of
the scene shares the target's category (the names the scene's ``objects.json`` will carry)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from liftgs.data.synthetic.expressions import describe_scene
from liftgs.data.synthetic.layout import sample_layout


def test_synthetic_eval_type_counts_the_targets_category_among_the_scenes_objects():
    seen = Counter()
    for index in range(6):
        rng = np.random.default_rng([11, index])
        layout = sample_layout(rng)
        names = Counter(o.category for o in layout.objects)  # objects.json's object_name per object
        for generated in describe_scene(layout, rng, f"scene{index:04d}", held_out=False):
            expression = generated.expression
            expected = "unique" if names[expression.object_name] == 1 else "multiple"
            assert expression.eval_type == expected, expression
            seen[expected] += 1
    assert seen["unique"] > 0 and seen["multiple"] > 0
