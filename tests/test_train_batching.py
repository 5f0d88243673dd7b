"""Per-scene tensor cache, target masks, view choice and batch sampling on the toy scene with frames
(``tests.support.scenes.toy_scene``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liftgs.scene import Expression
from liftgs.train.batch import (
    SamplerConfig,
    TrainBatchSampler,
    build_scene_batch,
    category_prompts,
    choose_views,
    expression_targets,
)
from liftgs.train.cache import SceneTensorCache, SceneTensors
from tests.support import scenes
from tests.support.scenes import poisoned, toy_expressions


def test_scene_tensors_shapes_and_masks(toy_scene):
    scene = toy_scene
    tensors = SceneTensors.from_scene(scene, 24, 32)
    assert tensors.images.shape == (6, 24, 32, 3) and tensors.depths.shape == (6, 24, 32)
    assert tensors.instance.shape == (6, 48, 64) and tensors.point_instance is None
    assert torch.allclose(tensors.Ks[0, 0, 0], torch.tensor(0.8 * 32.0))
    coverage = np.mean([(frame.depth > 0).mean() for frame in scene.frames])
    assert float((tensors.depths > 0).float().mean()) == pytest.approx(coverage, abs=0.05)
    frame = int(tensors.object_pixels[1].argmax())
    masks = tensors.target_masks([1, 0], [frame])
    assert masks.shape == (2, 1, 24, 32) and masks.min() >= 0 and masks.max() == 1
    # the soft mask's coverage equals the object's share of the full-resolution instance map
    full = (scene.frames[frame].instance == 1).mean()
    assert float(masks[0].mean()) == pytest.approx(full, abs=0.02)


def test_depth_resampled_through_depth_intrinsics():
    scene = scenes.toy_scene(num_frames=2)
    frame = scene.frames[0]
    frame.K_depth = frame.K * np.array([[0.5], [0.5], [1.0]])  # depth stored at half resolution
    frame.depth = frame.depth[::2, ::2].copy()
    reference = SceneTensors.from_scene(scenes.toy_scene(num_frames=2), 24, 32).depths[0]
    half = SceneTensors.from_scene(scene, 24, 32).depths[0]
    both = (reference > 0) & (half > 0)
    assert both.sum() > 0.9 * (reference > 0).sum()
    assert torch.allclose(half[both], reference[both], atol=0.15)


def test_choose_views_sees_every_target():
    rng = np.random.default_rng(0)
    pixels = {
        0: torch.tensor([0, 50, 0, 0, 0]),
        1: torch.tensor([0, 0, 0, 9, 40]),
        2: torch.tensor([5, 0, 0, 0, 0]),
    }
    for _ in range(20):
        views = choose_views(pixels, [0, 1], num_frames=5, num_views=3, rng=rng, min_pixels=10)
        assert len(set(views)) == 3 and 1 in views and 4 in views
    assert choose_views(pixels, [2], 5, 2, rng, 10) != []  # invisible target: any frames
    assert sorted(choose_views(pixels, [0], 5, 9, rng, 10)) == [0, 1, 2, 3, 4]


def test_render_batch_never_reads_point_labels(toy_scene):
    scene = poisoned(toy_scene)
    cache = SceneTensorCache(lambda scene_id: SceneTensors.from_scene(scene, 24, 32))
    expressions = toy_expressions()
    expressions[3].anchor_ids = (0,)  # "the table near the chair"
    sampler = TrainBatchSampler(
        expressions, cache, SamplerConfig(1, 4, 2, 8, category_prompts=0), "views", seed=0
    )
    batch = sampler.sample()
    assert len(batch) == 1 and len(batch[0].texts) == 4 and len(batch[0].views) == 2
    assert batch[0].targets.kind == "views"
    anchors = dict(zip(batch[0].texts, batch[0].targets.anchor_names, strict=True))
    assert anchors["the table near the chair"] == ["chair"] and anchors["the green table"] == []
    for mask, text in zip(batch[0].targets.masks, batch[0].texts, strict=True):
        assert mask.shape == (1, 2, 24, 32) and mask.sum() > 0, text  # chosen views see the target
    assert cache.get("toy0000").point_instance is None
    with pytest.raises(AssertionError, match="point_instance"):
        SceneTensors.from_scene(scene, 24, 32, point_labels=True)


def test_points_batch_and_counted_skips(toy_scene):
    scene = toy_scene
    tensors = SceneTensors.from_scene(scene, 24, 32, point_labels=True)
    expressions = toy_expressions()[:2] + [
        Expression("toy0000", 7, "ghost", 9, "a ghost", ["a", "ghost"], "unique")
    ]
    batch = build_scene_batch(tensors, expression_targets("toy0000", expressions[:2]), None, "points")
    assert batch.views is None and batch.targets.masks[0].shape == (1, scene.num_points)
    assert int(batch.targets.masks[1].sum()) == int((scene.point_instance == 1).sum())
    sampler = TrainBatchSampler(
        expressions,
        SceneTensorCache(lambda _: tensors),
        SamplerConfig(1, 4, 2, 8, category_prompts=0),
        "points",
    )
    assert len(sampler.sample()[0].texts) == 2 and sampler.skipped == {"target has no points": 1}
    views_sampler = TrainBatchSampler(
        expressions, SceneTensorCache(lambda _: tensors), SamplerConfig(1, 4, 2, 8, category_prompts=0)
    )
    views_sampler.sample()
    assert views_sampler.skipped == {"target not visible in any frame": 1}
    with pytest.raises(ValueError, match="scene 'other'"):
        expression_targets("toy0000", [Expression("other", 0, "chair", 0, "x", ["x"], "unique")])


def test_category_prompts_refer_to_every_visible_instance(toy_scene):
    scene = toy_scene
    scene.objects[2].name = "chair"  # two chairs: objects 0 and 2
    tensors = SceneTensors.from_scene(scene, 24, 32)
    rng = np.random.default_rng(0)
    frames = [f for f in range(6) if tensors.object_pixels[0][f] >= 16 and tensors.object_pixels[2][f] >= 16]
    prompts = category_prompts(tensors, frames[:1], 5, rng, 16)
    assert {p.text: p.object_ids for p in prompts}["chair"] == [0, 2]
    assert all(p.name == p.text for p in prompts) and len(prompts) <= 2
    batch = build_scene_batch(tensors, prompts, frames[:1], "views")
    chair = batch.texts.index("chair")
    assert batch.targets.masks[chair].shape == (2, 1, 24, 32) and batch.targets.names[chair] == [
        "chair",
        "chair",
    ]
    assert len(category_prompts(tensors, frames[:1], 1, rng, 16)) == 1
    sampler = TrainBatchSampler(
        toy_expressions()[:1],
        SceneTensorCache(lambda _: tensors),
        SamplerConfig(1, 1, 2, 16, category_prompts=3),
    )
    texts = sampler.sample()[0].texts
    assert texts[0] == toy_expressions()[0].description and set(texts[1:]) <= {"chair", "table"}
