"""The shared toys keep their promises: no voxel of a toy scene mixes two instances and the tiny network
keeps every voxel; the toy dataset loads; each cube's annotated box holds its points; frames see every cube;
no test touches the user's dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from liftgs.data import default_dataset_path
from liftgs.data.dataset import GroundingDataset
from liftgs.eval.metrics import points_box
from liftgs.model import LiftGS
from liftgs.model.voxelize import voxelize
from tests.support.network import VOXEL, HashTextEncoder
from tests.support.scenes import (
    CUBE_POINTS_SPAN,
    CUBE_SIZE,
    NO_POINTS_OBJECT,
    SPLIT,
    voxel_fraction,
    write_toy_dataset,
)


def test_toy_voxels_are_pure_and_dataset_loads(tmp_path):
    scenes, expressions = write_toy_dataset(tmp_path)
    dataset = GroundingDataset(tmp_path, SPLIT, load_frames=False)
    assert sorted(dataset.scene_ids) == sorted(scenes)
    assert [e.description for e in dataset.expressions] == [e.description for e in expressions]
    for scene_id, scene in scenes.items():
        loaded = dataset.scene(scene_id)
        np.testing.assert_array_equal(loaded.point_instance, scene.point_instance)
        voxels = voxelize(loaded.points, loaded.colors, VOXEL)
        for object_id in set(scene.objects) - {NO_POINTS_OBJECT}:
            fraction = voxel_fraction(voxels.source_to_voxel, scene.point_instance == object_id)
            assert set(fraction.unique().tolist()) == {0.0, 1.0}, f"{scene_id}: voxel mixes instances"
    assert not (scenes["toy0001"].point_instance == NO_POINTS_OBJECT).any()
    records = json.loads((tmp_path / "annotations" / f"{SPLIT}.json").read_text())
    assert [r["eval_type"] for r in records].count("unique") == 4


def test_each_cubes_annotated_box_is_the_whole_cube_around_its_points(toy_scene):
    inset = (CUBE_SIZE - CUBE_POINTS_SPAN) / 2
    for object_id, scene_object in toy_scene.objects.items():
        box = scene_object.box
        np.testing.assert_allclose(box[3:] - box[:3], CUBE_SIZE)
        observed = points_box(toy_scene.points, toy_scene.point_instance == object_id)
        np.testing.assert_allclose(observed, box + np.repeat([inset, -inset], 3), atol=1e-6)


def test_toy_frames_see_every_cube_where_its_points_are(toy_scene):
    for frame in toy_scene.frames:
        assert frame.image.shape == (48, 64, 3) and frame.depth.shape == frame.instance.shape == (48, 64)
        c2w, K = frame.c2w, frame.K
        for object_id, scene_object in toy_scene.objects.items():
            v, u = np.nonzero(frame.instance == object_id)
            assert len(v) >= 16, f"frame {frame.name} barely sees object {object_id}"
            # the pixels' centres back-projected at their depth land on the cube (within a pixel's footprint)
            z = frame.depth[v, u]
            rays = np.stack(
                [(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], np.ones_like(z)], 1
            )
            world = (rays * z[:, None]) @ c2w[:3, :3].T + c2w[:3, 3]
            lo, hi = scene_object.box[:3], scene_object.box[3:]
            assert ((world > lo - 0.1) & (world < hi + 0.1)).all(), f"frame {frame.name}, object {object_id}"


def test_the_tiny_network_keeps_every_voxel_of_a_toy_scene(tiny_config, toy_scene):
    assert tiny_config.voxel_size == VOXEL
    model = LiftGS(tiny_config, text_encoder=HashTextEncoder())
    features = model.encode_scene(toy_scene.points, toy_scene.colors)
    full = voxelize(toy_scene.points, toy_scene.colors, VOXEL)
    assert features.num_points == full.points.shape[0] <= tiny_config.max_points


def test_the_default_dataset_root_is_a_temporary_folder(dataset_root, tmp_path):
    assert default_dataset_path() == dataset_root and dataset_root.is_relative_to(tmp_path)
    assert not default_dataset_path().is_relative_to(Path.home() / ".cache")


def test_every_test_gets_a_temporary_default_dataset_root():
    assert not default_dataset_path().is_relative_to(Path.home() / ".cache")
