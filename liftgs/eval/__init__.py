"""Grounding evaluation.

- ``metrics``: pure numpy — ``box_iou_3d``, ``points_box``, ``mask_iou``, ``score_prediction``,
  ``grounding_accuracy`` (Acc@0.25/0.5 overall/unique/multiple, mean IoUs, per category, per relation and
  per wording group when the annotations say them).
- ``evaluate``: ``evaluate(model, dataset, expressions=None, ...) -> EvalResult`` (each scene encoded once).
- ``report``: rich tables, JSON and the PNG of plots of an ``EvalResult``.
- ``command``: ``liftgs eval``.

Protocol (ScanRefer's): a prediction's box is the axis-aligned box of its predicted points; the ground truth
is the target's annotated box (``SceneObject.box``), not the box of its observed points. A target with no
point in the cloud is a miss counted in every denominator; an expression whose object id the scene does not
annotate cannot be scored and is a counted skip. "unique" / "multiple" is the annotation record's
``Expression.eval_type`` (unique: the target is the only object of its category in the scene), computed
when the dataset is made: by the synthetic generator over the layout's objects, and by the ScanRefer and
ReferIt3D importers over the scan's aggregation labels (``liftgs.data.referit3d.eval_type_of``). Those
labels are ScanNet's raw categories; ScanRefer's published split groups them into its 18 benchmark classes,
so unique/multiple on an imported ScanRefer can differ from the published split.
"""
