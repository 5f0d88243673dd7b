"""What color a color word denotes: the RGB of named colors, attached to the text tokens that say them.

A frozen sentence encoder such as MiniLM places many color words poorly ("scarlet" lands nearest "violet",
"cobalt" nearest "walnut"), so a network that learns colors from the words it was trained on cannot carry
them to other color words. The names and RGB values of matplotlib's color tables (the xkcd color survey's
949 names and the 148 CSS4 names) are that missing knowledge: ``word_colors`` finds every
color name said in a text (whole words, longest name first: "royal blue" before "blue") and gives each
token of it the name's RGB. The decoder's color term reads those colors beside the token embeddings
(``DecoderConfig.color_names``). Nothing here maps a word to an object category.
"""

from __future__ import annotations

import re
from functools import cache

import torch
from matplotlib import colors as mpl_colors
from torch import Tensor

from liftgs.model.types import is_special_token


@cache
def color_name_table() -> dict[str, tuple[float, float, float]]:
    """Lower-case color name -> RGB in [0, 1]: xkcd's survey names, then the CSS4 names xkcd lacks."""
    table = {
        name.removeprefix("xkcd:"): mpl_colors.to_rgb(hex_) for name, hex_ in mpl_colors.XKCD_COLORS.items()
    }
    for name, hex_ in mpl_colors.CSS4_COLORS.items():
        table.setdefault(name, mpl_colors.to_rgb(hex_))
    return table


@cache
def _name_pattern() -> re.Pattern:
    """Any color name as whole words (letters, digits or apostrophes may not touch it), longest first."""
    names = sorted(color_name_table(), key=len, reverse=True)
    return re.compile(r"(?<![\w'])(" + "|".join(re.escape(name) for name in names) + r")(?![\w'])")


def token_spans(text: str, token_strings: list[str]) -> list[tuple[int, int] | None]:
    """Character span in ``text.lower()`` of each token string (None for special tokens and for tokens
    that cannot be found), matched left to right. Works for WordPiece (``##`` continuations), CLIP's
    byte-pair tokens and whitespace words alike, since it only looks for each token's text in order."""
    lowered = text.lower()
    cursor = 0
    spans: list[tuple[int, int] | None] = []
    for token in token_strings:
        piece = token.lower().removeprefix("##")
        start = -1 if is_special_token(token) or not piece else lowered.find(piece, cursor)
        if start < 0:
            spans.append(None)
            continue
        spans.append((start, start + len(piece)))
        cursor = start + len(piece)
    return spans


def word_colors(text: str, token_strings: list[str]) -> tuple[Tensor, Tensor]:
    """The RGB each token of ``text`` names, if it is part of a color name.

    Returns:
        colors [T, 3] RGB in [0, 1] (0 where no color is named) and named [T] bool, True for the tokens of a
        color name (T = ``len(token_strings)``).
    """
    table = color_name_table()
    spaced = text.lower().replace("-", " ")  # "off-white" says "off white"; same length, so spans agree
    matches = [(m.start(), m.end(), table[m.group(1)]) for m in _name_pattern().finditer(spaced)]
    colors = torch.zeros(len(token_strings), 3)
    named = torch.zeros(len(token_strings), dtype=torch.bool)
    for i, span in enumerate(token_spans(text, token_strings)):
        if span is None:
            continue
        for start, end, rgb in matches:
            if span[0] < end and start < span[1]:
                colors[i] = torch.tensor(rgb)
                named[i] = True
                break
    return colors, named
