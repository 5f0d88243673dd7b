"""An oracle standing in for ``LiftGS.predict`` on the toy dataset (``tests.support.scenes``)."""

from __future__ import annotations

import numpy as np
import torch

from liftgs.model.types import Prediction
from liftgs.scene import NO_INSTANCE, Expression, Scene
from tests.support.scenes import voxel_fraction


def make_oracle(scenes: dict[str, Scene], expressions: list[Expression], shift: int = 0):
    """A drop-in for ``LiftGS.predict`` that answers every known description with its target's voxels and
    locates its named anchors at their points' centre (``shift=1``: with the next object of the scene
    instead, i.e. always wrong)."""
    by_description = {e.description: e for e in expressions}
    if len(by_description) != len(expressions):
        raise ValueError("make_oracle: descriptions must be unique (they are the oracle's key)")

    def predict(self, features, texts, threshold=0.5):
        predictions = []
        for text in texts:
            expression = by_description[text]
            scene = scenes[expression.scene_id]
            present = sorted(set(scene.point_instance.tolist()) - {NO_INSTANCE})
            answered = {i: present[(present.index(i) + shift) % len(present)] for i in present}
            target = answered.get(expression.object_id, expression.object_id)
            probs = voxel_fraction(features.source_to_voxel.cpu(), scene.point_instance == target)
            anchors = [
                scene.points[scene.point_instance == answered[i]].mean(0) for i in expression.anchor_ids
            ]
            predictions.append(
                Prediction(
                    probs,
                    probs > threshold,
                    1.0,
                    torch.zeros(6),
                    torch.ones(2),
                    ["[CLS]", "[SEP]"],
                    0,
                    anchor_centres=torch.as_tensor(np.array(anchors)) if anchors else None,
                )
            )
        return predictions

    return predict
