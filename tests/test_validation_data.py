"""Bad dataset files and interrupted generation: one-line errors, counted skips, resumable runs."""

from __future__ import annotations

import numpy as np
import pytest
import tyro

from liftgs.atomic import is_temporary
from liftgs.data import DatasetError, default_dataset_root
from liftgs.data.dataset import GroundingDataset
from liftgs.data.lifting import lift_frames
from liftgs.data.point_features import LIFTED_FILE
from liftgs.data.store import load_scene, write_depth_png, write_points_ply, write_scene
from liftgs.data.synthetic import generate
from liftgs.data.synthetic.generate import GenerateCommand
from liftgs.scene import Frame
from tests.support.scenes import toy_scene

TINY = {"image_width": 32, "image_height": 24, "num_views": 6, "voxel_size": 0.1}
"""``liftgs generate`` flags of a tiny dataset."""


def _half_size_depth(scene_dir, scene) -> None:
    """Rewrites every depth map at half the color images' resolution."""
    for frame in scene.frames:
        write_depth_png(scene_dir / f"depth/{frame.name}.png", frame.depth[::2, ::2])


def test_depth_of_another_size_needs_depth_intrinsics(tmp_path):
    scene = toy_scene(num_frames=2, height=24, width=32)
    scene_dir = tmp_path / scene.scene_id
    write_scene(scene, scene_dir)
    _half_size_depth(scene_dir, scene)
    K_depth = scene.frames[0].K.copy()
    K_depth[:2] /= 2  # the same camera at half the resolution
    np.savetxt(scene_dir / "intrinsic/intrinsic_depth.txt", np.pad(K_depth, (0, 1)))
    frame = load_scene(scene_dir).frames[0]
    assert frame.depth.shape == (12, 16)
    np.testing.assert_allclose(frame.depth_intrinsics, K_depth)

    (scene_dir / "intrinsic/intrinsic_depth.txt").unlink()
    with pytest.raises(DatasetError) as raised:
        load_scene(scene_dir)
    message = str(raised.value)
    assert "16x12 depth map for a 32x24 color image" in message and "intrinsic_depth.txt" in message
    assert "\n" not in message


def test_a_frame_never_reads_depth_with_the_color_intrinsics_of_another_size():
    image = np.zeros((24, 32, 3), np.uint8)
    frame = Frame("0", image, np.ones((12, 16), np.float32), np.eye(3), np.eye(4))
    with pytest.raises(ValueError, match="no depth intrinsics"):
        lift_frames([frame], 0.1)
    frame.K_depth = np.eye(3)
    assert lift_frames([frame], 0.1)[0].shape[1] == 3


def test_empty_point_cloud_is_a_one_line_dataset_error(tmp_path):
    scene = toy_scene(num_frames=1, height=24, width=32)
    scene_dir = tmp_path / scene.scene_id
    write_scene(scene, scene_dir)
    write_points_ply(scene_dir / f"{scene.scene_id}_points.ply", np.zeros((0, 3)), np.zeros((0, 3)), [])
    with pytest.raises(DatasetError, match="point cloud has no points"):
        load_scene(scene_dir, load_frames=False)


def test_interrupted_generate_is_never_read_as_a_dataset_and_the_same_command_finishes_it(
    tmp_path, monkeypatch, capsys
):
    out = tmp_path / "data"
    command = GenerateCommand(out=out, num_scenes=3, seed=2, workers=1, **TINY)
    written = []
    real = generate._generate_and_write

    def killed_after_one(root, seed, index, options):
        if written:
            raise KeyboardInterrupt
        written.append(real(root, seed, index, options))
        return written[-1]

    monkeypatch.setattr(generate, "_generate_and_write", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        command.main()
    assert sorted(p.name for p in (out / "scans").iterdir()) == ["scan0000"]  # whole scenes only
    with pytest.raises(DatasetError, match=r"has not finished .* run `liftgs generate --out") as raised:
        GroundingDataset(out, "train")
    advice = str(raised.value).split("`")[-2]  # the command the error prints
    assert tyro.cli(GenerateCommand, args=[*advice.split()[2:], "--workers", "1"]) == command

    monkeypatch.setattr(generate, "_generate_and_write", real)
    command.main()
    assert "resuming" in capsys.readouterr().out
    assert GroundingDataset(out, "train").scene_ids == ["scan0000", "scan0001", "scan0002"]
    assert not [p for p in out.rglob("*") if is_temporary(p)]
    assert not list(out.glob(f"scans/*/{LIFTED_FILE}"))  # generating never lifts features

    fresh = tmp_path / "fresh"
    GenerateCommand(out=fresh, num_scenes=3, seed=2, workers=1, **TINY).main()
    for path in fresh.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (out / path.relative_to(fresh)).read_bytes(), path

    with pytest.raises(
        SystemExit, match=r"^liftgs generate: .* holds another dataset .*--seed 2 .*--overwrite"
    ):
        GenerateCommand(out=out, num_scenes=3, seed=3, workers=1, **TINY).main()
    with pytest.raises(SystemExit, match="is a file"):
        GenerateCommand(out=out / "meta.json", num_scenes=1, **TINY).main()


def test_default_dataset_root_generates_scenes_and_lifts_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("LIFTGS_DATA", str(tmp_path / "cache"))
    root = default_dataset_root(scene_ids=["scan0008"])  # a val scene
    assert (root / "scans/scan0008").is_dir()
    assert not list(root.rglob(LIFTED_FILE))
    assert load_scene(root / "scans/scan0008", load_frames=False).point_features is None
