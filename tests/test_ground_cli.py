"""``liftgs ground``: JSON fields, the grounded Gaussians' PLY, and every bad-input case."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from plyfile import PlyData

from liftgs import cli
from liftgs.data.store import write_scene
from liftgs.eval.metrics import points_box
from liftgs.export_ply import gaussian_property_names
from liftgs.model import LiftGS, load_model, save_checkpoint
from tests.support.oracle import make_oracle
from tests.support.scenes import few_points, toy_scene

RECORD_KEYS = {
    "scene", "query", "truncated", "score", "query_index", "box", "num_points", "point_indices", "tokens",
    "anchor_centres", "threshold", "below_threshold", "checkpoint",
}  # fmt: skip


def _ground(toy_dataset, query: str, *args, checkpoint=None) -> None:
    root, _, _, toy_checkpoint = toy_dataset
    cli.main(["ground", "--data", str(root), "--checkpoint", str(checkpoint or toy_checkpoint),
              "--device", "cpu", "--query", query, *map(str, args)])  # fmt: skip


def _ground_error(toy_dataset, query: str, *args, checkpoint=None) -> str:
    with pytest.raises(SystemExit) as raised:
        _ground(toy_dataset, query, *args, checkpoint=checkpoint)
    message = str(raised.value.code)
    assert message.startswith("liftgs ground: ") and "\n" not in message
    return message


def test_ground_with_oracle_writes_target_points_and_gaussians(toy_dataset, tmp_path, monkeypatch):
    root, scenes, expressions, checkpoint = toy_dataset
    monkeypatch.setattr(LiftGS, "predict", make_oracle(scenes, expressions))
    out_json, out_ply = tmp_path / "g.json", tmp_path / "g.ply"
    _ground(
        toy_dataset,
        "the table on the right",
        "--scene",
        "toy0000",
        "--json",
        str(out_json),
        "--out-ply",
        str(out_ply),
    )
    record = json.loads(out_json.read_text())
    assert set(record) == RECORD_KEYS
    scene = scenes["toy0000"]
    target = scene.point_instance == 2
    assert record["point_indices"] == np.flatnonzero(target).tolist()
    assert record["num_points"] == int(target.sum())
    np.testing.assert_allclose(record["box"], points_box(scene.points, target), atol=1e-6)
    assert (record["scene"], record["query"], record["checkpoint"]) == ("toy0000", "the table on the right",
                                                                      str(checkpoint))  # fmt: skip

    model = load_model(checkpoint)[0]
    with torch.no_grad():
        features = model.encode_scene(scene.points, scene.colors)
    voxel_target = torch.zeros(features.num_points, dtype=torch.bool)
    voxel_target[features.source_to_voxel[torch.as_tensor(target)]] = True
    expected = features.gaussians.means[voxel_target[features.gaussians.point_index]].numpy()
    vertex = PlyData.read(str(out_ply))["vertex"]
    assert [p.name for p in vertex.properties] == gaussian_property_names()
    xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1)
    np.testing.assert_allclose(xyz, expected, atol=1e-5)
    assert record["anchor_centres"] is None  # "the table on the right" names no other object


def test_ground_reports_where_the_model_located_the_anchors(toy_dataset, capsys, monkeypatch):
    _, scenes, expressions, _ = toy_dataset
    monkeypatch.setattr(LiftGS, "predict", make_oracle(scenes, expressions))
    _ground(toy_dataset, "the chair next to the lamp", "--scene", "toy0001")
    scene = scenes["toy0001"]
    lamp = scene.points[scene.point_instance == 0].mean(0)
    np.testing.assert_allclose(json.loads(capsys.readouterr().out)["anchor_centres"], [lamp], atol=1e-5)


def test_ground_random_model_prints_json_with_tokens(toy_dataset, capsys):
    _ground(toy_dataset, "the lamp", "--scene", "toy0001", "--threshold", "0.000001")
    record = json.loads(capsys.readouterr().out)
    assert set(record) == RECORD_KEYS
    # a threshold near 0 selects every voxel; the grounded object is one connected part of them
    assert (
        0 < record["num_points"] == len(record["point_indices"]) <= toy_dataset.scenes["toy0001"].num_points
    )
    assert [t["token"] for t in record["tokens"]] == ["[CLS]", "the", "lamp", "[SEP]"]
    assert all(0.0 <= t["score"] <= 1.0 for t in record["tokens"])
    assert 0.0 <= record["score"] <= 1.0 and record["truncated"] is False


def test_overlong_query_is_truncated_and_said(toy_dataset, capsys):
    _ground(toy_dataset, " ".join(["chair"] * 400), "--scene", "toy0000")
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert record["truncated"] is True and "truncated" in captured.err
    assert len(record["tokens"]) == 256  # MiniLM's maximum, special tokens included


def test_non_ascii_query_works(toy_dataset, capsys):
    _ground(toy_dataset, "  la chaise près de la fenêtre ☕ 椅子 ", "--scene", "toy0000")
    record = json.loads(capsys.readouterr().out)
    assert record["query"] == "la chaise près de la fenêtre ☕ 椅子"
    assert len(record["tokens"]) > 4


def test_nothing_above_threshold_answers_below_it_and_says_so(toy_dataset, tmp_path, capsys):
    out_ply = tmp_path / "below.ply"
    _ground(
        toy_dataset, "the lamp", "--scene", "toy0001", "--threshold", "0.999999", "--out-ply", str(out_ply)
    )
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert record["below_threshold"] is True and record["point_indices"] and out_ply.exists()
    assert "no point reached --threshold 0.999999" in captured.err
    _ground(
        toy_dataset, "the lamp", "--scene", "toy0001", "--threshold", "0.000001"
    )  # every point reaches it
    assert json.loads(capsys.readouterr().out)["below_threshold"] is False


def test_ground_bad_inputs_give_one_line_errors(toy_dataset, tiny_config, tmp_path):
    root, _, _, checkpoint = toy_dataset
    assert "--query is empty" in _ground_error(toy_dataset, "", "--scene", "toy0000")
    assert "--query is empty" in _ground_error(toy_dataset, " \t\n ", "--scene", "toy0000")
    assert "unknown scene id 'nowhere'" in _ground_error(toy_dataset, "a chair", "--scene", "nowhere")

    write_scene(few_points(toy_scene("sparse0000", ["chair"])), root / "scans" / "sparse0000")
    assert "need at least" in _ground_error(toy_dataset, "a chair", "--scene", "sparse0000")

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(checkpoint.read_bytes()[:2000])
    message = _ground_error(toy_dataset, "a chair", "--scene", "toy0000", checkpoint=truncated)
    assert "truncated or corrupt" in message
    other = save_checkpoint(tmp_path / "clip512.pt", LiftGS(dataclasses.replace(tiny_config, text_dim=512)))
    message = _ground_error(toy_dataset, "a chair", "--scene", "toy0000", checkpoint=other)
    assert "384" in message and "512" in message
    assert "not found" in _ground_error(
        toy_dataset, "a chair", "--scene", "toy0000", checkpoint="/no/such.pt"
    )
