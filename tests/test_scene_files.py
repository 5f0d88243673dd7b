"""Scenes people bring: every layout loads to the same scene in the network frame; exports and bad input."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.recfunctions import repack_fields
from plyfile import PlyData, PlyElement

from liftgs.benchmarks.scene_file import gaussian_vertices, synthetic_room
from liftgs.scene_files import (
    SceneFileError,
    SceneTransform,
    load_scene_file,
    write_scored_scene,
    write_selected_splats,
)
from liftgs.scene_files.frame import ROOM_HEIGHT, up_rotation
from liftgs.scene_files.rotation import (
    quaternion_from_matrix,
    quaternion_multiply,
    quaternion_to_matrix,
    rotate_sh_rest,
    sh_basis,
)

ROOM_POINTS = 3000
FLOATERS = 60
OFFSET = np.array([2.0, -3.0, 0.4])  # the reference file's frame: the room shifted, z up, metres
Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # z-up -> y-up file axes
Y_DOWN = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # z-up -> y-down (COLMAP)
SCANNET_FACES = np.array([(np.array([0, 1, 2], dtype=np.int32),)], dtype=[("vertex_indices", "O")])


@pytest.fixture(scope="module")
def room():
    """Reference scene: room points in the reference frame, colors, and floater rows after them."""
    rng = np.random.default_rng(1)
    points, colors = synthetic_room(ROOM_POINTS, seed=1)
    floaters = rng.random((FLOATERS, 3)) * [6.0, 5.0, 8.0] + [0.0, 0.0, 3.0]
    means = np.concatenate([points, floaters]) + OFFSET
    colors = np.concatenate([colors, rng.random((FLOATERS, 3))])
    logits = np.r_[np.full(ROOM_POINTS, 2.0), np.full(FLOATERS, -4.0)]  # floaters: sigmoid < 0.1
    quats = rng.normal(size=(means.shape[0], 4))
    return {
        "means": means,
        "colors": colors,
        "logits": logits,
        "log_scales": np.log(rng.uniform(0.01, 0.03, means.shape)),
        "quats": quats / np.linalg.norm(quats, axis=1, keepdims=True),
        "rest": rng.normal(scale=0.1, size=(means.shape[0], 45)),
    }


def _write(path: Path, vertices: np.ndarray, *others: PlyElement, text: bool = False) -> Path:
    PlyData([PlyElement.describe(vertices, "vertex"), *others], text=text, byte_order="<").write(str(path))
    return path


def _gaussians(room, frame=None, unit=1.0, rest=True) -> np.ndarray:
    frame = np.eye(3) if frame is None else frame
    return gaussian_vertices(
        unit * room["means"] @ frame.T,
        room["colors"],
        room["logits"],
        room["log_scales"] + np.log(unit),
        quaternion_multiply(quaternion_from_matrix(frame), room["quats"]),
        room["rest"] if rest else None,
    )


def _points(room, names=("red", "green", "blue"), kind="u1", scale=255.0) -> np.ndarray:
    means = room["means"][:ROOM_POINTS]
    vertices = np.empty(ROOM_POINTS, dtype=[(a, "<f4") for a in "xyz"] + [(n, kind) for n in names])
    for axis, name in enumerate("xyz"):
        vertices[name] = means[:, axis]
    colors = room["colors"][:ROOM_POINTS] * scale
    for channel, name in enumerate(names):
        vertices[name] = np.round(colors[:, channel]) if kind == "u1" else colors[:, channel]
    return vertices


def _reference_network(room, tmp_path):
    scene = load_scene_file(_write(tmp_path / "reference.ply", _gaussians(room)))
    return scene, scene.transform.to_network(scene.splats.means[:ROOM_POINTS])


def _splatfacto_run(folder: Path, room, method="splatfacto", transforms=True) -> Path:
    """A run folder whose checkpoint holds the room in a normalised frame (rotation, shift, scale)."""
    rotation = quaternion_to_matrix(np.array([0.9, 0.2, -0.3, 0.25]))
    shift, scale = np.array([0.3, -0.1, 0.2]), 0.37
    folder.mkdir(parents=True)
    (folder / "config.yml").write_text(
        "!!python/object:nerfstudio.engine.trainer.TrainerConfig\n"
        "_target: !!python/name:nerfstudio.engine.trainer.Trainer ''\n"
        f"method_name: {method}\n"
        "relative_model_dir: !!python/object/apply:pathlib.PosixPath\n- nerfstudio_models\n"
    )
    if transforms:
        transform = np.concatenate([rotation, shift[:, None]], axis=1)
        (folder / "dataparser_transforms.json").write_text(
            json.dumps({"transform": transform.tolist(), "scale": scale})
        )
    count = room["means"].shape[0]
    rest = room["rest"].reshape(count, 3, 15).transpose(0, 2, 1)  # INRIA channel-major -> [N, 15, 3]
    gauss = {
        "means": scale * (room["means"] @ rotation.T + shift),
        "features_dc": (room["colors"] - 0.5) / 0.28209479177387814,
        "features_rest": rotate_sh_rest(rest, rotation),
        "opacities": room["logits"][:, None],
        "scales": room["log_scales"] + np.log(scale),
        "quats": quaternion_multiply(quaternion_from_matrix(rotation), room["quats"]),
    }
    pipeline = {f"_model.gauss_params.{k}": torch.tensor(v, dtype=torch.float32) for k, v in gauss.items()}
    (folder / "nerfstudio_models").mkdir()
    torch.save({"step": 100, "pipeline": pipeline}, folder / "nerfstudio_models" / "step-000000100.ckpt")
    torch.save({"step": 5, "pipeline": {}}, folder / "nerfstudio_models" / "step-000000005.ckpt")  # older
    return folder


def _variants(room, tmp_path) -> dict[str, Path]:
    faces = PlyElement.describe(SCANNET_FACES, "face")
    return {
        "3dgs y-up": _write(tmp_path / "y_up.ply", _gaussians(room, Y_UP)),
        "3dgs y-down": _write(tmp_path / "y_down.ply", _gaussians(room, Y_DOWN)),
        "3dgs millimetres, no f_rest": _write(tmp_path / "mm.ply", _gaussians(room, unit=1000.0, rest=False)),
        "points uint8": _write(tmp_path / "uchar.ply", _points(room)),
        "points float 0-1, r g b": _write(tmp_path / "f01.ply", _points(room, ("r", "g", "b"), "<f4", 1.0)),
        "points float 0-255, ascii": _write(tmp_path / "f255.ply", _points(room, kind="<f4"), text=True),
        "scannet mesh": _write(tmp_path / "scene0000_00_vh_clean_2.ply", _points(room), faces),
        "splatfacto run": _splatfacto_run(tmp_path / "outputs/room/splatfacto/2026", room),
    }


def test_every_layout_loads_to_the_same_scene_in_the_network_frame(room, tmp_path):
    reference, expected = _reference_network(room, tmp_path)
    assert reference.transform.up == "+z" and reference.transform.scale_source == "metres"
    np.testing.assert_allclose(expected[:, 2].min(), 0.0, atol=0.03)  # floor at z = 0
    for name, path in _variants(room, tmp_path).items():
        scene = load_scene_file(path)
        got = scene.transform.to_network(scene.splats.means[:ROOM_POINTS])
        np.testing.assert_allclose(got, expected, atol=2e-4, err_msg=name)
        np.testing.assert_allclose(scene.splats.colors[:ROOM_POINTS], room["colors"][:ROOM_POINTS], atol=3e-3)
        distance = np.linalg.norm(scene.network_points[:, None] - reference.network_points[None], axis=2)
        assert distance.min(axis=1).max() < 0.05, name  # the same network input, voxel for voxel
    assert load_scene_file(tmp_path / "y_up.ply").transform.up == "+y"
    assert load_scene_file(tmp_path / "y_down.ply").transform.up == "-y"
    assert load_scene_file(tmp_path / "mm.ply").transform.scale_source == "millimetres"


def test_splatfacto_run_is_back_in_its_capture_frame(room, tmp_path):
    run = _splatfacto_run(tmp_path / "run", room)
    for path in (run, run / "config.yml"):
        scene = load_scene_file(path)
        assert scene.splats.layout == "splatfacto"
        vertices = scene.splats.ply["vertex"].data
        original = _gaussians(room)
        for name in ("x", "y", "z", "scale_0", "scale_2", "opacity", "f_dc_1", "f_rest_0", "f_rest_44"):
            np.testing.assert_allclose(vertices[name], original[name], atol=2e-4, err_msg=name)
        quats = np.stack([vertices[f"rot_{k}"] for k in range(4)], axis=1)
        np.testing.assert_allclose(np.abs(np.sum(quats * room["quats"], axis=1)), 1.0, atol=1e-5)


def test_floaters_are_shown_but_not_read_and_every_splat_maps_to_its_voxel(room, tmp_path):
    scene = load_scene_file(_write(tmp_path / "s.ply", _gaussians(room)), max_points=10_000)
    assert len(scene.splats) == ROOM_POINTS + FLOATERS
    floater = np.arange(len(scene.splats)) >= ROOM_POINTS
    np.testing.assert_array_equal(scene.splats.network_mask, ~floater)
    np.testing.assert_array_equal(scene.splat_to_network_voxel[floater], -1)
    index = scene.splat_to_network_voxel[~floater]
    assert index.min() >= 0 and np.bincount(index).min() >= 1  # every network point has its splats
    network = scene.transform.to_network(scene.splats.means[~floater])
    assert np.abs(network - scene.network_points[index]).max() <= 0.05 * np.sqrt(3)  # same voxel
    per_splat = scene.network.to_splats(np.arange(len(scene.network_points)), fill=-7)
    np.testing.assert_array_equal(per_splat[~floater], index)
    np.testing.assert_array_equal(per_splat[floater], -7)


def test_point_budget_caps_the_network_input_and_keeps_every_splat_mapped(room, tmp_path):
    full = load_scene_file(_write(tmp_path / "s.ply", _gaussians(room)))
    capped = load_scene_file(tmp_path / "s.ply", max_points=200)
    assert len(full.network_points) > 200 and len(capped.network_points) == 200
    index = capped.splat_to_network_voxel[:ROOM_POINTS]
    assert index.min() >= 0 and len(np.unique(index)) == 200


def test_transform_maps_answers_back_to_the_file_frame(room, tmp_path):
    scene = load_scene_file(_write(tmp_path / "mm.ply", _gaussians(room, Y_UP, unit=1000.0)))
    transform = scene.transform
    assert (transform.up, transform.scale, transform.scale_source) == ("+y", 0.001, "millimetres")
    points = np.random.default_rng(0).normal(size=(20, 3))
    np.testing.assert_allclose(transform.to_file(transform.to_network(points)), points, atol=1e-9)
    homogeneous = np.c_[points, np.ones(20)] @ transform.matrix.T
    np.testing.assert_allclose(homogeneous[:, :3], transform.to_network(points), atol=1e-9)
    box = np.array([0.5, -1.0, 0.0, 1.5, 0.2, 0.8])
    corners = transform.box_to_file(box)
    back = transform.to_network(corners)
    np.testing.assert_allclose(back.min(axis=0), box[:3], atol=1e-9)
    np.testing.assert_allclose(back.max(axis=0), box[3:], atol=1e-9)
    again = SceneTransform.from_json(json.loads(json.dumps(transform.to_json())))
    np.testing.assert_allclose(again.matrix, transform.matrix)
    assert (again.up, again.scale_source) == ("+y", "millimetres")
    means, scales, quats = transform.to_network_gaussians(
        scene.splats.means, scene.splats.scales, scene.splats.quats
    )
    np.testing.assert_allclose(scales, np.exp(room["log_scales"]), rtol=1e-5)
    np.testing.assert_allclose(np.abs(np.sum(quats * room["quats"], axis=1)), 1.0, atol=1e-5)


def test_explicit_up_and_scale_and_the_room_height_rule(room, tmp_path):
    path = _write(tmp_path / "cube.ply", _gaussians(room, unit=0.25))  # a normalised cube: no unit fits
    auto = load_scene_file(path)
    assert auto.transform.scale_source == "room height"
    heights = auto.transform.to_network(auto.splats.means[:ROOM_POINTS])[:, 2]
    np.testing.assert_allclose(np.percentile(heights, 99), ROOM_HEIGHT, atol=0.02)
    given = load_scene_file(path, up="z", scale="4")
    _, expected = _reference_network(room, tmp_path)
    np.testing.assert_allclose(
        given.transform.to_network(given.splats.means[:ROOM_POINTS]), expected, atol=2e-4
    )
    with pytest.raises(ValueError, match="up must be one of"):
        load_scene_file(path, up="w")
    with pytest.raises(ValueError, match="scale must be"):
        load_scene_file(path, scale="-2")


def test_up_rotations_are_proper():
    for up in ("+x", "-x", "+y", "-y", "+z", "-z"):
        rotation = up_rotation(up)
        axis = np.zeros(3)
        axis["xyz".index(up[1])] = 1.0 if up[0] == "+" else -1.0
        np.testing.assert_allclose(rotation @ axis, [0.0, 0.0, 1.0])
        assert np.isclose(np.linalg.det(rotation), 1.0)


def test_rotated_sh_color_follows_the_frame():
    rotation = quaternion_to_matrix(np.array([0.3, -0.5, 0.7, 0.2]))
    coefficients = np.random.default_rng(0).normal(size=(4, 15, 3))
    rotated = rotate_sh_rest(coefficients, rotation)
    directions = np.random.default_rng(1).normal(size=(10, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    before = np.einsum("mk,nkc->nmc", sh_basis(directions, 3)[:, 1:], coefficients)
    after = np.einsum("mk,nkc->nmc", sh_basis(directions @ rotation.T, 3)[:, 1:], rotated)
    np.testing.assert_allclose(after, before, atol=1e-9)  # f'(R d) = f(d)


def test_scored_export_keeps_every_original_value_and_adds_two_properties(room, tmp_path):
    vertices = _gaussians(room)
    vertices["x"][5] = np.nan
    vertices["rot_2"][9] = np.inf
    source = _write(tmp_path / "s.ply", vertices)
    scene = load_scene_file(source)
    assert len(scene.splats) == len(vertices) - 2
    scores = np.linspace(0.0, 1.0, len(scene.splats))
    mask = scores > 0.5
    out = tmp_path / "scored.ply"
    write_scored_scene(scene.splats, out, scores, mask)
    written = PlyData.read(str(out))["vertex"].data
    for name in vertices.dtype.names:
        np.testing.assert_array_equal(written[name], vertices[name], err_msg=name)  # NaN rows kept too
    assert written.dtype.names[-2:] == ("liftgs_score", "liftgs_mask")
    assert written.dtype["liftgs_score"] == np.float32 and written.dtype["liftgs_mask"] == np.uint8
    rows = scene.splats.file_rows
    np.testing.assert_array_equal(written["liftgs_score"][rows], scores.astype(np.float32))
    np.testing.assert_array_equal(written["liftgs_mask"][rows], mask)
    assert (
        written["liftgs_score"][[5, 9]].tolist() == [0.0, 0.0] and written["liftgs_mask"][[5, 9]].sum() == 0
    )
    rescored = load_scene_file(out)  # the added properties are ignored on reading ...
    np.testing.assert_array_equal(rescored.splats.means, scene.splats.means)
    write_scored_scene(rescored.splats, out, 1.0 - scores, ~mask)  # ... and replaced, not repeated
    again = PlyData.read(str(out))["vertex"].data
    assert again.dtype.names == written.dtype.names
    np.testing.assert_array_equal(again["liftgs_mask"][rows], ~mask)


def test_selected_export_is_a_standard_3dgs_file_of_the_subset(room, tmp_path):
    scene = load_scene_file(_write(tmp_path / "s.ply", _gaussians(room)))
    mask = scene.splats.means[:, 2] > OFFSET[2] + 0.5  # walls, boxes' upper parts, floaters
    count = write_selected_splats(scene.splats, tmp_path / "subset.ply", mask)
    assert count == mask.sum() > 0
    subset = PlyData.read(str(tmp_path / "subset.ply"))["vertex"].data
    original = _gaussians(room)[mask]
    assert subset.dtype.names == original.dtype.names
    for name in original.dtype.names:
        np.testing.assert_array_equal(subset[name], original[name])
    assert load_scene_file(tmp_path / "subset.ply").splats.layout == "3dgs"


def test_point_cloud_and_mesh_exports_keep_their_layout(room, tmp_path):
    faces = PlyElement.describe(SCANNET_FACES, "face")
    scene = load_scene_file(_write(tmp_path / "mesh.ply", _points(room), faces))
    assert scene.splats.layout == "point_cloud" and scene.splats.opacities is None
    mask = np.zeros(ROOM_POINTS, dtype=bool)
    mask[:10] = True
    write_scored_scene(scene.splats, tmp_path / "scored.ply", mask.astype(float), mask)
    written = PlyData.read(str(tmp_path / "scored.ply"))
    assert written["face"].count == 1 and list(written["face"].data["vertex_indices"][0]) == [0, 1, 2]
    assert written["vertex"].data["red"].dtype == np.uint8
    np.testing.assert_array_equal(written["vertex"].data["liftgs_mask"], mask)
    assert write_selected_splats(scene.splats, tmp_path / "subset.ply", mask) == 10
    assert PlyData.read(str(tmp_path / "subset.ply"))["vertex"].data.dtype.names == (
        "x",
        "y",
        "z",
        "red",
        "green",
        "blue",
    )


def _bad_inputs(room, tmp_path) -> dict[str, tuple[Path, str]]:
    no_rot = _gaussians(room)
    no_rot = no_rot[[name for name in no_rot.dtype.names if not name.startswith("rot_")]]
    no_color = np.empty(10, dtype=[(a, "<f4") for a in "xyz"])
    no_color[:] = 0.0
    faces = PlyElement.describe(SCANNET_FACES, "face")
    all_nan = _gaussians(room)[:5]
    all_nan["y"] = np.nan
    not_yaml = tmp_path / "notes.txt"
    not_yaml.write_text("hello\n")
    return {
        "missing property": (_write(tmp_path / "a.ply", repack_fields(no_rot)), "rot_0"),
        "zero splats": (_write(tmp_path / "b.ply", _gaussians(room)[:0]), "zero vertices"),
        "mesh without colors": (_write(tmp_path / "c.ply", no_color, faces), "mesh without vertex colors"),
        "all rows NaN": (_write(tmp_path / "d.ply", all_nan), "non-finite"),
        "not splatfacto": (_splatfacto_run(tmp_path / "nerfacto", room, method="nerfacto"), "not splatfacto"),
        "no transforms": (_splatfacto_run(tmp_path / "nt", room, transforms=False), "dataparser_transforms"),
        "no checkpoint": (tmp_path / "empty", "config.yml"),
        "not a scene": (not_yaml, "neither a PLY"),
        "missing": (tmp_path / "nothing.ply", "no such file"),
    }


def test_each_bad_input_is_one_line_and_nothing_is_written(room, tmp_path):
    (tmp_path / "empty").mkdir()
    for name, (path, expected) in _bad_inputs(room, tmp_path).items():
        with pytest.raises(SceneFileError) as caught:
            load_scene_file(path)
        message = str(caught.value)
        assert expected in message and "\n" not in message, (name, message)
    scene = load_scene_file(_write(tmp_path / "ok.ply", _gaussians(room)))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match="values for"):
        write_scored_scene(scene.splats, tmp_path / "out.ply", np.zeros(3), np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="empty"):
        write_selected_splats(scene.splats, tmp_path / "out.ply", np.zeros(len(scene.splats), dtype=bool))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_non_finite_rows_are_dropped_with_a_counted_warning(room, tmp_path, caplog):
    vertices = _gaussians(room)
    vertices["opacity"][[3, 4, 7]] = np.nan
    with caplog.at_level(logging.WARNING):
        scene = load_scene_file(_write(tmp_path / "s.ply", vertices))
    assert len(scene.splats) == len(vertices) - 3
    assert "dropped 3 of" in caplog.text
    assert not np.isin([3, 4, 7], scene.splats.file_rows).any()


def test_data_layer_modules_do_not_import_torch_at_module_level():
    package = Path(__file__).parents[1] / "liftgs/scene_files"
    for path in package.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            names = [alias.name for alias in getattr(node, "names", [])] + [getattr(node, "module", "") or ""]
            assert not any(name.split(".")[0] == "torch" for name in names), path.name
