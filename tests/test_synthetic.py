"""The synthetic benchmark generator: determinism, scene content, lifting, rendering, the CLI."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tyro
from trimesh.ray.ray_pyembree import RayMeshIntersector

from liftgs.data import DatasetError, default_dataset_root
from liftgs.data.store import load_scene
from liftgs.data.synthetic.camera_path import HEIGHT_RANGE, intrinsics, look_at
from liftgs.data.synthetic.generate import (
    DatasetSpec,
    GenerateCommand,
    SceneOptions,
    ensure_dataset,
    generate_scene,
    room_shapes,
    split_of,
)
from liftgs.data.synthetic.layout import HELD_OUT_ROOM_SHAPES, sample_layout, sample_room
from liftgs.data.synthetic.objects import CATEGORIES, COLORS, box
from liftgs.data.synthetic.raycast import SceneRaycaster

TINY = SceneOptions(image_width=48, image_height=36, num_views=10, max_objects=8, min_pixels=6)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "a"
    ensure_dataset(
        root, spec=DatasetSpec(seed=3, num_scenes=10, options=TINY), scene_ids=["scan0000", "scan0009"]
    )
    return root


def test_generation_is_deterministic_per_seed_and_scene(tiny_root, tmp_path):
    spec = DatasetSpec(seed=3, num_scenes=10, options=TINY)
    # A different subset, generated in another order, gives byte-identical scene folders.
    ensure_dataset(tmp_path / "b", spec=spec, scene_ids=["scan0009"], progress=False)
    ensure_dataset(tmp_path / "b", scene_ids=["scan0000"], progress=False)
    assert tree(tmp_path / "b") == tree(tiny_root)
    ensure_dataset(tmp_path / "c", spec=DatasetSpec(4, 10, TINY), scene_ids=["scan0000"], progress=False)
    assert tree(tmp_path / "c/scans/scan0000") != tree(tiny_root / "scans/scan0000")
    with pytest.raises(DatasetError, match="generated with"):
        ensure_dataset(tmp_path / "c", spec=spec, scene_ids=["scan0001"], progress=False)


def test_dataset_root_layout_and_index(tiny_root):
    meta = json.loads((tiny_root / "meta.json").read_text())
    assert meta["seed"] == 3 and meta["num_scenes"] == 10 and not meta["complete"]
    assert meta["scenes"] == {"train": 1, "val": 0, "test": 1}
    assert (tiny_root / "splits/train.txt").read_text() == "scan0000\n"
    assert (tiny_root / "splits/test.txt").read_text() == "scan0009\n"
    scene_dir = tiny_root / "scans/scan0000"
    names = ["color/0.png", "depth/9.png", "pose/0.txt", "instance/0.png", "scan0000_points.ply"]
    names += ["intrinsic/intrinsic_color.txt", "intrinsic/intrinsic_depth.txt", "objects.json"]
    for name in names:
        assert (scene_dir / name).is_file(), name
    records = json.loads((tiny_root / "annotations/test.json").read_text())
    assert records and {r["scene_id"] for r in records} == {"scan0009"}
    assert {"object_id", "object_name", "ann_id", "description", "token", "eval_type"} <= set(records[0])
    assert [split_of(i) for i in range(10)] == ["train"] * 8 + ["val", "test"]


def test_scene_frames_are_posed_inside_the_room_and_see_every_object(tiny_root):
    scene = load_scene(tiny_root / "scans/scan0000")
    info = json.loads((tiny_root / "scans/scan0000/scene_meta.json").read_text())
    outline = np.array(info["room_outline"])
    assert len(scene.frames) == TINY.num_views
    for frame in scene.frames:
        assert frame.image.shape == (TINY.image_height, TINY.image_width, 3)
        eye = frame.c2w[:3, 3]
        assert HEIGHT_RANGE[0] - 1e-6 <= eye[2] <= HEIGHT_RANGE[1] + 1e-6
        assert (outline.min(axis=0) < eye[:2]).all() and (eye[:2] < outline.max(axis=0)).all()
        np.testing.assert_allclose(frame.c2w[:3, :3] @ frame.c2w[:3, :3].T, np.eye(3), atol=1e-6)
        assert (frame.depth > 0).mean() > 0.5
    seen = set(np.unique(np.concatenate([f.instance.ravel() for f in scene.frames])))
    assert set(scene.objects) <= seen


def test_lifted_point_instances_agree_with_object_boxes(tiny_root):
    scene = load_scene(tiny_root / "scans/scan0009", load_frames=False)
    tolerance = TINY.voxel_size  # a voxel's mean may sit up to a voxel outside its majority object's box
    for obj in scene.objects.values():
        points = scene.points[scene.point_instance == obj.object_id]
        assert len(points) > 0, obj.name
        inside = ((points >= obj.box[:3] - tolerance) & (points <= obj.box[3:] + tolerance)).all(axis=1)
        assert inside.mean() > 0.99, (obj.name, inside.mean())
    # The lifted cloud stays inside the room's walls and on or above the floor.
    assert scene.points[:, 2].min() > -0.03
    assert set(np.unique(scene.point_instance)) == set(scene.objects) | {-1}


def test_layout_content_statistics():
    layouts = [sample_layout(np.random.default_rng([7, i])) for i in range(30)]
    assert len(CATEGORIES) >= 15 and len(COLORS) == 10
    categories, shapes, multiple, total = Counter(), Counter(), 0, 0
    for layout in layouts:
        assert 5 <= len(layout.objects) <= 12
        assert [o.object_id for o in layout.objects] == list(range(len(layout.objects)))
        counts = Counter(o.category for o in layout.objects)
        categories.update(counts)
        shapes[layout.room.shape] += 1
        multiple += sum(c for c in counts.values() if c > 1)
        total += len(layout.objects)
        for obj in layout.objects:
            assert obj.color in COLORS
            assert layout.room.contains(obj.footprint(), margin=0.0)
            if obj.support_id is not None:  # stands on its supporter's top
                host = layout.by_id(obj.support_id)
                assert CATEGORIES[host.category].supports
                assert obj.box[2] == pytest.approx(host.box[5], abs=1e-6)
        floor = [o for o in layout.objects if o.support_id is None]
        gaps = layout.gaps[np.ix_([o.object_id for o in floor], [o.object_id for o in floor])]
        assert (gaps[~np.eye(len(floor), dtype=bool)] > 0).all()  # floor footprints never overlap
    assert len(categories) >= 15
    assert multiple / total > 0.4  # same-category distractors are frequent
    assert set(shapes) == {"rectangle", "L"} and not set(shapes) & set(HELD_OUT_ROOM_SHAPES)


def test_only_the_test_split_uses_held_out_room_shapes():
    shapes = Counter(sample_room(np.random.default_rng([1, i]), room_shapes("test")).shape for i in range(30))
    assert set(shapes) == {"rectangle", "L", "T"}
    assert set(room_shapes("train")) == set(room_shapes("val")) == {"rectangle", "L"}


def test_raycaster_uses_embree_and_measures_z_depth():
    floor = box([4.0, 4.0, 0.1], [0.0, 0.0, -0.05], (0.5, 0.5, 0.5))
    raycaster = SceneRaycaster([(floor, 3)], light_direction=np.array([0.0, 0.0, 1.0]))
    assert isinstance(raycaster.intersector, RayMeshIntersector)  # trimesh's Embree (embreex) backend
    K = intrinsics(32, 24, 60.0)
    c2w = np.diag([1.0, -1.0, -1.0, 1.0])  # looking straight down (OpenCV z = world -z)
    c2w[2, 3] = 1.5
    view = raycaster.render(K, c2w, 32, 24)
    np.testing.assert_allclose(view.depth, 1.5, rtol=0, atol=1e-5)  # z-depth, not ray length
    assert (view.instance == 3).all()
    # Facing the light head-on: ambient + diffuse + head-light terms on a 0.5 albedo, clipped at 1.
    assert view.image.min() > 0.5 * 255 * 0.9 and view.image.std() < 2


def test_look_at_is_an_opencv_camera():
    eye, target = np.array([1.0, 2.0, 1.5]), np.array([3.0, 2.0, 0.5])
    c2w = look_at(eye, target)
    forward = (target - eye) / np.linalg.norm(target - eye)
    np.testing.assert_allclose(c2w[:3, 2], forward, atol=1e-12)  # z forward
    assert c2w[2, 1] < 0 and abs(c2w[2, 0]) < 1e-12  # y points down, x stays level (no roll)
    assert np.linalg.det(c2w[:3, :3]) == pytest.approx(1.0)


def test_cli_refuses_to_overwrite_and_parses(tmp_path):
    dataset = tmp_path / "data"
    dataset.mkdir()
    (dataset / "meta.json").write_text("{}")
    with pytest.raises(SystemExit, match="--overwrite"):
        GenerateCommand(out=dataset, num_scenes=1).main()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="not a liftgs dataset"):
        GenerateCommand(out=other, num_scenes=1, overwrite=True).main()
    assert (other / "notes.txt").exists()
    command = tyro.cli(GenerateCommand, args=["--out", str(dataset), "--num-scenes", "7", "--seed", "5"])
    assert (command.num_scenes, command.seed, command.overwrite) == (7, 5, False)


def test_cli_generates_and_overwrites(tmp_path):
    out = tmp_path / "data"
    args = dict(out=out, num_scenes=1, seed=1, workers=1, image_width=40, image_height=30, num_views=12)
    GenerateCommand(**args).main()
    first = tree(out)
    GenerateCommand(**args, overwrite=True).main()
    assert tree(out) == first and "scans/scan0000/color/11.png" in first


def test_default_dataset_root_generates_a_subset_on_demand(dataset_root):
    with pytest.raises(DatasetError, match="missing"):
        default_dataset_root(generate_if_missing=False, scene_ids=["scan0000"])
    root = default_dataset_root(scene_ids=["scan0000"])
    assert root == dataset_root
    assert sorted(p.name for p in (root / "scans").iterdir()) == ["scan0000"]
    assert default_dataset_root(generate_if_missing=False, scene_ids=["scan0000"]) == root
    with pytest.raises(DatasetError, match="scan9999"):
        default_dataset_root(scene_ids=["scan9999"])
    with pytest.raises(DatasetError, match="unknown scene id"):
        default_dataset_root(scene_ids=["scene0000_00"])


def test_generate_scene_rejects_bad_options():
    with pytest.raises(ValueError):
        SceneOptions(num_views=0)
    with pytest.raises(ValueError):
        generate_scene(0, 0, SceneOptions(min_objects=6, max_objects=5))
