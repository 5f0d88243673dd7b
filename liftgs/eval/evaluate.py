"""Grounding evaluation: run a LiftGS over referring expressions and score it, ScanRefer-style.

``evaluate`` is the importable core (the training plugin calls it for validation);
``liftgs.eval.command.EvalCommand`` is ``liftgs eval``. Each scene is encoded once and every expression of
that scene is grounded against the cached encoding in batches.

What is scored follows ScanRefer (see ``liftgs.eval.metrics.score_prediction``): the predicted mask is the
chosen query's grounded voxels (``Prediction.mask``, ``answer_voxels``: thresholded, at a lower threshold if
no voxel reaches it, then one connected part) carried back to the scene's own points through
``SceneFeatures.source_to_voxel``, and its box is the axis-aligned box of those points; the ground-truth box
is the target's annotated box (``Scene.objects[object_id].box``, from ``objects.json``), not the box of the
points the sensor happened to observe. The target's points (``point_instance == object_id``) give the mask
IoU. A target with no point in the cloud is scored as a miss (box and mask IoU 0) and stays in every
denominator. Skipped and counted in ``EvalResult.skipped`` (they cannot be scored) are: expressions whose
object id is not among the scene's annotated objects (no ground-truth box), and expressions of scenes the
dataset cannot supply or the model cannot encode (too few points); each skipped scene is logged.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from rich.progress import Progress

from liftgs.data.store import DatasetError
from liftgs.eval.metrics import (
    GroundingRecord,
    anchor_distance,
    grounding_accuracy,
    instance_rank,
    score_prediction,
)
from liftgs.model.types import Prediction, SceneFeatures
from liftgs.scene import Expression, Scene

logger = logging.getLogger(__name__)

SKIP_MISSING_SCENE = "scene unavailable (unknown id or unreadable files)"
SKIP_UNKNOWN_TARGET = "target is not among the scene's annotated objects"
SKIP_UNENCODABLE = "scene cannot be encoded (too few points?)"


@dataclass
class EvalResult:
    """Scored expressions and their summary (``metrics.grounding_accuracy`` keys).

    Attributes:
        records: one ``GroundingRecord`` per scored expression, in input order within each scene.
        summary: acc@0.25 / acc@0.5 (overall, unique, multiple), mean box and mask IoU, counts,
            per-category accuracy, per-relation accuracy when the expressions say their relation,
            per-wording-group accuracy when they carry wording labels, and
            how often the target outranks its same-category distractors (``instance_ranking``).
        skipped: reason -> number of expressions that could not be scored.
        threshold: probability above which a point belongs to the predicted mask.
        num_scenes: scenes encoded.
    """

    records: list[GroundingRecord]
    summary: dict
    skipped: dict[str, int] = field(default_factory=dict)
    threshold: float = 0.5
    num_scenes: int = 0

    def to_json(self, include_records: bool = True) -> dict:
        data = {
            **self.summary,
            "skipped": dict(self.skipped),
            "threshold": self.threshold,
            "num_scenes": self.num_scenes,
        }
        if include_records:
            data["records"] = [record.to_json() for record in self.records]
        return data


def _group_by_scene(expressions: Iterable[Expression]) -> dict[str, list[Expression]]:
    groups: dict[str, list[Expression]] = defaultdict(list)
    for expression in expressions:
        groups[expression.scene_id].append(expression)
    return dict(groups)


def predicted_point_mask(
    voxel_mask: torch.Tensor,  # [Pv] bool, the grounded voxels (``Prediction.mask``)
    source_to_voxel: torch.Tensor,  # [P] int64
) -> np.ndarray:
    """[P] bool mask over the scene's own points: those whose voxel is grounded."""
    return voxel_mask.detach()[source_to_voxel].cpu().numpy()


@torch.no_grad()
def evaluate(
    model,  # liftgs.model.LiftGS
    dataset,  # liftgs.data.dataset.GroundingDataset (anything with .scene(scene_id) -> Scene)
    expressions: Sequence[Expression] | None = None,
    threshold: float = 0.5,
    batch_size: int = 32,
    max_scenes: int | None = None,
    progress: bool = False,
) -> EvalResult:
    """Ground every expression with ``model`` and score it.

    Args:
        model: a ``LiftGS``; put in eval mode for the call and restored afterwards.
        dataset: supplies the scenes (``dataset.scene(scene_id)``); ``dataset.expressions`` is used when
            ``expressions`` is None.
        expressions: what to evaluate (ScanRefer fields + eval_type).
        threshold: point-mask probability threshold.
        batch_size: expressions grounded per ``model.predict`` call.
        max_scenes: evaluate only the first N scenes (in order of first appearance).
        progress: show a rich progress bar.

    Returns:
        ``EvalResult`` with one record per scored expression.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    groups = _group_by_scene(dataset.expressions if expressions is None else expressions)
    scene_ids = list(groups)[:max_scenes] if max_scenes is not None else list(groups)
    was_training = model.training
    model.eval()
    records: list[GroundingRecord] = []
    skipped: dict[str, int] = defaultdict(int)
    num_scenes = 0
    try:
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("evaluating", total=sum(len(groups[s]) for s in scene_ids))
            for scene_id in scene_ids:
                group = groups[scene_id]
                scene = _load_scene(dataset, scene_id)
                features = None if scene is None else _encode_scene(model, scene)
                if features is None:
                    skipped[SKIP_MISSING_SCENE if scene is None else SKIP_UNENCODABLE] += len(group)
                else:
                    num_scenes += 1
                    records += _ground_scene(model, scene, features, group, threshold, batch_size, skipped)
                bar.advance(task, len(group))
    finally:
        model.train(was_training)
    summary = grounding_accuracy(
        [r.box_iou for r in records],
        [r.eval_type for r in records],
        [r.object_name for r in records],
        mask_ious=[r.mask_iou for r in records],
        relations=[r.relation for r in records],
        wordings=[r.wording for r in records],
        ranks=[None if r.target_rank is None else (r.target_rank, r.num_candidates) for r in records],
        anchor_distances=[r.anchor_distance for r in records],
        below_threshold=[r.below_threshold for r in records],
    )
    return EvalResult(records, summary, dict(skipped), threshold, num_scenes)


def _load_scene(dataset, scene_id: str) -> Scene | None:
    """The scene, or None (logged) when the dataset cannot supply it: a counted skip, not a crash."""
    try:
        return dataset.scene(scene_id)
    except DatasetError as error:
        logger.warning("skipping the expressions of scene %r: %s", scene_id, error)
        return None


def _encode_scene(model, scene: Scene):
    """``model.encode_scene`` of the scene's cloud, or None (logged) when the model rejects the cloud."""
    try:
        return model.encode(scene)
    except ValueError as error:
        logger.warning("skipping the expressions of scene %r: %s", scene.scene_id, error)
        return None


def _same_category_objects(scene: Scene) -> dict[int, list[int]]:
    """object id -> ids of the objects of its category present in the cloud (itself included), for the
    objects that have at least one such distractor; empty when the scene does not list its objects."""
    present = set(np.unique(scene.point_instance).tolist())
    by_name: dict[str, list[int]] = defaultdict(list)
    for object_id, obj in scene.objects.items():
        if object_id in present:
            by_name[obj.name].append(object_id)
    return {i: ids for ids in by_name.values() if len(ids) > 1 for i in ids}


def _rank_among_category(
    scene: Scene,
    candidates: list[int] | None,
    object_id: int,
    prediction: Prediction,
    features: SceneFeatures,
) -> tuple[int | None, int | None]:
    """(target rank, number ranked) among ``candidates`` (``_same_category_objects``' entry of the target) by
    the prediction's mean point probability (``metrics.instance_rank``); (None, None) without candidates."""
    if candidates is None:
        return None, None
    probs = prediction.point_probs.detach()[features.source_to_voxel].cpu().numpy()
    return instance_rank(probs, scene.point_instance, object_id, candidates), len(candidates)


def _anchor_distance(scene: Scene, expression: Expression, prediction: Prediction) -> float | None:
    """``metrics.anchor_distance`` of the expression's named anchors and the prediction's located ones; None
    when either is missing."""
    if not expression.anchor_ids or prediction.anchor_centres is None:
        return None
    located = prediction.anchor_centres.detach().cpu().numpy()
    return anchor_distance(scene.points, scene.point_instance, expression.anchor_ids, located)


def _ground_scene(
    model,
    scene: Scene,
    features,  # liftgs.model.SceneFeatures of ``scene``
    expressions: list[Expression],
    threshold: float,
    batch_size: int,
    skipped: dict[str, int],
) -> list[GroundingRecord]:
    """Ground the scene's expressions in batches against its encoding; score each against its target."""
    records = []
    rivals = _same_category_objects(scene)
    for start in range(0, len(expressions), batch_size):
        batch = expressions[start : start + batch_size]
        predictions = model.predict(features, [expression.description for expression in batch], threshold)
        for expression, prediction in zip(batch, predictions, strict=True):
            annotated = scene.objects.get(expression.object_id)
            if annotated is None:
                skipped[SKIP_UNKNOWN_TARGET] += 1
                continue
            target = scene.point_instance == expression.object_id
            predicted = predicted_point_mask(prediction.mask, features.source_to_voxel)
            box_iou, mask_iou, predicted_box = score_prediction(
                scene.points, predicted, target, annotated.box
            )
            rank, candidates = _rank_among_category(
                scene, rivals.get(expression.object_id), expression.object_id, prediction, features
            )
            records.append(
                GroundingRecord(
                    scene_id=expression.scene_id,
                    object_id=expression.object_id,
                    ann_id=expression.ann_id,
                    object_name=expression.object_name,
                    eval_type=expression.eval_type,
                    description=expression.description,
                    box_iou=box_iou,
                    mask_iou=mask_iou,
                    score=float(prediction.score),
                    predicted_box=None if predicted_box is None else predicted_box.tolist(),
                    target_box=np.asarray(annotated.box, dtype=np.float64).tolist(),
                    target_points=int(np.count_nonzero(target)),
                    relation=expression.relation,
                    wording=tuple(expression.wording),
                    target_rank=rank,
                    num_candidates=candidates,
                    anchor_distance=_anchor_distance(scene, expression, prediction),
                    below_threshold=prediction.below_threshold,
                )
            )
    return records
