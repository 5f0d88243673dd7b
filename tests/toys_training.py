"""Toys shared by the training tests: a room with three boxes and posed frames, labels that fail when read,
a tiny network and a tiny ``ns-train`` config.

``toy_scene`` builds a small room with coloured boxes, its point cloud with instance ids, and posed frames
whose image, depth and instance map come from a z-buffered projection of a dense sampling of the same
surfaces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from nerfstudio.engine.trainer import TrainerConfig

from liftgs.data.synthetic.camera_path import look_at
from liftgs.model import DecoderConfig, EncoderConfig, GaussianConfig, LiftGSConfig
from liftgs.scene import NO_INSTANCE, Expression, Frame, Scene, SceneObject
from method_configs.liftgs import trainer_config

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


def tiny_network() -> LiftGSConfig:
    return LiftGSConfig(
        voxel_size=0.12,
        max_points=600,
        subsample="random",
        encoder=EncoderConfig(
            enc_channels=(32, 64), enc_depths=(1, 1), dec_channels=(32,), dec_depths=(1,), patch_size=32
        ),
        decoder=DecoderConfig(
            d_model=32, point_dim=32, num_queries=4, num_layers=2, num_heads=2, align_dim=16
        ),
        gaussians=GaussianConfig(hidden=16, feature_dim=0),  # renders no features
    )


def tiny_trainer(method: str, output_dir: Path, iterations: int) -> TrainerConfig:
    config = trainer_config(method, "views" if method == "liftgs" else "points")
    config.machine.device_type = "cpu"
    config.output_dir = output_dir
    config.experiment_name = "tiny"
    config.timestamp = "run"
    config.max_num_iterations = iterations
    config.steps_per_eval_batch = config.steps_per_eval_image = config.steps_per_eval_all_images = 2
    config.steps_per_save = 100
    config.optimizers["liftgs"]["scheduler"].warmup_steps = 1  # past warm-up: cosine factors get saved
    pipeline = config.pipeline
    pipeline.eval_max_scenes = 1
    pipeline.model.network = tiny_network()
    pipeline.datamanager.render_height, pipeline.datamanager.render_width = 16, 24
    pipeline.datamanager.sampler.expressions_per_scene = 2
    pipeline.datamanager.sampler.views_per_scene = 2
    return config
