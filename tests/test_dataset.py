"""GroundingDataset: split/annotation reading, LRU-cached scenes, one-line errors naming files."""

import json
import shutil

import numpy as np
import pytest

from liftgs.data.dataset import GroundingDataset
from liftgs.data.store import DatasetError, save_expressions, write_depth_png, write_scene
from liftgs.scene import Expression, Frame, Scene, SceneObject

K = np.array([[10.0, 0.0, 4.0], [0.0, 10.0, 3.0], [0.0, 0.0, 1.0]])


def make_scene(scene_id: str) -> Scene:
    frame = Frame("0", np.full((6, 8, 3), 128, np.uint8), np.ones((6, 8), np.float32), K, np.eye(4))
    objects = {i: SceneObject(i, "chair", np.array([0, 0, 0, 1.0, 1, 1])) for i in range(2)}
    points = np.zeros((4, 3), np.float32)
    return Scene(scene_id, points, np.zeros((4, 3), np.float32), np.array([0, 1, -1, 0]), [frame], objects)


def expr(scene_id: str, object_id: int, ann_id: int = 0) -> Expression:
    return Expression(scene_id, object_id, "chair", ann_id, "the chair.", ["the", "chair", "."], "multiple")


@pytest.fixture
def root(tmp_path):
    for sid in ("scan0000", "scan0001", "scan0002"):
        write_scene(make_scene(sid), tmp_path / "scans" / sid)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits/train.txt").write_text("scan0000\nscan0001\n")
    (tmp_path / "splits/val.txt").write_text("scan0002\n")
    save_expressions(
        tmp_path / "annotations/train.json", [expr("scan0000", 0), expr("scan0001", 1), expr("scan0000", 1)]
    )
    save_expressions(tmp_path / "annotations/val.json", [expr("scan0002", 0)])
    return tmp_path


def test_reads_split_expressions_and_caches_scenes(root):
    dataset = GroundingDataset(root, "train", cache_size=1)
    assert dataset.scene_ids == ["scan0000", "scan0001"]
    assert len(dataset) == 3 and dataset[2].object_id == 1
    assert [e.object_id for e in dataset.expressions_for("scan0000")] == [0, 1]
    first = dataset.scene("scan0000")
    assert first.scene_id == "scan0000" and len(first.frames) == 1
    assert dataset.scene("scan0000") is first  # cached
    dataset.scene("scan0001")
    assert dataset.scene("scan0000") is not first  # evicted (cache of one)
    assert GroundingDataset(root, "train", load_frames=False).scene("scan0001").frames == []
    assert set(dataset.objects("scan0001")) == {0, 1}


def test_unknown_scene_ids_and_missing_files_raise_one_line_errors(root):
    dataset = GroundingDataset(root, "train")
    with pytest.raises(DatasetError, match="unknown scene id 'scan0002'"):
        dataset.scene("scan0002")  # exists on disk but belongs to another split
    with pytest.raises(DatasetError, match="splits/test.txt"):
        GroundingDataset(root, "test")
    shutil.rmtree(root / "scans/scan0002")
    with pytest.raises(DatasetError, match="scan0002: scene folder not found"):
        GroundingDataset(root, "val")


def test_annotation_naming_a_missing_object_or_scene_is_an_error(root):
    save_expressions(root / "annotations/train.json", [expr("scan0000", 0), expr("scan0001", 7)])
    with pytest.raises(DatasetError, match="record 1 names object 7") as error:
        GroundingDataset(root, "train")
    assert "annotations/train.json" in str(error.value) and "\n" not in str(error.value)
    save_expressions(root / "annotations/train.json", [expr("scan0002", 0)])
    with pytest.raises(DatasetError, match="names scene 'scan0002'"):
        GroundingDataset(root, "train")
    (root / "annotations/train.json").write_text(json.dumps([{"scene_id": "scan0000"}]))
    with pytest.raises(DatasetError, match="record 0 is malformed"):
        GroundingDataset(root, "train")


def test_scene_without_usable_frames_fails_on_access(root):
    write_depth_png(root / "scans/scan0001/depth/0.png", np.zeros((6, 8)))
    dataset = GroundingDataset(root, "train")
    with pytest.raises(DatasetError, match="scan0001: no usable frame"):
        dataset.scene("scan0001")
