"""Referring expressions: every target is singled out by its relation; fields and held-out phrasings."""

from collections import Counter

import numpy as np
import pytest

from liftgs.data.synthetic.expressions import (
    RELATIONS,
    TEMPLATES,
    Relation,
    anchor_phrase,
    describe_scene,
    holds,
    tokenize,
)
from liftgs.data.synthetic.layout import sample_layout
from liftgs.data.synthetic.objects import CATEGORIES


@pytest.fixture(scope="module")
def scenes():
    out = []
    for i in range(25):
        rng = np.random.default_rng([11, i])
        layout = sample_layout(rng)
        out.append((layout, describe_scene(layout, rng, f"scan{i:04d}", held_out=i % 2 == 1)))
    return out


def test_every_expression_singles_out_its_target(scenes):
    for layout, generated in scenes:
        for g in generated:
            target = layout.by_id(g.expression.object_id)
            same = layout.same_category(target)
            assert holds(layout, g.relation, target, strict=True), g.expression.description
            # Evaluate the relation on every same-category object: only the target satisfies it.
            satisfied = [o.object_id for o in same if holds(layout, g.relation, o, strict=False)]
            assert satisfied == [target.object_id], (g.expression.description, satisfied)


def test_relations_mean_what_they_say(scenes):
    """Spot checks of relation semantics against the geometry, independent of ``holds``."""
    checked = Counter()
    for layout, generated in scenes:
        for g in generated:
            target = layout.by_id(g.expression.object_id)
            anchors = [layout.by_id(i) for i in g.relation.anchors]
            kind = g.relation.kind
            others = [o for o in layout.same_category(target) if o is not target]
            if kind == "on":
                assert target.box[2] == pytest.approx(anchors[0].box[5], abs=1e-6)
            elif kind == "under":
                assert anchors[0].box[2] == pytest.approx(target.box[5], abs=1e-6)
            elif kind == "color":
                assert target.color == g.relation.value and g.relation.value in g.expression.description
                assert all(o.color != target.color for o in others)
            elif kind == "tallest":
                assert all(target.box[5] - target.box[2] > o.box[5] - o.box[2] for o in others)
            elif kind in ("closest", "farthest"):
                sign = 1 if kind == "closest" else -1
                d = [sign * np.linalg.norm(o.center_xy - anchors[0].center_xy) for o in [target, *others]]
                # Footprint gaps decide; centre distances agree for all but very elongated anchors.
                checked["centre-agree"] += d[0] == min(d)
            elif kind == "category":
                assert not others
            for anchor in anchors:
                assert anchor.category != target.category
                assert anchor_phrase(layout, anchor) in g.expression.description
            checked[kind] += 1
    assert len(checked) >= 10  # most relation kinds occur in 25 scenes
    assert checked["centre-agree"] >= 0.8 * (checked["closest"] + checked["farthest"])


def test_records_have_scanrefer_fields_and_eval_type(scenes):
    per_object = Counter()
    for layout, generated in scenes:
        counts = Counter(o.category for o in layout.objects)
        for g in generated:
            e = g.expression
            assert e.object_name == layout.by_id(e.object_id).category
            assert e.eval_type == ("unique" if counts[e.object_name] == 1 else "multiple")
            assert e.token == tokenize(e.description)
            assert e.relation == g.relation.kind and "relation" not in g.extras()
            assert e.object_name in e.description or CATEGORIES[e.object_name].plural in e.description
            per_object[(e.scene_id, e.object_id)] += 1
        anns = [
            g.expression.ann_id
            for g in generated
            if g.expression.object_id == generated[0].expression.object_id
        ]
        assert anns == list(range(len(anns)))
    assert max(per_object.values()) <= 6
    assert np.mean(list(per_object.values())) >= 3


def test_held_out_phrasings_only_in_held_out_scenes(scenes):
    unseen = {t for _, held in TEMPLATES.values() for t in held}
    for index, (_, generated) in enumerate(scenes):
        flags = [g.held_out_template for g in generated]
        if index % 2 == 0:
            assert not any(flags)
        else:
            assert any(flags)
    assert len(unseen) == len(RELATIONS)


def test_unknown_relation_is_an_error(scenes):
    layout, _ = scenes[0]
    with pytest.raises(ValueError, match="unknown relation"):
        holds(layout, Relation("above"), layout.objects[0])
