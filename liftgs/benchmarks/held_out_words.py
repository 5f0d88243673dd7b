"""``liftgs bench words``: how a frozen text encoder places the benchmark's held-out words.

The embedded benchmark names each category and color with words every split uses and words only val/test
use (``liftgs.data.synthetic.vocabulary``). A network trained on the seen words can ground a held-out one
only as well as the text encoder puts it near the seen words of the same thing. For every held-out word
this prints whether its nearest seen word (cosine of the encoder's pooled embeddings, over the seen words
of all categories or all colors) names the same category or color, for the word said alone and inside a
sentence. For color words it also counts the nearest seen word by the RGB the color names denote
(``liftgs.model.color_names``, what ``decoder.color_names`` gives the network). It measures the text side,
not a trained network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from liftgs.data.synthetic.vocabulary import CATEGORY_WORDS, COLOR_WORDS
from liftgs.model.color_names import color_name_table
from liftgs.model.text import TextEncoder, build_text_encoder

CATEGORY_SENTENCE = "the {} next to the window."
COLOR_SENTENCE = "the {} chair by the door."
"""Sentences the words are said in (``{}`` = the word)."""

WordTable = dict[str, tuple[tuple[str, ...], tuple[str, ...]]]


@dataclass(frozen=True)
class NeighbourResult:
    """Per held-out word, its nearest seen word and whether that names the same key (category or color)."""

    word: str
    key: str
    nearest: str
    nearest_key: str

    @property
    def right(self) -> bool:
        return self.key == self.nearest_key


def nearest_seen_words(encoder: TextEncoder, table: WordTable, sentence: str = "{}") -> list[NeighbourResult]:
    """For each held-out word of ``table`` (key -> (seen words, held-out words)), the seen word whose pooled
    embedding of ``sentence.format(word)`` is nearest (cosine) to the held-out word's."""
    seen = [(key, word) for key, (words, _) in table.items() for word in words]
    held_out = [(key, word) for key, (_, words) in table.items() for word in words]
    similarity = _unit_pooled(encoder, held_out, sentence) @ _unit_pooled(encoder, seen, sentence).T
    nearest = similarity.argmax(dim=1).tolist()
    return [
        NeighbourResult(word, key, seen[j][1], seen[j][0])
        for (key, word), j in zip(held_out, nearest, strict=True)
    ]


def nearest_by_named_color(table: WordTable) -> list[NeighbourResult]:
    """For each held-out word of ``table``, the seen word whose named RGB (``color_name_table``) is nearest
    (Euclidean) to its own; a held-out word that names no color gets nearest "" (counted wrong), and seen
    words that name no color are left out."""
    rgb = color_name_table()
    seen = [(key, word) for key, (words, _) in table.items() for word in words if word in rgb]
    results = []
    for key, (_, words) in table.items():
        for word in words:
            if word not in rgb:
                results.append(NeighbourResult(word, key, "", ""))
                continue
            distances = torch.cdist(torch.tensor([rgb[word]]), torch.tensor([rgb[w] for _, w in seen]))[0]
            nearest_key, nearest = seen[int(distances.argmin())]
            results.append(NeighbourResult(word, key, nearest, nearest_key))
    return results


def _unit_pooled(encoder: TextEncoder, pairs: list[tuple[str, str]], sentence: str) -> torch.Tensor:
    """[N, Dt] unit pooled embeddings of ``sentence`` around each (key, word) pair's word."""
    return F.normalize(encoder.encode([sentence.format(word) for _, word in pairs]).pooled, dim=-1)


def right_share(results: list[NeighbourResult]) -> float:
    """Share (0-1) of held-out words whose nearest seen word names the same category or color."""
    return sum(result.right for result in results) / len(results)


@dataclass
class BenchHeldOutWords:
    """Share of the benchmark's held-out words whose nearest seen word (in the text encoder's space) names
    the same category or color."""

    text_encoder: str = "minilm"
    """A ``build_text_encoder`` spec: minilm, hf:<dir>, open_clip:<name>[:<pretrained>]."""
    verbose: bool = False
    """Also list every held-out word with its nearest seen word."""

    def main(self) -> None:
        torch.set_grad_enabled(False)
        encoder = build_text_encoder(self.text_encoder)
        console = Console()
        table = Table(title=f"held-out words whose nearest seen word is right ({self.text_encoder})")
        for column in ("words", "count", "alone", "in a sentence"):
            table.add_column(column, justify="left" if column == "words" else "right")
        for name, words, sentence in (
            ("category names", CATEGORY_WORDS, CATEGORY_SENTENCE),
            ("color words", COLOR_WORDS, COLOR_SENTENCE),
        ):
            alone = nearest_seen_words(encoder, words)
            said = nearest_seen_words(encoder, words, sentence)
            table.add_row(name, str(len(alone)), f"{right_share(alone):.0%}", f"{right_share(said):.0%}")
            self._list(console, said)
        named = nearest_by_named_color(COLOR_WORDS)
        share = f"{right_share(named):.0%}"
        table.add_row("color words, by named RGB", str(len(named)), share, share)
        self._list(console, named)
        console.print(table)

    def _list(self, console: Console, results: list[NeighbourResult]) -> None:
        if self.verbose:
            for result in results:
                mark = "" if result.right else "  <- " + (result.nearest_key or "names no color")
                console.print(f"{result.word:>16} ~ {result.nearest}{mark}")
