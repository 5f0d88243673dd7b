"""``liftgs bench categories``: how well a checkpoint recognises categories, apart from referring language.

For every scene of a split and every category present in it, the network grounds "the <category>." (the
category names come from the scene's annotations, which only score the answer: the network reads the points
and the text). Two figures per (scene, category) pair:

- **top voxel right**: the voxel of highest mask probability lies on an object of that category;
- **IoU**: the grounded voxels (the grounding step of ``liftgs eval``, same threshold) against every voxel
  of that category (a voxel's category is the majority one among its input points).

A network that cannot tell a stool from a nightstand by geometry and colour fails here whatever the
sentence around the name; the referring benchmark's ``category`` expressions add synonyms and carriers.

With ``--names all`` each category is also asked for by every other name the embedded benchmark's
vocabulary gives it (``liftgs.data.synthetic.vocabulary``: the names training sentences use and the names
held out for val and test), and the table adds the two groups: how much of the recognition a held-out
name keeps. A category the vocabulary does not list is asked for by its own name only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor

from liftgs.data import DatasetError
from liftgs.data.synthetic.vocabulary import CATEGORY_WORDS
from liftgs.model.loading import ModelLoadError, load_liftgs
from liftgs.scene import Scene

NO_CATEGORY = -1
QUERY = "the {}."
"""The query said for each category (``{}`` = the category name)."""
NameSet = Literal["canonical", "all"]
"""Which names a category is asked for by (``category_names``)."""


@dataclass(frozen=True)
class CategoryResult:
    """One (scene, category, name) query: whether the top voxel is right and the grounded voxels' IoU."""

    scene_id: str
    category: str
    name: str
    """The name the query said (the category's own unless ``--names all``)."""
    held_out: bool
    """Whether ``name`` is one the benchmark keeps out of training sentences."""
    top_voxel_right: bool
    iou: float


def category_names(category: str, names: NameSet) -> list[tuple[str, bool]]:
    """(name, held out) pairs a category is asked for by: its own name, or with ``"all"`` every name the
    benchmark's vocabulary gives it (seen first, then held out)."""
    if names == "canonical" or category not in CATEGORY_WORDS:
        return [(category, False)]
    seen, held_out = CATEGORY_WORDS[category]
    return [(word, False) for word in seen] + [(word, True) for word in held_out]


def voxel_categories(
    scene: Scene,
    source_to_voxel: Tensor,  # [P] int64 voxel of every input point
    num_voxels: int,
) -> tuple[list[str], Tensor]:
    """The scene's category names (sorted) and [Pv] int64 index into them of each voxel's majority category
    among its input points (``NO_CATEGORY`` where most of its points belong to no object)."""
    names = sorted({obj.name for obj in scene.objects.values()})
    labels = np.full(len(scene.point_instance), len(names), dtype=np.int64)  # len(names) = no object
    for object_id, obj in scene.objects.items():
        labels[np.asarray(scene.point_instance) == object_id] = names.index(obj.name)
    counts = torch.zeros(num_voxels, len(names) + 1)
    counts.index_put_(
        (source_to_voxel.cpu(), torch.from_numpy(labels)), torch.ones(len(labels)), accumulate=True
    )
    majority = counts.argmax(dim=1)
    majority[majority == len(names)] = NO_CATEGORY
    return names, majority


def score_pair(
    point_probs: Tensor,  # [Pv] mask probabilities
    grounded: Tensor,  # [Pv] bool, the grounded voxels
    truth: Tensor,  # [Pv] bool, the voxels of the category
) -> tuple[bool, float]:
    """(whether the most probable voxel is in ``truth``, IoU of ``grounded`` with ``truth``)."""
    top_right = bool(truth[int(point_probs.argmax())])
    union = int((grounded | truth).sum())
    return top_right, (int((grounded & truth).sum()) / union if union else 0.0)


@torch.no_grad()
def recognise_categories(
    model, scene: Scene, threshold: float = 0.5, names: NameSet = "canonical"
) -> list[CategoryResult]:
    """Grounds ``QUERY`` for every category of ``scene`` by each of its ``category_names`` (``model``: a
    ``liftgs.model.LiftGS`` in eval mode)."""
    features = model.encode(scene)
    categories, voxel_category = voxel_categories(
        scene, features.source_to_voxel, int(features.points.shape[0])
    )
    truths = {category: voxel_category == index for index, category in enumerate(categories)}
    queries = [
        (category, word, held_out)
        for category, truth in truths.items()
        if truth.any()  # else every point of the category was outvoted in its voxels
        for word, held_out in category_names(category, names)
    ]
    if not queries:
        return []
    predictions = model.predict(features, [QUERY.format(word) for _, word, _ in queries], threshold)
    results = []
    for (category, word, held_out), prediction in zip(queries, predictions, strict=True):
        truth = truths[category].to(prediction.point_probs.device)
        top_right, iou = score_pair(prediction.point_probs, prediction.mask, truth)
        results.append(CategoryResult(scene.scene_id, category, word, held_out, top_right, iou))
    return results


def summary_table(results: list[CategoryResult], title: str) -> Table:
    """Per category and overall: queries, share of top voxels right, mean IoU; when some names are held
    out, also the seen-name and held-out-name queries apart."""
    by_category: dict[str, list[CategoryResult]] = defaultdict(list)
    for result in results:
        by_category[result.category].append(result)
    table = Table(title=title)
    for column in ("category", "queries", "top voxel right", "mean IoU"):
        table.add_column(column, justify="left" if column == "category" else "right")
    rows = [*sorted(by_category.items()), ("all", results)]
    if any(r.held_out for r in results):
        rows.append(("all, seen names", [r for r in results if not r.held_out]))
        rows.append(("all, held-out names", [r for r in results if r.held_out]))
    for name, group in rows:
        right = sum(r.top_voxel_right for r in group) / len(group)
        table.add_row(name, str(len(group)), f"{right:.0%}", f"{np.mean([r.iou for r in group]):.2f}")
    return table


@dataclass
class BenchCategories:
    """Category recognition of a checkpoint: "the <category>." for every category of every scene."""

    checkpoint: Path | None = None
    """A .pt checkpoint or a nerfstudio config.yml (default: assets/liftgs_synthetic.pt)."""
    data: Path | None = None
    """Dataset root (default: the embedded synthetic benchmark, generated on first use)."""
    split: str = "val"
    """Split whose scenes are used."""
    max_scenes: int | None = None
    """Use only the first N scenes of the split."""
    threshold: float = 0.5
    """Mask probability of the grounding step (as ``liftgs eval --threshold``)."""
    names: NameSet = "canonical"
    """Ask for each category by its own name, or also by every seen and held-out name of the embedded
    benchmark's vocabulary."""
    device: str = "auto"
    """auto (CUDA if available), cpu, cuda, ..."""

    def main(self) -> None:
        from liftgs.data import default_dataset_root
        from liftgs.data.dataset import GroundingDataset

        try:
            if self.max_scenes is not None and self.max_scenes < 1:
                raise ValueError(f"--max-scenes must be >= 1, got {self.max_scenes}")
            root = self.data.expanduser() if self.data is not None else default_dataset_root()
            dataset = GroundingDataset(root, self.split, load_frames=False)
            model, info = load_liftgs(self.checkpoint, self.device)
            model.eval()
            results: list[CategoryResult] = []
            for scene_id in dataset.scene_ids[: self.max_scenes]:
                results += recognise_categories(model, dataset.scene(scene_id), self.threshold, self.names)
        except (ValueError, ModelLoadError, DatasetError) as error:
            raise SystemExit(f"liftgs bench categories: {error}") from None
        if not results:
            raise SystemExit("liftgs bench categories: the scenes have no annotated objects")
        scenes = len({r.scene_id for r in results})
        said = "<category>" if self.names == "canonical" else "<any name of the category>"
        title = f"{QUERY.format(said)} on {scenes} {self.split} scenes ({info['checkpoint']})"
        Console().print(summary_table(results, title))
