"""The tests' one toy scene, its referring expressions, a toy dataset root, and labels that fail when read.

A toy scene is a floor plus solid cubes of points laid out so that no 0.1 m voxel (the tiny network's voxel
size, ``VOXEL``) mixes two instances: a prediction built per voxel can then match a target exactly
(``test_toys`` holds the toys to that promise). With frames, every view's image, depth and instance
map come from a z-buffered projection of a dense sampling of the same surfaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from liftgs.data.store import save_expressions, write_scene
from liftgs.data.synthetic.camera_path import look_at
from liftgs.scene import NO_INSTANCE, Expression, Frame, Scene, SceneObject
from tests.support.network import VOXEL

NAMES = ("chair", "table", "lamp")
PALETTE = ((0.9, 0.1, 0.1), (0.1, 0.8, 0.1), (0.1, 0.2, 0.9), (0.9, 0.9, 0.1), (0.8, 0.2, 0.8))
"""Colors of the cubes in order: red, green, blue, yellow, magenta."""
FLOOR_GREY = 0.6
FLOOR_Z = 0.025
"""Height of the floor's points (one layer of the grid)."""
SPLIT = "test"
NO_POINTS_OBJECT = 9
"""An object of toy0001's objects.json with no point in its cloud (its expressions are scored as misses)."""


CUBE_SIZE = 0.4
"""Edge (metres) of a toy cube's annotated box."""
CUBE_POINTS_SPAN = CUBE_SIZE - VOXEL / 2
"""Edge of the box of a toy cube's points: the grid's cell centres lie half a 0.05 m step inside the cube."""


def _grid(lo: np.ndarray, count: tuple[int, int, int], step: float = VOXEL / 2) -> np.ndarray:
    """[N, 3] points on a grid offset by half a step, so none lies on a voxel boundary."""
    axes = [lo[i] + step / 2 + step * np.arange(count[i]) for i in range(3)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def cube_box(index: int) -> np.ndarray:
    """[6] (min xyz, max xyz) of the ``index``-th cube: 0.4 m, 0.2 m apart in a row along x, at z 0.2-0.6."""
    lo = np.array([0.2 + 0.6 * index, 0.2, 0.2])
    return np.concatenate([lo, lo + CUBE_SIZE])


def _box_surface(rng: np.random.Generator, box: np.ndarray, count: int) -> np.ndarray:
    """[count, 3] points uniformly on the six faces of an axis-aligned box ([6] min xyz, max xyz)."""
    lo, hi = box[:3], box[3:]
    points = rng.uniform(lo, hi, size=(count, 3))
    face = rng.integers(0, 6, size=count)
    for axis in range(3):
        points[face == 2 * axis, axis] = lo[axis]
        points[face == 2 * axis + 1, axis] = hi[axis]
    return points


def _project(points, colors, ids, K, c2w, height, width):
    """Image [H, W, 3] uint8, depth [H, W] (0 = empty) and instance map [H, W] of the nearest point per
    pixel (OpenCV camera ``c2w``, intrinsics ``K``)."""
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


def _frames(boxes: list[np.ndarray], rng, num_frames: int, height: int, width: int) -> list[Frame]:
    """Views on a 2.6 m circle around the cubes, 1.6 m up, none of them along the row (no cube hides
    another), rendered from 40k floor and 20k surface samples per cube."""
    floor = np.concatenate([rng.uniform(0.0, 2.0, size=(40000, 2)), np.full((40000, 1), FLOOR_Z)], axis=1)
    points, colors, ids = [floor], [np.full((40000, 3), FLOOR_GREY)], [np.full(40000, NO_INSTANCE)]
    for object_id, box in enumerate(boxes):
        points.append(_box_surface(rng, box, 20000))
        colors.append(np.tile(PALETTE[object_id % len(PALETTE)], (20000, 1)))
        ids.append(np.full(20000, object_id))
    dense = np.concatenate(points), np.concatenate(colors), np.concatenate(ids)
    centre = np.mean([(box[:3] + box[3:]) / 2 for box in boxes], axis=0)
    K = np.array([[0.8 * width, 0, width / 2], [0, 0.8 * width, height / 2], [0, 0, 1.0]])
    frames = []
    angles = np.pi / 2 + np.linspace(0, 2 * np.pi, num_frames, endpoint=False)
    for index, angle in enumerate(angles):
        eye = centre + np.array([2.6 * np.cos(angle), 2.6 * np.sin(angle), 1.6 - centre[2]])
        c2w = look_at(eye, centre)
        image, depth, instance = _project(*dense, K, c2w, height, width)
        frames.append(Frame(str(index), image, depth, K.copy(), c2w, instance))
    return frames


def toy_scene(
    scene_id: str = "toy0000",
    names: Sequence[str] = NAMES,
    seed: int = 0,
    num_frames: int = 0,
    height: int = 48,
    width: int = 64,
) -> Scene:
    """A 2 m floor (z in [0, 0.05], grey) and one solid 0.4 m cube of points per name (``cube_box``, colored
    ``PALETTE`` in order: the chair red, the table green, the lamp blue), with a little color noise from
    ``seed``; points on a 0.05 m grid offset by half a step. Each object's annotated box
    (``SceneObject.box``) is its whole cube, ``cube_box``; its points, the centres of the grid's cells,
    span ``CUBE_POINTS_SPAN`` of it. ``num_frames`` posed ``height`` x ``width``
    views (K's focal length 0.8 ``width``) with instance maps."""
    rng = np.random.default_rng(seed)
    floor = _grid(np.zeros(3), (40, 40, 1))
    clouds, colors = [floor], [np.full((len(floor), 3), FLOOR_GREY)]
    instances, objects, boxes = [np.full(len(floor), NO_INSTANCE)], {}, []
    for object_id, name in enumerate(names):
        box = cube_box(object_id)
        cube = _grid(box[:3], (8, 8, 8))
        clouds.append(cube)
        colors.append(np.tile(PALETTE[object_id % len(PALETTE)], (len(cube), 1)))
        instances.append(np.full(len(cube), object_id))
        objects[object_id] = SceneObject(object_id, name, box)
        boxes.append(box)
    points = np.concatenate(clouds).astype(np.float32)
    noise = rng.uniform(-0.05, 0.05, size=points.shape)
    return Scene(
        scene_id=scene_id,
        points=points,
        colors=np.clip(np.concatenate(colors) + noise, 0, 1).astype(np.float32),
        point_instance=np.concatenate(instances).astype(np.int64),
        frames=_frames(boxes, rng, num_frames, height, width) if num_frames else [],
        objects=objects,
    )


def toy_expressions(scene_id: str = "toy0000") -> list[Expression]:
    """Four expressions about ``toy_scene()``'s cubes (chair, table, lamp, table), none naming an anchor."""
    texts = ["the red chair", "the green table", "the blue lamp", "the table near the chair"]
    targets = [0, 1, 2, 1]
    return [
        Expression(scene_id, target, NAMES[target], ann_id, text, text.split(), "unique")
        for ann_id, (text, target) in enumerate(zip(texts, targets, strict=True))
    ]


def few_points(scene: Scene, every: int = 400) -> Scene:
    """``scene`` keeping one point in ``every``: fewer voxels than the tiny network accepts."""
    keep = np.arange(0, scene.num_points, every)
    scene.points, scene.colors, scene.point_instance = (
        scene.points[keep], scene.colors[keep], scene.point_instance[keep]
    )  # fmt: skip
    return scene


def _expression(
    scene: Scene,
    object_id: int,
    description: str,
    ann_id: int = 0,
    relation: str | None = None,
    anchor_ids: tuple[int, ...] = (),
) -> Expression:
    names = [o.name for o in scene.objects.values()]
    name = scene.objects[object_id].name
    return Expression(
        scene_id=scene.scene_id,
        object_id=object_id,
        object_name=name,
        ann_id=ann_id,
        description=description,
        token=description.split(),
        eval_type="unique" if names.count(name) == 1 else "multiple",
        relation=relation,
        anchor_ids=anchor_ids,
    )


def write_toy_dataset(root: Path) -> tuple[dict[str, Scene], list[Expression]]:
    """Two scenes and six expressions (4 unique, 2 multiple) in the dataset-root layout: scans/,
    annotations/test.json, splits/test.txt. The last, unique, is about the "ghost", an annotated object
    with no point in the cloud: a miss for any prediction. Two expressions say their relation
    ("category", "near"); the "near" one names its anchor."""
    scenes = {
        "toy0000": toy_scene("toy0000", ["chair", "chair", "table"], seed=0),
        "toy0001": toy_scene("toy0001", ["lamp", "chair"], seed=1),
    }
    a, b = scenes["toy0000"], scenes["toy0001"]
    b.objects[NO_POINTS_OBJECT] = SceneObject(NO_POINTS_OBJECT, "ghost", np.array([3.0, 3, 0, 3.5, 3.5, 1]))
    for scene in scenes.values():
        write_scene(scene, root / "scans" / scene.scene_id)
    expressions = [
        _expression(a, 0, "the chair on the left"),
        _expression(a, 1, "the chair in the middle", 1),
        _expression(a, 2, "the table on the right", 2),
        _expression(b, 0, "the lamp", relation="category"),
        _expression(b, 1, "the chair next to the lamp", 1, relation="near", anchor_ids=(0,)),
    ]
    expressions.append(_expression(b, NO_POINTS_OBJECT, "the ghost that is not there", 2))
    save_expressions(root / "annotations" / f"{SPLIT}.json", expressions)
    (root / "splits").mkdir(parents=True, exist_ok=True)
    (root / "splits" / f"{SPLIT}.txt").write_text("\n".join(scenes) + "\n")
    return scenes, expressions


def voxel_fraction(source_to_voxel: torch.Tensor, point_mask: np.ndarray) -> torch.Tensor:
    """[Pv] fraction of each voxel's source points inside ``point_mask`` ([P] bool)."""
    target = torch.as_tensor(point_mask, dtype=torch.float64)
    inside = torch.bincount(source_to_voxel, weights=target)
    total = torch.bincount(source_to_voxel).clamp(min=1)
    return (inside / total).float()


class PoisonedLabels:
    """Stands in for ``Scene.point_instance``: any read (indexing, comparison, conversion) fails the test."""

    def _fail(self, *args, **kwargs):
        raise AssertionError("the render-supervised path read point_instance")

    __getattr__ = __getitem__ = __array__ = __eq__ = __len__ = __iter__ = _fail


def poisoned(scene: Scene) -> Scene:
    """``scene`` whose 3D labels fail any test that reads them."""
    scene.point_instance = PoisonedLabels()
    return scene
