"""Training batches: scenes x expressions x views, sampled so that the views see the targets.

One ``SceneBatch`` holds a scene's point cloud, E referring expressions of that scene with their targets
and V posed views at render resolution; a training step is a list of S of them (``TrainBatch``). All
expressions of a scene share one ``encode_scene`` and one rasterize call.

The render-supervised batch (``supervision="views"``) is built from ``SceneTensors`` made without 3D
labels: its targets are 2D masks from the frames' instance maps. The 3D baseline (``"points"``) carries
per-point target masks from ``point_instance`` instead. Expressions whose target cannot supervise (not
visible in any frame at render resolution / no point in the cloud) are skipped and counted in
``TrainBatchSampler.skipped``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from liftgs.losses.targets import ExpressionTargets, Views
from liftgs.scene import Expression, PointFeatureSpace
from liftgs.train.cache import SceneTensorCache, SceneTensors

Supervision = Literal["views", "points"]

SKIP_NOT_VISIBLE = "target not visible in any frame"
SKIP_NO_POINTS = "target has no points"


@dataclass
class SceneBatch:
    """One scene's share of a training step.

    Attributes:
        scene_id: the scene.
        points: [P, 3] float32 world xyz; colors: [P, 3] float32 in [0, 1].
        texts: the E referring expressions.
        targets: what each text refers to (2D masks in ``views`` or per-point masks).
        views: V views at render resolution, or None when nothing is rendered.
        segment_embeddings: [E, Dt] embedding pseudo-queries of pretraining: the E texts are carrier
            sentences whose placeholder word gets these embeddings (``liftgs.train.pseudo.insert_segments``);
            None: the texts are read as they are.
        point_features: [P, C] lifted per-point features (``Scene.point_features``), or None.
        point_feature_space: ``Scene.point_feature_space``.
    """

    scene_id: str
    points: Tensor  # [P, 3]
    colors: Tensor  # [P, 3]
    texts: list[str]
    targets: ExpressionTargets
    views: Views | None
    segment_embeddings: Tensor | None = None  # [E, Dt]
    point_features: Tensor | None = None  # [P, C]
    point_feature_space: PointFeatureSpace | None = None

    def to(self, device: torch.device | str) -> SceneBatch:
        return replace(
            self,
            points=self.points.to(device),
            colors=self.colors.to(device),
            targets=self.targets.to(device),
            views=None if self.views is None else self.views.to(device),
            segment_embeddings=_to(self.segment_embeddings, device),
            point_features=_to(self.point_features, device),
        )


def _to(tensor: Tensor | None, device: torch.device | str) -> Tensor | None:
    return None if tensor is None else tensor.to(device)


TrainBatch = list[SceneBatch]


@dataclass
class SamplerConfig:
    """How a training step is assembled (the defaults are ``ns-train liftgs``'s)."""

    scenes_per_batch: int = 1
    expressions_per_scene: int = 8
    views_per_scene: int = 3
    min_target_pixels: int = 16
    """A frame "sees" a target when it covers this many pixels of the instance map (2x render res)."""
    category_prompts: int = 2
    """Extra texts per scene that only name a category present in the views; their targets are all its
    visible instances (many-target matching: dense 2D supervision, like pseudo-label pretraining)."""

    def __post_init__(self) -> None:
        for name in ("scenes_per_batch", "expressions_per_scene", "views_per_scene", "min_target_pixels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.category_prompts < 0:
            raise ValueError(f"category_prompts must be >= 0, got {self.category_prompts}")


def choose_views(
    object_pixels: dict[int, Tensor],  # object id -> [F] pixel counts
    target_ids: Sequence[int],
    num_frames: int,
    num_views: int,
    rng: np.random.Generator,
    min_pixels: int,
) -> list[int]:
    """Up to ``num_views`` distinct frames: first one per target that sees it (drawn in proportion to how
    much of it is visible, skipped when an already chosen frame sees it), then frames seeing any target,
    then any frames."""
    chosen: list[int] = []
    seeing_any: set[int] = set()
    for object_id in rng.permutation(np.asarray(list(dict.fromkeys(target_ids)), dtype=np.int64)):
        counts = object_pixels.get(int(object_id))
        if counts is None:
            continue
        weights = np.where(counts.numpy() >= min_pixels, counts.numpy(), 0).astype(np.float64)
        candidates = set(np.flatnonzero(weights).tolist())
        seeing_any |= candidates
        if not candidates or len(chosen) >= num_views or candidates & set(chosen):
            continue
        chosen.append(int(rng.choice(num_frames, p=weights / weights.sum())))
    for pool in (sorted(seeing_any - set(chosen)), [f for f in range(num_frames) if f not in chosen]):
        missing = num_views - len(chosen)
        if missing > 0 and pool:
            chosen += [int(f) for f in rng.permutation(pool)[:missing]]
    return chosen


def scene_views(tensors: SceneTensors, frame_ids: list[int]) -> Views:
    return Views(
        viewmats=tensors.viewmats[frame_ids],
        Ks=tensors.Ks[frame_ids],
        images=tensors.images[frame_ids],
        depths=tensors.depths[frame_ids],
    )


@dataclass
class TextTarget:
    """One training text, the objects it refers to, the phrase that marks its positive tokens (the words
    the text calls its targets by, or their category name), the phrases naming the other objects it relates
    them to (its anchors; empty when unknown) and the kind of that relation (``Expression.relation``; None
    when unknown)."""

    text: str
    object_ids: list[int]
    name: str
    anchor_names: list[str] = field(default_factory=list)
    relation: str | None = None


def expression_targets(
    scene_id: str, expressions: Sequence[Expression], object_names: Mapping[int, str] | None = None
) -> list[TextTarget]:
    """Referring expressions of scene ``scene_id`` as single-target texts.

    The target's name is ``Expression.target_words`` (the phrase the text calls it by) when the annotation
    records it, else its ``object_name``. The anchors' names are ``Expression.anchor_words`` when recorded
    (one per ``anchor_ids`` entry), else ``object_names`` (object id -> category name) of ``anchor_ids``
    (anchors it does not list are left out).

    Raises:
        ValueError: an expression of another scene, or ``anchor_words`` not one per ``anchor_ids`` entry.
    """
    foreign = [e.scene_id for e in expressions if e.scene_id != scene_id]
    if foreign:
        raise ValueError(f"expressions: scene {foreign[0]!r} in a batch of scene {scene_id!r}")
    return [
        TextTarget(
            e.description,
            [e.object_id],
            e.object_name if e.target_words is None else e.target_words,
            _anchor_names(e, object_names or {}),
            e.relation,
        )
        for e in expressions
    ]


def _anchor_names(expression: Expression, object_names: Mapping[int, str]) -> list[str]:
    """The phrases naming the expression's anchors: its ``anchor_words``, else the anchors' category names."""
    if not expression.anchor_words:
        return [object_names[i] for i in expression.anchor_ids if i in object_names]
    return list(expression.anchor_words)


def category_prompts(
    tensors: SceneTensors,
    frame_ids: list[int] | None,
    count: int,
    rng: np.random.Generator,
    min_pixels: int,
) -> list[TextTarget]:
    """Up to ``count`` texts that are just a category name ("chair"), each referring to every instance of
    that category: the instances seen in ``frame_ids`` (2D labels), or with 3D points when ``frame_ids``
    is None (the 3D baseline, built with point labels)."""
    if frame_ids is not None:
        seen = [
            i for i, pixels in tensors.object_pixels.items() if int(pixels[frame_ids].sum()) >= min_pixels
        ]
    else:
        assert tensors.point_instance is not None
        present = set(torch.unique(tensors.point_instance).tolist())
        seen = [i for i in tensors.object_names if i in present]
    by_name: dict[str, list[int]] = {}
    for object_id in sorted(seen):
        by_name.setdefault(tensors.object_names[object_id], []).append(object_id)
    names = sorted(by_name)
    chosen = rng.permutation(len(names))[:count]
    return [TextTarget(names[i], by_name[names[i]], names[i]) for i in sorted(chosen)]


def build_scene_batch(
    tensors: SceneTensors,
    targets: Sequence[TextTarget],
    frame_ids: list[int] | None,
    supervision: Supervision,
) -> SceneBatch:
    """The batch of ``targets`` (texts of ``tensors``' scene) rendered into ``frame_ids``.

    ``supervision="views"`` builds [M, V, H, W] 2D target masks in those frames; ``"points"`` builds [M, P]
    point masks from ``tensors.point_instance``. ``frame_ids`` None means no views (a pure 3D step).
    """
    if supervision == "views":
        if frame_ids is None:
            raise ValueError("frame_ids: the render-supervised path needs views")
        masks = [tensors.target_masks(target.object_ids, frame_ids) for target in targets]
    elif supervision == "points":
        if tensors.point_instance is None:
            raise ValueError(
                f"scene {tensors.scene_id}: built without point labels; the 3D baseline needs them"
            )
        masks = [torch.stack([tensors.point_instance == i for i in target.object_ids]) for target in targets]
    else:
        raise ValueError(f"supervision: expected 'views' or 'points', got {supervision!r}")
    return SceneBatch(
        scene_id=tensors.scene_id,
        points=tensors.points,
        colors=tensors.colors,
        texts=[target.text for target in targets],
        targets=ExpressionTargets(
            kind=supervision,
            masks=masks,
            names=[[target.name] * len(target.object_ids) for target in targets],
            anchor_names=[target.anchor_names for target in targets],
            relations=[target.relation for target in targets],
        ),
        views=None if frame_ids is None else scene_views(tensors, frame_ids),
        point_features=tensors.point_features,
        point_feature_space=tensors.point_feature_space,
    )


class EpochSampler:
    """Draws training steps of ``config.scenes_per_batch`` scenes, in epochs over a shuffled scene list;
    subclasses say what a scene contributes (``sample_scene``) and set ``scene_ids``, ``config``, ``rng``."""

    scene_ids: list[str]
    config: SamplerConfig
    rng: np.random.Generator
    _order: list[str]

    def sample_scene(self, scene_id: str) -> SceneBatch | None:
        raise NotImplementedError

    def nothing_usable(self) -> str:
        """The one-line error when no scene gives a batch."""
        raise NotImplementedError

    def _next_scene_id(self) -> str:
        if not self._order:
            self._order = [str(s) for s in self.rng.permutation(sorted(self.scene_ids))]
        return self._order.pop()

    def sample(self) -> TrainBatch:
        """S scene batches (scenes that give nothing are passed over).

        Raises:
            ValueError: more scenes in a row than there are gave nothing usable.
        """
        batch: TrainBatch = []
        misses = 0
        while len(batch) < self.config.scenes_per_batch:
            scene_batch = self.sample_scene(self._next_scene_id())
            if scene_batch is None:
                misses += 1
                if misses > len(self.scene_ids):
                    raise ValueError(self.nothing_usable())
                continue
            misses = 0
            batch.append(scene_batch)
        return batch


class TrainBatchSampler(EpochSampler):
    """Draws training steps: S scenes (epochs over a shuffled scene list), E expressions each, V views.

    Args:
        expressions: the training expressions (any number of scenes).
        cache: builds/keeps the scenes' ``SceneTensors`` (without point labels for ``"views"``).
        config: batch sizes.
        supervision: "views" (render-supervised) or "points" (3D baseline).
        with_views: whether "points" batches also carry views (for reconstruction losses).
        seed: sampling seed (give each distributed rank its own).
    """

    def __init__(
        self,
        expressions: Sequence[Expression],
        cache: SceneTensorCache,
        config: SamplerConfig,
        supervision: Supervision = "views",
        with_views: bool = True,
        seed: int = 0,
    ) -> None:
        self.by_scene: dict[str, list[Expression]] = {}
        for expression in expressions:
            self.by_scene.setdefault(expression.scene_id, []).append(expression)
        if not self.by_scene:
            raise ValueError("expressions: no training expressions")
        self.scene_ids = list(self.by_scene)
        self.cache = cache
        self.config = config
        self.supervision = supervision
        self.with_views = with_views or supervision == "views"
        self.rng = np.random.default_rng(seed)
        self.skipped: Counter[str] = Counter()
        self._usable: dict[str, list[Expression]] = {}
        self._order: list[str] = []

    def _usable_expressions(self, tensors: SceneTensors) -> list[Expression]:
        """The scene's expressions whose target can supervise (memoised; skips counted once)."""
        scene_id = tensors.scene_id
        if scene_id not in self._usable:
            usable = []
            for expression in self.by_scene[scene_id]:
                if self.supervision == "views":
                    counts = tensors.object_pixels.get(expression.object_id)
                    ok = counts is not None and bool((counts >= self.config.min_target_pixels).any())
                    reason = SKIP_NOT_VISIBLE
                else:
                    ok = bool((tensors.point_instance == expression.object_id).any())
                    reason = SKIP_NO_POINTS
                if ok:
                    usable.append(expression)
                else:
                    self.skipped[reason] += 1
            self._usable[scene_id] = usable
        return self._usable[scene_id]

    def sample_scene(self, scene_id: str) -> SceneBatch | None:
        """One scene's batch, or None when none of its expressions can supervise."""
        tensors = self.cache.get(scene_id)
        usable = self._usable_expressions(tensors)
        if not usable:
            return None
        count = min(self.config.expressions_per_scene, len(usable))
        picked = [usable[i] for i in self.rng.choice(len(usable), size=count, replace=False)]
        frame_ids = None
        if self.with_views:
            frame_ids = choose_views(
                tensors.object_pixels,
                [expression.object_id for expression in picked],
                tensors.num_frames,
                self.config.views_per_scene,
                self.rng,
                self.config.min_target_pixels,
            )
        targets = expression_targets(scene_id, picked, tensors.object_names)
        if self.config.category_prompts:
            targets += category_prompts(
                tensors, frame_ids, self.config.category_prompts, self.rng, self.config.min_target_pixels
            )
        return build_scene_batch(tensors, targets, frame_ids, self.supervision)

    def nothing_usable(self) -> str:
        return f"no usable training expression (skipped: {dict(self.skipped)})"
