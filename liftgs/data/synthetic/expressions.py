"""Referring expressions generated from a layout's scene graph, each checked to be unambiguous.

An expression is a ``Relation`` (what singles the target out: its category, color, a size superlative or
a view-independent spatial relation to named anchor objects) rendered through a phrasing template.
``holds(layout, relation, obj, strict)`` evaluates a relation on any object; the generator keeps an
expression only when the relation holds strictly for the target and does not even loosely hold for any
other object of the target's category (``is_unambiguous``). The strict/loose gap is a margin so that a
reader (or a model) is never asked to split hairs: "next to" means within 0.35 m while every distractor
is more than 0.8 m away; "the largest" means 30 % bigger than every other, and so on.

Anchors are named so that they are unambiguous themselves: "the sofa" when it is the only sofa, else
"the red sofa" when it is the only red one, else the object is not used as an anchor.

Templates are split into phrasings used by every split and phrasings held out for the test split.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from liftgs.data.synthetic.layout import Layout, PlacedObject
from liftgs.data.synthetic.objects import CATEGORIES
from liftgs.scene import Expression

NEAR, NEAR_LOOSE = 0.35, 0.8  # footprint gap (m) for "next to"
WALL, WALL_LOOSE = 0.3, 0.7  # footprint-to-wall distance (m) for "near the wall"
CORNER, CORNER_LOOSE = 0.5, 1.0  # footprint-to-corner distance (m) for "in the corner"
MIDDLE, MIDDLE_LOOSE = 1.2, 0.8  # footprint-to-wall distance (m) for "in the middle of the room"
SIZE_RATIO = 1.3  # "largest"/"smallest": volume ratio to every other same-category object
HEIGHT_MARGIN = 0.12  # "tallest": metres above every other same-category object
DISTANCE_MARGIN = 0.4  # "closest to"/"farthest from": metres ahead of the runner-up
BETWEEN_OFFSET, BETWEEN_OFFSET_LOOSE = 0.4, 0.8  # distance (m) from the line joining the anchors
BETWEEN_SPAN, BETWEEN_SPAN_LOOSE = (0.2, 0.8), (0.0, 1.0)  # position along the anchors' segment

TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (phrasings for every split, phrasings held out for the test split)
    "category": (
        ("the {c}.", "there is a {c} in the room.", "this is a {col} {c}.", "a {c} in this room."),
        ("find the {c} in this room.",),
    ),
    "color": (
        ("the {col} {c}.", "this is a {c} that is {col}.", "the {c} which is colored {col}."),
        ("look for the {col} colored {c}.",),
    ),
    "largest": (
        ("the largest {c}.", "the biggest of the {cs}.", "this is the largest {c} in the room."),
        ("the {c} that is bigger than the other {cs}.",),
    ),
    "smallest": (
        ("the smallest {c}.", "the smallest of the {cs}.", "this is the smallest {c} in the room."),
        ("the {c} that is smaller than all other {cs}.",),
    ),
    "tallest": (
        ("the tallest {c}.", "the highest of the {cs}.", "this {c} is taller than the other {cs}."),
        ("among the {cs}, pick the tallest one.",),
    ),
    "on": (
        ("the {t} on top of {a}.", "the {t} sitting on {a}.", "there is a {t} placed on {a}."),
        ("the {t} resting upon {a}.",),
    ),
    "under": (
        ("the {t} under {a}.", "the {t} below {a}.", "the {t} that {a} is standing on."),
        ("the {t} supporting {a}.",),
    ),
    "near": (
        ("the {t} next to {a}.", "the {t} beside {a}.", "this is a {t}. it is next to {a}."),
        ("the {t} right by {a}.",),
    ),
    "between": (
        (
            "the {t} between {a} and {b}.",
            "the {t} located between {a} and {b}.",
            "this {t} is in between {a} and {b}.",
        ),
        ("the {t} with {a} on one side and {b} on the other.",),
    ),
    "closest": (
        ("the {c} closest to {a}.", "the {c} nearest to {a}.", "of the {cs}, the one closest to {a}."),
        ("the {c} with the shortest distance to {a}.",),
    ),
    "farthest": (
        (
            "the {c} farthest from {a}.",
            "the {c} furthest away from {a}.",
            "of the {cs}, the one farthest from {a}.",
        ),
        ("the {c} with the longest distance to {a}.",),
    ),
    "wall": (
        ("the {t} near the wall.", "the {t} against the wall.", "this is a {t} close to the wall."),
        ("the {t} that stands by a wall.",),
    ),
    "corner": (
        ("the {t} in the corner.", "the {t} in a corner of the room.", "this {t} is placed in the corner."),
        ("the {t} tucked into a corner.",),
    ),
    "middle": (
        (
            "the {t} in the middle of the room.",
            "the {t} in the center of the room.",
            "this {t} stands in the middle of the room.",
        ),
        ("the {t} away from all the walls.",),
    ),
}
"""Phrasings per relation kind. Fields: {c} category, {cs} plural, {col} color, {t} target ("the red
chair" or "the chair"), {a}/{b} anchor phrases."""

RELATIONS = tuple(TEMPLATES)
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


def anchor_phrase(layout: Layout, obj: PlacedObject) -> str | None:
    """An unambiguous name for ``obj`` ("the sofa", "the red sofa"), or None if it has none."""
    same = layout.same_category(obj)
    if len(same) == 1:
        return f"the {obj.category}"
    if sum(o.color == obj.color for o in same) == 1:
        return f"the {obj.color} {obj.category}"
    return None


def candidate_relations(layout: Layout, target: PlacedObject) -> list[Relation]:
    """Every relation that singles ``target`` out (unambiguous, anchors nameable and of other categories)."""
    anchors = [o for o in layout.objects if o.category != target.category and anchor_phrase(layout, o)]
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


def tokenize(text: str) -> list[str]:
    """ScanRefer-like tokens: lower-case words and punctuation."""
    return re.findall(r"[a-z]+|[.,]", text.lower())


def render_template(
    template: str, layout: Layout, target: PlacedObject, relation: Relation, with_color: bool
) -> str:
    """Fills a template for ``target``; ``with_color`` puts the (true) color into the target phrase."""
    category = target.category
    names = [anchor_phrase(layout, layout.by_id(i)) for i in relation.anchors] + ["", ""]
    return template.format(
        c=category,
        cs=CATEGORIES[category].plural,
        col=target.color,
        t=f"{target.color} {category}" if with_color else category,
        a=names[0],
        b=names[1],
    )


@dataclass
class GeneratedExpression:
    """An expression with the structure it was generated from."""

    expression: Expression
    relation: Relation
    held_out_template: bool

    def extras(self) -> dict:
        """Fields added to the annotation record (beyond ``Expression.to_json``'s)."""
        return {
            "held_out_template": self.held_out_template,
        }


def _diverse(relations: list[Relation]) -> list[Relation]:
    """Reorders relations so that each kind's first occurrence comes before any kind's second (stable)."""
    seen: Counter[str] = Counter()
    ranks = []
    for relation in relations:
        ranks.append(seen[relation.kind])
        seen[relation.kind] += 1
    return [relations[i] for i in sorted(range(len(relations)), key=ranks.__getitem__)]


def describe_scene(
    layout: Layout,
    rng: np.random.Generator,
    scene_id: str,
    held_out: bool,
    per_object: tuple[int, int] = (3, 6),
) -> list[GeneratedExpression]:
    """Several expressions per object (``per_object`` inclusive range, fewer when fewer relations apply).

    Relations are drawn without repetition, favouring kinds not yet used for the object. With
    ``held_out`` (the test split) each expression uses a held-out phrasing with probability 0.5;
    otherwise only the shared phrasings are used.
    """
    generated: list[GeneratedExpression] = []
    for target in layout.objects:
        candidates = candidate_relations(layout, target)
        candidates = [candidates[i] for i in rng.permutation(len(candidates))]
        wanted = int(rng.integers(per_object[0], per_object[1] + 1))
        eval_type = "unique" if len(layout.same_category(target)) == 1 else "multiple"
        for ann_id, relation in enumerate(_diverse(candidates)[:wanted]):
            shared, unseen = TEMPLATES[relation.kind]
            use_unseen = held_out and rng.random() < 0.5
            pool = unseen if use_unseen else shared
            template = pool[int(rng.integers(len(pool)))]
            with_color = relation.kind not in ("color", "category") and rng.random() < 0.5
            description = render_template(template, layout, target, relation, with_color)
            expression = Expression(
                scene_id=scene_id,
                object_id=target.object_id,
                object_name=target.category,
                ann_id=ann_id,
                description=description,
                token=tokenize(description),
                eval_type=eval_type,
                relation=relation.kind,
                anchor_ids=relation.anchors,
            )
            generated.append(GeneratedExpression(expression, relation, use_unseen))
    return generated
