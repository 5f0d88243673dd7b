"""Cross-scene nerfstudio DataManager: serves ``TrainBatch``es (scenes x expressions x views).

Data come from a dataset root in ``liftgs.data`` layout; with no ``--data`` the embedded synthetic
benchmark (``liftgs.data.default_dataset_root``, generated on first use) is used. A ``--data`` that is
missing, empty, or lacks a scene in the training or validation split ends ``ns-train`` in one line when
it is set, before nerfstudio makes the run's folder; a network that reads lifted point features stops in
one line, naming ``liftgs lift-features``, when a scene it would encode has none. Per-scene tensors at
render resolution are cached in memory (``SceneTensorCache``). For the render-supervised method the
cache is built without 3D labels (``point_labels=False``): nothing it serves carries ``point_instance``.

Training batches come from the split's referring expressions (``--pipeline.datamanager.labelled-fraction``
keeps a fixed per-scene fraction of them) or, for pretraining (``train_source="pseudo"``), from the scenes'
2D pseudo-labels (``liftgs.train.pseudo``; the pipeline passes the network config so the pseudo-queries
and feature maps match its widths). Validation always uses the whole evaluation split's expressions.

nerfstudio's trainer and viewer also expect ``train_dataset`` / ``eval_dataset`` image datasets with
cameras: they are the posed frames of one scene of each split (the "viewer scene" of training, whose
predicted Gaussians the viewer renders, and the first evaluation scene).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.datamanagers.base_datamanager import DataManager, DataManagerConfig
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.utils.rich_utils import CONSOLE
from torch.nn import Parameter
from torch.utils.data import Dataset

from liftgs.data import default_dataset_root
from liftgs.data.dataset import GroundingDataset, check_split
from liftgs.data.point_features import lifted_path
from liftgs.data.store import DatasetError
from liftgs.model.config import LiftGSConfig
from liftgs.model.projection import feature_projection
from liftgs.model.text import build_text_encoder
from liftgs.scene import Expression, Scene
from liftgs.train.batch import SamplerConfig, Supervision, TrainBatch, TrainBatchSampler
from liftgs.train.cache import SceneTensorCache, SceneTensors
from liftgs.train.pseudo import (
    SKIP_NO_PSEUDO_SCENE,
    PseudoBatchSampler,
    PseudoConfig,
    PseudoScene,
    SegmentNamer,
    caption_vocabulary,
    scenes_with_pseudo_labels,
)
from liftgs.train.subset import labelled_subset

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
"""Right-multiplying an OpenCV camera-to-world pose gives nerfstudio's (OpenGL axes) pose."""


class SceneFrames(Dataset):
    """A scene's posed frames as nerfstudio's viewer and trainer use an ``InputDataset``.

    Attributes:
        cameras: nerfstudio ``Cameras`` (OpenGL axes, world = the scene's world frame).
        scene_box: axis-aligned box of the scene's points.
        metadata: empty (nerfstudio models read it at setup).
    """

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        poses = np.stack([frame.c2w @ OPENCV_TO_OPENGL for frame in scene.frames])[:, :3]
        Ks = np.stack([frame.K for frame in scene.frames])
        self.cameras = Cameras(
            camera_to_worlds=torch.as_tensor(poses, dtype=torch.float32),
            fx=torch.as_tensor(Ks[:, 0, 0:1], dtype=torch.float32),
            fy=torch.as_tensor(Ks[:, 1, 1:2], dtype=torch.float32),
            cx=torch.as_tensor(Ks[:, 0, 2:3], dtype=torch.float32),
            cy=torch.as_tensor(Ks[:, 1, 2:3], dtype=torch.float32),
            width=torch.as_tensor([[frame.width] for frame in scene.frames]),
            height=torch.as_tensor([[frame.height] for frame in scene.frames]),
            camera_type=CameraType.PERSPECTIVE,
        )
        aabb = np.stack([scene.points.min(axis=0), scene.points.max(axis=0)])
        self.scene_box = SceneBox(aabb=torch.as_tensor(aabb, dtype=torch.float32))
        self.metadata: dict = {}

    def __len__(self) -> int:
        return len(self.scene.frames)

    def __getitem__(self, index: int) -> dict:
        image = torch.tensor(self.scene.frames[index].image, dtype=torch.float32) / 255.0
        return {"image_idx": index, "image": image}


@dataclass
class LiftGSDataManagerConfig(DataManagerConfig):
    """Where the scenes come from and how training steps are sampled."""

    _target: type = field(default_factory=lambda: LiftGSDataManager)
    data: Path | None = None
    """Dataset root (``liftgs.data`` layout); None = the embedded synthetic benchmark (made if absent)."""
    train_split: str = "train"
    eval_split: str = "val"
    """Split of periodic validation; ``ns-eval`` (test mode) evaluates the "test" split."""
    supervision: Supervision = "views"
    """"views": 2D masks in rendered views (LIFT-GS); "points": per-point masks (3D baseline)."""
    with_views: bool = True
    """Whether "points" batches also carry views (for the RGB/depth reconstruction losses)."""
    render_height: int = 48
    render_width: int = 64
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    cache_scenes: int = 1024
    """Most scenes whose training tensors are kept in memory."""
    labelled_fraction: float = 1.0
    """Fraction (0, 1] of each training scene's expressions used (fixed seed, >= 1 per scene, scenes fixed;
    validation untouched): data-efficiency fine-tuning."""
    train_source: Literal["expressions", "pseudo"] = "expressions"
    """Training batches from referring expressions, or from 2D pseudo-labels (pretraining: no expression
    and no 3D label is read; segment embeddings are the queries)."""
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    """Pseudo-label folder and matching threshold (train_source "pseudo")."""
    viewer_scene: str | None = None
    """Scene the viewer shows (default: the first training scene); its first expression is the query."""
    seed: int = 0


def check_training_root(data: Path | None, train_split: str, eval_split: str) -> None:
    """Raises ``SystemExit`` (one line) when ``data`` is given and is not a dataset root whose
    ``train_split`` and ``eval_split`` each list at least one scene. None (the embedded benchmark) passes."""
    if data is None:
        return
    root = Path(data).expanduser()
    try:
        if root.is_dir() and not any(root.iterdir()):
            raise DatasetError(f"{root}: empty folder, not a dataset root (make one with `liftgs generate`)")
        for split in dict.fromkeys((train_split, eval_split)):
            check_split(root, split)
    except DatasetError as error:
        raise SystemExit(f"ns-train: {error}") from None


def check_lifted_features(datasets: Sequence[GroundingDataset], network: LiftGSConfig | None) -> None:
    """Raises ``SystemExit`` (one line, with the commands that make them) when ``network`` reads lifted
    point features and some scene of the ``datasets``' splits has none."""
    if network is None or network.encoder.extra_channels == 0:
        return
    missing = {
        data.split: [s for s in data.scene_ids if not lifted_path(data.root / "scans" / s).is_file()]
        for data in datasets
    }
    missing = {split: scenes for split, scenes in missing.items() if scenes}
    if missing:
        counts = ", ".join(
            f"{len(scenes)} {split!r} scenes (e.g. {scenes[0]})" for split, scenes in missing.items()
        )
        root = datasets[0].root
        commands = " and ".join(f"`liftgs lift-features --data {root} --split {split}`" for split in missing)
        raise SystemExit(
            f"ns-train: the network reads lifted point features and {counts} have none; run {commands}"
        )


class LiftGSDataManager(DataManager):
    """Samples training/validation batches from a grounding dataset (see module docstring)."""

    config: LiftGSDataManagerConfig

    def __init__(
        self,
        config: LiftGSDataManagerConfig,
        device: torch.device | str = "cpu",
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        network: LiftGSConfig | None = None,
        **kwargs,
    ) -> None:
        self.config = config
        self.network = network
        self.device = device
        self.test_mode = test_mode
        self.world_size = world_size
        self.local_rank = local_rank
        self.train_data: GroundingDataset | None = None
        self.eval_data: GroundingDataset | None = None
        self.train_dataset = None
        self.eval_dataset = None
        if test_mode != "inference":
            root = config.data if config.data is not None else default_dataset_root(generate_if_missing=True)
            eval_split = "test" if test_mode == "test" else config.eval_split
            try:
                self.train_data = GroundingDataset(root, config.train_split)
                self.eval_data = GroundingDataset(root, eval_split)
            except DatasetError as error:
                raise SystemExit(f"ns-train: {error}") from None
            check_lifted_features([self.train_data, self.eval_data], network)
            viewer_scene = config.viewer_scene or self.train_data.scene_ids[0]
            self.train_dataset = SceneFrames(self.train_data.scene(viewer_scene))
            self.eval_dataset = SceneFrames(self.eval_data.scene(self.eval_data.scene_ids[0]))
        super().__init__()  # calls setup_train / setup_eval when the datasets exist

    @property
    def root(self) -> Path | None:
        return None if self.train_data is None else self.train_data.root

    def _sampler(self, data: GroundingDataset, expressions: list[Expression], seed: int) -> TrainBatchSampler:
        point_labels = self.config.supervision == "points"
        height, width = self.config.render_height, self.config.render_width

        def build(scene_id: str) -> SceneTensors:
            return SceneTensors.from_scene(data.scene(scene_id), height, width, point_labels=point_labels)

        return TrainBatchSampler(
            expressions,
            SceneTensorCache(build, self.config.cache_scenes),
            self.config.sampler,
            self.config.supervision,
            self.config.with_views,
            seed,
        )

    def _pseudo_sampler(self, data: GroundingDataset, seed: int) -> PseudoBatchSampler:
        """Pretraining batches from the pseudo-labels of ``data``'s scenes (see ``liftgs.train.pseudo``)."""
        if self.network is None:
            raise ValueError("train_source 'pseudo' needs the network config (the pipeline passes it)")
        pseudo, network = self.config.pseudo, self.network
        scene_ids = scenes_with_pseudo_labels(data.root, data.scene_ids, pseudo.folder)
        missing = len(data.scene_ids) - len(scene_ids)
        CONSOLE.print(
            f"pretraining on the pseudo-labels of {len(scene_ids)} {data.split} scenes"
            + (f" (skipped {missing} without pseudo-labels)" if missing else "")
        )
        skipped: Counter[str] = Counter({SKIP_NO_PSEUDO_SCENE: missing} if missing else {})
        height, width = self.config.render_height, self.config.render_width

        def build(scene_id: str) -> PseudoScene | None:
            return PseudoScene.load(
                data.scene(scene_id), data.scene_dir(scene_id), height, width, pseudo.folder,
                network.text_dim, skipped,
            )  # fmt: skip

        vocabulary = caption_vocabulary(pseudo, [data.scene_dir(scene_id) for scene_id in scene_ids])
        namer = None
        if vocabulary is not None:
            namer = SegmentNamer.from_encoder(vocabulary, build_text_encoder(network.text_encoder))
            CONSOLE.print(f"pseudo-queries: captions from a vocabulary of {len(namer.names)} names")
        return PseudoBatchSampler(
            SceneTensorCache(build, self.config.cache_scenes),
            scene_ids,
            self.config.sampler,
            pseudo.tau,
            feature_projection(network.text_dim, network.gaussians.feature_dim, pseudo.projection_seed),
            skipped,
            seed,
            namer,
        )

    def setup_train(self) -> None:
        assert self.train_data is not None
        seed = self.config.seed + self.local_rank
        if self.config.train_source == "pseudo":
            self.train_sampler_ = self._pseudo_sampler(self.train_data, seed)
            return
        fraction = self.config.labelled_fraction  # the subset depends on the seed, not the rank
        expressions = labelled_subset(self.train_data.expressions, fraction, self.config.seed)
        if fraction < 1.0:
            CONSOLE.print(
                f"labelled fraction {fraction:g}: training on {len(expressions)} of "
                f"{len(self.train_data.expressions)} expressions of {len(self.train_data.scene_ids)} scenes"
            )
        self.train_sampler_ = self._sampler(self.train_data, expressions, seed)

    def setup_eval(self) -> None:
        assert self.eval_data is not None
        seed = self.config.seed + 10_000 + self.local_rank
        self.eval_sampler_ = self._sampler(self.eval_data, self.eval_data.expressions, seed)

    def next_train(self, step: int) -> TrainBatch:  # type: ignore[override]
        """The step's batch, on the training device."""
        self.train_count += 1
        return [scene.to(self.device) for scene in self.train_sampler_.sample()]

    def next_eval(self, step: int) -> TrainBatch:  # type: ignore[override]
        self.eval_count += 1
        return [scene.to(self.device) for scene in self.eval_sampler_.sample()]

    def next_eval_image(self, step: int) -> tuple[Scene, Expression, int]:  # type: ignore[override]
        """An evaluation scene, one of its expressions and the frame that sees its target most."""
        assert self.eval_data is not None
        rng = np.random.default_rng(step)
        expression = self.eval_data.expressions[int(rng.integers(len(self.eval_data.expressions)))]
        scene = self.eval_data.scene(expression.scene_id)
        coverage = [
            0 if frame.instance is None else int((frame.instance == expression.object_id).sum())
            for frame in scene.frames
        ]
        return scene, expression, int(np.argmax(coverage))

    def viewer_query(self) -> tuple[Scene, str]:
        """The viewer scene and the query shown for it."""
        assert self.train_dataset is not None and self.train_data is not None
        scene = self.train_dataset.scene
        expressions = self.train_data.expressions_for(scene.scene_id)
        return scene, expressions[0].description if expressions else next(iter(scene.objects.values())).name

    def get_train_rays_per_batch(self) -> int:
        """Rendered pixels per step (nerfstudio's "rays")."""
        sampler = self.config.sampler
        pixels = self.config.render_height * self.config.render_width
        return sampler.scenes_per_batch * sampler.views_per_scene * pixels

    def get_eval_rays_per_batch(self) -> int:
        return self.get_train_rays_per_batch()

    def get_datapath(self) -> Path:
        return self.root if self.root is not None else Path(".")

    def get_param_groups(self) -> dict[str, list[Parameter]]:
        return {}
