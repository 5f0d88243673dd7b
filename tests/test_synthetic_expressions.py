"""Referring expressions: every target is singled out by its relation; fields, names and held-out wordings."""

import re
from collections import Counter

import numpy as np
import pytest

from liftgs.data.synthetic.expressions import (
    RELATIONS,
    Relation,
    describe_scene,
    holds,
    tokenize,
)
from liftgs.data.synthetic.layout import sample_layout
from liftgs.data.synthetic.objects import CATEGORIES, COLORS
from liftgs.data.synthetic.phrasing import FRAMES, PREDICATES, SENTENCES, phrase
from liftgs.data.synthetic.vocabulary import CATEGORY_WORDS, COLOR_WORDS, MISSPELLINGS, held_out_words, plural


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
                color_words = [*COLOR_WORDS[target.color][0], *COLOR_WORDS[target.color][1]]
                assert target.color == g.relation.value
                assert any(word in g.expression.description for word in color_words)
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
            assert len(g.expression.anchor_words) == len(anchors)
            for anchor, words in zip(anchors, g.expression.anchor_words, strict=True):
                assert anchor.category != target.category
                assert words in [*CATEGORY_WORDS[anchor.category][0], *CATEGORY_WORDS[anchor.category][1]]
                assert words in g.expression.description
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
            assert e.relation == g.relation.kind
            names = [*CATEGORY_WORDS[e.object_name][0], *CATEGORY_WORDS[e.object_name][1]]
            assert e.target_words in names
            assert e.target_words in e.description or plural(e.target_words) in e.description
            per_object[(e.scene_id, e.object_id)] += 1
        anns = [
            g.expression.ann_id
            for g in generated
            if g.expression.object_id == generated[0].expression.object_id
        ]
        assert anns == list(range(len(anns)))
    assert max(per_object.values()) <= 6
    assert np.mean(list(per_object.values())) >= 3


def _uses(text: str, words: set[str]) -> bool:
    """Whether ``text`` uses one of ``words`` (or its plural) as a whole phrase."""
    return any(re.search(rf"\b({re.escape(w)}|{re.escape(plural(w))})\b", text) for w in words)


def _pattern(template: str) -> re.Pattern:
    """A template as a regular expression: its fields match any text."""
    literal = re.split(r"\{[a-z]+\}", template.lstrip("=~"))
    return re.compile(".+".join(re.escape(piece) for piece in literal))


def test_training_sentences_never_use_held_out_words_or_shapes(scenes):
    held_words = held_out_words()
    held_shapes = [_pattern(t) for t, _, _ in FRAMES[1]]
    held_shapes += [_pattern(t) for _, held in SENTENCES.values() for t in held]
    held_predicates = [_pattern(p) for _, held in PREDICATES.values() for p in held]
    for index, (_, generated) in enumerate(scenes):
        if index % 2:
            continue
        for g in generated:
            text = g.expression.description
            assert g.expression.wording in (("seen words", "seen shape"), ("seen words", "long")), text
            assert not _uses(text, held_words), text
            assert not any(p.fullmatch(text) for p in held_shapes), text
            assert not any(p.search(text) for p in held_predicates), text


def test_held_out_scenes_use_held_out_wordings_and_say_so(scenes):
    groups = Counter()
    held_words = held_out_words()
    for index, (_, generated) in enumerate(scenes):
        if not index % 2:
            continue
        for g in generated:
            words, shape = g.expression.wording
            groups[words] += 1
            groups[shape] += 1
            text = g.expression.description
            assert _uses(text, held_words) == (words == "unseen words"), text
    total = groups["seen words"] + groups["unseen words"]
    assert 0.25 < groups["unseen words"] / total < 0.6
    assert 0.25 < groups["unseen shape"] / total < 0.6
    assert 0.05 < groups["long"] / total < 0.3


def test_long_descriptions_name_the_target_with_its_color_and_two_other_objects(scenes):
    checked = 0
    for layout, generated in scenes:
        for g in generated:
            if "long" not in g.expression.wording:
                continue
            target = layout.by_id(g.expression.object_id)
            text = g.expression.description
            assert len(re.findall(r"\.", text)) >= 2, text
            assert any(w in text for w in [*COLOR_WORDS[target.color][0], *COLOR_WORDS[target.color][1]])
            others = {o.category for o in layout.objects if o.category != target.category}
            words = [w for c in others for w in (*CATEGORY_WORDS[c][0], *CATEGORY_WORDS[c][1])]
            named = [rf"\bthe (?:[a-z]+ ){{0,2}}?{re.escape(w)}\b" for w in words]  # "the off white sofa"
            phrases = {m for pattern in named for m in re.findall(pattern, text)}
            assert len(phrases) >= min(2, len(others)), text
            checked += 1
    assert checked >= 20


def test_every_category_and_color_has_seen_and_held_out_words():
    assert set(CATEGORY_WORDS) == set(CATEGORIES) and set(COLOR_WORDS) == set(COLORS)
    for table in (CATEGORY_WORDS, COLOR_WORDS):
        for key, (seen, held) in table.items():
            assert seen[0] == key and held and not set(seen) & set(held)
    everything = [w for t in (CATEGORY_WORDS, COLOR_WORDS) for s, h in t.values() for w in (*s, *h)]
    assert len(everything) == len(set(everything))
    assert plural("shelf") == "shelves" and plural("trash can") == "trash cans" and plural("box") == "boxes"
    assert set(PREDICATES) == set(SENTENCES) == set(RELATIONS)


def test_unknown_relation_is_an_error(scenes):
    layout, _ = scenes[0]
    with pytest.raises(ValueError, match="unknown relation"):
        holds(layout, Relation("above"), layout.objects[0])


def test_a_sentence_is_labelled_unseen_words_exactly_when_it_says_a_held_out_word():
    """Whole-sentence superlative templates never say the target's color, so a held-out color drawn for
    them must not make the sentence "unseen words"."""
    rng = np.random.default_rng(5)
    for index in range(40):
        layout = sample_layout(np.random.default_rng([13, index]))
        for target in layout.objects:
            for kind in ("category", "color", "largest"):
                wording = phrase(layout, target, kind, [], rng, "seen shape", unseen_words=True)
                assert _uses(wording.text, held_out_words()) == (wording.groups[0] == "unseen words")


def test_misspellings_are_words_of_the_tables():
    everything = {w for t in (CATEGORY_WORDS, COLOR_WORDS) for s, h in t.values() for w in (*s, *h)}
    assert everything >= MISSPELLINGS
