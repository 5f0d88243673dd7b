"""``liftgs bench separability``: each voxel's object, the object descriptor, the classifier's score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liftgs.benchmarks.separability import (
    DESCRIPTOR_SIZE,
    FEATURES_VIEW,
    HEIGHT_BINS,
    INPUT_VIEW,
    BenchSeparability,
    descriptor_samples,
    encoder_samples,
    object_descriptor,
    separability,
    voxel_objects,
)
from liftgs.model import load_model
from liftgs.scene import NO_INSTANCE, SceneObject
from tests.support.network import VOXEL, save_tiny_checkpoint
from tests.support.scenes import SPLIT, toy_scene, write_toy_dataset


def test_a_voxel_belongs_to_the_object_most_of_its_points_belong_to():
    point_instance = np.array([NO_INSTANCE, 3, 3, NO_INSTANCE, NO_INSTANCE, 5], dtype=np.int64)
    source_to_voxel = torch.tensor([0, 0, 0, 1, 1, 2])
    assert voxel_objects(point_instance, source_to_voxel, 3).tolist() == [3, NO_INSTANCE, 5]


def test_the_descriptor_measures_extents_heights_and_colour():
    rng = np.random.default_rng(0)
    points = rng.uniform([1.0, 2.0, 0.0], [1.4, 2.2, 1.0], size=(500, 3))
    points[:2] = [[1.0, 2.0, 0.0], [1.4, 2.2, 1.0]]  # the box's corners, so the extents are exact
    colors = np.tile([0.2, 0.4, 0.6], (500, 1))
    d = object_descriptor(points, colors)
    assert d.shape == (DESCRIPTOR_SIZE,)
    assert d[0] == pytest.approx(np.log(500))
    np.testing.assert_allclose(d[1:7], [0.2, 0.4, 1.0, 0.0, 1.0, points[:, 2].mean()], rtol=1e-5, atol=1e-6)
    assert d[7] < d[8]  # the spread along the box's long side is the larger variance
    np.testing.assert_allclose(d[9:15], [0.2, 0.4, 0.6, 0.0, 0.0, 0.0], atol=1e-6)
    heights = d[-HEIGHT_BINS:]
    assert heights.sum() == pytest.approx(1.0, abs=1e-5)
    assert heights[:5].sum() == pytest.approx(499 / 500, abs=1e-5)  # all but the top corner below 1 m


def test_an_object_with_no_voxel_is_counted_lost():
    scene = toy_scene(names=["chair", "table"])
    scene.objects[7] = SceneObject(7, "lamp", np.array([5.0, 5.0, 0.0, 5.4, 5.4, 0.4]))
    samples = descriptor_samples([scene, toy_scene("toy0001", names=["sofa"])], VOXEL, None)
    assert samples.categories == ["chair", "table", "lamp", "sofa"]
    assert samples.owner.tolist() == [0, 1, 3] and samples.lost == 1
    assert samples.rows.shape == (3, DESCRIPTOR_SIZE)


def test_the_encoder_view_has_a_row_per_object_voxel(tmp_path):
    model, _ = load_model(save_tiny_checkpoint(tmp_path / "tiny.pt"))
    model.eval()
    scene = toy_scene(names=["chair", "table"])
    features, inputs = encoder_samples(model, [scene])
    encoded = model.encode(scene)
    owner = voxel_objects(scene.point_instance, encoded.source_to_voxel, encoded.num_points)
    on_objects = owner != NO_INSTANCE
    assert features.rows.shape == (int(on_objects.sum()), encoded.features.shape[1])
    assert features.owner.tolist() == inputs.owner.tolist() == owner[on_objects].tolist()
    expected = torch.cat([encoded.points[:, 2:], encoded.colors], dim=1)[torch.from_numpy(on_objects)]
    np.testing.assert_allclose(inputs.rows, expected.numpy())


def test_categories_that_differ_in_the_input_are_told_apart_and_random_ones_are_not():
    names = ["chair", "table", "lamp"]  # toy cubes differ only by colour, which follows the name's order
    train = [toy_scene(f"a{i:03d}", names, seed=i) for i in range(12)]
    evaluated = [toy_scene(f"b{i:03d}", names, seed=100 + i) for i in range(10)]
    result = separability(train, evaluated, VOXEL, None)
    assert result.objects == 30 and result.lost == 0 and result.accuracy == 1.0

    rng = np.random.default_rng(0)
    for scene in train + evaluated:  # names no longer follow anything the voxels show
        for obj, name in zip(scene.objects.values(), rng.permutation(names), strict=True):
            obj.name = str(name)
    assert separability(train, evaluated, VOXEL, None).accuracy < 0.7


def test_the_command_prints_a_row_per_view_and_setting_and_refuses_bad_input(tmp_path, capsys):
    write_toy_dataset(tmp_path / "data")
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt")
    bench = BenchSeparability(
        data=tmp_path / "data", train_split=SPLIT, split=SPLIT, max_points=[16, 0], checkpoint=checkpoint
    )
    bench.main()
    out = capsys.readouterr().out
    assert "16" in out and "all" in out and FEATURES_VIEW in out and INPUT_VIEW in out
    with pytest.raises(SystemExit, match="--max-scenes must be >= 1"):
        BenchSeparability(data=tmp_path / "data", split=SPLIT, train_split=SPLIT, max_scenes=0).main()
    with pytest.raises(SystemExit, match="--max-points must be >= 0"):
        BenchSeparability(data=tmp_path / "data", split=SPLIT, train_split=SPLIT, max_points=[-1]).main()
    with pytest.raises(SystemExit, match="liftgs bench separability: .*"):
        BenchSeparability(data=tmp_path / "data", split="nosuchsplit").main()
