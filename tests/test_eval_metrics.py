"""Grounding metrics on hand-made boxes and masks whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from liftgs.eval.metrics import (
    anchor_distance,
    box_iou_3d,
    grounding_accuracy,
    instance_rank,
    mask_iou,
    points_box,
    score_prediction,
)

UNIT = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])


def test_box_iou_identical_disjoint_and_touching():
    assert box_iou_3d(UNIT, UNIT) == pytest.approx(1.0)
    assert box_iou_3d(UNIT, UNIT + 2.0) == 0.0
    # Sharing only a face: zero-volume intersection.
    assert box_iou_3d(UNIT, UNIT + np.array([1.0, 0, 0, 1.0, 0, 0])) == 0.0


def test_box_iou_half_overlap_and_containment():
    shifted = UNIT + np.array([0.5, 0, 0, 0.5, 0, 0])  # overlap 0.5, union 1.5
    assert box_iou_3d(UNIT, shifted) == pytest.approx(1.0 / 3.0)
    big = np.array([0.0, 0.0, 0.0, 2.0, 2.0, 2.0])  # contains UNIT: 1 / 8
    assert box_iou_3d(UNIT, big) == pytest.approx(0.125)
    assert box_iou_3d(big, UNIT) == pytest.approx(0.125)


def test_box_iou_broadcasts_and_handles_degenerate_boxes():
    boxes = np.stack([UNIT, UNIT + 2.0, np.zeros(6)])  # [3, 6]
    ious = box_iou_3d(boxes, UNIT)
    assert ious.shape == (3,)
    np.testing.assert_allclose(ious, [1.0, 0.0, 0.0])
    assert box_iou_3d(np.zeros(6), np.zeros(6)) == 0.0
    with pytest.raises(ValueError, match="last dimension of 6"):
        box_iou_3d(np.zeros(4), UNIT)


def test_points_box_of_masked_points():
    points = np.array([[0, 0, 0], [1, 2, 3], [-1, 5, 0.5], [9, 9, 9]], dtype=np.float32)
    np.testing.assert_allclose(points_box(points, np.array([1, 1, 1, 0], bool)), [-1, 0, 0, 1, 5, 3])
    np.testing.assert_allclose(points_box(points), [-1, 0, 0, 9, 9, 9])
    assert points_box(points, np.zeros(4, bool)) is None


def test_mask_iou():
    a = np.array([1, 1, 0, 0, 1], bool)
    b = np.array([1, 0, 0, 1, 1], bool)
    assert mask_iou(a, b) == pytest.approx(2 / 4)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(np.zeros(3, bool), np.zeros(3, bool)) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        mask_iou(a, b[:3])


def test_score_prediction_against_the_annotated_box():
    points = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]], dtype=np.float32)
    target = np.array([1, 1, 0, 0], bool)
    box_iou, m_iou, predicted_box = score_prediction(points, target.copy(), target, UNIT)
    assert (box_iou, m_iou) == (1.0, 1.0)
    np.testing.assert_allclose(predicted_box, UNIT)
    # Predict points 0..2: box [0, 2]^3 (volume 8) contains the annotated one (volume 1) -> 1/8; masks 2/3.
    box_iou, m_iou, predicted_box = score_prediction(points, np.array([1, 1, 1, 0], bool), target, UNIT)
    assert box_iou == pytest.approx(1 / 8)
    assert m_iou == pytest.approx(2 / 3)
    np.testing.assert_allclose(predicted_box, [0, 0, 0, 2, 2, 2])
    box_iou, m_iou, predicted_box = score_prediction(points, np.zeros(4, bool), target, UNIT)
    assert (box_iou, m_iou, predicted_box) == (0.0, 0.0, None)
    with pytest.raises(ValueError, match="shape"):
        score_prediction(points, target, target, UNIT[:4])


def test_a_partially_observed_target_is_scored_against_its_annotated_box():
    # The sensor saw the bottom half of a unit cube: predicting exactly those points is not a perfect box.
    observed = np.array([[0, 0, 0], [1, 1, 0.5], [0, 1, 0.25], [5, 5, 5]], dtype=np.float32)
    target = np.array([1, 1, 1, 0], bool)
    box_iou, m_iou, predicted_box = score_prediction(observed, target.copy(), target, UNIT)
    np.testing.assert_allclose(predicted_box, [0, 0, 0, 1, 1, 0.5])
    assert box_iou == pytest.approx(0.5)  # half the annotated volume
    assert m_iou == 1.0


def test_a_target_without_points_is_a_miss_counted_in_the_denominator():
    points = np.array([[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5]], dtype=np.float32)
    nothing = np.zeros(3, bool)
    # Even a predicted box equal to the annotated one cannot hit a target the cloud does not contain.
    box_iou, m_iou, predicted_box = score_prediction(points, np.ones(3, bool), nothing, UNIT)
    assert (box_iou, m_iou) == (0.0, 0.0)
    np.testing.assert_allclose(predicted_box, UNIT)
    hit, _, _ = score_prediction(points, np.ones(3, bool), np.array([1, 1, 0], bool), UNIT)
    summary = grounding_accuracy([hit, box_iou], ["unique", "unique"])
    assert summary["count"] == 2 and summary["acc@0.25"]["overall"] == 0.5


def test_grounding_accuracy_splits_and_categories():
    ious = [0.9, 0.3, 0.1, 0.6, 0.25]
    types = ["unique", "unique", "multiple", "multiple", "multiple"]
    names = ["chair", "table", "chair", "chair", "table"]
    summary = grounding_accuracy(ious, types, names, mask_ious=[1.0, 0.5, 0.0, 0.5, 0.0])
    assert summary["count"] == 5
    assert (summary["count_unique"], summary["count_multiple"]) == (2, 3)
    assert summary["acc@0.25"] == pytest.approx({"overall": 4 / 5, "unique": 1.0, "multiple": 2 / 3})
    assert summary["acc@0.5"] == pytest.approx({"overall": 2 / 5, "unique": 1 / 2, "multiple": 1 / 3})
    assert summary["mean_box_iou"] == pytest.approx(np.mean(ious))
    assert summary["mean_mask_iou"] == pytest.approx(0.4)
    assert summary["per_category"]["chair"] == pytest.approx(
        {"count": 3, "acc@0.25": 2 / 3, "acc@0.5": 2 / 3}
    )
    assert summary["per_category"]["table"] == pytest.approx({"count": 2, "acc@0.25": 1.0, "acc@0.5": 0.0})
    assert "per_relation" not in summary


def test_grounding_accuracy_per_relation_counts_only_known_relations():
    ious = [0.9, 0.3, 0.1, 0.6]
    relations = ["color", None, "color", "near"]
    summary = grounding_accuracy(ious, ["multiple"] * 4, relations=relations)
    assert summary["per_relation"] == {
        "color": {"count": 2, "acc@0.25": 0.5, "acc@0.5": 0.5},
        "near": {"count": 1, "acc@0.25": 1.0, "acc@0.5": 1.0},
    }
    assert "per_relation" not in grounding_accuracy(ious, ["unique"] * 4, relations=[None] * 4)
    with pytest.raises(ValueError, match="relations"):
        grounding_accuracy(ious, ["unique"] * 4, relations=["color"])


def test_grounding_accuracy_empty_groups_are_null_and_bad_input_raises():
    summary = grounding_accuracy([0.7], ["multiple"])
    assert summary["acc@0.5"] == {"overall": 1.0, "unique": None, "multiple": 1.0}
    assert "per_category" not in summary and "mean_mask_iou" not in summary
    empty = grounding_accuracy([], [])
    assert empty["count"] == 0 and empty["acc@0.25"]["overall"] is None
    with pytest.raises(ValueError, match="eval types"):
        grounding_accuracy([0.5], ["rare"])
    with pytest.raises(ValueError, match="categories"):
        grounding_accuracy([0.5], ["unique"], ["a", "b"])


def test_instance_rank_counts_ties_against_the_target():
    instance = np.array([0, 0, 1, 1, 2, 2, 5])
    probs = np.array([0.9, 0.7, 0.2, 0.4, 0.8, 0.9, 1.0])  # means: 0 -> 0.8, 1 -> 0.3, 2 -> 0.85
    assert instance_rank(probs, instance, 0, [0, 1, 2]) == 2
    assert instance_rank(probs, instance, 2, [0, 1, 2, 7]) == 1  # 7 has no points: not ranked
    assert instance_rank(np.full(7, 0.6), instance, 1, [0, 1, 2]) == 3  # covering all ranks it last
    with pytest.raises(ValueError, match="no point"):
        instance_rank(probs, instance, 7, [0, 7])


def test_instance_ranking_summary_rate_and_chance():
    summary = grounding_accuracy([0.1, 0.2, 0.3], ["multiple"] * 3, ranks=[(1, 2), (3, 4), None])
    assert summary["instance_ranking"] == {"count": 2, "target_first": 0.5, "chance": 0.375}
    assert "instance_ranking" not in grounding_accuracy([0.1], ["unique"], ranks=[None])
    with pytest.raises(ValueError, match="ranks"):
        grounding_accuracy([0.1, 0.2], ["unique"] * 2, ranks=[None])


def test_anchor_distance_is_the_worst_named_anchor_to_its_nearest_located_one():
    points = np.array([[0.0, 0, 0], [0.2, 0, 1], [3.0, 4, 0], [3.0, 4, 2], [9.0, 9, 0]])
    instance = np.array([1, 1, 2, 2, 3])  # centres (0.1, 0) and (3, 4) horizontally
    located = np.array([[3.0, 4.3, 7.0], [0.1, 0.0, 0.0]])  # heights do not count
    assert anchor_distance(points, instance, [1], located) == pytest.approx(0.0)
    assert anchor_distance(points, instance, [1, 2], located) == pytest.approx(0.3)
    assert anchor_distance(points, instance, [1, 8], located) == pytest.approx(0.0)  # 8 has no points
    assert anchor_distance(points, instance, [8], located) is None
    summary = grounding_accuracy([0.1] * 3, ["multiple"] * 3, anchor_distances=[0.2, None, 0.9])
    assert summary["anchor_localisation"] == {"count": 2, "found": 0.5, "median_m": pytest.approx(0.55)}
    assert "anchor_localisation" not in grounding_accuracy([0.1], ["unique"], anchor_distances=[None])


def test_below_threshold_answers_are_counted_with_their_accuracy():
    summary = grounding_accuracy(
        [0.6, 0.3, 0.1, 0.9], ["unique"] * 4, below_threshold=[True, True, True, False]
    )
    assert summary["below_threshold"] == {
        "count": 3,
        "acc@0.25": pytest.approx(2 / 3),
        "acc@0.5": pytest.approx(1 / 3),
    }
    assert "below_threshold" not in grounding_accuracy([0.1], ["unique"])
    with pytest.raises(ValueError, match="below-threshold flags"):
        grounding_accuracy([0.1, 0.2], ["unique"] * 2, below_threshold=[True])
