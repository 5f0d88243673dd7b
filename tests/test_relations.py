"""The decoder's relational terms (``liftgs.model.relations``): anchor geometry and voxel color, relative to
the query's candidates; and the heads' reading of the target words' own embeddings."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from liftgs.data.synthetic.expressions import RELATIONS
from liftgs.model.config import SYNTHETIC_RELATION_KINDS
from liftgs.model.liftgs import LiftGS
from liftgs.model.projection import feature_projection
from liftgs.model.relations import (
    AnchorGeometry,
    VoxelColor,
    candidate_weights,
    referent_centres,
    standardise,
)
from tests.support.network import HashTextEncoder, text_features, tiny_config

LIFTED_DIM = 8
NAMES = ("floor", "cube", "pillar")
COLORS = {
    "red": (0.9, 0.1, 0.1),
    "blue": (0.1, 0.1, 0.9),
    "green": (0.1, 0.8, 0.1),
    "yellow": (0.9, 0.9, 0.1),
}


def relational_model(anchor_slots: int, color_channels: int, seed: int = 0) -> LiftGS:
    """The tiny test network with the given relational terms, reading the toy scenes' lifted name features
    through the lifted affinity; color names off, so the color term reads the words' embeddings (color
    names: tests/test_color_names.py)."""
    config = tiny_config()
    config.decoder.color_names = False
    config.encoder.extra_channels = LIFTED_DIM
    config.decoder.lifted_affinity = True
    config.decoder.anchor_slots = anchor_slots
    config.decoder.color_channels = color_channels
    torch.manual_seed(seed)
    return LiftGS(config, text_encoder=HashTextEncoder())


def name_features(model: LiftGS) -> torch.Tensor:
    """[len(NAMES), LIFTED_DIM]: each name's projected token, as the stand-in labeller lifts names."""
    words = model.encode_text(list(NAMES)).tokens[:, 0]
    return words @ feature_projection(words.shape[1], LIFTED_DIM, 0)


def cubes_and_pillar(
    g: torch.Generator, task: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int, str]:
    """A 3 m floor with three colored 0.3 m cubes and a grey pillar, at random places at least 0.7 m apart.

    Returns points [P, 3], colors [P, 3], name index [P] (into ``NAMES``), object id [P] (-1 floor, cubes
    0..2, pillar 3), the target and its expression: a cube by color ("the red cube") for ``task="color"``,
    by distance to the pillar ("the cube closest to / farthest from the pillar") for ``task="distance"``;
    the pillar itself ("the pillar") for ``task="pillar"``.
    """
    count = 1500
    uv = torch.rand(count, 2, generator=g) * 3.0
    points = [torch.cat([uv, torch.zeros(count, 1)], 1)]
    colors = [torch.rand(count, 3, generator=g) * 0.3 + 0.35]
    names, ids = [torch.zeros(count, dtype=torch.long)], [torch.full((count,), -1)]
    centres: list[torch.Tensor] = []
    while len(centres) < 4:
        c = torch.rand(2, generator=g) * 2.4 + 0.3
        if all((c - o).norm() > 0.7 for o in centres):
            centres.append(c)
    palette = [list(COLORS)[i] for i in torch.randperm(len(COLORS), generator=g)[:3]]
    objects = [(0.3, 0.3, COLORS[c], 1) for c in palette] + [(0.2, 0.8, (0.5, 0.5, 0.5), 2)]
    for obj, (width, height, color, name) in enumerate(objects):
        part = torch.rand(200, 3, generator=g) * torch.tensor([width, width, height])
        part[:, :2] += centres[obj] - width / 2
        points.append(part)
        colors.append(torch.tensor(color).expand(200, 3))
        names.append(torch.full((200,), name))
        ids.append(torch.full((200,), obj))
    if task == "color":
        target = int(torch.randint(3, (1,), generator=g))
        text = f"the {palette[target]} cube"
    elif task == "pillar":
        target, text = 3, "the pillar"
    else:
        distance = torch.stack([(centres[i] - centres[3]).norm() for i in range(3)])
        farthest = bool(torch.rand(1, generator=g) < 0.5)
        target = int(distance.argmax() if farthest else distance.argmin())
        text = f"the cube {'farthest from' if farthest else 'closest to'} the pillar"
    return torch.cat(points), torch.cat(colors), torch.cat(names), torch.cat(ids), target, text


def train_and_rank(
    anchor_slots: int,
    color_channels: int,
    task: str,
    steps: int,
    trials: int,
    name_the_pillar: bool = False,
) -> int:
    """Trains a tiny relational model on ``steps`` random scenes with a mask loss on voxel labels (BCE + dice
    of the best-matching query, plus its score, at every layer) and counts, over ``trials`` fresh scenes,
    how often the best-scoring query's mean probability is highest on the target cube (chance: 1 in 3).
    With ``name_the_pillar`` every other training scene asks for "the pillar" instead (as a benchmark's
    anchors are other expressions' targets), so the heads learn to paint it.

    Runs on one thread: the training trajectory depends on the order of floating-point sums, so the count
    would otherwise change with the machine's core count. The BCE is computed from logits (not the
    probability-clamping ``liftgs.losses.criterion.bce_loss``), so saturated voxels keep their gradients."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = relational_model(anchor_slots, color_channels)
        return _train_and_rank(model, task, steps, trials, name_the_pillar)
    finally:
        torch.set_num_threads(threads)


def _train_and_rank(model: LiftGS, task: str, steps: int, trials: int, name_the_pillar: bool) -> int:
    lifted = name_features(model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def encoded(g: torch.Generator, task: str):
        points, colors, names, ids, target, text = cubes_and_pillar(g, task)
        scene = model.encode_scene(points, colors, lifted[names])
        voxel_ids = torch.full((scene.num_points,), -1)
        voxel_ids[scene.source_to_voxel] = ids
        return scene, voxel_ids, target, text

    g = torch.Generator().manual_seed(0)
    for step in range(steps):
        scene, voxel_ids, target, text = encoded(g, "pillar" if name_the_pillar and step % 2 else task)
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
            scene, voxel_ids, target, text = encoded(g, task)
            out = model.ground(scene, model.encode_text([text]), all_layers=False)
            probs = out.mask_logits[0, int(out.scores[0].argmax())].sigmoid()
            hits += int(torch.stack([probs[voxel_ids == i].mean() for i in range(3)]).argmax() == target)
    return hits


@pytest.mark.slow
def test_the_color_term_learns_color_words_that_the_plain_decoder_does_not():
    """The color vector comes from the encoder embeddings of the words each query picks."""
    trials = 60
    plain = train_and_rank(0, 0, "color", steps=100, trials=trials)
    color = train_and_rank(0, 16, "color", steps=100, trials=trials)
    assert plain < 0.45 * trials  # about chance (1 in 3)
    assert color > 0.8 * trials


@pytest.mark.slow
def test_grounded_anchors_learn_where_the_anchor_is_from_expressions_that_name_it():
    """An anchor's referent map is the heads' own mask for its words, which the heads learn from the
    expressions whose target it is ("the pillar", every other training scene here)."""
    trials = 60
    plain = train_and_rank(0, 0, "distance", steps=400, trials=trials, name_the_pillar=True)
    grounded = train_and_rank(2, 0, "distance", steps=400, trials=trials, name_the_pillar=True)
    assert plain < 0.45 * trials
    assert grounded > 0.5 * trials


def test_relational_terms_start_neutral_and_locate_anchors_inside_the_scene():
    model = relational_model(2, 8).eval()
    g = torch.Generator().manual_seed(0)
    points, colors, names, _, _, text = cubes_and_pillar(g, "distance")
    heads = model.decoder.heads
    assert not heads.target_words.weight.any() and not heads.target_words.bias.any()
    with torch.no_grad():
        scene = model.encode_scene(points, colors, name_features(model)[names])
        with_terms = model.ground(scene, model.encode_text([text]))
        heads.anchors = heads.color = None
        without = model.ground(scene, model.encode_text([text]))
    for key in ("mask_logits", "scores", "boxes"):
        assert torch.equal(getattr(with_terms, key), getattr(without, key))
    centres = with_terms.anchor_centres  # weighted means of voxel centres: inside the scene's bounds
    assert centres.shape == (1, model.config.decoder.num_queries, 2, 3)
    lowest, highest = scene.points.min(0).values, scene.points.max(0).values
    assert ((centres >= lowest - 1e-5) & (centres <= highest + 1e-5)).all()


def test_heads_read_the_text_encoders_embedding_of_the_target_words():
    """The mask depends on the encoder's own embeddings of the words the query aligns with, even when the
    decoder's attention stream is unchanged (the lifted affinity, which reads those embeddings too, is
    switched off here); with the projection at its zero initialisation it does not."""
    model = relational_model(anchor_slots=0, color_channels=0).eval()
    heads = model.decoder.heads
    heads.affinity = None
    torch.nn.init.normal_(heads.target_words.weight)
    g = torch.Generator().manual_seed(0)
    points, colors, names, _, _, text = cubes_and_pillar(g, "color")
    with torch.no_grad():
        scene = model.encode_scene(points, colors, name_features(model)[names])
        words = model.encode_text([text])
        reworded = replace(words, tokens=words.tokens + torch.randn(words.tokens.shape, generator=g))
        d, dp = model.config.decoder.d_model, model.config.decoder.point_dim
        stream = (torch.randn(1, 4, d, generator=g), torch.randn(1, words.tokens.shape[1], d, generator=g))
        points_stream = torch.randn(1, scene.num_points, dp, generator=g)

        def mask(text_features):
            inputs = (*stream, text_features, points_stream, scene.decoder_points, scene.points)
            return heads(*inputs)["mask_logits"]

        assert not torch.allclose(mask(words), mask(reworded))
        torch.nn.init.zeros_(heads.target_words.weight)
        assert torch.equal(mask(words), mask(reworded))


def test_anchor_features_locate_the_object_its_referent_map_paints():
    pillar = torch.tensor([[2.0, 1.0, z] for z in (0.0, 0.4, 0.8)] + [[2.2, 1.0, 0.4], [1.8, 1.0, 0.4]])
    floor = torch.tensor([[0.0, 1.0, 0.0], [2.0, 3.0, 0.0], [4.0, 1.0, 0.0]])
    xyz = torch.cat([pillar, floor])
    referents = torch.tensor([10.0] * 5 + [-5.0] * 3).view(1, 1, 1, 8)  # [B, Q, K, Pv]: the pillar
    weights, centres = referent_centres(referents, xyz)
    features = AnchorGeometry.features(weights, centres, xyz)[0, 0, 0]  # [P, 2]
    assert torch.allclose(centres[0, 0, 0, :2], torch.tensor([2.0, 1.0]), atol=0.08)
    spread = (0.2**2 * 2 / 5) ** 0.5  # RMS horizontal distance of the pillar's voxels to their centre
    # the floor keeps a sliver of weight (sigmoid(-5)), which widens the spread a little
    assert torch.allclose(features[5:, 0], torch.full((3,), 2.0 - spread), atol=0.08)
    assert features[:5, 0].max() < 0.25
    assert torch.allclose(features[:, 1], xyz[:, 2] - 0.4, atol=0.03)  # height above the pillar's centre


def test_relation_coefficients_are_the_classifiers_mixture_of_per_kind_rows():
    """A text's coefficients are its relation classifier's softmax times a table of one row per kind: a
    sentence the classifier reads as kind 1 gets row 1."""
    torch.manual_seed(0)
    anchors = AnchorGeometry(4, 4, slots=1, sentence_dim=3, relation_kinds=2)
    table = torch.tensor([[-1.0, 0.0, 0.3, 0.0], [1.0, 0.5, 0.0, -0.2]])
    with torch.no_grad():
        anchors.relation_classifier.weight.copy_(torch.tensor([[50.0, 0.0, 0.0], [0.0, 50.0, 0.0]]))
        anchors.relation_classifier.bias.zero_()
        anchors.relation_table.copy_(table)
    sentences = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0]])  # kind 1, kind 0 (scale-free: unit first)
    assert anchors.relation_logits(sentences).argmax(-1).tolist() == [1, 0]
    assert torch.allclose(anchors.coefficient_values(sentences), table.flip(0), atol=1e-6)


def test_relation_kinds_are_the_synthetic_benchmarks():
    assert set(SYNTHETIC_RELATION_KINDS) == set(RELATIONS)


def test_degenerate_referents_and_candidates_give_finite_gradients():
    """An anchor whose referent sigmoids all underflow (weights 0, spread 0) and candidates on one voxel
    (spread 0) once turned a whole training run's gradients into NaN at step ~800."""
    xyz = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.5]])
    referent_logits = torch.full((1, 1, 1, 3), -200.0, requires_grad=True)  # sigmoid underflows to 0
    weights, centres = referent_centres(referent_logits, xyz)
    AnchorGeometry.features(weights, centres, xyz).sum().backward()
    assert torch.isfinite(referent_logits.grad).all()
    constant = torch.ones(1, 1, 1, 3, 2, requires_grad=True)  # zero variance over the candidates
    standardise(constant, torch.tensor([[[1.0, 0.0, 0.0]]])).sum().backward()
    assert torch.isfinite(constant.grad).all()


def test_anchor_words_train_through_the_masks():
    model = relational_model(anchor_slots=2, color_channels=0).train()
    anchors = model.decoder.heads.anchors
    with torch.no_grad():
        anchors.relation_table.fill_(0.5)  # once the text weighs the geometry, its words get gradients
    g = torch.Generator().manual_seed(0)
    points, colors, names, _, _, text = cubes_and_pillar(g, "distance")
    scene = model.encode_scene(points, colors, name_features(model)[names])
    model.ground(scene, model.encode_text([text])).mask_logits.sigmoid().sum().backward()
    for parameter in (
        anchors.anchor_align.weight,
        anchors.relation_table,
        anchors.relation_classifier.weight,
    ):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def anchor_geometry(slots: int = 2, d_model: int = 8) -> AnchorGeometry:
    return AnchorGeometry(d_model=d_model, align_dim=4, slots=slots, sentence_dim=3, relation_kinds=1)


def test_anchors_do_not_read_the_words_naming_the_querys_target():
    anchors = anchor_geometry()
    words, queries = torch.randn(1, 3, 8), torch.randn(1, 1, 8)  # [B, T, d], [B, Q, d]
    mask = torch.ones(1, 3, dtype=torch.bool)
    on_word_1 = torch.tensor([[[-20.0, 20.0, -20.0]]])  # [B, Q, T]: the query's target is word 1
    steered = anchors.token_weights(queries, words, on_word_1, mask)  # [B, Q, K, T]
    free = anchors.token_weights(queries, words, torch.zeros(1, 1, 3), mask)  # no target word
    assert torch.allclose(steered.sum(-1), torch.ones(1, 1, 2))

    def odds(weights: torch.Tensor) -> torch.Tensor:
        return weights[..., 1] / (1 - weights[..., 1])

    assert (odds(steered) < 1e-3 * odds(free)).all()  # word 1's logit lowered by about log(1e-4)


def color_term() -> VoxelColor:
    """A color term with random word projection and color names off (tests/test_color_names.py has them)."""
    torch.manual_seed(0)
    term = VoxelColor(d_model=8, channels=4, text_dim=6, pick_dim=4, color_names=False)
    with torch.no_grad():
        term.query.weight.normal_()
    return term


RED_BLUE_RED = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.1, 0.9], [0.9, 0.1, 0.1]])


def test_color_term_scores_voxels_by_their_color_alone():
    term = color_term()
    tokens, mask = torch.randn(2, 3, 6), torch.ones(2, 3, dtype=torch.bool)
    scores = term(torch.randn(2, 3, 8), term.embed_colors(RED_BLUE_RED), text_features(tokens, mask))
    assert torch.equal(scores[..., 0], scores[..., 2])
    assert not torch.allclose(scores[..., 0], scores[..., 1])


def test_color_term_reads_the_words_its_reader_picks():
    """Each reader's softmax covers the real tokens only, and its color vector is a projection of the
    picked words' embeddings: padding does not matter, a real word does."""
    term = color_term()
    colors = term.embed_colors(RED_BLUE_RED[:2])
    readers = torch.randn(1, 2, 8)
    tokens = torch.randn(1, 3, 6)
    mask = torch.tensor([[True, True, False]])
    weights = term.word_weights(readers, text_features(tokens, mask))  # [B, N, T]
    assert torch.allclose(weights.sum(-1), torch.ones(1, 2)) and (weights[..., 2] == 0).all()
    scores = term(readers, colors, text_features(tokens, mask))
    padded_differently = tokens.clone()
    padded_differently[0, 2] = 100.0
    assert torch.equal(term(readers, colors, text_features(padded_differently, mask)), scores)
    changed_word = tokens.clone()
    changed_word[0, 1] = torch.randn(6)
    assert not torch.allclose(term(readers, colors, text_features(changed_word, mask)), scores)


def test_the_anchors_referent_maps_carry_the_color_term():
    """A grounded anchor's referent logits are the heads' mask for its words plus the color term of that
    reader, so voxels of one color shift alike and voxels of another differently."""
    model = relational_model(2, 8).eval()
    heads = model.decoder.heads
    with torch.no_grad():
        heads.color.query.weight.normal_()
    points, colors, names, ids, _, text = cubes_and_pillar(torch.Generator().manual_seed(0), "distance")
    captured = []
    heads.anchors.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    with torch.no_grad():
        scene = model.encode_scene(points, colors, name_features(model)[names])
        model.ground(scene, model.encode_text([text]), all_layers=False)
        heads.color.query.weight.zero_()
        model.ground(scene, model.encode_text([text]), all_layers=False)
    shift = captured[0] - captured[1]  # [B, Q, K, Pv]
    pillar = (scene.colors - 0.5).abs().sum(-1) < 1e-4  # the grey pillar's voxels
    assert shift[..., pillar].std(-1).max() < 1e-4  # one color: one shift
    assert (shift.std(-1) > 1e-2).all()  # the room's other colors shift otherwise


def test_relational_terms_refuse_what_they_cannot_use():
    config = tiny_config()
    config.decoder.relation_kinds = ()
    with pytest.raises(ValueError, match="relation_kinds: the relation classifier needs at least one kind"):
        LiftGS(config, text_encoder=HashTextEncoder())
    config.decoder.relation_kinds = SYNTHETIC_RELATION_KINDS
    model = LiftGS(config, text_encoder=HashTextEncoder()).eval()  # no lifted affinity: heads find anchors
    points, colors, *_, text = cubes_and_pillar(torch.Generator().manual_seed(0), "distance")
    with torch.no_grad():
        grounded = model.ground(model.encode_scene(points, colors), model.encode_text([text]))
    assert grounded.mask_logits.isfinite().all()
    model = relational_model(anchor_slots=0, color_channels=4)
    with pytest.raises(ValueError, match="no voxel colors"):
        model.decoder.prepare(
            torch.randn(10, model.encoder.out_channels), torch.rand(10, 3), torch.randn(10, 8)
        )


def test_standardised_features_have_zero_mean_and_unit_spread_over_the_candidates():
    features = torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0]).view(1, 1, 1, 5, 1)  # [B, Q, K, Pv, F]
    weights = torch.tensor([0.0, 0.5, 0.0, 0.5, 0.0]).view(1, 1, 5)  # candidates: voxels 1 and 3
    relative = standardise(features, weights)[0, 0, 0, :, 0]
    assert torch.allclose(relative, torch.tensor([-2.0, -1.0, 0.0, 1.0, 8.0]))
    tight = standardise(features * 0.01, weights)[0, 0, 0, :, 0]  # spread 0.01 m: divided by the floor
    assert torch.allclose(tight, (features.flatten() - 2.0) * 0.01 / 0.1)
    weights = candidate_weights(torch.tensor([[[0.0, 2.0, -30.0]]], requires_grad=True))
    assert torch.allclose(weights.sum(-1), torch.ones(1, 1)) and not weights.requires_grad


def test_relative_geometry_ranks_look_alikes_the_same_in_a_room_of_any_scale():
    """The relative half of the anchor features does not change when the room is scaled (distances to the
    anchor and the candidates' spread scale together); the absolute half does."""
    g = torch.Generator().manual_seed(0)
    anchors = anchor_geometry(slots=1)
    referents = torch.randn(1, 3, 1, 40, generator=g) * 3  # [B, Q, K, Pv]
    xyz = torch.rand(40, 3, generator=g) * 4.0
    candidates = candidate_weights(torch.randn(1, 3, 40, generator=g) * 3)
    sentence = torch.randn(1, 3, generator=g)

    def term(coefficients: list[float], scale: float) -> torch.Tensor:
        with torch.no_grad():  # one relation kind: the table's row is the coefficients
            anchors.relation_table.copy_(torch.tensor([coefficients]))
            return anchors(referents, xyz * scale, candidates, sentence)[0]

    relative = [0.0, 0.0, 1.5, -0.7]  # [distance, height, relative distance, relative height]
    assert torch.allclose(term(relative, 1.0), term(relative, 3.0), atol=1e-4)
    assert not torch.allclose(term([1.5, -0.7, 0.0, 0.0], 1.0), term([1.5, -0.7, 0.0, 0.0], 3.0))


def test_relative_color_term_scores_how_a_voxel_differs_from_the_candidates():
    term = color_term()
    embedded = term.embed_colors(RED_BLUE_RED)
    readers, tokens, mask = torch.randn(1, 2, 8), torch.randn(1, 3, 6), torch.ones(1, 3, dtype=torch.bool)
    on_red = torch.tensor([1.0, 0.0, 0.0]).expand(1, 2, 3)  # the candidates are the red voxel
    scores = term(readers, embedded, text_features(tokens, mask), on_red)
    absolute = term(readers, embedded, text_features(tokens, mask))
    assert torch.allclose(scores[..., [0, 2]], torch.zeros(1, 2, 2), atol=1e-6)
    assert torch.allclose(scores[..., 1], absolute[..., 1] - absolute[..., 0])
