"""The evaluation toys (``toys_eval``) keep their promise: no voxel mixes two instances; the dataset loads."""

from __future__ import annotations

import json

import numpy as np
from toys_eval import NO_POINTS_OBJECT, SPLIT, VOXEL, voxel_fraction, write_toy_dataset


def test_toy_voxels_are_pure_and_dataset_loads(tmp_path):
    from liftgs.data.dataset import GroundingDataset
    from liftgs.model.voxelize import voxelize

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
