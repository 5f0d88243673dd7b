"""``liftgs ground --ply FILE`` / ``--load-config RUN/config.yml``: the answer in the file's own frame, the
scored file with every splat, the selected subset, and one-line errors that write nothing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData

from liftgs import cli
from liftgs.ground_file import FILE_RECORD_KEYS, JSON_NAME, SCORED_NAME, SELECTED_NAME
from liftgs.model import LiftGS, save_checkpoint
from tests.support.network import tiny_config
from tests.support.scene_files import (
    FLOATERS,
    Y_UP,
    Z_UP,
    cube_room,
    red_oracle,
    to_file,
    write_3dgs,
    write_point_cloud,
    write_splatfacto_run,
)

VOXEL = 0.1  # the tiny network's voxel edge (metres)


@pytest.fixture(scope="module")
def room():
    return cube_room()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny points-only network whose point budget holds the whole room (no farthest-point merges)."""
    config = dataclasses.replace(tiny_config(), max_points=4000)
    return save_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt", LiftGS(config), {"step": 0})


@pytest.fixture(autouse=True)
def _oracle(monkeypatch):
    monkeypatch.setattr(LiftGS, "predict", red_oracle)


def _ground(checkpoint: Path, *args) -> None:
    cli.main(["ground", "--checkpoint", str(checkpoint), "--device", "cpu", "--query", "the red cube",
              *map(str, args)])  # fmt: skip


def _file_box(room, frame=Z_UP, unit=1.0) -> tuple[np.ndarray, np.ndarray]:
    """The red cube's box in a file's frame (low, high), grown by one voxel for voxel-mean edges."""
    corners = to_file(room.points[room.red], frame, unit)
    margin = VOXEL * unit
    return corners.min(axis=0) - margin, corners.max(axis=0) + margin


@pytest.mark.parametrize(("frame", "unit"), [(Z_UP, 1.0), (Y_UP, 1000.0)], ids=["z-up m", "y-up mm"])
def test_3dgs_answer_is_in_the_files_frame_and_scores_every_splat(room, checkpoint, tmp_path, frame, unit):
    path = write_3dgs(tmp_path / "room.ply", room, frame, unit)
    out = tmp_path / "answer"
    _ground(checkpoint, "--ply", path, "--out", out)
    record = json.loads((out / JSON_NAME).read_text())
    assert tuple(record) == FILE_RECORD_KEYS
    count = room.points.shape[0] + FLOATERS
    assert (record["num_splats"], record["layout"]) == (count, "3dgs")

    low, high = _file_box(room, frame, unit)
    box = np.array(record["box"])
    assert (box[:3] >= low).all() and (box[3:] <= high).all()  # only the red cube, in file units and axes
    cube = to_file(room.points[room.red], frame, unit)
    np.testing.assert_allclose(record["centre"], (cube.min(0) + cube.max(0)) / 2, atol=VOXEL * unit)
    selected = np.array(record["splat_indices"])
    assert (
        np.isin(np.flatnonzero(room.red), selected).mean() > 0.8
    )  # the bottom layer shares voxels with the floor
    assert room.red[selected].mean() > 0.9  # voxels at the cube's foot also hold a few floor splats
    assert record["transform"]["up"] == ("+y" if unit > 1 else "+z")
    assert record["transform"]["scale"] == pytest.approx(1.0 / unit)

    scored = PlyData.read(str(out / SCORED_NAME))["vertex"]
    assert scored.count == count
    source = PlyData.read(str(path))["vertex"]
    np.testing.assert_array_equal(scored["x"], source["x"])
    mask = np.asarray(scored["liftgs_mask"])
    assert np.flatnonzero(mask).tolist() == selected.tolist()
    scores = np.asarray(scored["liftgs_score"])
    assert (scores[mask == 1] >= 0.5).all() and (scores[-FLOATERS:] == 0).all()  # floaters are not read

    subset = PlyData.read(str(out / SELECTED_NAME))["vertex"]
    assert [p.name for p in subset.properties] == [p.name for p in source.properties]
    np.testing.assert_array_equal(subset["x"], source["x"][selected])


def test_point_cloud_and_splatfacto_run_answers(room, checkpoint, tmp_path):
    cloud = write_point_cloud(tmp_path / "cloud.ply", room)
    config = write_splatfacto_run(tmp_path / "outputs/room/splatfacto/2026", room)
    low, high = _file_box(room)
    for args in (("--ply", cloud), ("--load-config", config)):
        out = tmp_path / args[0].strip("-")
        _ground(checkpoint, *args, "--out", out)
        record = json.loads((out / JSON_NAME).read_text())
        box = np.array(record["box"])
        assert (box[:3] >= low).all() and (box[3:] <= high).all(), args
        assert room.red[record["splat_indices"]].mean() > 0.9
        assert PlyData.read(str(out / SCORED_NAME))["vertex"].count == room.points.shape[0]
        subset = PlyData.read(str(out / SELECTED_NAME))["vertex"]
        assert subset.count == record["num_selected"] > 0.8 * room.red.sum()
    assert record["layout"] == "splatfacto" and "rot_0" in subset.data.dtype.names  # a 3DGS subset


def test_bad_inputs_are_one_line_and_write_nothing(room, checkpoint, tmp_path, capsys):
    good = write_3dgs(tmp_path / "room.ply", room)
    (tmp_path / "notes.ply").write_text("not a ply\n")
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "out"
    cases = {
        "both inputs": ["--ply", good, "--load-config", good, "--out", out],
        "scene and ply": ["--scene", "scan0000", "--ply", good, "--out", out],
        "no out": ["--ply", good],
        "out is a file": ["--ply", good, "--out", tmp_path / "a_file"],
        "not a ply": ["--ply", tmp_path / "notes.ply", "--out", out],
        "missing": ["--ply", tmp_path / "missing.ply", "--out", out],
        "bad up": ["--ply", good, "--up", "w", "--out", out],
        "bad scale": ["--ply", good, "--scale", "-2", "--out", out],
        "bad threshold": ["--ply", good, "--threshold", "1.5", "--out", out],
        "json with ply": ["--ply", good, "--json", tmp_path / "x.json", "--out", out],
    }
    for name, args in cases.items():
        with pytest.raises(SystemExit) as raised:
            _ground(checkpoint, *args)
        message = str(raised.value.code)
        assert message.startswith("liftgs ground: ") and "\n" not in message, name
        assert not out.exists() and not (tmp_path / "x.json").exists(), name
    capsys.readouterr()


def test_a_checkpoint_that_reads_lifted_features_is_refused_in_one_line(room, tmp_path):
    config = tiny_config()
    config = dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, extra_channels=8))
    lifted = save_checkpoint(tmp_path / "lifted.pt", LiftGS(config), {"step": 0})
    with pytest.raises(SystemExit) as raised:
        _ground(lifted, "--ply", write_3dgs(tmp_path / "room.ply", room), "--out", tmp_path / "out")
    assert "lifted feature channels" in str(raised.value.code)
    assert not (tmp_path / "out").exists()


def test_bench_scene_file_times_encoding_and_the_first_answer(checkpoint, tmp_path, capsys):
    cli.main(["bench", "scene-file", "--sizes", "3000", "--checkpoint", str(checkpoint), "--device", "cpu"])
    out = capsys.readouterr().out
    assert "encode s" in out and "3,000" in out and "up +z" in out

    config = tiny_config()
    config = dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, extra_channels=8))
    lifted = save_checkpoint(tmp_path / "lifted.pt", LiftGS(config), {"step": 0})
    cli.main(["bench", "scene-file", "--sizes", "3000", "--checkpoint", str(lifted), "--device", "cpu"])
    out = " ".join(capsys.readouterr().out.split())
    assert "cannot ground one; timing a randomly initialised points-only network" in out
    assert "encode s" in out
