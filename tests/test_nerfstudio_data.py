"""nerfstudio transforms.json (with depth) -> Scene: OpenGL -> OpenCV poses, intrinsics, depth units.

The fixture: an OpenGL camera 3 m above the origin with identity rotation looks straight down (-z); its
depth maps (3000 mm) see the floor z = 0. Image rows above the centre are green, below white, so points
with world y > 0 (image up) must come out green once the camera's y and z axes are flipped.
"""

import json
import logging
import re

import numpy as np
import pytest
from PIL import Image

from liftgs.data.nerfstudio_data import NerfstudioDataError, load_nerfstudio_scene, opengl_to_opencv

W, H = 8, 6
K = np.array([[8.0, 0, 4.0], [0, 8.0, 3.0], [0, 0, 1.0]])
C2W_GL = np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 3], [0, 0, 0, 1]])


def write_frame(root, name, depth_value=3000, depth_shape=(H, W), image_shape=(H, W)):
    (root / "images").mkdir(exist_ok=True)
    (root / "depth").mkdir(exist_ok=True)
    image = np.full((*image_shape, 3), 255, dtype=np.uint8)
    image[: image_shape[0] // 2] = (0, 255, 0)  # top half green
    Image.fromarray(image).save(root / f"images/{name}.png")
    Image.fromarray(np.full(depth_shape, depth_value, dtype=np.uint16)).save(root / f"depth/{name}.png")
    return {
        "file_path": f"images/{name}.png",
        "depth_file_path": f"depth/{name}.png",
        "transform_matrix": C2W_GL.tolist(),
    }


def write_transforms(root, frames, **top):
    meta = {"fl_x": 8.0, "fl_y": 8.0, "cx": 4.0, "cy": 3.0, "w": W, "h": H, "frames": frames, **top}
    (root / "transforms.json").write_text(json.dumps(meta))
    return root / "transforms.json"


def test_opengl_poses_become_opencv_and_project_into_the_image(tmp_path):
    write_transforms(tmp_path, [write_frame(tmp_path, "frame_00001")])
    scene = load_nerfstudio_scene(tmp_path, voxel_size=0.01)
    (frame,) = scene.frames
    np.testing.assert_allclose(frame.c2w, C2W_GL @ np.diag([1.0, -1, -1, 1]))
    np.testing.assert_allclose(frame.K, K)
    assert frame.K_depth is None and frame.name == "frame_00001" and scene.scene_id == tmp_path.name

    # A floor point in front of the camera (world +y = image up) lands inside the image, above centre.
    w2c = np.linalg.inv(frame.c2w)
    cam = w2c[:3, :3] @ np.array([0.3, 0.5, 0.0]) + w2c[:3, 3]
    assert cam[2] > 0
    u, v = (K @ cam)[:2] / cam[2]
    assert 0 <= u < W and 0 <= v < H and v < K[1, 2] and u > K[0, 2]

    np.testing.assert_allclose(scene.points[:, 2], 0.0, atol=1e-5)  # 3000 mm * 1e-3 below a camera at 3 m
    assert scene.num_points == W * H
    up = scene.points[:, 1] > 0
    assert up.sum() == W * H // 2
    np.testing.assert_allclose(scene.colors[up], [[0, 1, 0]] * up.sum())
    np.testing.assert_allclose(scene.colors[~up], 1.0)
    assert (scene.point_instance == -1).all() and scene.objects == {}


def test_depth_unit_scale_factor_from_file_and_argument(tmp_path):
    write_transforms(tmp_path, [write_frame(tmp_path, "a", depth_value=30000)], depth_unit_scale_factor=1e-4)
    np.testing.assert_allclose(load_nerfstudio_scene(tmp_path).points[:, 2], 0.0, atol=1e-5)
    scene = load_nerfstudio_scene(tmp_path, depth_unit_scale_factor=5e-5)  # 1.5 m deep
    np.testing.assert_allclose(scene.points[:, 2], 1.5, atol=1e-5)


def test_per_frame_intrinsics_and_depth_resolution(tmp_path):
    zoomed = {**write_frame(tmp_path, "b"), "fl_x": 16.0, "fl_y": 16.0}
    low_res_depth = write_frame(tmp_path, "c", depth_shape=(H // 2, W // 2))
    write_transforms(tmp_path, [zoomed, write_frame(tmp_path, "a"), low_res_depth])
    scene = load_nerfstudio_scene(tmp_path)
    assert [f.name for f in scene.frames] == ["a", "b", "c"]  # file_path order, as nerfstudio reads them
    np.testing.assert_allclose(scene.frames[1].K[0, 0], 16.0)
    np.testing.assert_allclose(scene.frames[0].K, K)
    np.testing.assert_allclose(scene.frames[2].K_depth, K / np.array([[2], [2], [1]]))
    np.testing.assert_allclose(scene.points[:, 2], 0.0, atol=1e-5)


def test_image_scale_keeps_depth_intrinsics(tmp_path):
    write_transforms(tmp_path, [write_frame(tmp_path, "a")])
    (frame,) = load_nerfstudio_scene(tmp_path, image_scale=0.5).frames
    assert frame.image.shape == (H // 2, W // 2, 3) and frame.depth.shape == (H, W)
    np.testing.assert_allclose(frame.K, K / np.array([[2], [2], [1]]))
    np.testing.assert_allclose(frame.K_depth, K)


def test_undo_applied_transform(tmp_path):
    applied = [[0, 1, 0, 1], [1, 0, 0, 0], [0, 0, -1, 2]]  # original -> file: z_file = 2 - z_original
    write_transforms(tmp_path, [write_frame(tmp_path, "a")], applied_transform=applied)
    np.testing.assert_allclose(load_nerfstudio_scene(tmp_path).points[:, 2], 0.0, atol=1e-5)
    scene = load_nerfstudio_scene(tmp_path, undo_applied_transform=True)
    np.testing.assert_allclose(scene.points[:, 2], 2.0, atol=1e-5)


def test_bad_frames_skipped_and_counted_in_one_line(tmp_path, caplog):
    good = write_frame(tmp_path, "a")
    missing_image = {**write_frame(tmp_path, "b"), "file_path": "images/none.png"}
    nan_pose = {**write_frame(tmp_path, "c"), "transform_matrix": np.full((4, 4), np.nan).tolist()}
    no_depth = {k: v for k, v in write_frame(tmp_path, "d").items() if k != "depth_file_path"}
    zero_depth = write_frame(tmp_path, "e", depth_value=0)
    wrong_size = write_frame(tmp_path, "f", image_shape=(H + 2, W))
    corrupt = write_frame(tmp_path, "g")
    (tmp_path / "depth/g.png").write_bytes(b"garbage")
    write_transforms(tmp_path, [good, missing_image, nan_pose, no_depth, zero_depth, wrong_size, corrupt])
    with caplog.at_level(logging.WARNING, logger="liftgs.data.nerfstudio_data"):
        scene = load_nerfstudio_scene(tmp_path)
    assert [f.name for f in scene.frames] == ["a"]
    (line,) = [m for m in caplog.messages if re.search(r"skipped \d+ of \d+ frames", m)]
    assert "skipped 6 of 7 frames" in line
    for part in (
        "1 missing color image",
        "1 non-finite pose",
        "1 no depth_file_path",
        "1 all-zero depth",
        "1 image size differs from w x h",
        "1 unreadable depth",
    ):
        assert part in line


def test_structural_errors_name_the_file(tmp_path):
    frame = write_frame(tmp_path, "a")
    path = write_transforms(tmp_path, [{**frame, "transform_matrix": np.full((4, 4), np.inf).tolist()}])
    with pytest.raises(
        NerfstudioDataError, match="no usable frame among 1 in .*transforms.json .1 non-finite pose"
    ) as e:
        load_nerfstudio_scene(tmp_path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    write_transforms(tmp_path, [frame], camera_model="OPENCV_FISHEYE")
    with pytest.raises(NerfstudioDataError, match="camera_model 'OPENCV_FISHEYE' is not supported"):
        load_nerfstudio_scene(tmp_path)
    write_transforms(tmp_path, [frame], fl_x=None)
    with pytest.raises(NerfstudioDataError, match="transforms.json: frame 0 has no fl_x"):
        load_nerfstudio_scene(tmp_path)
    with pytest.raises(NerfstudioDataError, match="transforms file not found"):
        load_nerfstudio_scene(tmp_path / "elsewhere")


def test_distortion_is_reported(tmp_path, caplog):
    write_transforms(tmp_path, [write_frame(tmp_path, "a")], k1=0.1)
    with caplog.at_level(logging.WARNING, logger="liftgs.data.nerfstudio_data"):
        load_nerfstudio_scene(tmp_path)
    assert any("distortion coefficients are ignored" in m for m in caplog.messages)


def test_opengl_to_opencv_flips_camera_y_and_z():
    c2w = np.eye(4)
    c2w[:3, 3] = (1, 2, 3)
    converted = opengl_to_opencv(c2w)
    np.testing.assert_allclose(converted[:3, 3], (1, 2, 3))  # same camera centre
    np.testing.assert_allclose(converted[:3, 2], (0, 0, -1))  # OpenCV forward = OpenGL -z
    np.testing.assert_allclose(converted[:3, 1], (0, -1, 0))  # OpenCV down = OpenGL -y
