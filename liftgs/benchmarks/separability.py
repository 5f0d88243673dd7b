"""``liftgs bench separability``: how well the network's input, and its encoder's features, tell the
categories apart.

Not a timing and not a grounding score: it asks whether the voxels the encoder reads (``voxelize`` at a
voxel size and point budget) carry enough geometry and colour to tell a stool from a nightstand, if one
knew where each object is, and how much of that a trained encoder's per-voxel features keep. The scene's
instance labels cut every annotated object out of the kept voxels (a voxel belongs to the object most of
its input points belong to); a small classifier trained on one split's objects names another split's.
Three views of an object:

- **object shape + colour**: one descriptor of all its voxels (``object_descriptor``);
- **encoder features**: each of its voxels' features from a checkpoint, the voxels voting;
- **voxel height + colour**: each voxel's height and colour alone, voting: the floor an encoder should beat.

A high first score with a low second one says the limit is what the encoder learned, not its input.

Descriptors assume the scene's frame is z-up in metres with the floor near z = 0 (the synthetic
benchmark's and ScanNet's convention).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn

from liftgs.data import DatasetError
from liftgs.model.config import LiftGSConfig
from liftgs.model.liftgs import LiftGS
from liftgs.model.voxelize import voxelize
from liftgs.scene import Scene

HEIGHT_BINS = 10
"""Bins of the descriptor's height histogram over [0, ``HEIGHT_RANGE``] metres."""
HEIGHT_RANGE = 2.0
DESCRIPTOR_SIZE = 15 + HEIGHT_BINS
DESCRIPTOR_VIEW = "object shape + colour"
FEATURES_VIEW = "encoder features"
INPUT_VIEW = "voxel height + colour"
WIDE_TABLE = 130
"""Columns the table is printed in at least."""


def voxel_objects(
    point_instance: np.ndarray,  # [P] int64 object id per input point (NO_INSTANCE = none)
    source_to_voxel: Tensor,  # [P] int64 kept voxel of every input point
    num_voxels: int,
) -> np.ndarray:
    """[V] int64 object id most of each voxel's input points belong to (``NO_INSTANCE`` where most belong to
    no object)."""
    ids, index = np.unique(np.asarray(point_instance), return_inverse=True)
    counts = np.zeros((num_voxels, len(ids)), dtype=np.int64)
    np.add.at(counts, (source_to_voxel.cpu().numpy(), index), 1)
    return ids[counts.argmax(axis=1)]


def object_descriptor(points: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """[DESCRIPTOR_SIZE] float32 summary of one object's voxels (``points`` [N, 3] metres, z up;
    ``colors`` [N, 3] in [0, 1]; N >= 1): log voxel count; horizontal extents (short, long) and height
    extent; lowest, highest and mean z; the two variances of the horizontal spread; mean and standard
    deviation of the colour; share of voxels per height bin."""
    low, high = points.min(axis=0), points.max(axis=0)
    extent = high - low
    horizontal = points[:, :2] - points[:, :2].mean(axis=0)
    spread = np.linalg.eigvalsh(horizontal.T @ horizontal / len(points))
    heights = np.histogram(points[:, 2], bins=HEIGHT_BINS, range=(0.0, HEIGHT_RANGE))[0] / len(points)
    return np.concatenate(
        [
            [np.log(len(points))],
            np.sort(extent[:2]),
            [extent[2], low[2], high[2], points[:, 2].mean()],
            spread,
            colors.mean(axis=0),
            colors.std(axis=0),
            heights,
        ]
    ).astype(np.float32)


@dataclass
class ObjectSamples:
    """What one view of the input shows of a list of scenes' annotated objects, as classifier rows.

    Attributes:
        rows: [N, D] float32, one per object (a descriptor) or one per object voxel (its features).
        owner: [N] int64 index into ``categories`` of the object each row belongs to.
        categories: category name of every annotated object, in scene and id order (objects without
            rows included: they count as misses).
        num_voxels: voxels kept per scene.
    """

    rows: np.ndarray
    owner: np.ndarray
    categories: list[str]
    num_voxels: list[int]

    @property
    def lost(self) -> int:
        """Annotated objects that no row belongs to (no kept voxel is theirs)."""
        return len(self.categories) - len(np.unique(self.owner))


def _gather(parts: list[tuple[np.ndarray, np.ndarray, list[str], int]]) -> ObjectSamples:
    """Joins per-scene ``(rows, owner within the scene, categories, voxels)`` into one ``ObjectSamples``."""
    rows, owners, categories, voxels = [], [], [], []
    for scene_rows, scene_owner, scene_categories, num_voxels in parts:
        rows.append(scene_rows)
        owners.append(scene_owner + len(categories))
        categories += scene_categories
        voxels.append(num_voxels)
    width = rows[0].shape[1] if rows else DESCRIPTOR_SIZE
    return ObjectSamples(
        np.concatenate(rows) if rows else np.zeros((0, width), np.float32),
        np.concatenate(owners) if owners else np.zeros(0, np.int64),
        categories,
        voxels,
    )


def _object_voxels(scene: Scene, source_to_voxel: Tensor, num_voxels: int) -> tuple[np.ndarray, np.ndarray]:
    """[V] index into the scene's sorted objects of each voxel's object (-1 = none) and the sorted ids."""
    owner = voxel_objects(scene.point_instance, source_to_voxel, num_voxels)
    ids = np.array(sorted(scene.objects), dtype=np.int64)
    position = np.searchsorted(ids, owner).clip(max=max(len(ids) - 1, 0))
    found = (ids[position] == owner) if len(ids) else np.zeros(num_voxels, bool)
    return np.where(found, position, -1), ids


def descriptor_samples(scenes: list[Scene], voxel_size: float, max_points: int | None) -> ObjectSamples:
    """One ``object_descriptor`` row per object, from the voxels the default network's voxelisation keeps
    (its subsampling method and seed) at ``voxel_size`` and ``max_points``."""
    network = LiftGSConfig()
    parts = []
    for scene in scenes:
        voxels = voxelize(
            scene.points, scene.colors, voxel_size, max_points, method=network.subsample, seed=network.seed
        )
        num_voxels = int(voxels.points.shape[0])
        owner, ids = _object_voxels(scene, voxels.source_to_voxel, num_voxels)
        points, colors = voxels.points.numpy(), voxels.colors.numpy()
        masks = {i: owner == i for i in range(len(ids))}
        present = [i for i, mine in masks.items() if mine.any()]
        rows = [object_descriptor(points[masks[i]], colors[masks[i]]) for i in present]
        parts.append(
            (
                np.stack(rows) if rows else np.zeros((0, DESCRIPTOR_SIZE), np.float32),
                np.array(present, dtype=np.int64),
                [scene.objects[int(i)].name for i in ids],
                num_voxels,
            )
        )
    return _gather(parts)


@torch.no_grad()
def encoder_samples(model: LiftGS, scenes: list[Scene]) -> tuple[ObjectSamples, ObjectSamples]:
    """Per object voxel, at the network's own voxelisation: its encoder features ([D] rows) and, as the
    floor any encoder should beat, its height and colour ([4] rows)."""
    features, inputs = [], []
    for scene in scenes:
        encoded = model.encode(scene)
        num_voxels = encoded.num_points
        owner, ids = _object_voxels(scene, encoded.source_to_voxel, num_voxels)
        mine = owner >= 0
        categories = [scene.objects[int(i)].name for i in ids]
        height_colour = torch.cat([encoded.points[:, 2:], encoded.colors], dim=1)
        features.append((encoded.features[mine].cpu().numpy(), owner[mine], categories, num_voxels))
        inputs.append((height_colour[mine].cpu().numpy(), owner[mine], categories, num_voxels))
    return _gather(features), _gather(inputs)


def fit_classifier(
    descriptors: np.ndarray,  # [N, D]
    labels: np.ndarray,  # [N] int64 in [0, C)
    num_classes: int,
    steps: int = 500,
    seed: int = 0,
) -> nn.Module:
    """A two-layer MLP on standardised descriptors, trained full-batch with Adam (cross-entropy); the
    returned module standardises its own input."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(descriptors).float()
    mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-6)
    mlp = nn.Sequential(nn.Linear(x.shape[1], 128), nn.ReLU(), nn.Linear(128, num_classes))
    with torch.no_grad():
        for layer in (mlp[0], mlp[2]):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) / layer.in_features**0.5)
            layer.bias.zero_()
    optimizer = torch.optim.Adam(mlp.parameters(), lr=1e-2, weight_decay=1e-4)
    target = torch.from_numpy(labels)
    inputs = (x - mean) / std
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(mlp(inputs), target).backward()
        optimizer.step()
    return nn.Sequential(_Standardise(mean, std), mlp).eval()


class _Standardise(nn.Module):
    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


@dataclass(frozen=True)
class SeparabilityResult:
    """One view of the input, scored on the evaluated split's objects.

    ``accuracy`` is the share of annotated objects named right (an object's rows vote; lost objects are
    misses); ``per_category`` the same per category.
    """

    view: str
    voxel_size: float
    max_points: int | None
    median_voxels: float
    objects: int
    lost: int
    accuracy: float
    per_category: dict[str, float]


def score_view(
    view: str, voxel_size: float, max_points: int | None, train: ObjectSamples, evaluated: ObjectSamples
) -> SeparabilityResult:
    """Trains ``fit_classifier`` on ``train``'s rows (each labelled with its object's category) and names
    every object of ``evaluated`` by the majority of its rows' predictions.

    Raises:
        ValueError: either side has no rows.
    """
    if not len(train.rows) or not len(evaluated.rows):
        raise ValueError("the scenes have no annotated objects with voxels")
    classes = sorted(set(train.categories) | set(evaluated.categories))
    index = {name: i for i, name in enumerate(classes)}
    labels = np.array([index[train.categories[o]] for o in train.owner], dtype=np.int64)
    classifier = fit_classifier(train.rows, labels, len(classes))
    with torch.no_grad():
        predicted = classifier(torch.from_numpy(evaluated.rows).float()).argmax(dim=1).numpy()
    votes = np.zeros((len(evaluated.categories), len(classes)), dtype=np.int64)
    np.add.at(votes, (evaluated.owner, predicted), 1)
    right: dict[str, list[bool]] = defaultdict(list)
    for name, counts in zip(evaluated.categories, votes, strict=True):
        right[name].append(bool(counts.any()) and classes[int(counts.argmax())] == name)
    return SeparabilityResult(
        view=view,
        voxel_size=voxel_size,
        max_points=max_points,
        median_voxels=float(np.median(evaluated.num_voxels)),
        objects=len(evaluated.categories),
        lost=evaluated.lost,
        accuracy=float(np.mean([r for rs in right.values() for r in rs])),
        per_category={name: float(np.mean(rs)) for name, rs in sorted(right.items())},
    )


def separability(
    train: list[Scene], evaluated: list[Scene], voxel_size: float, max_points: int | None
) -> SeparabilityResult:
    """The object-descriptor view at one voxel size and point budget (``score_view``)."""
    return score_view(
        DESCRIPTOR_VIEW,
        voxel_size,
        max_points,
        descriptor_samples(train, voxel_size, max_points),
        descriptor_samples(evaluated, voxel_size, max_points),
    )


def results_table(results: list[SeparabilityResult], title: str) -> Table:
    """One row per view and setting: median voxels, objects, objects without a voxel, accuracy and the two
    weakest categories."""
    table = Table(title=title)
    for column in ("view", "voxel (m)", "budget", "voxels", "objects", "lost", "accuracy", "weakest"):
        table.add_column(column, justify="left" if column in ("view", "weakest") else "right")
    for r in results:
        weakest = sorted(r.per_category.items(), key=lambda item: item[1])[:2]
        table.add_row(
            r.view,
            f"{r.voxel_size:g}",
            "all" if r.max_points is None else str(r.max_points),
            f"{r.median_voxels:.0f}",
            str(r.objects),
            str(r.lost),
            f"{r.accuracy:.1%}",
            ", ".join(f"{name} {accuracy:.0%}" for name, accuracy in weakest),
        )
    return table


@dataclass
class BenchSeparability:
    """How well the encoder's input (and, with a checkpoint, its features) tells the categories apart."""

    data: Path | None = None
    """Dataset root (default: the embedded synthetic benchmark, generated on first use)."""
    train_split: str = "train"
    """Split whose objects train the classifier."""
    split: str = "val"
    """Split whose objects are scored."""
    voxel_sizes: list[float] = field(default_factory=lambda: [LiftGSConfig.voxel_size])
    """Voxel sizes (metres) of the object-descriptor view."""
    max_points: list[int] = field(
        default_factory=lambda: [
            LiftGSConfig.max_points // 2,
            LiftGSConfig.max_points,
            2 * LiftGSConfig.max_points,
        ]
    )
    """Point budgets of the object-descriptor view (0 = keep every voxel)."""
    checkpoint: Path | None = None
    """Also classify each object voxel from this checkpoint's encoder features, and from the voxel's height
    and colour alone, at the checkpoint's own voxel size and budget."""
    max_scenes: int | None = None
    """Use only the first N scenes of each split."""
    device: str = "auto"
    """Where the checkpoint encodes: auto (CUDA if available), cpu, cuda, ..."""

    def _scenes(self, root: Path, split: str) -> list[Scene]:
        from liftgs.data.dataset import GroundingDataset

        dataset = GroundingDataset(root, split, load_frames=False)
        return [dataset.scene(scene_id) for scene_id in dataset.scene_ids[: self.max_scenes]]

    def main(self) -> None:
        from liftgs.data import default_dataset_root
        from liftgs.model.loading import ModelLoadError, load_liftgs

        try:
            if self.max_scenes is not None and self.max_scenes < 1:
                raise ValueError(f"--max-scenes must be >= 1, got {self.max_scenes}")
            if any(budget < 0 for budget in self.max_points):
                raise ValueError(f"--max-points must be >= 0, got {self.max_points}")
            root = self.data.expanduser() if self.data is not None else default_dataset_root()
            train, evaluated = (self._scenes(root, split) for split in (self.train_split, self.split))
            results = [
                separability(train, evaluated, size, budget or None)
                for size in self.voxel_sizes
                for budget in self.max_points
            ]
            if self.checkpoint is not None:
                model, _ = load_liftgs(self.checkpoint, self.device)
                model.eval()
                config = model.config
                fitted, scored = encoder_samples(model, train), encoder_samples(model, evaluated)
                for view, i in ((FEATURES_VIEW, 0), (INPUT_VIEW, 1)):
                    results.append(
                        score_view(view, config.voxel_size, config.max_points, fitted[i], scored[i])
                    )
        except (ValueError, ModelLoadError, DatasetError) as error:
            raise SystemExit(f"liftgs bench separability: {error}") from None
        title = f"category of each {self.split} object, classifier trained on {self.train_split}"
        console = Console()
        console.width = max(console.width, WIDE_TABLE)  # one line per row, also in a log file
        console.print(results_table(results, title))
