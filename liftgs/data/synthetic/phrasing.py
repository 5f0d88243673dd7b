"""How the embedded benchmark says a relation in words: predicates, sentence shapes and long descriptions.

A relation is said through a *predicate* ("next to the desk", "the largest of the chairs") placed in a
sentence *frame* ("the {t} {p}.", "which {t} is {p}?"), or through a whole-sentence template of its own
("among the chairs, pick the tallest one."). Predicates, frames and templates each come in a part used by
every split and a part held out for val/test (``unseen`` shapes), so the benchmark measures sentence
shapes no training sentence had. *Long* descriptions are ScanRefer-like paragraphs: the target's color and
name, the relation that singles it out, then further true facts about it naming at least two other
objects.

Predicate markers: a leading ``=`` means the predicate only follows "is" ("is the largest one"), a
leading ``~`` that it only follows the noun ("the chair with the longest distance to ..."). Template
fields: {t} the target ("red chair" or "chair"), {c}/{cs} its name and plural, {col} its color, {a}/{b}
the anchors' phrases.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from liftgs.data.synthetic.layout import Layout, PlacedObject
from liftgs.data.synthetic.vocabulary import WordChooser, plural, uses_held_out_word
from liftgs.scene import LONG, SEEN_SHAPE, SEEN_WORDS, UNSEEN_SHAPE, UNSEEN_WORDS

T = TypeVar("T")

Split = tuple[tuple[str, ...], tuple[str, ...]]
"""(used by every split, held out for val/test)."""

PREDICATES: dict[str, Split] = {
    "category": (
        ("in the room", "in this room", "=here"),
        ("~you can see in this room", "=present in the room"),
    ),
    "color": (
        ("={col}", "colored {col}", "in {col}"),
        ("painted {col}", "={col} in color", "with a {col} finish"),
    ),
    "largest": (
        ("=the largest of the {cs}", "=the biggest one", "bigger than the other {cs}"),
        ("larger than every other {c}", "=the one with the greatest size"),
    ),
    "smallest": (
        ("=the smallest of the {cs}", "=the smallest one", "smaller than the other {cs}"),
        ("tinier than all the other {cs}", "=the most compact one"),
    ),
    "tallest": (
        ("=the tallest of the {cs}", "=the tallest one", "taller than the other {cs}"),
        ("taller than every other {c}", "=the one that stands tallest"),
    ),
    "on": (("on top of {a}", "sitting on {a}", "placed on {a}"), ("resting upon {a}", "supported by {a}")),
    "under": (
        ("under {a}", "below {a}", "~that {a} is standing on"),
        ("supporting {a}", "~with {a} on top of it", "~holding up {a}"),
    ),
    "near": (
        ("next to {a}", "beside {a}", "close to {a}"),
        ("right by {a}", "adjacent to {a}", "~that {a} stands beside"),
    ),
    "between": (
        ("between {a} and {b}", "located between {a} and {b}", "in between {a} and {b}"),
        ("flanked by {a} and {b}", "~with {a} on one side and {b} on the other"),
    ),
    "closest": (
        ("closest to {a}", "nearest to {a}", "=the one closest to {a}"),
        ("~with the shortest distance to {a}", "=the nearest one to {a}", "~that is nearest of all to {a}"),
    ),
    "farthest": (
        ("farthest from {a}", "furthest away from {a}", "=the one farthest from {a}"),
        ("~with the longest distance to {a}", "most distant from {a}"),
    ),
    "wall": (
        ("near the wall", "against the wall", "close to the wall"),
        ("~that stands by a wall", "pushed up against a wall"),
    ),
    "corner": (
        ("in the corner", "in a corner of the room", "=placed in the corner"),
        ("tucked into a corner", "in one of the corners of the room"),
    ),
    "middle": (
        ("in the middle of the room", "far from the walls", "=standing in the middle of the room"),
        ("away from all the walls", "out in the open, away from the walls"),
    ),
}
"""Predicates per relation kind."""

SUPERLATIVES = ("largest", "smallest", "tallest", "closest", "farthest")

FRAMES: tuple[tuple[tuple[str, str, tuple[str, ...]], ...], ...] = (
    (
        ("the {t} {p}.", "attributive", ()),
        ("the {t} that is {p}.", "copular", ()),
        ("this is a {t}. it is {p}.", "copular", ()),
        ("there is a {t} {p}.", "attributive", SUPERLATIVES),
        ("find the {t} which is {p}.", "copular", ()),
    ),
    (
        ("which {t} is {p}?", "copular", ("category",)),
        ("can you show me the {t} {p}?", "attributive", ()),
        ("i am talking about the {t} {p}.", "attributive", ()),
        ("look for a {t}, it is {p}.", "copular", ()),
        ("{p}, you will find the {t}.", "fronted", ()),
    ),
)
"""Sentence frames, (used by every split, held out for val/test): (template, which predicates fit, relation
kinds it does not read well with). "attributive" predicates follow the noun, "copular" ones follow "is",
"fronted" ones open the sentence and must be prepositional phrases (``PREPOSITIONS``)."""

PREPOSITIONS = (
    "on",
    "under",
    "below",
    "next",
    "beside",
    "close",
    "between",
    "in",
    "near",
    "against",
    "right",
)
"""First words of the predicates a fronted frame may open with ("next to the desk, you will find ...")."""

SENTENCES: dict[str, Split] = {
    "category": (("there is a {t} in the room.",), ("where is the {t}?",)),
    "color": (("the {c} which is colored {col}.",), ("look for the {col} colored {c}.",)),
    "largest": (("the biggest of the {cs}.",), ("among the {cs}, pick the largest one.",)),
    "smallest": (("the smallest of the {cs}.",), ("among the {cs}, pick the smallest one.",)),
    "tallest": (("the tallest one among the {cs}.",), ("among the {cs}, pick the tallest one.",)),
    "on": (("there is a {t} placed on {a}.",), ("{a} has a {t} on top of it.",)),
    "under": (("the {t} that {a} is standing on.",), ("{a} stands on this {t}.",)),
    "near": (("this is a {t}. it is next to {a}.",), ("{a} has a {t} right next to it.",)),
    "between": (
        ("this {t} is in between {a} and {b}.",),
        ("on one side there is {a}, on the other {b}, and the {t} sits between them.",),
    ),
    "closest": (
        ("of the {cs}, the one closest to {a}.",),
        ("out of all the {cs}, i mean the one nearest {a}.",),
    ),
    "farthest": (
        ("of the {cs}, the one farthest from {a}.",),
        ("out of all the {cs}, i mean the one farthest from {a}.",),
    ),
    "wall": (("this is a {t} close to the wall.",), ("the wall has a {t} standing by it.",)),
    "corner": (("this {t} is placed in the corner.",), ("in the corner of the room stands a {t}.",)),
    "middle": (
        ("this {t} stands in the middle of the room.",),
        ("this {t} keeps its distance from every wall.",),
    ),
}
"""Whole-sentence templates per relation kind."""

LONG_OPENINGS = ("this is a {t}.", "there is a {t} in the room.", "the object is a {t}.", "it is a {t}.")
LONG_RELATION = ("it is {p}.", "the {c} is {p}.")
LONG_FACTS = ("it is also {p}.", "you can also find it {p}.", "the {c} is {p} as well.")
LONG_MENTIONS = ("{a} is also in the room.", "you can also see {a} here.", "the room also has {a} in it.")
"""Pieces of long descriptions (predicates and frames seen by every split)."""

SENTENCE_TEMPLATE_FRACTION = 0.3
TARGET_COLOR_FRACTION = 0.5
"""How often a relation is said by a whole-sentence template (when it has one), and how often a
non-color relation's target phrase carries the target's color."""

SHAPES = (SEEN_SHAPE, UNSEEN_SHAPE, LONG)
"""A sentence's shape label (``Expression.wording``'s second entry)."""


@dataclass
class Wording:
    """One sentence (or paragraph) and what it names things with."""

    text: str
    target_words: str
    anchor_words: tuple[str, ...]
    groups: tuple[str, ...]
    """(``SEEN_WORDS`` or ``UNSEEN_WORDS``: whether the text says a held-out word, its shape label)."""


@dataclass
class _Names:
    """The phrases a sentence uses, drawn once per sentence."""

    layout: Layout
    words: WordChooser
    chosen: dict[int, str] = field(default_factory=dict)
    """Object id -> the name the sentence calls it by."""
    phrases: dict[int, str] = field(default_factory=dict)

    def anchor(self, obj: PlacedObject) -> str:
        """An unambiguous phrase for ``obj`` ("the couch", "the crimson sofa"), the same each time it is
        asked for; the caller checked that one exists (``expressions.nameable_anchors``)."""
        if obj.object_id not in self.phrases:
            name = self.words.other_name(obj.category)
            self.chosen[obj.object_id] = name
            if len(self.layout.same_category(obj)) == 1:
                self.phrases[obj.object_id] = f"the {name}"
            else:
                self.phrases[obj.object_id] = f"the {self.words.other_color(obj.color)} {name}"
        return self.phrases[obj.object_id]


def _a_an(text: str) -> str:
    return re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", text)


def _choose(rng: np.random.Generator, options: Sequence[T]) -> T:
    return options[int(rng.integers(len(options)))]


def _predicates(kind: str, unseen: bool, fit: str) -> list[str]:
    """The predicates of ``kind`` (held-out ones when ``unseen``) that fit a frame of kind ``fit``."""
    seen, held = PREDICATES[kind]
    pool = held if unseen else seen
    if fit == "attributive":
        return [p for p in pool if not p.startswith("=")]
    if fit == "copular":
        return [p for p in pool if not p.startswith("~")]
    return [p for p in pool if p[0] not in "=~" and p.split(" ")[0] in PREPOSITIONS]


def _strip(predicate: str) -> str:
    return predicate.lstrip("=~")


def _copular(rng: np.random.Generator, kind: str) -> str:
    """A seen predicate of ``kind`` that follows "is", markers stripped."""
    return _strip(_choose(rng, _predicates(kind, False, "copular")))


def _frame(rng: np.random.Generator, kind: str, unseen_shape: bool) -> tuple[str, str]:
    """A (frame, predicate) pair for ``kind``; an unseen shape uses a held-out frame, predicate or both."""
    frames = [f for f in (FRAMES[0] if not unseen_shape else FRAMES[0] + FRAMES[1]) if kind not in f[2]]
    held_frames = {template for template, _, _ in FRAMES[1]}
    while True:
        template, fit, _ = _choose(rng, frames)
        held_frame = template in held_frames
        use_held_predicate = unseen_shape and (not held_frame or rng.random() < 0.5)
        options = _predicates(kind, use_held_predicate, fit)
        if options:
            return template, _strip(_choose(rng, options))


def phrase(
    layout: Layout,
    target: PlacedObject,
    kind: str,
    anchors: list[PlacedObject],
    rng: np.random.Generator,
    shape: str,
    unseen_words: bool,
    facts: Sequence[tuple[str, list[PlacedObject]]] = (),
    mentionable: Sequence[PlacedObject] = (),
) -> Wording:
    """Says that ``target`` is the one that relation ``kind`` (with ``anchors``) singles out.

    ``shape`` is one of ``SHAPES``. Long descriptions add sentences for ``facts`` (other relations that
    hold for the target, as (kind, anchors)) and mention objects of ``mentionable`` until at least two
    objects besides the target are named. ``unseen_words`` names the target (or its color) by a held-out
    word; otherwise only words seen by every split are used.
    """
    words = WordChooser(rng, unseen_words)
    long = shape == LONG
    with_color = long or (kind not in ("color", "category") and rng.random() < TARGET_COLOR_FRACTION)
    says_color = with_color or kind == "color"
    words.plan(target_has_color=says_color)
    name = words.target_name(target.category)
    color = words.target_color(target.color) if says_color else ""
    names = _Names(layout, words)
    anchor_texts = [names.anchor(a) for a in anchors] + ["", ""]
    fields = {
        "c": name,
        "cs": plural(name),
        "col": color,
        "t": f"{color} {name}" if with_color else name,
        "a": anchor_texts[0],
        "b": anchor_texts[1],
    }
    if long:
        text = _long(rng, kind, fields, facts, mentionable, names)
    else:
        sentences = SENTENCES[kind][1 if shape == UNSEEN_SHAPE else 0]
        if rng.random() < SENTENCE_TEMPLATE_FRACTION:
            text = _choose(rng, sentences).format(**fields)
        else:
            template, predicate = _frame(rng, kind, shape == UNSEEN_SHAPE)
            text = template.format(p=predicate.format(**fields), **fields)
    text = _a_an(text)
    return Wording(
        text,
        name,
        tuple(names.chosen[a.object_id] for a in anchors),
        (UNSEEN_WORDS if uses_held_out_word(text) else SEEN_WORDS, shape),
    )


def _long(
    rng: np.random.Generator,
    kind: str,
    fields: dict[str, str],
    facts: Sequence[tuple[str, list[PlacedObject]]],
    mentionable: Sequence[PlacedObject],
    names: _Names,
) -> str:
    """A paragraph: opening with color and name, the singling-out relation, facts, mentions."""
    sentences = [_choose(rng, LONG_OPENINGS).format(**fields)]
    if kind not in ("category", "color"):
        predicate = _copular(rng, kind)
        sentences.append(_choose(rng, LONG_RELATION).format(p=predicate.format(**fields), **fields))
    named = set(names.chosen)
    facts = [(k, anchors) for k, anchors in facts if not named & {a.object_id for a in anchors}]
    for fact_kind, fact_anchors in facts[:2]:
        phrases = [names.anchor(a) for a in fact_anchors] + ["", ""]
        predicate = _copular(rng, fact_kind)
        sentences.append(
            _choose(rng, LONG_FACTS).format(
                p=predicate.format(**(fields | {"a": phrases[0], "b": phrases[1]})), **fields
            )
        )
        named.update(a.object_id for a in fact_anchors)
    mentions = [LONG_MENTIONS[i] for i in rng.permutation(len(LONG_MENTIONS))]
    for obj in mentionable:
        if len(named) >= 2 or not mentions:
            break
        if obj.object_id not in named:
            sentences.append(mentions.pop().format(a=names.anchor(obj)))
            named.add(obj.object_id)
    return " ".join(sentences)
