"""The demo checkpoint shipped in assets/ loads with the default loader and grounds a query."""

from __future__ import annotations

import numpy as np
import torch

from liftgs.model import LiftGS
from liftgs.model.loading import DEFAULT_CHECKPOINT, load_liftgs


def test_shipped_checkpoint_loads_and_predicts() -> None:
    assert DEFAULT_CHECKPOINT.is_file(), f"{DEFAULT_CHECKPOINT} is not in the repository"
    assert DEFAULT_CHECKPOINT.stat().st_size <= 25 * 1024 * 1024

    model, info = load_liftgs(None, device="cpu")
    assert isinstance(model, LiftGS)
    assert not model.training

    rng = np.random.default_rng(0)
    points = torch.from_numpy(rng.uniform([0, 0, 0], [4, 3, 2], size=(3000, 3)).astype(np.float32))
    colors = torch.from_numpy(rng.uniform(0, 1, size=(3000, 3)).astype(np.float32))
    width = model.config.encoder.extra_channels
    extra = torch.from_numpy(rng.normal(size=(3000, width)).astype(np.float32)) if width else None
    with torch.no_grad():
        scene = model.encode_scene(points, colors, extra)
        (prediction,) = model.predict(scene, ["the red chair next to the table"])

    assert prediction.point_probs.shape == (scene.points.shape[0],)
    assert torch.all((prediction.point_probs >= 0) & (prediction.point_probs <= 1))
    box = torch.as_tensor(prediction.box)
    assert box.shape == (6,) and torch.isfinite(box).all()
    assert torch.all(box[3:] >= box[:3])
    assert 0.0 <= prediction.score <= 1.0
