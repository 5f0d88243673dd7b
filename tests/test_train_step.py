"""The training step on a toy scene with a tiny network: rendering, gradients, loss decrease, no 3D labels."""

from __future__ import annotations

import pytest
import torch

from liftgs.losses.criterion import IGNORED_RELATION, LossConfig, scene_losses
from liftgs.losses.rendering import render_views
from liftgs.model import LiftGS
from liftgs.render import rasterize
from liftgs.train.batch import build_scene_batch, expression_targets
from liftgs.train.cache import SceneTensors
from liftgs.train.step import batch_losses, forward_scene, relation_indices
from tests.support import scenes
from tests.support.network import tiny_config
from tests.support.scenes import poisoned, toy_expressions


@pytest.fixture(scope="module")
def tensors() -> SceneTensors:
    return SceneTensors.from_scene(poisoned(scenes.toy_scene(num_frames=6)), 24, 32)


@pytest.fixture(scope="module")
def model() -> LiftGS:
    torch.manual_seed(0)
    return LiftGS(tiny_config())


def test_rendered_masks_are_the_composited_probabilities(tensors, model):
    batch = build_scene_batch(tensors, expression_targets("toy0000", toy_expressions()[:2]), [0, 3], "views")
    with torch.no_grad():
        scene = model.encode_scene(batch.points, batch.colors)
        out = model.ground(scene, model.encode_text(batch.texts))
        logits = torch.stack([layer["mask_logits"] for layer in out.aux])  # [L=2, B=2, Q=4, Pv]
        rendered = render_views(scene.gaussians, batch.views, logits)
        g = scene.gaussians
        alone, alphas, _ = rasterize(
            g.means, g.quats, g.scales, g.opacities, g.take(torch.sigmoid(logits[1, 0, 2]))[:, None],
            batch.views.viewmats, batch.views.Ks, 32, 24,
        )  # fmt: skip
    assert rendered.masks.shape == (2, 2, 4, 2, 24, 32)
    assert torch.allclose(rendered.masks[1, 0, 2], alone[..., 0], atol=1e-5)
    assert torch.allclose(rendered.alpha, alphas[..., 0], atol=1e-5)
    assert rendered.rgb.shape == (2, 24, 32, 3) and rendered.depth.shape == (2, 24, 32)


def test_mask_loss_reaches_mask_logits_and_gaussians(tensors, model):
    batch = build_scene_batch(
        tensors, expression_targets("toy0000", toy_expressions()[:3]), [0, 2, 4], "views"
    )
    config = LossConfig(token=0, score=0, rgb=0, depth=0, aux=0)  # the 2D mask loss alone
    scene = model.encode_scene(batch.points, batch.colors)
    for tensor in (scene.gaussians.means, scene.gaussians.opacities, scene.gaussians.scales):
        tensor.retain_grad()
    out = model.ground(scene, model.encode_text(batch.texts))
    out.mask_logits.retain_grad()

    from liftgs.losses.criterion import SceneOutputs
    from liftgs.losses.tokens import positive_tokens

    outputs = SceneOutputs(
        layers=[{"mask_logits": out.mask_logits, "token_logits": out.token_logits, "scores": out.scores}],
        text_mask=torch.ones_like(out.token_logits[:, 0], dtype=torch.bool),
        positives=[
            positive_tokens(["x"], names, out.token_logits.shape[-1]) for names in batch.targets.names
        ],
        source_to_voxel=scene.source_to_voxel,
        rendered=render_views(scene.gaussians, batch.views, out.mask_logits[None]),
    )
    losses, _ = scene_losses(outputs, batch.targets, batch.views, config)
    assert set(losses) == {"mask_bce", "mask_dice", "token", "score"}
    model.zero_grad()
    sum(losses.values()).backward()
    assert out.mask_logits.grad.abs().sum() > 0
    for tensor in (scene.gaussians.means, scene.gaussians.opacities, scene.gaussians.scales):
        assert tensor.grad.abs().sum() > 0
    assert model.gaussian_head.parameters().__next__().grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_three_d_baseline_losses_need_no_views(tensors):
    scene = scenes.toy_scene(num_frames=6)
    labelled = SceneTensors.from_scene(scene, 24, 32, point_labels=True)
    batch = build_scene_batch(labelled, expression_targets("toy0000", toy_expressions()[:2]), None, "points")
    torch.manual_seed(0)
    network = LiftGS(tiny_config())
    losses, metrics = batch_losses(network, [batch], LossConfig())
    assert set(losses) == {"mask_bce", "mask_dice", "token", "score"}  # no rendering, no reconstruction
    sum(losses.values()).backward()
    assert network.decoder.heads.mask_embed[0].weight.grad.abs().sum() > 0
    assert network.gaussian_head.parameters().__next__().grad is None
    assert 0 <= metrics["top1_iou"] <= 1


def test_a_few_steps_reduce_the_loss(tensors):
    """Fitting one batch (toy scene with poisoned 3D labels: the 2D path never reads them)."""
    torch.manual_seed(0)
    network = LiftGS(tiny_config())
    batch = [
        build_scene_batch(tensors, expression_targets("toy0000", toy_expressions()[:2]), [0, 3], "views")
    ]
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-3)
    history = []
    for _ in range(10):
        losses, _ = batch_losses(network, batch, LossConfig())
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(float(loss))
    assert sum(history[-3:]) / 3 < 0.8 * sum(history[:3]) / 3, history


def test_forward_renders_every_supervised_layer(tensors, model):
    batch = build_scene_batch(tensors, expression_targets("toy0000", toy_expressions()[:2]), [1, 2], "views")
    with torch.no_grad():
        deep = forward_scene(model, batch, LossConfig(aux=0.5))
        last = forward_scene(model, batch, LossConfig(aux=0.0))
    assert len(deep.layers) == 2 and deep.rendered.masks.shape[0] == 2
    assert len(last.layers) == 1 and last.rendered.masks.shape[0] == 1
    assert torch.allclose(deep.rendered.masks[-1], last.rendered.masks[0], atol=1e-6)


def test_anchor_word_loss_trains_the_anchor_slots_from_named_anchors(tensors):
    """An expression whose annotation names its anchor ("the table near the chair") adds the anchor-word
    loss, and it reaches the slots' word choice; texts without anchors add nothing."""
    torch.manual_seed(0)
    network = LiftGS(tiny_config())
    expressions = toy_expressions()
    expressions[3].anchor_ids = (0,)  # "the table near the chair": the chair
    targets = expression_targets("toy0000", expressions[2:], tensors.object_names)
    assert [target.anchor_names for target in targets] == [[], [tensors.object_names[0]]]
    batch = build_scene_batch(tensors, targets, [0, 3], "views")
    losses, _ = batch_losses(network, [batch], LossConfig())
    assert losses["anchor_words"] > 0
    losses["anchor_words"].backward()
    assert network.decoder.heads.anchors.anchor_align.weight.grad.abs().sum() > 0
    no_anchor = build_scene_batch(tensors, targets[:1], [0, 3], "views")
    assert "anchor_words" not in batch_losses(network, [no_anchor], LossConfig())[0]


def test_relation_loss_trains_the_relation_classifier_from_annotated_kinds(tensors):
    """Texts whose annotation names their relation kind add its cross-entropy, which reaches the relation
    classifier; unknown kinds and a decoder without anchors (so without the classifier) add nothing."""
    config = tiny_config()
    config.decoder.anchor_slots = 1
    torch.manual_seed(0)
    network = LiftGS(config)
    expressions = toy_expressions()[2:]
    expressions[0].relation, expressions[1].relation = "near", "not-a-kind"
    targets = expression_targets("toy0000", expressions, tensors.object_names)
    assert [target.relation for target in targets] == ["near", "not-a-kind"]
    kinds = config.decoder.relation_kinds
    labels = relation_indices([t.relation for t in targets], kinds)
    assert labels.tolist() == [kinds.index("near"), IGNORED_RELATION]
    batch = build_scene_batch(tensors, targets, [0, 3], "views")
    outputs = forward_scene(network, batch, LossConfig())
    logits = outputs.relation_logits[:1]
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([kinds.index("near")]))
    losses, _ = batch_losses(network, [batch], LossConfig())
    assert torch.allclose(losses["relation"], expected)
    losses["relation"].backward()
    assert network.decoder.heads.anchors.relation_classifier.weight.grad.abs().sum() > 0
    unknown = build_scene_batch(tensors, targets[1:], [0, 3], "views")
    assert "relation" not in batch_losses(network, [unknown], LossConfig())[0]
    config.decoder.anchor_slots = 0
    assert "relation" not in batch_losses(LiftGS(config), [batch], LossConfig())[0]
