"""The on-disk scene format: round trip, expression files, tolerant loading of bad frames."""

import json
import logging

import numpy as np
import pytest
from PIL import Image

from liftgs.data.rgbd_io import FrameSkipped
from liftgs.data.store import (
    DatasetError,
    list_frame_names,
    load_expressions,
    load_scene,
    read_frame,
    read_frame_image,
    save_expressions,
    write_depth_png,
    write_instance_png,
    write_scene,
)
from liftgs.scene import Expression, Frame, Scene, SceneObject

H, W = 12, 16
K = np.array([[20.0, 0.0, 8.0], [0.0, 20.0, 6.0], [0.0, 0.0, 1.0]])


def make_scene(num_frames: int = 3) -> Scene:
    rng = np.random.default_rng(0)
    frames = []
    for i in range(num_frames):
        c2w = np.eye(4)
        c2w[:3, 3] = rng.normal(size=3)
        instance = rng.integers(-1, 3, size=(H, W)).astype(np.int32)
        depth = rng.uniform(0.5, 4.0, size=(H, W)).astype(np.float32)
        depth[0, 0] = 0
        image = rng.integers(0, 256, size=(H, W, 3)).astype(np.uint8)
        frames.append(Frame(str(i), image, depth, K, c2w, instance))
    objects = {
        k: SceneObject(k, name, np.array([0, 0, 0, 1.0 + k, 1, 1]), {"color": "red"})
        for k, name in enumerate(["chair", "trash can", "table"])
    }
    return Scene(
        scene_id="scan0007",
        points=rng.normal(size=(50, 3)).astype(np.float32),
        colors=rng.integers(0, 256, size=(50, 3)).astype(np.float32) / 255.0,
        point_instance=rng.integers(-1, 3, size=50),
        frames=frames,
        objects=objects,
    )


def test_scene_round_trip(tmp_path):
    scene = make_scene()
    write_scene(scene, tmp_path / scene.scene_id)
    loaded = load_scene(tmp_path / scene.scene_id)
    assert loaded.scene_id == scene.scene_id
    np.testing.assert_allclose(loaded.points, scene.points)
    np.testing.assert_allclose(loaded.colors, scene.colors, atol=1e-6)
    np.testing.assert_array_equal(loaded.point_instance, scene.point_instance)
    assert [f.name for f in loaded.frames] == ["0", "1", "2"]
    for a, b in zip(scene.frames, loaded.frames, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_allclose(a.depth, b.depth, atol=5e-4)  # millimetre quantisation
        np.testing.assert_allclose(a.K, b.K)
        np.testing.assert_allclose(a.c2w, b.c2w, atol=1e-8)
        np.testing.assert_array_equal(a.instance, b.instance)
        assert b.K_depth is None
    assert {k: (o.name, o.attributes, list(o.box)) for k, o in loaded.objects.items()} == {
        k: (o.name, o.attributes, list(o.box)) for k, o in scene.objects.items()
    }
    instance_png = tmp_path / scene.scene_id / "instance/0.png"
    on_disk = np.asarray(Image.open(instance_png))
    assert on_disk.dtype == np.uint16 and on_disk.min() == 0  # object_id + 1, 0 = none
    assert load_scene(tmp_path / scene.scene_id, load_frames=False).frames == []


def test_expression_round_trip_and_extras(tmp_path):
    expressions = [
        Expression(
            "scan0007", 2, "trash can", 0, "the red trash can.", ["the", "red", "trash", "can", "."], "unique"
        ),
        Expression(
            "scan0007", 0, "chair", 1, "the chair next to the table", ["the"], "multiple", "near", (1,)
        ),
    ]
    path = tmp_path / "annotations/train.json"
    save_expressions(path, expressions, extras=[{"annotator": "a"}, {"annotator": "b"}])
    records = json.loads(path.read_text())
    assert records[0]["object_id"] == "2" and "relation" not in records[0] and "anchor_ids" not in records[0]
    assert records[1]["relation"] == "near" and records[1]["anchor_ids"] == ["1"]
    assert records[1]["annotator"] == "b"
    assert load_expressions(path) == expressions
    with pytest.raises(ValueError, match="extras"):
        save_expressions(path, expressions, extras=[{}])


def test_bad_frames_are_skipped_counted_and_warned_once(tmp_path, caplog):
    scene = make_scene(num_frames=6)
    scene_dir = tmp_path / scene.scene_id
    write_scene(scene, scene_dir)
    (scene_dir / "color/0.png").write_bytes(b"not a png")  # corrupt image
    (scene_dir / "depth/1.png").unlink()  # missing depth (mismatched frame counts)
    np.savetxt(scene_dir / "pose/2.txt", np.full((4, 4), -np.inf))  # ScanNet's invalid poses
    write_depth_png(scene_dir / "depth/3.png", np.zeros((H, W)))  # all-zero depth
    with caplog.at_level(logging.WARNING, logger="liftgs.data.store"):
        loaded = load_scene(scene_dir)
    assert [f.name for f in loaded.frames] == ["4", "5"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"{scene_dir}: skipped 4 of 6 frames (" in warnings[0]
    for reason in ("1 unreadable color image", "1 missing depth", "1 non-finite pose", "1 all-zero depth"):
        assert reason in warnings[0]


def test_frames_one_at_a_time(tmp_path):
    scene = make_scene(num_frames=3)
    scene_dir = tmp_path / scene.scene_id
    write_scene(scene, scene_dir)
    (scene_dir / "color/1.png").rename(scene_dir / "color/1.jpg")  # ScanNet exports JPEG
    (scene_dir / "pose/2.txt").unlink()
    write_instance_png(scene_dir / "instance/0.png", np.zeros((H + 1, W), np.int32))
    assert list_frame_names(scene_dir) == ["0", "1", "2"]
    assert list_frame_names(scene_dir, ["pose"]) == ["0", "1"]
    frame = read_frame(scene_dir, "1")
    np.testing.assert_array_equal(frame.image, scene.frames[1].image)
    np.testing.assert_array_equal(frame.instance, scene.frames[1].instance)
    np.testing.assert_allclose(frame.c2w, scene.frames[1].c2w, atol=1e-8)
    for name, reason in (("0", "instance mask size differs from the image"), ("2", "missing pose")):
        with pytest.raises(FrameSkipped) as skipped:
            read_frame(scene_dir, name)
        assert skipped.value.reason == reason
    np.testing.assert_array_equal(read_frame_image(scene_dir, "2"), scene.frames[2].image)


def test_scene_without_usable_frames_or_files_raises_one_line_errors(tmp_path):
    scene = make_scene(num_frames=1)
    scene_dir = tmp_path / scene.scene_id
    write_scene(scene, scene_dir)
    write_depth_png(scene_dir / "depth/0.png", np.zeros((H, W)))
    with pytest.raises(DatasetError, match="no usable frame") as error:
        load_scene(scene_dir)
    assert str(scene_dir) in str(error.value) and "\n" not in str(error.value)
    (scene_dir / f"{scene.scene_id}_points.ply").write_bytes(b"ply\ngarbage")
    with pytest.raises(DatasetError, match="_points.ply"):
        load_scene(scene_dir, load_frames=False)
    with pytest.raises(DatasetError, match="scene folder not found"):
        load_scene(tmp_path / "scan9999")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DatasetError, match="bad.json"):
        load_expressions(tmp_path / "bad.json")


def test_write_scene_requires_one_intrinsic_matrix(tmp_path):
    scene = make_scene(num_frames=2)
    scene.frames[1].K = K * 2
    with pytest.raises(ValueError, match="intrinsic"):
        write_scene(scene, tmp_path / scene.scene_id)
