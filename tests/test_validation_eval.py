"""``liftgs eval`` and ``liftgs ground`` on bad files and bad flags: counted skips, one-line refusals made
before any work, and nothing written when nothing was scored."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liftgs import cli
from liftgs.data.point_features import LIFTED_FILE, save_lifted_features
from liftgs.data.store import save_expressions, write_points_ply
from liftgs.eval.evaluate import SKIP_MISSING_SCENE
from liftgs.model import LiftGS, save_checkpoint
from tests.support.network import save_tiny_checkpoint, tiny_config
from tests.support.scenes import SPLIT, write_toy_dataset

MISSING_CHECKPOINT = "/no/such/checkpoint.pt"
"""A checkpoint that cannot load: a flag refused with another message was checked before the model."""


@pytest.fixture
def toy(tmp_path):
    root = tmp_path / "toy"
    scenes, _ = write_toy_dataset(root)
    return root, scenes, save_tiny_checkpoint(tmp_path / "tiny.pt")


def _eval(root, checkpoint, out, *args) -> None:
    cli.main(["eval", "--device", "cpu", "--data", str(root), "--checkpoint", str(checkpoint),
              "--split", SPLIT, "--output-dir", str(out), *args])  # fmt: skip


def _eval_error(*args) -> str:
    with pytest.raises(SystemExit) as raised:
        _eval(*args)
    message = str(raised.value.code)
    assert message.startswith("liftgs eval: ") and "\n" not in message
    return message


def _empty_cloud(scene_dir) -> None:
    write_points_ply(scene_dir / f"{scene_dir.name}_points.ply", np.zeros((0, 3)), np.zeros((0, 3)), [])


def test_a_truncated_feature_file_or_an_empty_cloud_skips_that_scene_counted(toy, tmp_path):
    root, scenes, checkpoint = toy
    save_lifted_features(root / "scans/toy0000", np.zeros((scenes["toy0000"].num_points, 4)), {})
    data = (root / "scans/toy0000" / LIFTED_FILE).read_bytes()
    (root / "scans/toy0000" / LIFTED_FILE).write_bytes(data[: len(data) // 2])
    _eval(root, checkpoint, tmp_path / "out")
    result = json.loads((tmp_path / "out/eval_results.json").read_text())
    assert result["num_scenes"] == 1 and result["count"] == 3  # toy0001's three, the ghost's a miss
    assert result["skipped"] == {SKIP_MISSING_SCENE: 3}

    _empty_cloud(root / "scans/toy0001")
    save_lifted_features(root / "scans/toy0001", np.zeros((0, 4)), {})  # an empty feature file too
    message = _eval_error(root, checkpoint, tmp_path / "none")
    assert message == f"liftgs eval: no expression was scored: 6 skipped ({SKIP_MISSING_SCENE})"
    assert not (tmp_path / "none/eval_results.json").exists()


def test_nothing_to_score_exits_non_zero_saying_why(toy, tmp_path):
    root, _, checkpoint = toy
    save_expressions(root / "annotations" / f"{SPLIT}.json", [])
    message = _eval_error(root, checkpoint, tmp_path / "out")
    assert message == "liftgs eval: no expression was scored: there are no expressions to evaluate"
    (root / "splits" / f"{SPLIT}.txt").write_text("\n")
    assert "split lists no scene" in _eval_error(root, checkpoint, tmp_path / "out")
    assert not (tmp_path / "out/eval_results.json").exists()


@pytest.mark.parametrize("threshold", ["nan", "inf", "2", "0", "1", "-0.5"])
def test_eval_refuses_a_threshold_outside_zero_one_before_loading_the_model(toy, tmp_path, threshold):
    root, _, _ = toy
    message = _eval_error(root, MISSING_CHECKPOINT, tmp_path / "out", "--threshold", threshold)
    assert "--threshold must be a probability strictly between 0 and 1" in message


def test_eval_checks_the_output_folder_before_the_work(toy, tmp_path):
    root, _, checkpoint = toy
    a_file = tmp_path / "results.txt"
    a_file.write_text("keep")
    assert "--output-dir" in _eval_error(root, MISSING_CHECKPOINT, a_file)
    assert "is a file, so the folder" in _eval_error(root, MISSING_CHECKPOINT, a_file / "sub")
    assert a_file.read_text() == "keep"
    assert "not found" in _eval_error(root, MISSING_CHECKPOINT, tmp_path / "x/y")
    assert not (tmp_path / "x").exists()  # a refused run leaves no folder behind
    deep = tmp_path / "a/b/c"
    _eval(root, checkpoint, deep)
    assert json.loads((deep / "eval_results.json").read_text())["count"] == 6


def test_a_checkpoint_that_reads_lifted_features_is_refused_where_scenes_have_none(toy, tmp_path):
    root, _, _ = toy
    config = tiny_config()
    config.encoder.extra_channels = 4
    checkpoint = save_checkpoint(tmp_path / "lifted.pt", LiftGS(config))
    message = _eval_error(root, checkpoint, tmp_path / "out")
    assert "reads lifted point features and 2 of the 2 scenes" in message
    assert f"`liftgs lift-features --data {root} --split {SPLIT}`" in message


def _ground(root, checkpoint, *args) -> None:
    cli.main(["ground", "--device", "cpu", "--data", str(root), "--checkpoint", str(checkpoint),
              "--scene", "toy0001", "--query", "the lamp", *map(str, args)])  # fmt: skip


def _ground_error(*args) -> str:
    with pytest.raises(SystemExit) as raised:
        _ground(*args)
    message = str(raised.value.code)
    assert message.startswith("liftgs ground: ") and "\n" not in message
    return message


def test_ground_checks_flags_and_output_paths_before_the_work(toy, tmp_path):
    root, _, checkpoint = toy
    for threshold in ("nan", "2", "0"):
        assert "--threshold must be a probability" in _ground_error(
            root, MISSING_CHECKPOINT, "--threshold", threshold
        )
    assert "--out-ply" in _ground_error(root, MISSING_CHECKPOINT, "--out-ply", tmp_path)
    assert "--json" in _ground_error(root, MISSING_CHECKPOINT, "--json", tmp_path)
    a_file = tmp_path / "file"
    a_file.write_text("keep")
    assert "is a file, so the folder" in _ground_error(
        root, MISSING_CHECKPOINT, "--json", a_file / "out.json"
    )
    out_json, out_ply = tmp_path / "new/dir/g.json", tmp_path / "other/dir/g.ply"
    _ground(root, checkpoint, "--json", out_json, "--out-ply", out_ply)
    assert json.loads(out_json.read_text())["scene"] == "toy0001"
    assert out_ply.read_bytes().startswith(b"ply\n")


def test_ground_refuses_a_checkpoint_that_reads_lifted_features_the_scene_lacks(toy, tmp_path):
    root, _, _ = toy
    config = tiny_config()
    config.encoder.extra_channels = 4
    checkpoint = save_checkpoint(tmp_path / "lifted.pt", LiftGS(config))
    message = _ground_error(root, checkpoint)
    assert message.endswith(
        f"scene toy0001 has none; run `liftgs lift-features --data {root} --split {SPLIT}`"
    )
