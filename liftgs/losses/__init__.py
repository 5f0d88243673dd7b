"""Training losses: Hungarian matching, render-supervised and 3D-baseline criteria, token positives.

- ``matcher``: ``hungarian_match(cost)`` (scipy) and pairwise BCE / dice mask costs.
- ``rendering``: ``render_views`` (RGB, expected depth, features, mask probabilities: one rasterize call).
- ``criterion``: ``LossConfig``, ``SceneOutputs``, ``scene_losses`` (2D or 3D targets), ``match_metrics``.
- ``tokens``: ``positive_tokens`` (the tokens naming a target).
- ``targets``: ``Views`` and ``ExpressionTargets``, the containers the losses compare against.
"""
