"""Toys shared by the evaluation, grounding and viewer tests: a hand-made dataset, a tiny model, an
oracle.

The toy scenes are a floor plus solid boxes of points laid out so that no 0.1 m voxel (the tiny model's
voxel size) mixes two instances: a prediction built per voxel can then match a target exactly.
``test_eval_toys`` holds the toys to that promise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from liftgs.data.store import save_expressions, write_scene
from liftgs.model import DecoderConfig, EncoderConfig, GaussianConfig, LiftGS, LiftGSConfig, save_checkpoint
from liftgs.model.types import Prediction
from liftgs.scene import NO_INSTANCE, Expression, Scene, SceneObject

VOXEL = 0.1
SPLIT = "test"
NO_POINTS_OBJECT = 9
"""An object of toy0001's objects.json with no point in its cloud (its expressions must be skipped)."""


def _grid(lo: np.ndarray, count: tuple[int, int, int], step: float = 0.05) -> np.ndarray:
    """[N, 3] points on a grid offset by half a step, so none lies on a voxel boundary."""
    axes = [lo[i] + step / 2 + step * np.arange(count[i]) for i in range(3)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def toy_scene(scene_id: str, names: list[str], seed: int = 0) -> Scene:
    """A 2 m floor (z in [0, 0.05]) and one 0.4 m cube of points per name, 0.2 m apart, at z in [0.2, 0.6]."""
    rng = np.random.default_rng(seed)
    floor = _grid(np.zeros(3), (40, 40, 1))
    clouds, instances, objects = [floor], [np.full(len(floor), NO_INSTANCE)], {}
    for object_id, name in enumerate(names):
        lo = np.array([0.2 + 0.6 * object_id, 0.2, 0.2])
        cube = _grid(lo, (8, 8, 8))
        clouds.append(cube)
        instances.append(np.full(len(cube), object_id))
        objects[object_id] = SceneObject(object_id, name, np.concatenate([lo, lo + 0.4]))
    points = np.concatenate(clouds).astype(np.float32)
    return Scene(
        scene_id=scene_id,
        points=points,
        colors=rng.random(points.shape).astype(np.float32),
        point_instance=np.concatenate(instances).astype(np.int64),
        objects=objects,
    )


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
    """Two scenes and six expressions (five scorable: 3 unique, 2 multiple; one, unique, whose target
    has no points) in the dataset-root layout: scans/, annotations/test.json, splits/test.txt. Two
    scorable expressions say their relation ("category", "near"); the "near" one names its anchor."""
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


def tiny_config(**overrides) -> LiftGSConfig:
    """A LiftGS small enough to encode a toy scene in about a second on a CPU."""
    config = LiftGSConfig(
        voxel_size=VOXEL,
        max_points=2000,
        encoder=EncoderConfig(
            enc_channels=(16, 32), enc_depths=(1, 1), dec_channels=(16,), dec_depths=(1,), head_dim=8,
            patch_size=32,
        ),
        decoder=DecoderConfig(d_model=32, num_queries=4, num_layers=1, num_heads=2, align_dim=16),
        gaussians=GaussianConfig(hidden=16),
    )  # fmt: skip
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


def save_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return save_checkpoint(path, LiftGS(tiny_config()), {"step": 0})


def voxel_fraction(source_to_voxel: torch.Tensor, point_mask: np.ndarray) -> torch.Tensor:
    """[Pv] fraction of each voxel's source points inside ``point_mask`` ([P] bool)."""
    target = torch.as_tensor(point_mask, dtype=torch.float64)
    inside = torch.bincount(source_to_voxel, weights=target)
    total = torch.bincount(source_to_voxel).clamp(min=1)
    return (inside / total).float()


def make_oracle(scenes: dict[str, Scene], expressions: list[Expression], shift: int = 0):
    """A drop-in for ``LiftGS.predict`` that answers every known description with its target's voxels and
    locates its named anchors at their points' centre (``shift=1``: with the next object of the scene
    instead, i.e. always wrong)."""
    by_description = {e.description: e for e in expressions}
    if len(by_description) != len(expressions):
        raise ValueError("make_oracle: descriptions must be unique (they are the oracle's key)")

    def predict(self, features, texts, threshold=0.5):
        predictions = []
        for text in texts:
            expression = by_description[text]
            scene = scenes[expression.scene_id]
            present = sorted(set(scene.point_instance.tolist()) - {NO_INSTANCE})
            answered = {i: present[(present.index(i) + shift) % len(present)] for i in present}
            target = answered.get(expression.object_id, expression.object_id)
            probs = voxel_fraction(features.source_to_voxel.cpu(), scene.point_instance == target)
            anchors = [
                scene.points[scene.point_instance == answered[i]].mean(0) for i in expression.anchor_ids
            ]
            predictions.append(
                Prediction(
                    probs,
                    probs > threshold,
                    1.0,
                    torch.zeros(6),
                    torch.ones(2),
                    ["[CLS]", "[SEP]"],
                    0,
                    anchor_centres=torch.as_tensor(np.array(anchors)) if anchors else None,
                )
            )
        return predictions

    return predict


def write_toy_nerfstudio_run(run_dir: Path, network: LiftGSConfig, step: int = 7, seed: int = 0) -> Path:
    """An ``ns-train liftgs``-like run folder: ``config.yml`` (nerfstudio's TrainerConfig around our
    LiftGSModelConfig) and ``nerfstudio_models/step-*.ckpt`` holding the pipeline state of a freshly built
    LiftGSModel (an older, empty checkpoint too); returns the config.yml path."""
    import yaml
    from nerfstudio.data.scene_box import SceneBox
    from nerfstudio.engine.trainer import TrainerConfig
    from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig

    from liftgs.nerfstudio.model import LiftGSModelConfig

    model_config = LiftGSModelConfig(network=network)
    config = TrainerConfig(method_name="liftgs", pipeline=VanillaPipelineConfig(model=model_config))
    torch.manual_seed(seed)
    model = model_config.setup(
        scene_box=SceneBox(aabb=torch.tensor([[-1.0] * 3, [1.0] * 3])), num_train_data=1
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yml").write_text(yaml.dump(config))
    pipeline = {f"_model.{name}": value for name, value in model.state_dict().items()}
    checkpoints = run_dir / "nerfstudio_models"
    checkpoints.mkdir(exist_ok=True)
    torch.save({"step": 0, "pipeline": {}}, checkpoints / "step-000000000.ckpt")
    torch.save({"step": step, "pipeline": pipeline, "optimizers": {}}, checkpoints / f"step-{step:09d}.ckpt")
    return run_dir / "config.yml"
