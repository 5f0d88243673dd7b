"""The words the embedded benchmark names things with: several names per category, several words per color.

Each category and color has words used by every split and words held out for the val and test splits
(``HELD_OUT`` words never appear in a training sentence), so the benchmark measures how a model grounds
words it was never trained on. The first seen word of a category is its ``objects.json`` name. The lists
mix synonyms ("couch"), more specific everyday names ("bookcase"), British spellings ("grey"), shades
("crimson") and common misspellings ("chiar"). The model never reads these tables: they are the
generator's dictionary, the way an annotator's vocabulary is theirs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import numpy as np

CATEGORY_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # category: (words used by every split, words held out for val/test)
    "chair": (("chair", "chiar", "dining chair", "office chair", "side chair"), ("armchair", "seat")),
    "stool": (("stool", "bar stool", "step stool", "kitchen stool"), ("footstool", "stol")),
    "table": (("table", "coffee table", "kitchen table", "low table"), ("dining table", "tabel")),
    "desk": (("desk", "writing desk", "computer desk", "study desk"), ("workstation", "office desk")),
    "sofa": (("sofa", "couch", "sectional"), ("settee", "loveseat")),
    "bed": (("bed", "single bed", "twin bed", "king bed"), ("mattress", "double bed")),
    "lamp": (("lamp", "table lamp", "bedside lamp", "light"), ("reading light", "light fixture")),
    "cabinet": (("cabinet", "cupboard", "storage cabinet", "filing cabinet"), ("dresser", "cabnet")),
    "nightstand": (("nightstand", "bedside table", "night stand"), ("night table", "nite stand")),
    "shelf": (("shelf", "bookshelf", "shelf unit", "book shelf"), ("bookcase", "shelving unit")),
    "box": (("box", "cardboard box", "storage box", "package"), ("carton", "crate")),
    "ball": (("ball", "toy ball", "rubber ball", "soccer ball"), ("sphere", "beach ball")),
    "plant": (("plant", "potted plant", "pot plant", "indoor plant"), ("houseplant", "flower pot")),
    "monitor": (("monitor", "computer screen", "screen", "pc monitor"), ("display", "flat screen")),
    "trash can": (("trash can", "trash bin", "garbage bin", "waste bin"), ("wastebasket", "dustbin")),
    "door": (("door", "room door", "interior door", "front door"), ("entrance", "wooden door")),
}
"""Names per category. Some held-out names are compounds of a seen word ("dining table"), most are not."""

COLOR_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "red": (("red", "crimson", "ruby", "cherry"), ("scarlet", "maroon")),
    "green": (("green", "forest green", "gren", "kelly green"), ("emerald", "olive")),
    "blue": (("blue", "navy", "royal blue", "dark blue"), ("cobalt", "azure")),
    "yellow": (("yellow", "golden", "gold", "canary"), ("lemon", "mustard")),
    "white": (("white", "off white", "snow white"), ("ivory", "cream")),
    "black": (("black", "jet black", "pitch black", "onyx"), ("ebony", "charcoal")),
    "brown": (("brown", "chocolate", "walnut", "dark brown"), ("chestnut", "mahogany")),
    "gray": (("gray", "grey", "ash gray", "graphite"), ("silver", "slate")),
    "orange": (("orange", "bright orange", "burnt orange", "pumpkin"), ("tangerine", "apricot")),
    "purple": (("purple", "violet", "grape", "dark purple"), ("plum", "purpel")),
}
"""Words per color (held-out ones single words)."""

MISSPELLINGS = frozenset({"chiar", "stol", "tabel", "cabnet", "nite stand", "gren", "purpel"})
"""The words of the tables above that are misspellings rather than other words for the thing."""

CANONICAL_SHARE = 0.35
"""How often a name (or color) is said with its canonical word rather than another of the split's words."""
OTHER_HELD_OUT_SHARE = 0.25
"""In a sentence with held-out words, how often another object's name or color is drawn from the held-out
words too."""
UNSEEN_COLOR_SHARE = 0.4
"""In a sentence with held-out words that says the target's color, how often the color is the held-out
word (else the target's name)."""

_IRREGULAR_PLURALS = {"shelf": "shelves", "bookshelf": "bookshelves"}


def plural(name: str) -> str:
    """The plural of a (possibly multi-word) name: its last word inflected ("trash can" -> "trash cans")."""
    *head, last = name.split(" ")
    if last in _IRREGULAR_PLURALS:
        last = _IRREGULAR_PLURALS[last]
    elif last.endswith(("s", "x", "ch", "sh")):
        last += "es"
    else:
        last += "s"
    return " ".join([*head, last])


def held_out_words() -> set[str]:
    """Every word held out for val/test, category names and color words."""
    tables = (*CATEGORY_WORDS.values(), *COLOR_WORDS.values())
    return {word for _, held in tables for word in held}


@cache
def _held_out_pattern() -> re.Pattern:
    """One pattern matching any held-out word, or a held-out name's plural, as a whole phrase."""
    forms = sorted({form for word in held_out_words() for form in (word, plural(word))})
    return re.compile(r"\b(" + "|".join(re.escape(form) for form in forms) + r")\b")


def uses_held_out_word(text: str) -> bool:
    """Whether ``text`` says a held-out word (or a held-out name's plural) as a whole phrase."""
    return _held_out_pattern().search(text) is not None


@dataclass
class WordChooser:
    """Draws the words one sentence names things with.

    ``unseen`` sentences (val/test only) name their target by a held-out word, or, when the sentence
    says the target's color, may give the color a held-out word instead (``UNSEEN_COLOR_SHARE``); every
    other name in them, and every name in a seen sentence, is the canonical word (``CANONICAL_SHARE``)
    or another word of the split's vocabulary (held-out words for an unseen sentence's other names with
    probability ``OTHER_HELD_OUT_SHARE``).
    """

    rng: np.random.Generator
    unseen: bool

    def __post_init__(self) -> None:
        self._unseen_slot: str | None = None

    def plan(self, target_has_color: bool) -> None:
        """Picks which of the target's words is the held-out one (target name or color)."""
        if not self.unseen:
            self._unseen_slot = None
        elif target_has_color and self.rng.random() < UNSEEN_COLOR_SHARE:
            self._unseen_slot = "color"
        else:
            self._unseen_slot = "name"

    def _pick(self, table: dict, key: str, slot: str | None) -> str:
        seen, held = table[key]
        if slot is not None and slot == self._unseen_slot:
            return held[int(self.rng.integers(len(held)))]
        pool = list(seen[1:])
        if self.unseen and self.rng.random() < OTHER_HELD_OUT_SHARE:
            pool = list(held)
        if not pool or self.rng.random() < CANONICAL_SHARE:
            return seen[0]
        return pool[int(self.rng.integers(len(pool)))]

    def target_name(self, category: str) -> str:
        return self._pick(CATEGORY_WORDS, category, "name")

    def target_color(self, color: str) -> str:
        return self._pick(COLOR_WORDS, color, "color")

    def other_name(self, category: str) -> str:
        return self._pick(CATEGORY_WORDS, category, None)

    def other_color(self, color: str) -> str:
        return self._pick(COLOR_WORDS, color, None)
