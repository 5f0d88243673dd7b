"""``liftgs bench words`` finds, for each held-out word, the nearest seen word in the text encoder's space."""

from __future__ import annotations

import torch

from liftgs.benchmarks.held_out_words import nearest_by_named_color, nearest_seen_words, right_share
from liftgs.model import TextEncoder
from tests.support.network import HashTextEncoder

TABLE = {
    "sofa": (("sofa", "couch"), ("settee",)),
    "box": (("box", "crate"), ("carton",)),
    "lamp": (("lamp", "light"), ("lantern",)),
}


class KeyedEncoder(TextEncoder):
    """Embeds a text as the vector of the table key whose word it contains, plus a little word noise."""

    def __init__(self) -> None:
        super().__init__(torch.nn.Linear(1, 1), dim=8, max_length=16)

    def _encode_batch(self, texts):
        out = []
        for text in texts:
            key = next(k for k, (seen, held) in TABLE.items() if any(w in text.split() for w in seen + held))
            vector = torch.eye(8)[list(TABLE).index(key)] + 0.1 * torch.randn(8)
            out.append((vector[None], vector, [text]))
        return out


def test_held_out_words_near_their_own_seen_words_are_counted_right():
    torch.manual_seed(0)
    results = nearest_seen_words(KeyedEncoder(), TABLE, "the {} here")
    assert [r.word for r in results] == ["settee", "carton", "lantern"]
    assert all(r.right and r.nearest in TABLE[r.key][0] for r in results)
    assert right_share(results) == 1.0


def test_an_encoder_that_knows_only_strings_is_not_credited():
    results = nearest_seen_words(HashTextEncoder(), TABLE)
    assert right_share(results) < 1.0
    assert all(r.right == (r.key == r.nearest_key) for r in results)


def test_color_words_by_named_rgb():
    """A held-out shade is matched to the seen color word whose named RGB is nearest; a word that names no
    color is counted wrong."""
    colors = {
        "red": (("red", "crimson"), ("scarlet", "reddd")),
        "blue": (("blue", "navy"), ("cobalt",)),
    }
    results = {r.word: r for r in nearest_by_named_color(colors)}
    assert results["scarlet"].right and results["cobalt"].right
    assert not results["reddd"].right and results["reddd"].nearest == ""
    assert right_share(list(results.values())) == 2 / 3
