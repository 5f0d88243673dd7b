"""Which text tokens name a target (the positives of the query <-> token alignment loss) or an anchor (the
words the anchor-word loss asks an anchor slot to read).

A description's tokens (``TextFeatures.token_strings``, WordPiece or CLIP BPE) are grouped back into
words; the positives are the words of every run of consecutive words that says the target's whole name
(the phrase the annotation says the description calls it by, ``Expression.target_words``, else its
``object_name``), each word up to a plural ("chairs" names "chair", "trash cans" marks both words, the
"table" of "coffee table" does not name a "table lamp"). When no word matches (the description calls
the target something else), every real token is positive, as the spec of the loss asks.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from liftgs.model.types import is_special_token

_WORD = re.compile(r"[a-z0-9]+")


def word_pieces(token_strings: list[str]) -> list[tuple[str, list[int]]]:
    """The text's words in order, each as (lower-case word, indices of its tokens); special tokens belong
    to no word.

    WordPiece continuations start with ``##``; CLIP BPE marks a word's last piece with ``</w>``.
    """
    bpe = any(token.endswith("</w>") for token in token_strings)
    groups: list[list[int]] = []
    open_word = False
    for index, token in enumerate(token_strings):
        if is_special_token(token):
            groups.append([])  # a special token closes the current word
            open_word = False
            continue
        continues = token.startswith("##") if not bpe else open_word
        if continues and groups and groups[-1]:
            groups[-1].append(index)
        else:
            groups.append([index])
        open_word = bpe and not token.endswith("</w>")
    return [
        ("".join(token_strings[i].removeprefix("##").removesuffix("</w>") for i in group).lower(), group)
        for group in groups
        if group
    ]


def token_words(token_strings: list[str]) -> list[str | None]:
    """The whole (lower-case) word each token belongs to; None for special tokens."""
    words: list[str | None] = [None] * len(token_strings)
    for text, group in word_pieces(token_strings):
        for i in group:
            words[i] = text
    return words


def _forms(word: str) -> set[str]:
    """The word and its candidate singulars ("tables" -> table, tabl; "boxes" -> boxe, box; "shelves" ->
    shelf)."""
    forms = {word}
    for suffix in ("s", "es"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            forms.add(word[: -len(suffix)])
    if len(word) > 5 and word.endswith("ves"):
        forms.add(word[:-3] + "f")
    return forms


def naming_tokens(
    token_strings: list[str],  # the T_real tokens of one text
    names: list[str],  # object names, e.g. ["trash can"]
    length: int,  # T, the padded token length of the batch
) -> Tensor:  # [len(names), T] bool
    """Per name, the tokens of every run of consecutive words that says the whole name, each word up to a
    plural ("trash cans" names "trash can"; "coffee table" does not name "table lamp"); a row of False
    when no run does."""
    if len(token_strings) > length:
        raise ValueError(f"length: {length} is shorter than the text's {len(token_strings)} tokens")
    words = [
        (set().union(*(_forms(w) for w in _WORD.findall(text))), group)
        for text, group in word_pieces(token_strings)
    ]
    hits = torch.zeros(len(names), length, dtype=torch.bool)
    for row, name in enumerate(names):
        wanted = [_forms(w) for w in _WORD.findall(name.lower())]
        if not wanted:
            continue
        for start in range(len(words) - len(wanted) + 1):
            run = words[start : start + len(wanted)]
            if all(forms & want for (forms, _), want in zip(run, wanted, strict=True)):
                for _, group in run:
                    hits[row, group] = True
    return hits


def positive_tokens(
    token_strings: list[str],  # the T_real tokens of one text
    names: list[str],  # one object name per target, e.g. ["trash can"]
    length: int,  # T, the padded token length of the batch
) -> Tensor:  # [M, T] bool
    """Per target, the tokens of the words that name it (all real tokens when none does)."""
    positives = naming_tokens(token_strings, names, length)
    unnamed = ~positives.any(-1)
    positives[unnamed, : len(token_strings)] = True
    return positives


def anchor_tokens(
    token_strings: list[str],  # the T_real tokens of one text
    anchor_names: list[str],  # the names of the objects the text relates its target to
    length: int,  # T
) -> Tensor:  # [A, T] bool
    """The tokens naming each anchor the text names in words (anchors it calls something else are left
    out: there is no word an anchor should read for them)."""
    hits = naming_tokens(token_strings, anchor_names, length)
    return hits[hits.any(-1)]
