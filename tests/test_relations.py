"""The decoder's relational terms (``liftgs.model.relations``): anchor geometry and voxel colour; and the
heads' reading of the target words' own embeddings (``DecoderConfig.read_target_words``)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from toys_model import HashTextEncoder, tiny_config

from liftgs.model.affinity import LiftedAffinity
from liftgs.model.liftgs import LiftGS
from liftgs.model.relations import AnchorGeometry, VoxelColour
from liftgs.pseudo.lift import feature_projection

LIFTED_DIM = 8
NAMES = ("floor", "cube", "pillar")
COLOURS = {
    "red": (0.9, 0.1, 0.1),
    "blue": (0.1, 0.1, 0.9),
    "green": (0.1, 0.8, 0.1),
    "yellow": (0.9, 0.9, 0.1),
}


def relational_model(
    anchor_slots: int, colour_channels: int, seed: int = 0, read_target_words: bool = False
) -> LiftGS:
    config = tiny_config()
    config.encoder.extra_channels = LIFTED_DIM
    config.decoder.lifted_affinity = True
    config.decoder.anchor_slots = anchor_slots
    config.decoder.colour_channels = colour_channels
    config.decoder.read_target_words = read_target_words
    torch.manual_seed(seed)
    return LiftGS(config, text_encoder=HashTextEncoder())


def name_features(model: LiftGS) -> torch.Tensor:
    """[len(NAMES), LIFTED_DIM]: each name's projected token, as the stand-in labeller lifts names."""
    words = model.encode_text(list(NAMES)).tokens[:, 0]
    return words @ feature_projection(words.shape[1], LIFTED_DIM, 0)


def cubes_and_pillar(
    g: torch.Generator, task: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int, str]:
    """A 3 m floor with three coloured 0.3 m cubes and a grey pillar, at random places at least 0.7 m apart.

    Returns points [P, 3], colours [P, 3], name index [P] (into ``NAMES``), object id [P] (-1 floor, cubes
    0..2, pillar 3), the target cube and its expression: by colour ("the red cube") for ``task="colour"``,
    by distance to the pillar ("the cube closest to / farthest from the pillar") for ``task="distance"``.
    """
    count = 1500
    uv = torch.rand(count, 2, generator=g) * 3.0
    points = [torch.cat([uv, torch.zeros(count, 1)], 1)]
    colours = [torch.rand(count, 3, generator=g) * 0.3 + 0.35]
    names, ids = [torch.zeros(count, dtype=torch.long)], [torch.full((count,), -1)]
    centres: list[torch.Tensor] = []
    while len(centres) < 4:
        c = torch.rand(2, generator=g) * 2.4 + 0.3
        if all((c - o).norm() > 0.7 for o in centres):
            centres.append(c)
    palette = [list(COLOURS)[i] for i in torch.randperm(len(COLOURS), generator=g)[:3]]
    objects = [(0.3, 0.3, COLOURS[c], 1) for c in palette] + [(0.2, 0.8, (0.5, 0.5, 0.5), 2)]
    for obj, (width, height, colour, name) in enumerate(objects):
        part = torch.rand(200, 3, generator=g) * torch.tensor([width, width, height])
        part[:, :2] += centres[obj] - width / 2
        points.append(part)
        colours.append(torch.tensor(colour).expand(200, 3))
        names.append(torch.full((200,), name))
        ids.append(torch.full((200,), obj))
    if task == "colour":
        target = int(torch.randint(3, (1,), generator=g))
        text = f"the {palette[target]} cube"
    else:
        distance = torch.stack([(centres[i] - centres[3]).norm() for i in range(3)])
        farthest = bool(torch.rand(1, generator=g) < 0.5)
        target = int(distance.argmax() if farthest else distance.argmin())
        text = f"the cube {'farthest from' if farthest else 'closest to'} the pillar"
    return torch.cat(points), torch.cat(colours), torch.cat(names), torch.cat(ids), target, text


def train_and_rank(anchor_slots: int, colour_channels: int, task: str, steps: int, trials: int) -> int:
    """Trains a tiny relational model on ``steps`` random scenes with a mask loss on voxel labels (BCE + dice
    of the best-matching query, plus its score, at every layer) and counts, over ``trials`` fresh scenes,
    how often the best-scoring query's mean probability is highest on the target cube (chance: 1 in 3).

    Runs on one thread: the training trajectory depends on the order of floating-point sums, so the count
    would otherwise change with the machine's core count. The BCE is computed from logits (not the
    probability-clamping ``liftgs.losses.criterion.bce_loss``), so saturated voxels keep their gradients."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_and_rank(anchor_slots, colour_channels, task, steps, trials)
    finally:
        torch.set_num_threads(threads)


def _train_and_rank(anchor_slots: int, colour_channels: int, task: str, steps: int, trials: int) -> int:
    model = relational_model(anchor_slots, colour_channels)
    lifted = name_features(model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def encoded(g: torch.Generator):
        points, colours, names, ids, target, text = cubes_and_pillar(g, task)
        scene = model.encode_scene(points, colours, lifted[names])
        voxel_ids = torch.full((scene.num_points,), -1)
        voxel_ids[scene.source_to_voxel] = ids
        return scene, voxel_ids, target, text

    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        scene, voxel_ids, target, text = encoded(g)
        truth = (voxel_ids == target).float()
        loss = torch.zeros(())
        for layer in model.ground(scene, model.encode_text([text])).aux:
            logits = layer["mask_logits"][0]  # [Q, Pv]
            probs = logits.sigmoid()
            bce = F.binary_cross_entropy_with_logits(logits, truth.expand_as(logits), reduction="none").mean(
                -1
            )
            dice = 1 - (2 * (probs * truth).sum(-1) + 1) / (probs.sum(-1) + truth.sum() + 1)
            best = int((bce + dice).argmin())
            score_loss = F.cross_entropy(layer["scores"][0][None], torch.tensor([best]))
            loss = loss + bce[best] + dice[best] + score_loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    g = torch.Generator().manual_seed(1)
    hits = 0
    with torch.no_grad():
        for _ in range(trials):
            scene, voxel_ids, target, text = encoded(g)
            out = model.ground(scene, model.encode_text([text]), all_layers=False)
            probs = out.mask_logits[0, int(out.scores[0].argmax())].sigmoid()
            hits += int(torch.stack([probs[voxel_ids == i].mean() for i in range(3)]).argmax() == target)
    return hits


@pytest.mark.parametrize("task, slots, channels", [("distance", 2, 0), ("colour", 0, 16)])
def test_a_relational_term_learns_across_scenes_what_the_plain_decoder_does_not(task, slots, channels):
    trials = 60  # measured at 300 steps: distance 18 plain vs 33 anchored, colour 22 plain vs 42 coloured
    plain = train_and_rank(0, 0, task, steps=300, trials=trials)
    relational = train_and_rank(slots, channels, task, steps=300, trials=trials)
    assert plain < 0.45 * trials  # about chance (1 in 3)
    assert relational > 0.5 * trials


def test_relational_terms_start_neutral():
    model = relational_model(anchor_slots=2, colour_channels=8, read_target_words=True).eval()
    g = torch.Generator().manual_seed(0)
    points, colours, names, _, _, text = cubes_and_pillar(g, "distance")
    heads = model.decoder.heads
    with torch.no_grad():
        scene = model.encode_scene(points, colours, name_features(model)[names])
        with_terms = model.ground(scene, model.encode_text([text]))
        heads.anchors = heads.colour = heads.target_words = None
        without = model.ground(scene, model.encode_text([text]))
    for key in ("mask_logits", "scores", "boxes"):
        assert torch.equal(getattr(with_terms, key), getattr(without, key))


def test_heads_read_the_text_encoders_embedding_of_the_target_words():
    """The mask depends on the encoder's own embeddings of the words the query aligns with, even when the
    decoder's attention stream is unchanged; without ``read_target_words`` it does not (the lifted affinity,
    which reads those embeddings too, is switched off here)."""
    model = relational_model(anchor_slots=0, colour_channels=0, read_target_words=True).eval()
    heads = model.decoder.heads
    heads.affinity = None
    torch.nn.init.normal_(heads.target_words.weight)
    g = torch.Generator().manual_seed(0)
    points, colours, names, _, _, text = cubes_and_pillar(g, "colour")
    with torch.no_grad():
        scene = model.encode_scene(points, colours, name_features(model)[names])
        words = model.encode_text([text])
        reworded = replace(words, tokens=words.tokens + torch.randn(words.tokens.shape, generator=g))
        d, dp = model.config.decoder.d_model, model.config.decoder.point_dim
        stream = (torch.randn(1, 4, d, generator=g), torch.randn(1, words.tokens.shape[1], d, generator=g))
        points_stream = torch.randn(1, scene.num_points, dp, generator=g)

        def mask(text_features):
            inputs = (*stream, text_features, points_stream, scene.decoder_points, scene.points)
            return heads(*inputs)["mask_logits"]

        assert not torch.allclose(mask(words), mask(reworded))
        heads.target_words = None
        assert torch.equal(mask(words), mask(reworded))


def test_anchor_features_locate_the_object_its_words_name():
    text = HashTextEncoder().encode(["the pillar"])
    affinity = LiftedAffinity(text_dim=24, lifted_dim=LIFTED_DIM, projection_seed=0)
    pillar_feature = F.normalize(text.tokens[0, 1] @ affinity.projection, dim=-1)  # [E], the word "pillar"
    pillar = torch.tensor([[2.0, 1.0, z] for z in (0.0, 0.4, 0.8)] + [[2.2, 1.0, 0.4], [1.8, 1.0, 0.4]])
    floor = torch.tensor([[0.0, 1.0, 0.0], [2.0, 3.0, 0.0], [4.0, 1.0, 0.0]])
    xyz = torch.cat([pillar, floor])
    point_lifted = torch.cat([pillar_feature.expand(5, -1), torch.zeros(3, LIFTED_DIM)])  # floor: unseen
    on_pillar = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2)  # [B, Q, K, T]: the anchor reads "pillar"
    with torch.no_grad():
        features = AnchorGeometry(d_model=8, align_dim=4, slots=1).features(
            on_pillar, text.tokens, point_lifted, xyz, affinity
        )[0, 0, 0]  # [P, 2]
    spread = (0.2**2 * 2 / 5) ** 0.5  # RMS horizontal distance of the pillar's voxels to their centre
    # the floor keeps a sliver of weight (sigmoid(-5) at cosine 0), which widens the spread a little
    assert torch.allclose(features[5:, 0], torch.full((3,), 2.0 - spread), atol=0.08)
    assert features[:5, 0].max() < 0.25
    assert torch.allclose(features[:, 1], xyz[:, 2] - 0.4, atol=0.03)  # height above the pillar's centre


def test_anchor_words_train_through_the_masks():
    model = relational_model(anchor_slots=2, colour_channels=0).train()
    anchors = model.decoder.heads.anchors
    with torch.no_grad():
        anchors.coefficients.bias.fill_(0.5)  # once the query weighs the geometry, its words get gradients
    g = torch.Generator().manual_seed(0)
    points, colours, names, _, _, text = cubes_and_pillar(g, "distance")
    scene = model.encode_scene(points, colours, name_features(model)[names])
    model.ground(scene, model.encode_text([text])).mask_logits.sigmoid().sum().backward()
    for parameter in (anchors.anchor_align.weight, anchors.referent_offset, anchors.coefficients.weight):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_anchors_do_not_read_the_words_naming_the_querys_target():
    anchors = AnchorGeometry(d_model=8, align_dim=4, slots=2)
    words = torch.randn(1, 3, 8)  # [B, T, d]
    mask = torch.ones(1, 3, dtype=torch.bool)
    on_word_1 = torch.tensor([[[-20.0, 20.0, -20.0]]])  # [B, Q, T]: the query's target is word 1
    weights = anchors.token_weights(torch.randn(1, 1, 8), words, on_word_1, mask)  # [B, Q, K, T]
    assert weights[..., 1].max() < 1e-3
    assert torch.allclose(weights.sum(-1), torch.ones(1, 1, 2))


def test_colour_term_scores_voxels_by_their_colour_alone():
    term = VoxelColour(d_model=8, channels=4)
    with torch.no_grad():
        term.query.weight.normal_()
    colours = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.1, 0.9], [0.9, 0.1, 0.1]])
    scores = term(torch.randn(2, 3, 8), term.embed_colours(colours))  # [B, Q, Pv]
    assert torch.equal(scores[..., 0], scores[..., 2])
    assert not torch.allclose(scores[..., 0], scores[..., 1])


def test_relational_terms_refuse_what_they_cannot_use():
    config = tiny_config()
    config.decoder.anchor_slots = 2
    with pytest.raises(ValueError, match="anchor_slots needs decoder.lifted_affinity"):
        LiftGS(config, text_encoder=HashTextEncoder())
    model = relational_model(anchor_slots=0, colour_channels=4)
    with pytest.raises(ValueError, match="no voxel colours"):
        model.decoder.prepare(
            torch.randn(10, model.encoder.out_channels), torch.rand(10, 3), torch.randn(10, 8)
        )
