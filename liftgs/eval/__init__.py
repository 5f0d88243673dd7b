"""Grounding evaluation.

- ``metrics``: pure numpy — ``box_iou_3d``, ``points_box``, ``mask_iou``, ``score_prediction``,
  ``grounding_accuracy`` (Acc@0.25/0.5 overall/unique/multiple, mean IoUs, per category).

Protocol (ScanRefer's): a prediction's box is the axis-aligned box of its predicted points; the ground truth
is the target's annotated box (``SceneObject.box``), not the box of its observed points. A target with no
point in the cloud is a miss counted in every denominator; an expression whose object id the scene does not
annotate cannot be scored and is a counted skip. "unique" / "multiple" is ``Expression.eval_type``: unique
when the target is the only object of its category among the scene's annotated objects.
- ``evaluate``: ``evaluate(model, dataset, expressions=None, ...) -> EvalResult`` (each scene encoded once).
- ``report``: rich tables, JSON and the PNG of plots of an ``EvalResult``.
- ``command``: ``liftgs eval``.
"""
