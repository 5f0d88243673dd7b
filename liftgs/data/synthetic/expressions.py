"""Referring expressions generated from a layout's scene graph, each checked to be unambiguous.

An expression is a ``Relation`` (what singles the target out: its category, color, a size superlative or
a view-independent spatial relation to named anchor objects) put into words.
``holds(layout, relation, obj, strict)`` evaluates a relation on any object; the generator keeps an
expression only when the relation holds strictly for the target and does not even loosely hold for any
other object of the target's category (``is_unambiguous``). The strict/loose gap is a margin so that a
reader (or a model) is never asked to split hairs: "next to" means within 0.35 m while every distractor
is more than 0.8 m away; "the largest" means 30 % bigger than every other, and so on.

Anchors are named so that they are unambiguous themselves: "the sofa" when it is the only sofa, else
"the red sofa" when it is the only red one, else the object is not used as an anchor.

How a relation is said in words (names, sentence shapes, long descriptions, and which of them are held
out for val/test) is ``phrasing``'s and ``vocabulary``'s job.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from liftgs.data.synthetic.layout import Layout, PlacedObject
from liftgs.data.synthetic.phrasing import PREDICATES, phrase
from liftgs.scene import LONG, SEEN_SHAPE, UNSEEN_SHAPE, Expression

NEAR, NEAR_LOOSE = 0.35, 0.8  # footprint gap (m) for "next to"
WALL, WALL_LOOSE = 0.3, 0.7  # footprint-to-wall distance (m) for "near the wall"
CORNER, CORNER_LOOSE = 0.5, 1.0  # footprint-to-corner distance (m) for "in the corner"
MIDDLE, MIDDLE_LOOSE = 1.2, 0.8  # footprint-to-wall distance (m) for "in the middle of the room"
SIZE_RATIO = 1.3  # "largest"/"smallest": volume ratio to every other same-category object
HEIGHT_MARGIN = 0.12  # "tallest": metres above every other same-category object
DISTANCE_MARGIN = 0.4  # "closest to"/"farthest from": metres ahead of the runner-up
BETWEEN_OFFSET, BETWEEN_OFFSET_LOOSE = 0.4, 0.8  # distance (m) from the line joining the anchors
BETWEEN_SPAN, BETWEEN_SPAN_LOOSE = (0.2, 0.8), (0.0, 1.0)  # position along the anchors' segment

RELATIONS = tuple(PREDICATES)
_ANCHORED = {"on": 1, "under": 1, "near": 1, "closest": 1, "farthest": 1, "between": 2}


@dataclass(frozen=True)
class Relation:
    """What singles a target out. ``anchors`` are object ids; ``value`` is the color for "color"."""

    kind: str
    anchors: tuple[int, ...] = ()
    value: str = ""


# --------------------------------------------------------------------------------------------- evaluation


def _stacked(a: PlacedObject, b: PlacedObject) -> bool:
    return a.support_id == b.object_id or b.support_id == a.object_id


def _superlative(obj: PlacedObject, others: list[PlacedObject], measure, margin) -> bool:
    """``obj``'s measure beats every other's by ``margin(other_value)`` (a callable)."""
    value = measure(obj)
    return all(value > margin(measure(o)) for o in others)


def holds(layout: Layout, relation: Relation, obj: PlacedObject, strict: bool = True) -> bool:
    """Whether ``relation`` describes ``obj``; ``strict=False`` is the looser test used on distractors."""
    kind = relation.kind
    anchors = [layout.by_id(i) for i in relation.anchors]
    if obj.object_id in relation.anchors:
        return False
    others = [o for o in layout.same_category(obj) if o is not obj]
    if kind == "category":
        return True
    if kind == "color":
        return obj.color == relation.value
    if kind in ("largest", "smallest"):
        ratio = SIZE_RATIO if strict else 1.0
        if kind == "largest":
            return _superlative(obj, others, lambda o: o.model.volume, lambda v: v * ratio)
        return _superlative(obj, others, lambda o: -o.model.volume, lambda v: v / ratio)
    if kind == "tallest":
        margin = HEIGHT_MARGIN if strict else 0.0
        return _superlative(obj, others, lambda o: o.model.height, lambda v: v + margin)
    if kind == "on":
        return obj.support_id == anchors[0].object_id
    if kind == "under":
        return anchors[0].support_id == obj.object_id
    if kind == "near":
        gap = layout.gaps[obj.object_id, anchors[0].object_id]
        return not _stacked(obj, anchors[0]) and gap < (NEAR if strict else NEAR_LOOSE)
    if kind in ("closest", "farthest"):
        margin = DISTANCE_MARGIN if strict else 0.0
        sign = 1.0 if kind == "farthest" else -1.0
        gaps = layout.gaps[:, anchors[0].object_id]
        return _superlative(obj, others, lambda o: sign * gaps[o.object_id], lambda v: v + margin)
    if kind == "between":
        a, b = (x.center_xy for x in anchors)
        span, offset = (
            (BETWEEN_SPAN, BETWEEN_OFFSET) if strict else (BETWEEN_SPAN_LOOSE, BETWEEN_OFFSET_LOOSE)
        )
        axis = b - a
        t = float(np.dot(obj.center_xy - a, axis) / np.dot(axis, axis))
        off = float(abs(np.cross(axis / np.linalg.norm(axis), obj.center_xy - a)))
        return not any(_stacked(obj, x) for x in anchors) and span[0] <= t <= span[1] and off < offset
    if kind == "wall":
        return layout.wall_distances[obj.object_id] < (WALL if strict else WALL_LOOSE)
    if kind == "corner":
        return layout.corner_distances[obj.object_id] < (CORNER if strict else CORNER_LOOSE)
    if kind == "middle":
        return layout.wall_distances[obj.object_id] > (MIDDLE if strict else MIDDLE_LOOSE)
    raise ValueError(f"unknown relation kind {kind!r}; choose from {RELATIONS}")


def is_unambiguous(layout: Layout, relation: Relation, target: PlacedObject) -> bool:
    """The relation holds strictly for ``target`` and not even loosely for any same-category object."""
    if not holds(layout, relation, target, strict=True):
        return False
    return not any(
        holds(layout, relation, o, strict=False) for o in layout.same_category(target) if o is not target
    )


# ------------------------------------------------------------------------------------------- generation


def nameable_anchors(layout: Layout, target: PlacedObject) -> list[PlacedObject]:
    """Objects of other categories than ``target``'s that a sentence can name unambiguously: alone in their
    category ("the sofa") or the only one of their color in it ("the red sofa"); the phrases themselves
    are ``phrasing``'s."""
    return [
        o
        for o in layout.objects
        if o.category != target.category
        and sum(other.color == o.color for other in layout.same_category(o)) == 1
    ]


def candidate_relations(layout: Layout, target: PlacedObject) -> list[Relation]:
    """Every relation that singles ``target`` out (unambiguous, anchors nameable and of other categories)."""
    anchors = nameable_anchors(layout, target)
    candidates = [Relation("category"), Relation("color", value=target.color)]
    candidates += [Relation(kind) for kind in ("largest", "smallest", "tallest", "wall", "corner", "middle")]
    candidates += [
        Relation(kind, (a.object_id,))
        for kind in ("on", "under", "near", "closest", "farthest")
        for a in anchors
    ]
    candidates += [
        Relation("between", (a.object_id, b.object_id))
        for i, a in enumerate(anchors)
        for b in anchors[i + 1 :]
        if np.linalg.norm(a.center_xy - b.center_xy) > 1.0
    ]
    multiple = len(layout.same_category(target)) > 1
    kept = []
    for relation in candidates:
        if relation.kind == "category" and multiple:
            continue
        if relation.kind in ("largest", "smallest", "tallest", "closest", "farthest") and not multiple:
            continue  # superlatives over a single object read oddly
        if is_unambiguous(layout, relation, target):
            kept.append(relation)
    return kept


FACT_KINDS = ("on", "under", "near", "wall", "corner", "middle")
"""Relations a long description may add as further facts about its target (they need not single it out)."""

LONG_FRACTION = 0.15
"""Per expression, every split: the chance of a long description."""
UNSEEN_SHAPE_FRACTION = 0.45
"""Per val/test one-sentence expression: the chance of a held-out sentence shape."""
UNSEEN_WORDS_FRACTION = 0.4
"""Per val/test expression: the chance that its target (or the target's color) gets a held-out word."""


def true_facts(layout: Layout, target: PlacedObject, exclude: Relation) -> list[Relation]:
    """Relations of ``FACT_KINDS`` that hold strictly for ``target`` (anchors nameable, of other
    categories), ``exclude`` left out."""
    anchors = nameable_anchors(layout, target)
    facts = [Relation(kind) for kind in ("wall", "corner", "middle")]
    facts += [Relation(kind, (a.object_id,)) for kind in ("on", "under", "near") for a in anchors]
    return [f for f in facts if f != exclude and holds(layout, f, target, strict=True)]


def tokenize(text: str) -> list[str]:
    """ScanRefer-like tokens: lower-case words and punctuation."""
    return re.findall(r"[a-z]+|[.,?]", text.lower())


@dataclass
class GeneratedExpression:
    """An expression with the relation it was generated from."""

    expression: Expression
    relation: Relation


def _diverse(relations: list[Relation]) -> list[Relation]:
    """Reorders relations so that each kind's first occurrence comes before any kind's second (stable)."""
    seen: Counter[str] = Counter()
    ranks = []
    for relation in relations:
        ranks.append(seen[relation.kind])
        seen[relation.kind] += 1
    return [relations[i] for i in sorted(range(len(relations)), key=ranks.__getitem__)]


def _shape(rng: np.random.Generator, held_out: bool) -> str:
    if rng.random() < LONG_FRACTION:
        return LONG
    return UNSEEN_SHAPE if held_out and rng.random() < UNSEEN_SHAPE_FRACTION else SEEN_SHAPE


def describe_scene(
    layout: Layout,
    rng: np.random.Generator,
    scene_id: str,
    held_out: bool,
    per_object: tuple[int, int] = (3, 6),
) -> list[GeneratedExpression]:
    """Several expressions per object (``per_object`` inclusive range, fewer when fewer relations apply).

    Relations are drawn without repetition, favouring kinds not yet used for the object. With
    ``held_out`` (val and test) expressions may use held-out sentence shapes and words
    (``UNSEEN_SHAPE_FRACTION``, ``UNSEEN_WORDS_FRACTION``); otherwise only shapes and words every split
    uses. ``Expression.wording`` records which; the anchors of a long description are those of the
    relation that singles its target out.
    """
    generated: list[GeneratedExpression] = []
    for target in layout.objects:
        candidates = candidate_relations(layout, target)
        candidates = [candidates[i] for i in rng.permutation(len(candidates))]
        wanted = int(rng.integers(per_object[0], per_object[1] + 1))
        eval_type = "unique" if len(layout.same_category(target)) == 1 else "multiple"
        for ann_id, relation in enumerate(_diverse(candidates)[:wanted]):
            shape = _shape(rng, held_out)
            unseen_words = held_out and rng.random() < UNSEEN_WORDS_FRACTION
            facts, mentionable = [], []
            if shape == LONG:
                found = true_facts(layout, target, relation)
                facts = [(f.kind, [layout.by_id(i) for i in f.anchors]) for f in found]
                facts = [facts[i] for i in rng.permutation(len(facts))]
                mentionable = nameable_anchors(layout, target)
                mentionable = [mentionable[i] for i in rng.permutation(len(mentionable))]
            anchors = [layout.by_id(i) for i in relation.anchors]
            wording = phrase(
                layout, target, relation.kind, anchors, rng, shape, unseen_words, facts, mentionable
            )
            expression = Expression(
                scene_id=scene_id,
                object_id=target.object_id,
                object_name=target.category,
                ann_id=ann_id,
                description=wording.text,
                token=tokenize(wording.text),
                eval_type=eval_type,
                relation=relation.kind,
                anchor_ids=relation.anchors,
                wording=wording.groups,
                target_words=wording.target_words,
                anchor_words=wording.anchor_words,
            )
            generated.append(GeneratedExpression(expression, relation))
    return generated
