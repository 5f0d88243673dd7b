"""``liftgs experiments`` end to end at tiny sizes (2 training scenes, 2 steps per run, 1 fraction, 1 noise
level): every run trained through its ns-train method and scored, the report files, and resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liftgs.cli import main as cli_main
from liftgs.data.synthetic.generate import DatasetSpec, SceneOptions, ensure_dataset
from liftgs.experiments import runner
from liftgs.experiments.grid import RunSettings, plan_runs
from liftgs.model import load_model
from liftgs.pseudo.lift_dataset import lift_dataset

TRAIN_SCENES = ["scan0000", "scan0001"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """The generator's tiny scenes with the train split cut down to two scenes (val: scan0008)."""
    root = tmp_path_factory.mktemp("data")
    options = SceneOptions(image_width=64, image_height=48, num_views=4, voxel_size=0.1, max_objects=5)
    ensure_dataset(root, spec=DatasetSpec(seed=5, num_scenes=10, options=options), progress=False)
    (root / "splits" / "train.txt").write_text("\n".join(TRAIN_SCENES) + "\n")
    annotations = root / "annotations" / "train.json"
    records = [r for r in json.loads(annotations.read_text()) if r["scene_id"] in TRAIN_SCENES]
    annotations.write_text(json.dumps(records))
    for split in ("train", "val"):  # the grid's network reads lifted features: `liftgs lift-features`
        lift_dataset(root, split=split, source="stand-in", progress=False)
    return root


def _args(root: Path, out: Path, work: Path) -> list[str]:
    return [
        "experiments", "--data", str(root), "--out", str(out), "--work-dir", str(work),
        "--steps-per-run", "2", "--pretrain-steps", "2", "--fractions", "0.5", "--noise-levels", "0.5",
        "--pretrain-noise", "0.5", "--eval-max-scenes", "1", "--device", "cpu",
    ]  # fmt: skip


def test_plan_covers_the_three_studies_once():
    names = [run.name for run in plan_runs([0.1, 1.0], [0.0, 0.5], 0.5)]
    assert len(names) == len(set(names))
    assert names.index("pretrain-noise0.5") < names.index("finetune-f0.1-noise0.5")
    assert {"scratch-f1", "3d-f1", "scratch-f0.1", "finetune-f1-noise0.5", "finetune-f0.1-noise0"} <= set(
        names
    )
    with pytest.raises(ValueError, match="fractions"):
        plan_runs([0.0], [0.5], 0.5)


def test_whole_grid_end_to_end_and_resume(data_root, tmp_path, monkeypatch):
    out, work = tmp_path / "docs", tmp_path / "work"
    cli_main(_args(data_root, out, work))
    results = json.loads((out / "results.json").read_text())
    expected = {"scratch-f1", "3d-f1", "scratch-f0.5", "pretrain-noise0.5", "finetune-f0.5-noise0.5"}
    assert set(results["runs"]) == expected
    assert results["command"].startswith("liftgs experiments --data")
    for name, run in results["runs"].items():
        assert (
            run["command"].startswith(f"ns-train {run['method']} ")
            and "--max-num-iterations 2" in run["command"]
        )
        assert run["eval"] == {"split": "val", "max_scenes": 1} and run["metrics"]["count"] > 0
        assert 0.0 <= run["metrics"]["acc@0.5"] <= run["metrics"]["acc@0.25"] <= 1.0
        assert run["train_s"] > 0 and run["eval_s"] > 0
        _, extra = load_model(work / "checkpoints" / f"{name}.pt")
        assert extra["command"] == run["command"] and extra["step"] == 1
    finetune = results["runs"]["finetune-f0.5-noise0.5"]
    assert (
        f"--pipeline.model.init-checkpoint {work.resolve() / 'checkpoints' / 'pretrain-noise0.5.pt'}"
        in (finetune["command"])
    )
    assert any((data_root / "scans" / s / "pseudo-noise0.5").glob("*.npz") for s in TRAIN_SCENES)
    report = (out / "results.md").read_text()
    assert results["command"] in report and "## (b) Data efficiency" in report and "| 50% |" in report
    assert all(f"`{run['command']}`" in report for run in results["runs"].values())
    assert (out / "results.png").stat().st_size > 10_000

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was retrained")

    monkeypatch.setattr(runner, "train", no_training)
    cli_main(_args(data_root, out, work))
    assert json.loads((out / "results.json").read_text())["runs"] == results["runs"]


def test_the_command_the_grid_prints_is_the_config_it_trains(data_root, tmp_path):
    settings = RunSettings(data_root, tmp_path, 7, 9, "cpu", 1)
    run = next(r for r in plan_runs([0.2], [1.0], 1.0) if r.name == "finetune-f0.2-noise1")
    config = runner.trainer_config(run, settings)
    assert config.method_name == "liftgs" and config.max_num_iterations == 7
    assert config.pipeline.datamanager.labelled_fraction == 0.2
    assert config.pipeline.model.init_checkpoint == tmp_path / "checkpoints" / "pretrain-noise1.pt"
    pretrain = runner.trainer_config(
        next(r for r in plan_runs([0.2], [1.0], 1.0) if r.method == "liftgs-pretrain"), settings
    )
    assert pretrain.max_num_iterations == 9 and pretrain.pipeline.datamanager.pseudo.folder == "pseudo-noise1"
    assert pretrain.pipeline.model.network == config.pipeline.model.network  # pretrained weights fit
