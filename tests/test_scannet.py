"""ScanNet loader on a tiny scene written in ScanNet's exact file formats, and `liftgs import-scannet`.

The fixture: a camera 3 m above the scan's origin looks straight down at a plane 2 m in front of it
(scan z = 1). The axis alignment lowers the scan by 1 m and turns it 90 degrees about z, so the plane must
land on the aligned floor (z = 0) with scan x becoming aligned y. Color (16 x 12, red left / blue right)
and depth (8 x 6) have different resolutions and intrinsics of the same field of view. Mesh vertices on
the plane's scan-x < 0 half belong to object 1 ("table"); two "chair"s float above it.
"""

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from plyfile import PlyData, PlyElement

from liftgs.cli import main as cli_main
from liftgs.data.dataset import GroundingDataset
from liftgs.data.import_scannet import import_scannet, split_name
from liftgs.data.scannet import ScanNetError, load_scannet_scene, read_axis_alignment
from liftgs.data.store import load_expressions
from liftgs.scene import NO_INSTANCE

SCENE = "scene0000_00"
K_COLOR = np.array([[16.0, 0, 8.0], [0, 16.0, 6.0], [0, 0, 1.0]])
K_DEPTH = np.array([[8.0, 0, 4.0], [0, 8.0, 3.0], [0, 0, 1.0]])
ALIGN = np.array([[0.0, -1, 0, 5], [1, 0, 0, 0], [0, 0, 1, -1], [0, 0, 0, 1]])  # rot90 about z, lower 1 m
C2W_SCAN = np.array([[1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 3], [0, 0, 0, 1]])  # looks down (scan -z)


def align(xyz: np.ndarray) -> np.ndarray:
    """The alignment written out by hand: (x, y, z) -> (5 - y, x, z - 1)."""
    return np.stack([5 - xyz[:, 1], xyz[:, 0], xyz[:, 2] - 1], axis=1)


def write_matrix(path, matrix):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(" ".join(f"{x:g}" for x in row) for row in matrix) + "\n")


def write_mesh_and_annotations(scene_dir):
    xs, ys = np.meshgrid(np.linspace(-1, 1, 41), np.linspace(-0.8, 0.8, 33))
    plane = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], axis=1)
    chair_a = np.array([[2.0, 2.0, 0.5], [2.2, 2.3, 0.9]])
    chair_b = np.array([[-2.0, 2.0, 0.5], [-2.4, 2.1, 1.2]])
    vertices = np.concatenate([plane, chair_a, chair_b])
    segments = np.concatenate([np.where(plane[:, 0] < 0, 10, 11), [20, 20], [30, 31]])
    vertex = np.empty(len(vertices), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    for axis, name in enumerate("xyz"):
        vertex[name] = vertices[:, axis]
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(scene_dir / f"{SCENE}_vh_clean_2.ply"))
    (scene_dir / f"{SCENE}_vh_clean_2.0.010000.segs.json").write_text(
        json.dumps({"sceneId": SCENE, "segIndices": segments.tolist()})
    )
    groups = [
        {"id": 0, "objectId": 0, "segments": [20], "label": "chair"},
        {"id": 1, "objectId": 1, "segments": [10], "label": "table"},
        {"id": 2, "objectId": 2, "segments": [30, 31], "label": "chair"},
        {"id": 3, "objectId": 3, "segments": [40, 41], "label": "trash can"},
    ]
    (scene_dir / f"{SCENE}.aggregation.json").write_text(json.dumps({"sceneId": SCENE, "segGroups": groups}))
    return vertices


def write_frame(frames_dir, i, pose=C2W_SCAN, depth_mm=2000):
    color = np.zeros((12, 16, 3), dtype=np.uint8)
    color[:, :8, 0] = 255  # left half red
    color[:, 8:, 2] = 255  # right half blue
    (frames_dir / "color").mkdir(parents=True, exist_ok=True)
    (frames_dir / "depth").mkdir(parents=True, exist_ok=True)
    Image.fromarray(color).save(frames_dir / f"color/{i}.jpg", quality=100, subsampling=0)
    Image.fromarray(np.full((6, 8), depth_mm, dtype=np.uint16)).save(frames_dir / f"depth/{i}.png")
    write_matrix(frames_dir / f"pose/{i}.txt", pose)


def make_scannet(root, num_frames=4, with_alignment=True):
    """Writes ROOT/scans/scene0000_00 in ScanNet's layout; returns the scene folder."""
    scene_dir = root / "scans" / SCENE
    scene_dir.mkdir(parents=True)
    meta = ["colorHeight = 968", "colorWidth = 1296"]
    if with_alignment:
        meta.append("axisAlignment = " + " ".join(f"{x:g}" for x in ALIGN.ravel()))
    (scene_dir / f"{SCENE}.txt").write_text("\n".join(meta) + "\n")
    write_mesh_and_annotations(scene_dir)
    for name, K in (("intrinsic_color", K_COLOR), ("intrinsic_depth", K_DEPTH)):
        matrix = np.eye(4)
        matrix[:3, :3] = K
        write_matrix(scene_dir / f"intrinsic/{name}.txt", matrix)
    for i in range(num_frames):
        write_frame(scene_dir, i)
    return scene_dir


def test_axis_alignment_parsed(tmp_path):
    scene_dir = make_scannet(tmp_path)
    np.testing.assert_array_equal(read_axis_alignment(scene_dir / f"{SCENE}.txt"), ALIGN)


def test_scene_frames_points_boxes_and_labels(tmp_path):
    make_scannet(tmp_path)
    scene = load_scannet_scene(tmp_path, SCENE, frame_stride=1, voxel_size=0.01)
    assert [f.name for f in scene.frames] == ["0", "1", "2", "3"]
    frame = scene.frames[0]
    np.testing.assert_allclose(frame.c2w, ALIGN @ C2W_SCAN)
    np.testing.assert_allclose(frame.K, K_COLOR)
    np.testing.assert_allclose(frame.K_depth, K_DEPTH)  # color/depth resolutions differ
    assert frame.image.shape == (12, 16, 3) and frame.depth.shape == (6, 8)
    np.testing.assert_allclose(frame.depth, 2.0)  # uint16 millimetres -> metres

    # The plane 2 m below the camera is the aligned floor; its 8 x 6 depth pixels span +-0.875 x +-0.625 m.
    assert scene.num_points == 48
    np.testing.assert_allclose(scene.points[:, 2], 0.0, atol=1e-5)
    np.testing.assert_allclose(np.sort(np.unique(scene.points[:, 1].round(3))), np.arange(-7, 8, 2) / 8)
    np.testing.assert_allclose(np.sort(np.unique(scene.points[:, 0].round(3))), 5 + np.arange(-5, 6, 2) / 8)
    # Scan x < 0 (aligned y < 0) is the red half of the image and the "table" part of the mesh.
    left = scene.points[:, 1] < 0
    assert (scene.colors[left, 0] > 0.9).all() and (scene.colors[left, 2] < 0.1).all()
    assert (scene.colors[~left, 2] > 0.9).all() and (scene.colors[~left, 0] < 0.1).all()
    np.testing.assert_array_equal(scene.point_instance, np.where(left, 1, NO_INSTANCE))

    vertices = write_mesh_and_annotations(tmp_path / "scans" / SCENE)
    chair_b = align(vertices[-2:])
    assert sorted(scene.objects) == [0, 1, 2]  # object 3 owns no vertex
    assert scene.objects[2].name == "chair"
    np.testing.assert_allclose(
        scene.objects[2].box, np.concatenate([chair_b.min(0), chair_b.max(0)]), atol=1e-6
    )
    np.testing.assert_allclose(scene.objects[1].box, [5 - 0.8, -1, 0, 5 + 0.8, -0.05, 0], atol=1e-6)


def test_frame_stride_and_nonfinite_pose_skip(tmp_path, caplog):
    scene_dir = make_scannet(tmp_path, num_frames=6)
    write_matrix(scene_dir / "pose/2.txt", np.full((4, 4), -np.inf))
    with caplog.at_level(logging.WARNING, logger="liftgs.data.scannet"):
        scene = load_scannet_scene(tmp_path, SCENE, frame_stride=2)
    assert [f.name for f in scene.frames] == ["0", "4"]
    warnings = [m for m in caplog.messages if re.search(r": skipped \d+ of \d+ frames", m)]
    assert len(warnings) == 1
    assert "skipped 1 of 3 frames" in warnings[0] and "1 non-finite pose" in warnings[0]


def test_bad_frames_skipped_and_counted_in_one_line(tmp_path, caplog):
    scene_dir = make_scannet(tmp_path, num_frames=7)
    (scene_dir / "color/1.jpg").write_bytes(b"not a jpeg")
    (scene_dir / "depth/2.png").unlink()  # depth/ has one frame fewer than color/
    Image.fromarray(np.zeros((6, 8), dtype=np.uint16)).save(scene_dir / "depth/3.png")
    write_matrix(scene_dir / "pose/4.txt", np.full((4, 4), np.nan))
    (scene_dir / "pose/5.txt").write_text("1 2 3\n")
    with caplog.at_level(logging.WARNING, logger="liftgs.data.scannet"):
        scene = load_scannet_scene(tmp_path, SCENE, frame_stride=1)
    assert [f.name for f in scene.frames] == ["0", "6"]
    warnings = [m for m in caplog.messages if re.search(r": skipped \d+ of \d+ frames", m)]
    assert len(warnings) == 1
    for part in (
        "skipped 5 of 7",
        "1 unreadable color image",
        "1 missing depth",
        "1 all-zero depth",
        "1 non-finite pose",
        "1 unreadable pose",
    ):
        assert part in warnings[0]


def test_instance_masks_resized_to_color(tmp_path):
    scene_dir = make_scannet(tmp_path, num_frames=1)
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[:, :4] = 2  # objectId 1 + 1 on the left half (depth resolution)
    (scene_dir / "instance-filt").mkdir()
    Image.fromarray(mask).save(scene_dir / "instance-filt/0.png")
    frame = load_scannet_scene(tmp_path, SCENE, frame_stride=1).frames[0]
    expected = np.full((12, 16), NO_INSTANCE)
    expected[:, :8] = 1
    np.testing.assert_array_equal(frame.instance, expected)


def test_image_scale_rescales_color_intrinsics(tmp_path):
    make_scannet(tmp_path, num_frames=1)
    frame = load_scannet_scene(tmp_path, SCENE, frame_stride=1, image_scale=0.5).frames[0]
    assert frame.image.shape == (6, 8, 3)
    np.testing.assert_allclose(frame.K, K_COLOR / np.array([[2], [2], [1]]))


def test_missing_alignment_line_is_identity_with_warning(tmp_path, caplog):
    make_scannet(tmp_path, num_frames=1, with_alignment=False)
    with caplog.at_level(logging.WARNING, logger="liftgs.data.scannet"):
        scene = load_scannet_scene(tmp_path, SCENE, frame_stride=1)
    np.testing.assert_allclose(scene.points[:, 2], 1.0, atol=1e-5)  # scan coordinates
    assert any("no axisAlignment" in r.getMessage() for r in caplog.records)


def test_no_usable_frame_is_a_one_line_error(tmp_path):
    scene_dir = make_scannet(tmp_path, num_frames=2)
    for i in range(2):
        write_matrix(scene_dir / f"pose/{i}.txt", np.full((4, 4), -np.inf))
    with pytest.raises(ScanNetError, match="no usable frame") as error:
        load_scannet_scene(tmp_path, SCENE, frame_stride=1)
    assert "\n" not in str(error.value) and str(scene_dir) in str(error.value)
    assert "2 non-finite pose" in str(error.value)


def test_unknown_scene_and_missing_files_name_the_path(tmp_path):
    scene_dir = make_scannet(tmp_path, num_frames=1)
    with pytest.raises(ScanNetError, match="unknown scene id 'scene0999_00'"):
        load_scannet_scene(tmp_path, "scene0999_00")
    (scene_dir / f"{SCENE}.aggregation.json").unlink()
    with pytest.raises(ScanNetError, match=f"missing file .*{SCENE}.aggregation.json"):
        load_scannet_scene(tmp_path, SCENE)


def test_segments_must_match_the_mesh(tmp_path):
    scene_dir = make_scannet(tmp_path, num_frames=1)
    (scene_dir / f"{SCENE}_vh_clean_2.0.010000.segs.json").write_text(json.dumps({"segIndices": [1, 2]}))
    with pytest.raises(ScanNetError, match="2 segment indices for a mesh of"):
        load_scannet_scene(tmp_path, SCENE)


def scanrefer_records():
    base = {"scene_id": SCENE, "object_name": "chair", "description": "the chair.", "token": ["the", "chair"]}
    return [
        {**base, "object_id": "0", "ann_id": "0"},
        {**base, "object_id": "1", "ann_id": "0", "object_name": "table", "description": "a table."},
        {**base, "object_id": "3", "ann_id": "0", "object_name": "trash can"},  # owns no mesh vertex
    ]


def test_import_writes_a_dataset_root(tmp_path, caplog):
    make_scannet(tmp_path / "scannet", num_frames=3)
    scanrefer = tmp_path / "ScanRefer_filtered_val.json"
    scanrefer.write_text(json.dumps(scanrefer_records()))
    sr3d = tmp_path / "sr3d_test.csv"
    sr3d.write_text(
        "scan_id,target_id,instance_type,utterance,tokens,stimulus_id\n"
        f"{SCENE},2,chair,the chair facing the table,\"['the', 'chair', 'facing', 'the', 'table']\","
        f"{SCENE}-chair-2-2-0\n"
    )
    out = tmp_path / "root"
    cli_main(
        ["import-scannet", "--scannet-dir", str(tmp_path / "scannet"), "--out", str(out)]
        + ["--scanrefer", str(scanrefer), "--referit3d", str(sr3d), "--frame-stride", "1"]
    )
    (record,) = json.loads((out / "annotations/sr3d_test.json").read_text())
    assert (record["object_id"], record["hard"], record["view_dependent"]) == ("2", False, True)
    assert len(GroundingDataset(out, "sr3d_test")) == 1
    assert (out / "splits/val.txt").read_text() == f"{SCENE}\n"
    dataset = GroundingDataset(out, "val")
    assert [(e.object_id, e.eval_type) for e in dataset.expressions] == [(0, "multiple"), (1, "unique")]
    assert any("dropped 1 expression(s) whose target has no box" in m for m in caplog.messages)
    scene = dataset.scene(SCENE)
    reference = load_scannet_scene(tmp_path / "scannet", SCENE, frame_stride=1)
    np.testing.assert_allclose(scene.points, reference.points)
    np.testing.assert_array_equal(scene.point_instance, reference.point_instance)
    assert [f.name for f in scene.frames] == ["0", "1", "2"]
    np.testing.assert_allclose(scene.frames[0].c2w, ALIGN @ C2W_SCAN)
    np.testing.assert_allclose(scene.frames[0].depth_intrinsics, K_DEPTH)
    np.testing.assert_allclose(scene.objects[1].box, reference.objects[1].box)


def test_import_reports_unknown_scene_and_missing_object(tmp_path):
    make_scannet(tmp_path / "scannet", num_frames=1)
    bad = tmp_path / "ScanRefer_filtered_train.json"
    args = ["import-scannet", "--scannet-dir", str(tmp_path / "scannet"), "--out", str(tmp_path / "root")]
    bad.write_text(json.dumps([{**scanrefer_records()[0], "scene_id": "scene0999_00"}]))
    with pytest.raises(SystemExit, match=r"ScanRefer_filtered_train.json record 0: unknown scene id"):
        cli_main([*args, "--scanrefer", str(bad)])
    bad.write_text(json.dumps([{**scanrefer_records()[0], "object_id": "7"}]))
    with pytest.raises(SystemExit, match=r"record 0: object 7 not found in scene scene0000_00"):
        cli_main([*args, "--scanrefer", str(bad)])
    assert not (tmp_path / "root/scans").exists()  # nothing written before the annotations check out


def test_split_names():
    assert split_name(Path("ScanRefer_filtered_train.json")) == "train"
    assert split_name(Path("data/sr3d_test.csv")) == "sr3d_test"


def test_import_without_annotations_writes_split_all(tmp_path):
    make_scannet(tmp_path / "scannet", num_frames=1)
    lists = import_scannet(tmp_path / "scannet", tmp_path / "root", frame_stride=1)
    assert lists == {"all": [SCENE]}
    assert load_expressions(tmp_path / "root/annotations/all.json") == []
