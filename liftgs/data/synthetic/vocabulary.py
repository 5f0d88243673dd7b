"""The words the embedded benchmark names things with: several names per category, several words per color.

Each category and color has words used by every split and words held out for the val and test splits
(``HELD_OUT`` words never appear in a training sentence), so the benchmark measures how a model grounds
words it was never trained on. The first seen word of a category is its ``objects.json`` name. The lists
mix synonyms ("couch"), more specific everyday names ("bookcase"), British spellings ("grey"), shades
("crimson") and common misspellings ("chiar"). The model never reads these tables: they are the
generator's dictionary, the way an annotator's vocabulary is theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CATEGORY_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # category: (words used by every split, words held out for val/test)
    "chair": (("chair", "chiar", "dining chair"), ("armchair", "side chair")),
    "stool": (("stool", "bar stool"), ("footstool", "stoool")),
    "table": (("table", "coffee table"), ("dining table", "tabel")),
    "desk": (("desk", "writing desk"), ("office desk", "workdesk")),
    "sofa": (("sofa", "couch"), ("settee", "loveseat")),
    "bed": (("bed", "single bed"), ("double bed", "queen size bed")),
    "lamp": (("lamp", "table lamp"), ("desk lamp", "reading light")),
    "cabinet": (("cabinet", "cupboard"), ("dresser", "cabnet")),
    "nightstand": (("nightstand", "bedside table"), ("night table", "bedside cabinet")),
    "shelf": (("shelf", "bookshelf"), ("bookcase", "shelving unit")),
    "box": (("box", "cardboard box"), ("carton", "crate")),
    "ball": (("ball", "toy ball"), ("sphere", "beach ball")),
    "plant": (("plant", "potted plant"), ("houseplant", "flower pot")),
    "monitor": (("monitor", "computer screen"), ("display", "computer monitor")),
    "trash can": (("trash can", "trash bin"), ("garbage can", "wastebasket")),
    "door": (("door", "room door"), ("doorway", "wooden door")),
}
"""Names per category."""

COLOR_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "red": (("red", "crimson"), ("scarlet", "cherry red")),
    "green": (("green", "forest green", "gren"), ("emerald", "grass green")),
    "blue": (("blue", "navy"), ("royal blue", "cobalt")),
    "yellow": (("yellow", "golden"), ("lemon", "mustard")),
    "white": (("white", "off white"), ("ivory", "snow white")),
    "black": (("black", "jet black"), ("ebony", "pitch black")),
    "brown": (("brown", "chocolate"), ("chestnut", "walnut brown")),
    "gray": (("gray", "grey"), ("silver", "ash gray")),
    "orange": (("orange", "bright orange"), ("tangerine", "amber")),
    "purple": (("purple", "violet"), ("plum", "purpel")),
}
"""Words per color."""

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


@dataclass
class WordChooser:
    """Draws the words one sentence names things with.

    ``unseen`` sentences (val/test only) name their target by a held-out word, or, when the sentence
    says the target's color, may give the color a held-out word instead; every other name in them, and
    every name in a seen sentence, is the canonical word with probability ``canonical`` else another
    word of the split's vocabulary (held-out words included in an unseen sentence's other names with
    probability ``other_held_out``).
    """

    rng: np.random.Generator
    unseen: bool
    canonical: float = 0.5
    other_held_out: float = 0.25

    def __post_init__(self) -> None:
        self._unseen_slot: str | None = None

    def plan(self, target_has_color: bool) -> None:
        """Picks which of the target's words is the held-out one (target name or color)."""
        if not self.unseen:
            self._unseen_slot = None
        elif target_has_color and self.rng.random() < 0.4:
            self._unseen_slot = "color"
        else:
            self._unseen_slot = "name"

    def _pick(self, table: dict, key: str, slot: str | None) -> str:
        seen, held = table[key]
        if slot is not None and slot == self._unseen_slot:
            return held[int(self.rng.integers(len(held)))]
        pool = list(seen[1:])
        if self.unseen and self.rng.random() < self.other_held_out:
            pool = list(held)
        if not pool or self.rng.random() < self.canonical:
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
