"""The shipped network reads a scene's points and the text only: no grounding path (``liftgs eval``,
``liftgs ground``, the viewer) reads the instance ids, object names, 2D masks, lifted features or
pseudo-labels of the scene it grounds in."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from app.engine import ViewerEngine
from liftgs.data.dataset import GroundingDataset
from liftgs.eval.evaluate import evaluate
from liftgs.ground import ground
from liftgs.model import LiftGS, LiftGSConfig
from liftgs.scene import Scene
from tests.support.network import HashTextEncoder, tiny_config
from tests.support.scenes import SPLIT, toy_scene, write_toy_dataset


class Forbidden:
    """Stands in for a scene's labels: any use (indexing, iteration, comparison, attributes) fails."""

    def __init__(self, what: str) -> None:
        object.__setattr__(self, "what", what)

    def _fail(self, *args, **kwargs):
        raise AssertionError(f"a grounding path read the scene's {self.what}")

    __getattr__ = __getitem__ = __array__ = __eq__ = __len__ = __iter__ = __bool__ = __contains__ = _fail


def label_blind(scene: Scene) -> Scene:
    """``scene`` with its points and colors only: every label-derived attribute fails when read."""
    return dataclasses.replace(
        scene,
        point_instance=Forbidden("instance ids"),
        frames=Forbidden("frames (2D instance masks)"),
        objects=Forbidden("objects (names)"),
        point_features=Forbidden("lifted 2D features"),
        point_feature_space=Forbidden("lifted feature space"),
    )


@pytest.fixture(scope="module")
def model() -> LiftGS:
    torch.manual_seed(0)
    return LiftGS(tiny_config(), text_encoder=HashTextEncoder()).eval()


def test_the_default_network_reads_points_and_text_only():
    network = LiftGS(LiftGSConfig(), text_encoder=HashTextEncoder())
    assert network.config.encoder.extra_channels == 0
    assert not network.reads_point_features


def test_a_scene_with_labels_and_lifted_features_is_encoded_from_its_points_alone(model):
    scene = toy_scene(num_frames=2)
    scene.point_features = np.random.default_rng(0).normal(size=(scene.num_points, 32)).astype(np.float32)
    with torch.no_grad():
        seen = model.encode(scene)
        blind = model.encode(label_blind(scene))
        (prediction,) = model.predict(blind, ["the red chair"])
    torch.testing.assert_close(seen.points, blind.points)
    torch.testing.assert_close(seen.gaussians.means, blind.gaussians.means)
    assert prediction.point_probs.shape == (blind.num_points,)


def test_liftgs_ground_answers_without_the_scenes_labels(model):
    scene = toy_scene()
    record, _, _ = ground(model, label_blind(scene), "the lamp")
    expected, _, _ = ground(model, scene, "the lamp")
    assert record["point_indices"] == expected["point_indices"] and record["box"] == expected["box"]


def test_the_viewer_grounds_without_the_scenes_labels(model):
    scene = toy_scene(num_frames=2)
    engine = ViewerEngine(model, [scene.scene_id], lambda scene_id: label_blind(scene), top_k=3)
    loaded = engine.load(scene.scene_id)
    result = engine.ground(loaded, "the blue lamp")
    assert len(result.candidates) == 3
    assert all(candidate.label.startswith("query ") for candidate in result.candidates)


def test_liftgs_eval_gives_the_network_only_the_points(model, tmp_path, monkeypatch):
    """``evaluate`` reads the labels to score the answers, never to make them: the network sees a
    label-blind copy of every scene and the records are the same as with the scene itself."""
    write_toy_dataset(tmp_path)
    dataset = GroundingDataset(tmp_path, SPLIT, load_frames=False)  # as `liftgs eval` reads it
    reference = evaluate(model, dataset)
    encode = LiftGS.encode
    monkeypatch.setattr(LiftGS, "encode", lambda self, scene: encode(self, label_blind(scene)))
    blind = evaluate(model, dataset)
    assert blind.summary["count"] == reference.summary["count"] > 0, reference.skipped
    assert [r.predicted_box for r in blind.records] == [r.predicted_box for r in reference.records]
