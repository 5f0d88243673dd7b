"""An interrupted ``ns-train`` never leaves a corrupt newest checkpoint in charge: saves are atomic, and
eval, export-checkpoint and ``--load-dir`` resume skip an unreadable newest checkpoint with one warning."""

from __future__ import annotations

import logging
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
from nerfstudio.scripts.train import main as ns_train
from nerfstudio.utils import writer

from liftgs import cli
from liftgs.atomic import is_temporary
from liftgs.data.synthetic.generate import DatasetSpec, SceneOptions, ensure_dataset
from liftgs.model import load_model
from liftgs.model.loading import load_liftgs
from liftgs.nerfstudio import run_files
from liftgs.nerfstudio import trainer as trainer_module
from liftgs.nerfstudio.run_files import read_checkpoint
from liftgs.nerfstudio.trainer import LiftGSTrainer, LiftGSTrainerConfig
from tests.support.training import tiny_trainer

STEP_2, STEP_4 = "step-000000002.ckpt", "step-000000004.ckpt"


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory) -> Path:
    """10 small scenes (8 train, 1 val, 1 test), served as the default dataset ($LIFTGS_DATA)."""
    root = tmp_path_factory.mktemp("data")
    options = SceneOptions(image_width=64, image_height=48, num_views=6, voxel_size=0.08, max_objects=6)
    ensure_dataset(root, spec=DatasetSpec(seed=3, num_scenes=10, options=options), progress=False)
    previous = os.environ.get("LIFTGS_DATA")
    os.environ["LIFTGS_DATA"] = str(root)
    yield root
    if previous is None:
        del os.environ["LIFTGS_DATA"]
    else:
        os.environ["LIFTGS_DATA"] = previous


@pytest.fixture(scope="module")
def trained(dataset_root, tmp_path_factory) -> Path:
    """3 iterations of ns-train liftgs (steps 0-2); returns its config.yml."""
    config = tiny_trainer("liftgs", tmp_path_factory.mktemp("outputs"), 3)
    ns_train(config)
    return config.get_base_dir() / "config.yml"


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the trained run whose newest checkpoint (step 4) is the first half of its step-2 file."""
    folder = tmp_path / "run"
    shutil.copytree(trained.parent, folder)
    models = folder / "nerfstudio_models"
    data = (models / STEP_2).read_bytes()
    (models / STEP_4).write_bytes(data[: len(data) // 2])
    return folder / "config.yml"


def _one_skip_warning(caplog) -> None:
    """Exactly one warning from the run-file reader: one line naming the skipped step-4 file."""
    skips = [
        r.getMessage()
        for r in caplog.records
        if r.name == run_files.__name__ and r.levelno == logging.WARNING
    ]
    assert len(skips) == 1 and STEP_4 in skips[0] and "\n" not in skips[0], skips


def test_the_methods_train_with_the_atomic_trainer(trained):
    config = tiny_trainer("liftgs", trained.parent, 3)
    assert isinstance(config, LiftGSTrainerConfig) and config._target is LiftGSTrainer
    assert [path.name for path in (trained.parent / "nerfstudio_models").iterdir()] == [STEP_2]


def test_eval_loads_the_newest_readable_checkpoint_with_a_warning(run, caplog):
    model, info = load_liftgs(run, "cpu")
    assert info["step"] == 2
    saved = torch.load(run.parent / "nerfstudio_models" / STEP_2, weights_only=True)["pipeline"]
    for name, value in model.state_dict().items():
        assert torch.equal(value, saved[f"_model.network.{name}"]), name
    _one_skip_warning(caplog)


def test_export_checkpoint_exports_the_newest_readable_checkpoint_with_a_warning(run, tmp_path, caplog):
    out = tmp_path / "model.pt"
    cli.main(["export-checkpoint", "--config", str(run), "--out", str(out)])
    _, extra = load_model(out)
    assert extra["step"] == 2
    _one_skip_warning(caplog)


def test_export_checkpoint_of_an_unreadable_step_is_one_line(run, tmp_path):
    out = tmp_path / "model.pt"
    with pytest.raises(SystemExit) as raised:
        cli.main(["export-checkpoint", "--config", str(run), "--out", str(out), "--step", "4"])
    message = str(raised.value.code)
    assert message.startswith("liftgs export-checkpoint: ") and "\n" not in message
    assert STEP_4 in message and "truncated or corrupt" in message and not out.exists()


def test_resume_skips_the_unreadable_checkpoint_and_finishes_the_run(run, tmp_path, caplog):
    """``max_num_iterations`` 5 after a checkpoint of step 2: steps 3 and 4 train, progress ends at 4/5
    (nerfstudio's own loop would run to step 7 and report 7/5)."""
    config = tiny_trainer("liftgs", tmp_path / "outputs", 5)
    config.load_dir = run.parent / "nerfstudio_models"
    ns_train(config)
    _one_skip_warning(caplog)
    saved = config.get_checkpoint_dir()
    assert [path.name for path in saved.iterdir()] == [STEP_4]  # save_only_latest_checkpoint
    assert read_checkpoint(saved / STEP_4)["step"] == 4
    assert writer.GLOBAL_BUFFER["max_iter"] == 5


def test_resume_without_a_readable_checkpoint_is_one_line(tmp_path):
    models = tmp_path / "nerfstudio_models"
    models.mkdir()
    (models / STEP_4).write_bytes(b"PK\x03\x04 not a whole zip")
    config = tiny_trainer("liftgs", tmp_path, 5)
    config.load_dir = models
    with pytest.raises(SystemExit) as raised:
        LiftGSTrainer(config)._load_checkpoint()
    message = str(raised.value.code)
    assert message.startswith("ns-train: cannot resume: ") and "none of its 1 checkpoints" in message


def test_sigint_during_a_save_of_ns_train_leaves_the_previous_checkpoint(dataset_root, tmp_path, monkeypatch):
    """Saves at steps 2 and 4; SIGINT arrives when half of step 4 is written (ns-train stops there)."""
    config = tiny_trainer("liftgs", tmp_path, 5)
    config.steps_per_save = 2
    save = torch.save

    def save_interrupted_at_step_4(state, path):
        if state["step"] != 4:
            return save(state, path)
        save(state, path)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        signal.raise_signal(signal.SIGINT)  # Python raises KeyboardInterrupt here, inside the save

    monkeypatch.setattr(torch, "save", save_interrupted_at_step_4)
    ns_train(config)  # nerfstudio prints the KeyboardInterrupt and returns
    saved = config.get_checkpoint_dir()
    assert [path.name for path in saved.iterdir()] == [STEP_2]
    assert read_checkpoint(saved / STEP_2)["step"] == 2


def test_a_resume_past_max_num_iterations_trains_and_saves_nothing(tmp_path):
    trainer = LiftGSTrainer(tiny_trainer("liftgs", tmp_path, 5))
    trainer._start_step = 5  # as after loading the checkpoint of step 4
    trainer.train()  # nerfstudio's loop would run steps 5-9 (here: fail on the missing pipeline)
    assert not trainer.checkpoint_dir.exists()


def _stub_trainer(folder: Path, keep_only_latest: bool = True) -> LiftGSTrainer:
    """A LiftGSTrainer (not set up) that saves ``{"step": N, "pipeline": {"w": ...}}`` into ``folder``."""
    config = tiny_trainer("liftgs", folder, 5)
    config.save_only_latest_checkpoint = keep_only_latest
    trainer = LiftGSTrainer(config)
    trainer.checkpoint_state = lambda step: {"step": step, "pipeline": {"w": torch.full((1000,), step)}}
    return trainer


def test_a_save_interrupted_mid_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    trainer = _stub_trainer(tmp_path)
    trainer.save_checkpoint(2)
    before = (trainer.checkpoint_dir / STEP_2).read_bytes()

    def interrupted_save(state, path):
        Path(path).write_bytes(before[: len(before) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module.torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(4)
    assert [path.name for path in trainer.checkpoint_dir.iterdir()] == [STEP_2]
    assert (trainer.checkpoint_dir / STEP_2).read_bytes() == before
    monkeypatch.undo()
    trainer.save_checkpoint(4)
    assert [path.name for path in trainer.checkpoint_dir.iterdir()] == [STEP_4]
    assert read_checkpoint(trainer.checkpoint_dir / STEP_4)["step"] == 4


def test_all_checkpoints_are_kept_unless_only_the_latest_is_asked_for(tmp_path):
    trainer = _stub_trainer(tmp_path, keep_only_latest=False)
    trainer.save_checkpoint(2)
    trainer.save_checkpoint(4)
    names = sorted(path.name for path in trainer.checkpoint_dir.iterdir())
    assert names == [STEP_2, STEP_4] and not any(is_temporary(name) for name in names)
