"""``evaluate`` and ``liftgs eval`` end to end on the toy dataset, with a tiny random model and an oracle."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from liftgs import cli
from liftgs.data.dataset import GroundingDataset
from liftgs.data.store import save_expressions, write_scene
from liftgs.eval.evaluate import SKIP_MISSING_SCENE, SKIP_UNENCODABLE, SKIP_UNKNOWN_TARGET, evaluate
from liftgs.model import LiftGS, load_model
from liftgs.model.loading import ModelLoadError, load_liftgs
from liftgs.scene import Expression
from tests.support.oracle import make_oracle
from tests.support.scenes import CUBE_POINTS_SPAN, CUBE_SIZE, NO_POINTS_OBJECT, SPLIT, few_points, toy_scene
from tests.support.training import write_toy_nerfstudio_run


@pytest.fixture(scope="module")
def model(toy_dataset):
    return load_model(toy_dataset.checkpoint)[0]


def _run_eval(*args: str) -> None:
    cli.main(["eval", "--device", "cpu", *args])


def test_eval_cli_writes_every_key_and_counts(toy_dataset, tmp_path, capsys):
    root, _, _, checkpoint = toy_dataset
    _run_eval("--checkpoint", str(checkpoint), "--data", str(root), "--output-dir", str(tmp_path))
    printed = " ".join(capsys.readouterr().out.split())
    assert "1 expression(s) name a target with no point in the cloud: scored as misses" in printed
    result = json.loads((tmp_path / "eval_results.json").read_text())
    assert (result["count"], result["count_unique"], result["count_multiple"]) == (6, 4, 2)
    assert result["skipped"] == {}
    assert result["num_scenes"] == 2 and result["split"] == SPLIT
    for threshold in ("acc@0.25", "acc@0.5"):
        assert set(result[threshold]) == {"overall", "unique", "multiple"}
        assert all(0.0 <= value <= 1.0 for value in result[threshold].values())
    assert 0.0 <= result["mean_mask_iou"] <= 1.0
    assert result["per_category"]["chair"]["count"] == 3
    assert {name: row["count"] for name, row in result["per_category"].items()} == {
        "chair": 3,
        "table": 1,
        "lamp": 1,
        "ghost": 1,
    }
    assert {name: row["count"] for name, row in result["per_relation"].items()} == {"category": 1, "near": 1}
    assert len(result["records"]) == 6
    assert {"box_iou", "mask_iou", "predicted_box", "target_box", "target_points", "score"} <= set(
        result["records"][0]
    )
    (ghost,) = [r for r in result["records"] if r["object_id"] == NO_POINTS_OBJECT]
    assert (ghost["box_iou"], ghost["mask_iou"], ghost["target_points"]) == (0.0, 0.0, 0)
    assert (tmp_path / "eval_plots.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_counts_the_answers_grounded_below_the_threshold(toy_dataset, tmp_path):
    root, _, _, checkpoint = toy_dataset
    args = ["--checkpoint", str(checkpoint), "--data", str(root), "--output-dir", str(tmp_path)]
    _run_eval(*args, "--threshold", "0.999999")  # no voxel reaches it: every answer falls back
    result = json.loads((tmp_path / "eval_results.json").read_text())
    assert result["below_threshold"]["count"] == 6
    assert all(r["below_threshold"] and r["predicted_box"] is not None for r in result["records"])
    _run_eval(*args, "--threshold", "0.000001")
    assert json.loads((tmp_path / "eval_results.json").read_text())["below_threshold"]["count"] == 0


def test_oracle_scores_one_and_wrong_object_scores_zero(toy_dataset, model, monkeypatch):
    root, scenes, expressions, _ = toy_dataset
    dataset = GroundingDataset(root, SPLIT, load_frames=False)
    monkeypatch.setattr(LiftGS, "predict", make_oracle(scenes, expressions))
    result = evaluate(model, dataset, batch_size=2)
    assert result.summary["count"] == 6 and result.skipped == {}
    # Every target with points is found; the ghost (no point in the cloud) is a miss in the denominators.
    assert result.summary["acc@0.25"] == {"overall": 5 / 6, "unique": 3 / 4, "multiple": 1.0}
    assert result.summary["acc@0.5"] == {"overall": 5 / 6, "unique": 3 / 4, "multiple": 1.0}
    assert result.summary["mean_mask_iou"] == pytest.approx(5 / 6)
    found = [r for r in result.records if r.object_id != NO_POINTS_OBJECT]
    for record in found:  # the box of the target's points against its annotated (whole-cube) box
        np.testing.assert_allclose(record.target_box, scenes[record.scene_id].objects[record.object_id].box)
        assert record.box_iou == pytest.approx((CUBE_POINTS_SPAN / CUBE_SIZE) ** 3)
        assert record.mask_iou == 1.0
    per_category = result.summary["per_category"]
    assert per_category.pop("ghost") == {"count": 1, "acc@0.25": 0.0, "acc@0.5": 0.0}
    assert all(row["acc@0.5"] == 1.0 for row in per_category.values())
    assert all(row["acc@0.5"] == 1.0 for row in result.summary["per_relation"].values())
    assert result.summary["instance_ranking"] == {"count": 2, "target_first": 1.0, "chance": 0.5}  # 2 chairs
    assert result.summary["anchor_localisation"] == {
        "count": 1,
        "found": 1.0,
        "median_m": pytest.approx(0, abs=1e-5),
    }

    monkeypatch.setattr(LiftGS, "predict", make_oracle(scenes, expressions, shift=1))
    wrong = evaluate(model, dataset)
    assert wrong.summary["acc@0.25"]["overall"] == 0.0
    assert wrong.summary["mean_mask_iou"] == 0.0
    assert wrong.summary["instance_ranking"]["target_first"] == 0.0
    assert [r.target_rank for r in wrong.records if r.target_rank is not None] == [2, 2]
    assert wrong.summary["anchor_localisation"]["found"] == 0.0  # the chair, not the lamp


def test_max_scenes_and_annotation_file(toy_dataset, model, tmp_path):
    root, scenes, expressions, checkpoint = toy_dataset
    dataset = GroundingDataset(root, SPLIT, load_frames=False)
    first = evaluate(model, dataset, max_scenes=1)
    assert first.num_scenes == 1 and first.summary["count"] == 3
    assert {r.scene_id for r in first.records} == {"toy0000"}

    unknown = Expression("nowhere0000", 0, "chair", 0, "a chair", ["a", "chair"], "unique")
    unannotated = Expression("toy0000", 42, "chair", 0, "a chair", ["a", "chair"], "unique")
    annotations = tmp_path / "subset.json"
    save_expressions(annotations, [expressions[2], unknown, unannotated])
    out = tmp_path / "out"
    _run_eval(
        "--checkpoint", str(checkpoint), "--data", str(root), "--annotations", str(annotations),
        "--output-dir", str(out),
    )  # fmt: skip
    result = json.loads((out / "eval_results.json").read_text())
    assert result["count"] == 1 and result["records"][0]["object_name"] == "table"
    assert result["skipped"] == {SKIP_MISSING_SCENE: 1, SKIP_UNKNOWN_TARGET: 1}
    assert result["annotations"] == str(annotations)


def _eval_error(*args: str) -> str:
    with pytest.raises(SystemExit) as raised:
        _run_eval(*args)
    message = str(raised.value.code)
    assert message.startswith("liftgs eval: ") and "\n" not in message
    return message


def test_eval_bad_inputs_give_one_line_errors(toy_dataset, tmp_path):
    root, _, _, checkpoint = toy_dataset
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(checkpoint.read_bytes()[:1000])
    assert "truncated or corrupt" in _eval_error("--checkpoint", str(truncated), "--data", str(root))
    assert "not found" in _eval_error("--checkpoint", str(tmp_path / "none.pt"), "--data", str(root))
    payload = torch.load(checkpoint, weights_only=True)
    payload["config"]["decoder"]["d_model"] = 64  # weights of one config under another's name
    other = tmp_path / "other.pt"
    torch.save(payload, other)
    message = _eval_error("--checkpoint", str(other), "--data", str(root))
    assert str(other) in message and "do not match" in message
    assert "--max-scenes" in _eval_error("--checkpoint", str(checkpoint), "--max-scenes", "0")
    assert "split" in _eval_error("--checkpoint", str(checkpoint), "--data", str(root), "--split", "nope")
    bad_yaml = tmp_path / "config.yml"
    bad_yaml.write_text("just: [a, plain, mapping]\n")
    assert "nerfstudio config" in _eval_error("--checkpoint", str(bad_yaml), "--data", str(root))


def test_missing_default_checkpoint_is_explained(toy_dataset, monkeypatch, tmp_path):
    monkeypatch.setattr("liftgs.model.loading.DEFAULT_CHECKPOINT", tmp_path / "liftgs_synthetic.pt")
    assert "--checkpoint" in _eval_error("--data", str(toy_dataset.root))


def test_nerfstudio_run_loads_newest_checkpoint(toy_dataset, tiny_config, tmp_path):
    config_path = write_toy_nerfstudio_run(tmp_path / "run", tiny_config, step=7)
    loaded, info = load_liftgs(config_path, "cpu")
    assert info["step"] == 7 and info["checkpoint"] == str(config_path)
    saved = torch.load(config_path.parent / "nerfstudio_models" / "step-000000007.ckpt", weights_only=True)
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, saved["pipeline"][f"_model.network.{name}"]), name
    out = tmp_path / "out"
    _run_eval("--checkpoint", str(config_path), "--data", str(toy_dataset.root), "--output-dir", str(out))
    assert json.loads((out / "eval_results.json").read_text())["count"] == 6

    other = write_toy_nerfstudio_run(tmp_path / "other", dataclasses.replace(tiny_config, text_dim=512))
    other.write_text(config_path.read_text())  # this run's weights under another run's config
    with pytest.raises(ModelLoadError, match="do not match"):
        load_liftgs(other, "cpu")
    newest = tmp_path / "run" / "nerfstudio_models" / "step-000000007.ckpt"
    newest.write_bytes(newest.read_bytes()[:500])  # unreadable: the older, empty step-0 is read instead
    message = _eval_error("--checkpoint", str(config_path), "--data", str(toy_dataset.root))
    assert "step-000000000.ckpt: no LiftGS weights" in message
    (config_path.parent / "nerfstudio_models").rename(tmp_path / "moved")
    assert "no step-*.ckpt" in _eval_error("--checkpoint", str(config_path), "--data", str(toy_dataset.root))


def test_scene_with_too_few_points_is_a_counted_skip(model, tmp_path):
    sparse = few_points(toy_scene("sparse0000", ["chair"]))
    write_scene(sparse, tmp_path / "scans" / "sparse0000")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "test.txt").write_text("sparse0000\n")
    chair = Expression("sparse0000", 0, "chair", 0, "the chair", ["the", "chair"], "unique")
    save_expressions(tmp_path / "annotations" / "test.json", [chair])
    result = evaluate(model, GroundingDataset(tmp_path, "test", load_frames=False))
    assert result.skipped == {SKIP_UNENCODABLE: 1} and result.num_scenes == 0
    assert result.summary["count"] == 0 and result.summary["acc@0.5"]["overall"] is None
