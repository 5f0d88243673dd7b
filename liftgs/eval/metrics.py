"""Grounding metrics: 3D box IoU, boxes of masked points, mask IoU and the ScanRefer accuracy summary.

Pure numpy, no model or dataset code. Boxes are axis-aligned ``(xmin, ymin, zmin, xmax, ymax, zmax)`` in
world metres (see ``liftgs.scene``). As in ScanRefer and Locate 3D, a predicted box is the axis-aligned
box of the points of the predicted mask, and a prediction counts as correct at threshold ``t`` when its
box's IoU with the target's annotated box (``SceneObject.box``) is at least ``t``; a target with no point
in the cloud is a miss (``score_prediction``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from liftgs.scene import LONG, SEEN_SHAPE, SEEN_WORDS, UNSEEN_SHAPE, UNSEEN_WORDS

THRESHOLDS = (0.25, 0.5)
"""The IoU thresholds of the standard Acc@0.25 / Acc@0.5 metrics."""
ANCHOR_FOUND_DISTANCE = 0.5
"""Horizontal metres within which a located anchor counts as found (``anchor_distance``)."""
ONE_SENTENCE = "one sentence"
"""The wording group derived from the others: every expression whose wording is a one-sentence shape."""
ONE_SENTENCE_SHAPES = frozenset({SEEN_SHAPE, UNSEEN_SHAPE})
"""The wording labels that make an expression count in ``ONE_SENTENCE``."""
WORDING_GROUPS = (SEEN_WORDS, UNSEEN_WORDS, SEEN_SHAPE, UNSEEN_SHAPE, ONE_SENTENCE, LONG)
"""The order of ``per_wording`` (``Expression.wording``'s labels of the embedded benchmark, plus
``ONE_SENTENCE``); labels outside it follow, sorted."""


def box_iou_3d(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of axis-aligned 3D boxes, broadcast over leading dimensions.

    Args:
        boxes_a: [..., 6] ``(xmin, ymin, zmin, xmax, ymax, zmax)``.
        boxes_b: [..., 6] same layout; broadcast against ``boxes_a``.

    Returns:
        [...] float64 IoU in [0, 1]. Degenerate boxes (zero or negative volume) have IoU 0 with
        everything, including themselves.
    """
    a = np.asarray(boxes_a, dtype=np.float64)
    b = np.asarray(boxes_b, dtype=np.float64)
    if a.shape[-1] != 6 or b.shape[-1] != 6:
        raise ValueError(f"boxes must have a last dimension of 6, got {a.shape} and {b.shape}")
    lo = np.maximum(a[..., :3], b[..., :3])
    hi = np.minimum(a[..., 3:], b[..., 3:])
    intersection = np.clip(hi - lo, 0.0, None).prod(axis=-1)
    volume_a = np.clip(a[..., 3:] - a[..., :3], 0.0, None).prod(axis=-1)
    volume_b = np.clip(b[..., 3:] - b[..., :3], 0.0, None).prod(axis=-1)
    union = volume_a + volume_b - intersection
    return np.where(union > 0.0, intersection / np.where(union > 0.0, union, 1.0), 0.0)


def points_box(points: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray | None:
    """Axis-aligned box of the (masked) points, or None when no point is selected.

    Args:
        points: [P, 3] xyz.
        mask: [P] bool selection; None selects every point.

    Returns:
        [6] float64 ``(xmin, ymin, zmin, xmax, ymax, zmax)``, or None for an empty selection.
    """
    selected = np.asarray(points) if mask is None else np.asarray(points)[np.asarray(mask, dtype=bool)]
    if selected.shape[0] == 0:
        return None
    return np.concatenate([selected.min(axis=0), selected.max(axis=0)]).astype(np.float64)


def mask_iou(predicted: np.ndarray, target: np.ndarray) -> float:
    """IoU of two boolean point masks of the same cloud ([P] each); 0 when both are empty."""
    predicted = np.asarray(predicted, dtype=bool)
    target = np.asarray(target, dtype=bool)
    if predicted.shape != target.shape:
        raise ValueError(f"mask shapes differ: {predicted.shape} vs {target.shape}")
    union = int(np.count_nonzero(predicted | target))
    return float(np.count_nonzero(predicted & target)) / union if union else 0.0


@dataclass
class GroundingRecord:
    """The scored outcome of one referring expression.

    Attributes:
        scene_id, object_id, ann_id, object_name, eval_type, description, relation, wording: the
            expression's fields (``relation`` None and ``wording`` empty when the annotation has none).
        box_iou: IoU of the predicted mask's box with the target's annotated box (0 when the mask is empty
            or the target has no point in the cloud).
        mask_iou: IoU of the predicted point mask with the target's point mask (0 when it has no point).
        score: the model's confidence for the chosen query.
        predicted_box: [6] as a list, or None when the predicted mask is empty.
        target_box: [6] the target's annotated box, as a list.
        target_points: how many points of the cloud belong to the target (0: scored as a miss).
        target_rank: where the target ranks (1 = first) among the objects of its category present in the
            cloud by mean predicted probability over their points (``instance_rank``); None when it has
            no same-category distractor or the scene lists no objects.
        num_candidates: how many objects were ranked (target included); None with ``target_rank``.
        anchor_distance: how far (metres) the chosen query located the objects the expression relates the
            target to (``anchor_distance``); None when the expression lists none or the model has no
            relational geometry term.
        below_threshold: no voxel reached the threshold; the mask is the fallback's
            (``Prediction.below_threshold``).
    """

    scene_id: str
    object_id: int
    ann_id: int
    object_name: str
    eval_type: str
    description: str
    box_iou: float
    mask_iou: float
    score: float
    predicted_box: list[float] | None
    target_box: list[float]
    target_points: int
    relation: str | None = None
    wording: tuple[str, ...] = ()
    target_rank: int | None = None
    num_candidates: int | None = None
    anchor_distance: float | None = None
    below_threshold: bool = False

    def to_json(self) -> dict:
        return asdict(self)


def score_prediction(
    points: np.ndarray,  # [P, 3] the scene's cloud
    predicted_mask: np.ndarray,  # [P] bool
    target_mask: np.ndarray,  # [P] bool, the target's points (may select none)
    target_box: np.ndarray,  # [6] the target's annotated box (``SceneObject.box``)
) -> tuple[float, float, np.ndarray | None]:
    """Box IoU and mask IoU of one predicted point mask, ScanRefer's way.

    The box IoU compares the box of the predicted points with the target's ANNOTATED box, not with the box
    of whichever of its points the sensor observed: a prediction equal to a partially observed target's
    points scores below 1. A target with no point in the cloud cannot be selected by a point mask, so it
    is a miss (box IoU 0) whatever was predicted. The mask IoU is against the target's points (0 when it
    has none).

    Returns:
        ``(box_iou, mask_iou, predicted_box [6] | None)``; the predicted box is None for an empty mask.
    """
    target_box = np.asarray(target_box, dtype=np.float64)
    if target_box.shape != (6,):
        raise ValueError(f"the target box must have shape (6,), got {target_box.shape}")
    predicted_box = points_box(points, predicted_mask)
    hit = predicted_box is not None and bool(np.asarray(target_mask, dtype=bool).any())
    box_iou = float(box_iou_3d(predicted_box, target_box)) if hit else 0.0
    return box_iou, mask_iou(predicted_mask, target_mask), predicted_box


def instance_rank(
    point_probs: np.ndarray,  # [P] predicted probability per point of the cloud
    point_instance: np.ndarray,  # [P] instance id per point
    target_id: int,
    candidate_ids: Sequence[int],  # the objects to rank, target included
) -> int:
    """Rank (1 = first) of the target among the candidates by mean probability over each one's points.

    A candidate tied with the target counts as ahead of it, so a mask that covers every candidate equally
    ranks the target last, not first. Candidates without points are skipped.
    """
    probs = np.asarray(point_probs, dtype=np.float64)
    instance = np.asarray(point_instance)
    means = {}
    for object_id in candidate_ids:
        inside = instance == object_id
        if inside.any():
            means[int(object_id)] = float(probs[inside].mean())
    if int(target_id) not in means:
        raise ValueError(f"the target object {target_id} has no point in the scene's cloud")
    target = means.pop(int(target_id))
    return 1 + sum(value >= target for value in means.values())


def anchor_distance(
    points: np.ndarray,  # [P, 3] the scene's cloud
    point_instance: np.ndarray,  # [P] instance id per point
    anchor_ids: Sequence[int],  # the objects the expression names besides its target
    located: np.ndarray,  # [K, 3] where the model located its K anchors (metres)
) -> float | None:
    """Horizontal distance (metres) from each named anchor's centre (mean of its points) to the nearest
    located anchor; the largest over the named anchors, so every one of them must be found. None when no
    named anchor has points in the cloud."""
    instance, xy = np.asarray(point_instance), np.asarray(points)[:, :2]
    located_xy = np.asarray(located, dtype=np.float64).reshape(-1, 3)[:, :2]
    distances = []
    for anchor in anchor_ids:
        inside = instance == anchor
        if inside.any():
            centre = xy[inside].mean(axis=0, dtype=np.float64)
            distances.append(float(np.linalg.norm(located_xy - centre, axis=1).min()))
    return max(distances) if distances else None


def _accuracy(box_ious: np.ndarray, threshold: float) -> float | None:
    """Fraction of IoUs >= threshold; None (JSON null) for an empty group rather than a fake 0."""
    return float(np.mean(box_ious >= threshold)) if box_ious.size else None


def _threshold_key(threshold: float) -> str:
    return f"acc@{threshold:g}"


def grounding_accuracy(
    box_ious: Sequence[float],  # [N]
    eval_types: Sequence[str],  # [N] "unique" | "multiple"
    categories: Sequence[str] | None = None,  # [N] object category names
    mask_ious: Sequence[float] | None = None,  # [N]
    thresholds: Sequence[float] = THRESHOLDS,
    relations: Sequence[str | None] | None = None,  # [N] relation kinds, None where unknown
    wordings: Sequence[Sequence[str]] | None = None,  # [N] wording groups of each, empty where unknown
    ranks: Sequence[tuple[int, int] | None] | None = None,  # [N] (target_rank, num_candidates) or None
    anchor_distances: Sequence[float | None] | None = None,  # [N] metres (``anchor_distance``) or None
    below_threshold: Sequence[bool] | None = None,  # [N] grounded below the threshold (fallback)
) -> dict:
    """The ScanRefer-style summary of N scored expressions.

    Returns a JSON-ready dict::

        {"count": N, "count_unique": .., "count_multiple": ..,
         "acc@0.25": {"overall": .., "unique": .., "multiple": ..},
         "acc@0.5": {...},
         "mean_box_iou": .., "mean_mask_iou": ..,              # mean_mask_iou only with mask_ious
         "per_category": {name: {"count": n, "acc@0.25": .., "acc@0.5": ..}},   # only with categories
         "per_relation": {kind: {"count": n, "acc@0.25": .., "acc@0.5": ..}},   # only with a known relation
         "per_wording": {group: {"count": n, "acc@0.25": .., "acc@0.5": ..}},   # only with wording labels
         "instance_ranking": {"count": n, "target_first": .., "chance": ..},   # only with ranked records
         "anchor_localisation": {"count": n, "found": .., "median_m": ..},    # only with anchor distances
         "below_threshold": {"count": n, "acc@0.25": .., "acc@0.5": ..}}   # only with below_threshold

    Accuracies of an empty group are None (there is nothing to be accurate about). ``per_relation`` covers
    the expressions whose relation is known and is left out when none is. ``per_wording`` counts each
    expression in every wording group it lists, and in ``ONE_SENTENCE`` when it lists a one-sentence shape
    (``wording_groups``); groups come in ``WORDING_GROUPS`` order, and it is left out when no expression
    has a wording label. ``instance_ranking`` covers the
    expressions given a ``(target_rank, num_candidates)`` pair (not None): how often the target ranks first
    among the objects of its category, and the rate a uniformly random ranking would give (mean of
    1 / num_candidates) — whether the model tells instances apart, independent of box quality.
    ``anchor_localisation`` covers the expressions with an anchor distance: how often every named anchor
    was located within ``ANCHOR_FOUND_DISTANCE`` and the median distance. ``below_threshold`` counts the
    expressions whose mask no voxel reached the threshold of, so the prediction fell back to a lower one
    (``liftgs.model.grounded_mask.answer_voxels``), and how accurate those answers were.
    """
    ious = np.asarray(box_ious, dtype=np.float64).reshape(-1)
    types = np.asarray(list(eval_types), dtype=object)
    if types.shape[0] != ious.shape[0]:
        raise ValueError(f"{ious.shape[0]} IoUs but {types.shape[0]} eval types")
    unknown = set(types.tolist()) - {"unique", "multiple"}
    if unknown:
        raise ValueError(f"eval types must be 'unique' or 'multiple', got {sorted(unknown)}")
    unique = types == "unique"
    summary: dict = {
        "count": int(ious.size),
        "count_unique": int(unique.sum()),
        "count_multiple": int((~unique).sum()),
    }
    for threshold in thresholds:
        summary[_threshold_key(threshold)] = {
            "overall": _accuracy(ious, threshold),
            "unique": _accuracy(ious[unique], threshold),
            "multiple": _accuracy(ious[~unique], threshold),
        }
    summary["mean_box_iou"] = float(ious.mean()) if ious.size else None
    if mask_ious is not None:
        masks = np.asarray(mask_ious, dtype=np.float64).reshape(-1)
        if masks.shape != ious.shape:
            raise ValueError(f"{ious.shape[0]} box IoUs but {masks.shape[0]} mask IoUs")
        summary["mean_mask_iou"] = float(masks.mean()) if masks.size else None
    if categories is not None:
        summary["per_category"] = _per_group(ious, _labels(categories, ious, "categories"), thresholds)
    if relations is not None:
        per_relation = _per_group(ious, _labels(relations, ious, "relations"), thresholds)
        if per_relation:
            summary["per_relation"] = per_relation
    if wordings is not None:
        per_wording = _per_wording(ious, wordings, thresholds)
        if per_wording:
            summary["per_wording"] = per_wording
    if ranks is not None:
        if len(ranks) != ious.shape[0]:
            raise ValueError(f"{ious.shape[0]} IoUs but {len(ranks)} ranks")
        ranked = [rank for rank in ranks if rank is not None]
        if ranked:
            summary["instance_ranking"] = {
                "count": len(ranked),
                "target_first": float(np.mean([rank == 1 for rank, _ in ranked])),
                "chance": float(np.mean([1.0 / candidates for _, candidates in ranked])),
            }
    if anchor_distances is not None:
        if len(anchor_distances) != ious.shape[0]:
            raise ValueError(f"{ious.shape[0]} IoUs but {len(anchor_distances)} anchor distances")
        measured = np.asarray([d for d in anchor_distances if d is not None], dtype=np.float64)
        if measured.size:
            summary["anchor_localisation"] = {
                "count": int(measured.size),
                "found": float(np.mean(measured <= ANCHOR_FOUND_DISTANCE)),
                "median_m": float(np.median(measured)),
            }
    if below_threshold is not None:
        fell_back = np.asarray(below_threshold, dtype=bool).reshape(-1)
        if fell_back.shape != ious.shape:
            raise ValueError(f"{ious.shape[0]} IoUs but {fell_back.shape[0]} below-threshold flags")
        summary["below_threshold"] = {
            "count": int(fell_back.sum()),
            **{_threshold_key(t): _accuracy(ious[fell_back], t) for t in thresholds},
        }
    return summary


def _labels(labels: Sequence[str | None], ious: np.ndarray, what: str) -> np.ndarray:
    """[N] object array of per-expression labels, checked to match the N IoUs."""
    names = np.asarray(list(labels), dtype=object)
    if names.shape != ious.shape:
        raise ValueError(f"{ious.shape[0]} IoUs but {names.shape[0]} {what}")
    return names


def _group_row(group: np.ndarray, thresholds: Sequence[float]) -> dict:
    """{"count": n, "acc@t": ...} of one group's box IoUs."""
    return {"count": int(group.size), **{_threshold_key(t): _accuracy(group, t) for t in thresholds}}


def _per_group(ious: np.ndarray, names: np.ndarray, thresholds: Sequence[float]) -> dict:
    """{name: {"count": n, "acc@t": ...}} for every name in ``names`` (None names are left out), sorted."""
    return {
        name: _group_row(ious[names == name], thresholds)
        for name in sorted({n for n in names.tolist() if n is not None})
    }


def wording_groups(wording: Sequence[str]) -> set[str]:
    """The groups an expression with these wording labels counts in: its labels, and ``ONE_SENTENCE`` when
    one of them is a one-sentence shape."""
    groups = set(wording)
    if groups & ONE_SENTENCE_SHAPES:
        groups.add(ONE_SENTENCE)
    return groups


def _per_wording(ious: np.ndarray, wordings: Sequence[Sequence[str]], thresholds: Sequence[float]) -> dict:
    """{group: {"count": n, "acc@t": ...}} with each expression in every group of ``wording_groups``; the
    groups present, in ``WORDING_GROUPS`` order, then any other label sorted. Empty without labels."""
    if len(wordings) != ious.shape[0]:
        raise ValueError(f"{ious.shape[0]} IoUs but {len(wordings)} wordings")
    if any(isinstance(wording, str) for wording in wordings):
        raise ValueError("wordings: each entry must be a sequence of group labels, not one string")
    member = [wording_groups(wording) for wording in wordings]
    present = set().union(*member)
    order = [g for g in WORDING_GROUPS if g in present] + sorted(present - set(WORDING_GROUPS))
    return {
        group: _group_row(ious[np.array([group in groups for groups in member], dtype=bool)], thresholds)
        for group in order
    }
