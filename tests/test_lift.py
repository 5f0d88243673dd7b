"""Lifted per-point features: projection geometry, storage, the dataset command, the model reading them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from liftgs.data.dataset import GroundingDataset
from liftgs.data.point_features import (
    LIFTED_FILE,
    LiftedFeaturesError,
    load_lifted_features,
    load_lifted_space,
    save_lifted_features,
)
from liftgs.data.store import DatasetError, load_scene
from liftgs.data.synthetic.generate import DatasetSpec, SceneOptions, ensure_dataset
from liftgs.losses.criterion import LossConfig
from liftgs.model import LiftGS
from liftgs.pseudo.command import label_dataset
from liftgs.pseudo.lift import lift_segment_embeddings, project_features
from liftgs.pseudo.lift_dataset import LiftFeaturesCommand, lift_dataset
from liftgs.pseudo.noise import NoiseConfig
from liftgs.pseudo.segments import PseudoLabels
from liftgs.pseudo.synthetic import SyntheticLabeller
from liftgs.scene import Frame, PointFeatureSpace
from liftgs.train.batch import SamplerConfig, TrainBatchSampler
from liftgs.train.cache import SceneTensorCache, SceneTensors
from liftgs.train.step import batch_losses
from tests.support.network import HashTextEncoder


def wall_frame(name: str = "0") -> Frame:
    """An 8 x 8 camera at the origin looking down +z (OpenCV) at a wall 2 m away."""
    K = np.array([[10.0, 0, 4], [0, 10.0, 4], [0, 0, 1]])
    return Frame(name, np.zeros((8, 8, 3), np.uint8), np.full((8, 8), 2.0, np.float32), K, np.eye(4))


def halves(left: int, right: int) -> np.ndarray:
    """[8, 8] segment map: columns < 4 hold ``left``, the others ``right``."""
    segment_map = np.full((8, 8), right, np.int32)
    segment_map[:, :4] = left
    return segment_map


E = np.eye(3, dtype=np.float32)
POINTS = np.array(
    [
        [0.1, 0.0, 2.0],  # column 4: the right half, on the wall
        [-0.6, 0.0, 2.0],  # column 1: the left half, on the wall
        [0.1, 0.0, 3.0],  # behind the wall: occluded
        [10.0, 0.0, 2.0],  # outside the image
        [0.0, 0.0, -1.0],  # behind the camera
    ]
)


def test_points_collect_the_segment_they_are_seen_in() -> None:
    labels = PseudoLabels(halves(1, 0), E[:2], np.ones(2, np.float32))
    features, views = lift_segment_embeddings(POINTS, [wall_frame()], [labels])
    np.testing.assert_allclose(features[0], E[0])
    np.testing.assert_allclose(features[1], E[1])
    assert not features[2:].any()
    assert views.tolist() == [1, 1, 0, 0, 0]


def test_features_average_over_frames_and_skip_unlabelled_ones() -> None:
    first = PseudoLabels(halves(-1, 0), E[:1], np.ones(1, np.float32))  # left half unlabelled
    second = PseudoLabels(halves(0, 0), E[1:2], np.ones(1, np.float32))
    frames = [wall_frame("0"), wall_frame("1"), wall_frame("2")]
    features, views = lift_segment_embeddings(POINTS, frames, [first, None, second])
    np.testing.assert_allclose(features[0], [2**-0.5, 2**-0.5, 0], atol=1e-6)
    np.testing.assert_allclose(features[1], E[1])  # only the second frame labels it
    assert views[:2].tolist() == [2, 1]
    with pytest.raises(LiftedFeaturesError, match="frames but"):
        lift_segment_embeddings(POINTS, frames, [first])


def test_store_round_trip_and_row_count_check(tmp_path: Path) -> None:
    features = project_features(np.eye(4, 6, dtype=np.float32), 3)
    assert features.shape == (4, 3)
    save_lifted_features(tmp_path, features, {"source": "test"})
    np.testing.assert_allclose(load_lifted_features(tmp_path, 4), features, atol=1e-3)  # float16 on disk
    assert load_lifted_space(tmp_path) is None  # the meta does not say what was projected
    save_lifted_features(tmp_path, features, {"embedding_dim": 6, "projection_seed": 3})
    assert load_lifted_space(tmp_path) == PointFeatureSpace(6, 3)
    with pytest.raises(LiftedFeaturesError, match="cloud of 5 points"):
        load_lifted_features(tmp_path, 5)
    assert load_lifted_features(tmp_path / "nowhere", 4) is None
    (tmp_path / LIFTED_FILE).write_bytes(b"truncated")
    with pytest.raises(LiftedFeaturesError, match="unreadable"):
        load_lifted_features(tmp_path, 4)
    with pytest.raises(LiftedFeaturesError, match="unreadable lifted features"):
        load_lifted_space(tmp_path)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    """Three tiny synthetic (train) scenes with the stand-in's lifted features (`liftgs lift-features`)."""
    root = tmp_path_factory.mktemp("lift")
    options = SceneOptions(image_width=64, image_height=48, num_views=4, voxel_size=0.08, max_objects=5)
    ensure_dataset(root, spec=DatasetSpec(seed=5, num_scenes=3, options=options), progress=False)
    assert not list(root.glob(f"scans/*/{LIFTED_FILE}"))  # generating a dataset lifts nothing
    assert lift_dataset(root, progress=False, source="auto").lifted == 3  # the benchmark: the stand-in
    return root


def test_stand_in_lifted_features_name_their_objects(small_root: Path) -> None:
    scene = load_scene(small_root / "scans" / "scan0000")
    assert scene.point_features is not None and scene.point_features.shape == (scene.num_points, 32)
    meta = json.loads(str(np.load(small_root / "scans" / "scan0000" / LIFTED_FILE)["meta"]))
    assert meta["source"].startswith("synthetic stand-in") and meta["frames_labelled"] == len(scene.frames)
    on_objects = scene.point_instance >= 0
    seen = np.linalg.norm(scene.point_features, axis=1) > 0
    assert seen[on_objects].mean() > 0.8  # most object points are seen in some frame's segment
    # points of one object share (nearly) one feature; objects of different categories mostly differ
    ids = [i for i in np.unique(scene.point_instance[on_objects & seen])]
    means = {i: scene.point_features[(scene.point_instance == i) & seen].mean(0) for i in ids}
    names = {i: scene.objects[int(i)].name for i in ids}
    for i in ids:
        own = scene.point_features[(scene.point_instance == i) & seen]
        unit = means[i] / np.linalg.norm(means[i])
        assert np.median(own @ unit / np.linalg.norm(own, axis=1)) > 0.9
    pairs = [(a, b) for a in ids for b in ids if a < b and names[a] != names[b]]
    assert pairs
    cosines = [means[a] @ means[b] / np.linalg.norm(means[a]) / np.linalg.norm(means[b]) for a, b in pairs]
    assert np.mean(np.array(cosines) < 0.9) >= 0.75  # noisy labels (merges, swaps) may blur a few pairs


def test_lift_dataset_from_stored_labels_resumes_and_counts(small_root: Path, tmp_path: Path) -> None:
    labeller = SyntheticLabeller(HashTextEncoder(dim=16), NoiseConfig().scaled(0.0))
    label_dataset(small_root, labeller, folder="pseudo-test", split="train", progress=False)
    for scene_dir in (small_root / "scans").iterdir():
        (scene_dir / LIFTED_FILE).unlink(missing_ok=True)
    summary = lift_dataset(small_root, "pseudo-test", dim=8, progress=False)
    train = GroundingDataset(small_root, "train").scene_ids
    assert (summary.lifted, summary.skipped, summary.unlabelled) == (len(train), 0, 3 - len(train))
    scene = load_scene(small_root / "scans" / train[0])
    assert scene.point_features is not None and scene.point_features.shape[1] == 8
    again = lift_dataset(small_root, "pseudo-test", dim=8, progress=False)
    assert (again.lifted, again.skipped) == (0, len(train))
    with pytest.raises(SystemExit, match="--dim must be >= 1"):
        LiftFeaturesCommand(small_root, dim=0).main()
    (small_root / "scans" / train[0] / LIFTED_FILE).write_bytes(b"bad")
    with pytest.raises(DatasetError, match="unreadable"):
        load_scene(small_root / "scans" / train[0])
    lift_dataset(small_root, "pseudo-test", dim=32, overwrite=True, progress=False)  # restore for others


def test_model_reads_the_scene_features_and_trains_through_them(small_root: Path, tiny_config) -> None:
    lifted = dataclasses.replace(
        tiny_config, encoder=dataclasses.replace(tiny_config.encoder, extra_channels=32)
    )
    model = LiftGS(lifted, text_encoder=HashTextEncoder())
    bare = LiftGS(tiny_config, text_encoder=HashTextEncoder())
    scene = load_scene(small_root / "scans" / "scan0000")
    features = model.encode(scene)
    assert features.points.shape[0] > 0
    assert bare.encode(scene).points.shape == features.points.shape  # a model without extras ignores them

    data = GroundingDataset(small_root, "train")
    cache = SceneTensorCache(lambda s: SceneTensors.from_scene(data.scene(s), 12, 16))
    sampler = TrainBatchSampler(data.expressions, cache, SamplerConfig(1, 2, 2), seed=0)
    batch = sampler.sample()
    assert batch[0].point_features is not None and batch[0].point_features.shape[1] == 32
    losses, _ = batch_losses(model, batch, LossConfig())
    sum(losses.values()).backward()
    embed = model.encoder.embed[0].weight.grad  # [C0, 6 + 32]: columns 6: read the lifted features
    assert embed is not None and embed[:, 6:].abs().sum() > 0
    bare_scene = load_scene(small_root / "scans" / "scan0000")
    bare_scene.point_features = None
    with pytest.raises(ValueError, match="run `liftgs lift-features`"):
        model.encode(bare_scene)


def test_the_lifted_affinity_refuses_features_lifted_from_another_embedding_space(
    small_root: Path, tiny_config
) -> None:
    scene = load_scene(small_root / "scans" / "scan0000")
    meta = json.loads(str(np.load(small_root / "scans" / "scan0000" / LIFTED_FILE)["meta"]))
    width = meta["embedding_dim"]  # MiniLM's 384 as generated (16 once another test re-lifted it)
    assert scene.point_feature_space == PointFeatureSpace(width, 0) and width != 24
    config = dataclasses.replace(tiny_config, text_dim=24)
    config.encoder.extra_channels, config.decoder.lifted_affinity = 32, True
    with pytest.raises(ValueError, match=f"project {width}-d embeddings .* with its 24-d text tokens"):
        LiftGS(config, text_encoder=HashTextEncoder(dim=24)).encode(scene)
    tensors = SceneTensors.from_scene(scene, 12, 16)
    assert tensors.point_feature_space == scene.point_feature_space  # training batches carry it too
    config.text_dim = width
    matching = LiftGS(config, text_encoder=HashTextEncoder(dim=width))
    assert matching.encode(scene).decoder_points.lifted is not None
    config.decoder.lifted_projection_seed = 1  # same width, another projection: not comparable either
    with pytest.raises(ValueError, match=r"\(seed 0\).*\(seed 1\)"):
        LiftGS(config, text_encoder=HashTextEncoder(dim=width)).encode(scene)
