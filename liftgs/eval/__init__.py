"""Grounding evaluation.

- ``metrics``: pure numpy — ``box_iou_3d``, ``points_box``, ``mask_iou``, ``score_prediction``,
  ``grounding_accuracy`` (Acc@0.25/0.5 overall/unique/multiple, mean IoUs, per category).
- ``evaluate``: ``evaluate(model, dataset, expressions=None, ...) -> EvalResult`` (each scene encoded once).
- ``report``: rich tables, JSON and the PNG of plots of an ``EvalResult``.
- ``command``: ``liftgs eval``.
"""
