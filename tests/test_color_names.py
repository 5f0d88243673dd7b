"""Color names: the tokens that say a color carry its RGB, and the color term grounds color words it never
trained on by that RGB."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from liftgs.data.synthetic.vocabulary import CATEGORY_WORDS
from liftgs.model.color_names import color_name_table, word_colors
from liftgs.model.config import DecoderConfig
from liftgs.model.decoder import add_token_noise
from liftgs.model.liftgs import LiftGS
from liftgs.model.relations import VoxelColor
from tests.support.network import HashTextEncoder, tiny_config


def named(text: str, tokens: list[str]) -> list[str]:
    """The tokens ``word_colors`` marks as part of a color name."""
    _, is_named = word_colors(text, tokens)
    return [token for token, flag in zip(tokens, is_named.tolist(), strict=True) if flag]


def test_every_piece_of_a_color_name_gets_the_names_rgb():
    text = "The scarlet chair."
    tokens = ["[CLS]", "the", "scar", "##let", "chair", ".", "[SEP]"]
    colors, is_named = word_colors(text, tokens)
    assert is_named.tolist() == [False, False, True, True, False, False, False]
    scarlet = torch.tensor(color_name_table()["scarlet"])
    assert torch.equal(colors[2], scarlet) and torch.equal(colors[3], scarlet)
    assert (colors[~is_named] == 0).all()
    assert scarlet[0] > 0.5 > scarlet[1:].max()  # a red


def test_the_longest_name_wins_and_hyphens_read_as_spaces():
    colors, _ = word_colors("the royal blue box", ["the", "royal", "blue", "box"])
    assert torch.equal(colors[2], torch.tensor(color_name_table()["royal blue"]))
    assert not torch.equal(colors[2], torch.tensor(color_name_table()["blue"]))
    assert named("an off-white sofa", ["an", "off", "-", "white", "sofa"]) == ["off", "-", "white"]


def test_color_names_are_whole_words():
    assert (
        named(
            "the bored cat near the bluetooth speaker",
            ["the", "bored", "cat", "near", "the", "bluetooth", "speaker"],
        )
        == []
    )
    assert named(
        "<start_of_text> a red lamp <end_of_text>", ["<start_of_text>", "a", "red", "lamp", "<end_of_text>"]
    ) == ["red"]


def test_the_color_table_names_no_object_category():
    """The table says what color a word denotes, never what object: no benchmark category name or
    synonym is a color name."""
    table = color_name_table()
    names = {word for seen, held in CATEGORY_WORDS.values() for word in (*seen, *held)}
    assert not names & set(table)
    assert len(table) > 1000


def train_color_term(color_names: bool, steps: int = 150) -> tuple[VoxelColor, HashTextEncoder]:
    """A color term trained to pick, among a red, a blue and a green voxel, the one "the <word> one"
    names, on four words per color; the text tokens are the hash encoder's (no meaning in them), with the
    decoder's default token noise during training."""
    torch.manual_seed(0)
    encoder = HashTextEncoder(dim=16)
    term = VoxelColor(d_model=8, channels=8, text_dim=16, pick_dim=8, color_names=color_names)
    optimizer = torch.optim.Adam(term.parameters(), lr=0.03)
    words = {
        0: ["red", "crimson", "cherry", "ruby"],
        1: ["blue", "navy", "royal blue", "dark blue"],
        2: ["green", "forest green", "kelly green", "grass green"],
    }
    targets = torch.tensor([voxel for voxel, names in words.items() for _ in names])
    text = encoder.encode([f"the {name} one" for names in words.values() for name in names])
    readers = torch.ones(len(targets), 1, 8)
    for _ in range(steps):
        noisy = add_token_noise(text, DecoderConfig().token_noise)
        logits = term(readers, term.embed_colors(VOXELS), noisy)[:, 0]  # [B, 3]
        loss = F.cross_entropy(logits, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return term, encoder


VOXELS = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.1, 0.7, 0.1]])
"""RGB of the toy's red, blue and green voxels."""
UNSEEN = {"scarlet": 0, "maroon": 0, "cobalt": 1, "azure": 1, "emerald": 2, "olive": 2}
"""Color words the toy never trains on -> the voxel they name."""


def picks(term: VoxelColor, encoder: HashTextEncoder) -> dict[str, int]:
    text = encoder.encode([f"the {word} one" for word in UNSEEN])
    with torch.no_grad():
        logits = term(torch.ones(len(UNSEEN), 1, 8), term.embed_colors(VOXELS), text)[:, 0]
    return dict(zip(UNSEEN, logits.argmax(-1).tolist(), strict=True))


def test_an_untrained_color_word_grounds_its_color_through_its_name():
    term, encoder = train_color_term(color_names=True)
    assert picks(term, encoder) == UNSEEN
    without, encoder = train_color_term(color_names=False)
    right = sum(pick == UNSEEN[word] for word, pick in picks(without, encoder).items())
    assert right <= 3  # the hash tokens alone carry nothing over to new words


def test_the_network_reads_the_colors_its_text_names():
    """With ``color_names`` the mask logits depend on the named RGB; a fresh network starts neutral."""
    torch.manual_seed(0)
    config = tiny_config()
    config.decoder.color_names = True
    model = LiftGS(config, text_encoder=HashTextEncoder()).eval()
    g = torch.Generator().manual_seed(0)
    scene = model.encode_scene(torch.rand(300, 3, generator=g) * 2, torch.rand(300, 3, generator=g))
    text = model.encode_text(["the red chair near the white door"])
    assert text.named_color.sum() == 2
    no_names = dataclasses.replace(text, named_color=torch.zeros_like(text.named_color))
    with torch.no_grad():
        assert torch.equal(model.ground(scene, text).mask_logits, model.ground(scene, no_names).mask_logits)
        model.decoder.heads.color.named.weight.normal_()
        model.decoder.heads.color.query.weight.normal_()
        changed = model.ground(scene, text).mask_logits - model.ground(scene, no_names).mask_logits
    assert changed.abs().max() > 1e-3


def test_a_color_names_color_comes_from_its_rgb_not_its_embedding():
    """The color term reads a color name's tokens through their RGB only: another embedding for the same
    name leaves the term unchanged, another RGB changes it (a one-word text, so the reader's pick is that
    word whatever its embedding)."""
    term = color_term_with_names()
    text = HashTextEncoder(dim=16).encode(["scarlet"])
    readers = torch.randn(1, 2, 8)
    colors = term.embed_colors(VOXELS)
    scores = term(readers, colors, text)
    tokens = text.tokens.clone()
    tokens[text.named_color] = torch.randn(16)
    assert torch.allclose(term(readers, colors, dataclasses.replace(text, tokens=tokens)), scores, atol=1e-6)
    bluer = dataclasses.replace(text, word_colors=text.word_colors.flip(-1))
    assert not torch.allclose(term(readers, colors, bluer), scores)


def color_term_with_names() -> VoxelColor:
    torch.manual_seed(0)
    term = VoxelColor(d_model=8, channels=8, text_dim=16, pick_dim=8, color_names=True)
    with torch.no_grad():
        for parameter in (term.query.weight, term.named.weight, term.named_key):
            parameter.normal_()
    return term
