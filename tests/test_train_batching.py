"""Per-scene tensor cache, target masks, view choice and batch sampling on a hand-made toy scene.

``toy_scene`` (also used by the other training tests) builds a small room with coloured boxes, its point
cloud with instance ids, and posed frames whose image, depth and instance map come from a z-buffered
projection of a dense sampling of the same surfaces.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liftgs.data.synthetic.camera_path import look_at
from liftgs.scene import NO_INSTANCE, Expression, Frame, Scene, SceneObject
from liftgs.train.batch import (
    SamplerConfig,
    TrainBatchSampler,
    build_scene_batch,
    category_prompts,
    choose_views,
    expression_targets,
)
from liftgs.train.cache import SceneTensorCache, SceneTensors

BOXES = [  # (name, colour, xmin, ymin, zmin, xmax, ymax, zmax)
    ("chair", (0.9, 0.1, 0.1), -0.9, -0.9, 0.0, -0.4, -0.4, 0.6),
    ("table", (0.1, 0.8, 0.1), 0.3, -0.2, 0.0, 1.0, 0.6, 0.5),
    ("lamp", (0.1, 0.2, 0.9), -0.6, 0.5, 0.0, -0.3, 0.8, 1.0),
]


def _box_surface(rng: np.random.Generator, box: np.ndarray, count: int) -> np.ndarray:
    """Points on the 5 visible faces (no bottom) of an axis-aligned box."""
    lo, hi = box[:3], box[3:]
    points = rng.uniform(lo, hi, size=(count, 3))
    face = rng.integers(0, 5, size=count)
    for axis in range(3):
        points[face == 2 * axis, axis] = lo[axis] if axis < 2 else hi[axis]
        if axis < 2:
            points[face == 2 * axis + 1, axis] = hi[axis]
    points[face == 5, 2] = hi[2]
    return points


def _surfaces(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    floor = np.concatenate([rng.uniform(-1.5, 1.5, size=(count, 2)), np.zeros((count, 1))], axis=1)
    points, colors, ids = [floor], [np.full((count, 3), 0.6)], [np.full(count, NO_INSTANCE)]
    for object_id, (_, colour, *box) in enumerate(BOXES):
        points.append(_box_surface(rng, np.asarray(box), count // 2))
        colors.append(np.tile(colour, (count // 2, 1)))
        ids.append(np.full(count // 2, object_id))
    return np.concatenate(points), np.concatenate(colors), np.concatenate(ids)


def _project(points, colors, ids, K, c2w, height, width):
    w2c = np.linalg.inv(c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    front = cam[:, 2] > 0.05
    uv = cam[front] @ K.T
    u, v = (uv[:, 0] / uv[:, 2]).astype(int), (uv[:, 1] / uv[:, 2]).astype(int)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    z = cam[front][inside, 2]
    pixel = v[inside] * width + u[inside]
    order = np.lexsort((-z, pixel))  # per pixel, the nearest point last
    last = np.r_[pixel[order][1:] != pixel[order][:-1], True]
    keep, where = order[last], pixel[order][last]
    image = np.zeros((height * width, 3), np.uint8)
    depth = np.zeros(height * width, np.float32)
    instance = np.full(height * width, NO_INSTANCE, np.int32)
    image[where] = (colors[front][inside][keep] * 255).astype(np.uint8)
    depth[where] = z[keep]
    instance[where] = ids[front][inside][keep]
    return image.reshape(height, width, 3), depth.reshape(height, width), instance.reshape(height, width)


def toy_scene(
    scene_id: str = "toy0000", num_frames: int = 6, height: int = 48, width: int = 64, seed: int = 0
) -> Scene:
    """A 3 m room with 3 boxes (chair, table, lamp), a 6k-point cloud and ``num_frames`` posed views."""
    rng = np.random.default_rng(seed)
    points, colors, ids = _surfaces(rng, 2000)
    dense = _surfaces(rng, 40000)
    K = np.array([[0.8 * width, 0, width / 2], [0, 0.8 * width, height / 2], [0, 0, 1.0]])
    frames = []
    for index, angle in enumerate(np.linspace(0, 2 * np.pi, num_frames, endpoint=False)):
        c2w = look_at(np.array([2.6 * np.cos(angle), 2.6 * np.sin(angle), 1.6]), np.array([0.0, 0.0, 0.3]))
        image, depth, instance = _project(*dense, K, c2w, height, width)
        frames.append(Frame(str(index), image, depth, K.copy(), c2w, instance))
    objects = {i: SceneObject(i, name, np.asarray(box, float)) for i, (name, _, *box) in enumerate(BOXES)}
    return Scene(
        scene_id, points.astype(np.float32), colors.astype(np.float32), ids.astype(np.int64), frames, objects
    )


def toy_expressions(scene_id: str = "toy0000") -> list[Expression]:
    texts = ["the red chair in the corner", "the green table", "a tall blue lamp", "the table near the chair"]
    targets = [0, 1, 2, 1]
    return [
        Expression(scene_id, target, BOXES[target][0], ann_id, text, text.split(), "unique")
        for ann_id, (text, target) in enumerate(zip(texts, targets, strict=True))
    ]


class PoisonedLabels:
    """Stands in for ``Scene.point_instance``: any read (indexing, comparison, conversion) fails the test."""

    def _fail(self, *args, **kwargs):
        raise AssertionError("the render-supervised path read point_instance")

    __getattr__ = __getitem__ = __array__ = __eq__ = __len__ = __iter__ = _fail


def poisoned(scene: Scene) -> Scene:
    scene.point_instance = PoisonedLabels()
    return scene


def test_scene_tensors_shapes_and_masks():
    scene = toy_scene()
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
    scene = toy_scene(num_frames=2)
    frame = scene.frames[0]
    frame.K_depth = frame.K * np.array([[0.5], [0.5], [1.0]])  # depth stored at half resolution
    frame.depth = frame.depth[::2, ::2].copy()
    reference = SceneTensors.from_scene(toy_scene(num_frames=2), 24, 32).depths[0]
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


def test_render_batch_never_reads_point_labels():
    scene = poisoned(toy_scene())
    cache = SceneTensorCache(lambda scene_id: SceneTensors.from_scene(scene, 24, 32))
    sampler = TrainBatchSampler(toy_expressions(), cache, SamplerConfig(1, 3, 2, 8), "views", seed=0)
    batch = sampler.sample()
    assert len(batch) == 1 and len(batch[0].texts) == 3 and len(batch[0].views) == 2
    assert batch[0].targets.kind == "views"
    for mask, text in zip(batch[0].targets.masks, batch[0].texts, strict=True):
        assert mask.shape == (1, 2, 24, 32) and mask.sum() > 0, text  # chosen views see the target
    assert cache.get("toy0000").point_instance is None
    with pytest.raises(AssertionError, match="point_instance"):
        SceneTensors.from_scene(scene, 24, 32, point_labels=True)


def test_points_batch_and_counted_skips():
    scene = toy_scene()
    tensors = SceneTensors.from_scene(scene, 24, 32, point_labels=True)
    expressions = toy_expressions()[:2] + [
        Expression("toy0000", 7, "ghost", 9, "a ghost", ["a", "ghost"], "unique")
    ]
    batch = build_scene_batch(tensors, expression_targets("toy0000", expressions[:2]), None, "points")
    assert batch.views is None and batch.targets.masks[0].shape == (1, scene.num_points)
    assert int(batch.targets.masks[1].sum()) == int((scene.point_instance == 1).sum())
    sampler = TrainBatchSampler(
        expressions, SceneTensorCache(lambda _: tensors), SamplerConfig(1, 4, 2, 8), "points"
    )
    assert len(sampler.sample()[0].texts) == 2 and sampler.skipped == {"target has no points": 1}
    views_sampler = TrainBatchSampler(
        expressions, SceneTensorCache(lambda _: tensors), SamplerConfig(1, 4, 2, 8)
    )
    views_sampler.sample()
    assert views_sampler.skipped == {"target not visible in any frame": 1}
    with pytest.raises(ValueError, match="scene 'other'"):
        expression_targets("toy0000", [Expression("other", 0, "chair", 0, "x", ["x"], "unique")])


def test_category_prompts_refer_to_every_visible_instance():
    scene = toy_scene()
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
