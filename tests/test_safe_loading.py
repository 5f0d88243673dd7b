"""``liftgs.config_yaml``: nerfstudio's dumped configs load; a crafted config.yml builds and runs nothing,
through the loader and through every entry point that reads one (eval, ground, viewer, export-checkpoint)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from nerfstudio.engine.trainer import TrainerConfig

from app import viewer
from liftgs import cli
from liftgs.config_yaml import ConfigYAMLError, read_config_yaml
from liftgs.model.loading import ModelLoadError, resolve_device
from liftgs.nerfstudio.trainer import LiftGSTrainer, LiftGSTrainerConfig
from method_configs.liftgs import liftgs, liftgs_3d
from method_configs.liftgs_pretrain import liftgs_pretrain
from tests.support.network import save_tiny_checkpoint
from tests.support.scenes import write_toy_dataset

CRAFTED = {  # name: (a document that runs code under yaml.Loader, {marker}: a file it makes; the tag refused)
    "apply os.system": (
        '!!python/object/apply:os.system ["touch {marker}"]',
        "!!python/object/apply:os.system",
    ),
    "nested subprocess": (
        "pipeline:\n  model: !!python/object/apply:subprocess.run [[touch, {marker}]]\n",
        "!!python/object/apply:subprocess.run",
    ),
    "object/new Popen": (
        "x: !!python/object/new:subprocess.Popen [[touch, {marker}]]",
        "!!python/object/new:subprocess.Popen",
    ),
    "function of liftgs": (
        "x: !!python/object/apply:liftgs.atomic.write_text_atomic [{marker}, pwned]",
        "!!python/object/apply:liftgs.atomic.write_text_atomic",
    ),
    "name of a function": ('x: !!python/name:os.system ""', "!!python/name:os.system"),
    "module attribute": (
        'x: !!python/name:nerfstudio.engine.trainer.os ""',
        "!!python/name:nerfstudio.engine.trainer.os",
    ),
    "type object": ('x: !!python/name:builtins.type ""', "!!python/name:builtins.type"),
    "module": ('x: !!python/module:os ""', "!!python/module:os"),
    "class outside": (
        "x: !!python/object:subprocess.Popen {{args: [touch, {marker}]}}",
        "!!python/object:subprocess.Popen",
    ),
    "non-config class": (
        "x: !!python/object:nerfstudio.engine.trainer.Trainer {{}}",
        "!!python/object:nerfstudio.engine.trainer.Trainer",
    ),
    "dunder field": (
        "x: !!python/object:liftgs.model.config.LiftGSConfig {{__class__: 1}}",
        "!!python/object:liftgs.model.config.LiftGSConfig",
    ),
}


def _write_crafted(folder: Path, document: str) -> tuple[Path, Path]:
    """``folder/config.yml`` holding ``document`` and the marker path it tries to create."""
    marker = folder / "pwned"
    path = folder / "config.yml"
    path.write_text(document.format(marker=marker))
    return path, marker


@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_tags_are_refused_in_one_line_and_nothing_runs(case, tmp_path):
    document, tag = CRAFTED[case]
    path, marker = _write_crafted(tmp_path, document)
    with pytest.raises(ConfigYAMLError) as raised:
        read_config_yaml(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: line ") and "refusing YAML tag" in message and tag in message
    assert "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize("method", [liftgs, liftgs_3d, liftgs_pretrain], ids=lambda m: m.config.method_name)
def test_the_methods_configs_dumped_by_nerfstudio_load_equal(method, tmp_path):
    config = copy.deepcopy(method.config)
    config.output_dir, config.timestamp = tmp_path, "run"
    config.load_dir = tmp_path / "earlier" / "nerfstudio_models"
    config.pipeline.datamanager.data = tmp_path / "data"  # a run whose dataset has since moved
    TrainerConfig.save_config(config)  # yaml.dump, as ns-train writes config.yml (no dataset check)
    loaded = read_config_yaml(config.get_base_dir() / "config.yml")
    assert isinstance(loaded, LiftGSTrainerConfig) and loaded._target is LiftGSTrainer
    assert loaded == config
    assert loaded.pipeline.datamanager.data == tmp_path / "data"
    assert loaded.optimizers["liftgs"]["optimizer"]._target is torch.optim.AdamW


def test_fields_missing_from_an_older_config_get_their_defaults(tmp_path):
    config = copy.deepcopy(liftgs.config)
    config.output_dir, config.timestamp = tmp_path, "run"
    config.save_config()
    path = config.get_base_dir() / "config.yml"
    text = path.read_text()
    assert "gradient_accumulation_steps: {}\n" in text
    path.write_text(text.replace("gradient_accumulation_steps: {}\n", ""))
    assert read_config_yaml(path).gradient_accumulation_steps == {}


def test_invalid_yaml_is_one_line(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("pipeline: [unclosed,\n  model: x\n")
    with pytest.raises(ConfigYAMLError, match=r"config.yml: not valid YAML: ") as raised:
        read_config_yaml(path)
    assert "\n" not in str(raised.value)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    write_toy_dataset(root)
    return root


def _cli_error(argv: list[str], prefix: str) -> str:
    with pytest.raises(SystemExit) as raised:
        cli.main(argv)
    message = str(raised.value.code)
    assert message.startswith(prefix) and "\n" not in message
    return message


def test_liftgs_eval_refuses_a_crafted_config(toy, tmp_path):
    path, marker = _write_crafted(tmp_path, CRAFTED["apply os.system"][0])
    message = _cli_error(["eval", "--checkpoint", str(path), "--data", str(toy)], "liftgs eval: ")
    assert "refusing YAML tag !!python/object/apply:os.system" in message
    assert not marker.exists() and not (tmp_path / "outputs").exists()


def test_liftgs_ground_refuses_a_crafted_config(toy, tmp_path):
    path, marker = _write_crafted(tmp_path, CRAFTED["nested subprocess"][0])
    json_path = tmp_path / "ground.json"
    argv = ["ground", "--data", str(toy), "--scene", "toy0000", "--query", "the chair"]
    message = _cli_error([*argv, "--checkpoint", str(path), "--json", str(json_path)], "liftgs ground: ")
    assert "refusing YAML tag !!python/object/apply:subprocess.run" in message
    assert not marker.exists() and not json_path.exists()


def test_liftgs_viewer_refuses_a_crafted_config(toy, tmp_path, monkeypatch, capsys):
    path, marker = _write_crafted(tmp_path, CRAFTED["function of liftgs"][0])
    argv = ["liftgs-viewer", "--data", str(toy), "--scene", "toy0000", "--checkpoint", str(path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as raised:
        viewer.entrypoint()
    assert raised.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("liftgs-viewer: ") and "\n" not in error
    assert "refusing YAML tag !!python/object/apply:liftgs.atomic.write_text_atomic" in error
    assert not marker.exists()


def test_export_checkpoint_refuses_a_crafted_config(tmp_path):
    path, marker = _write_crafted(tmp_path, CRAFTED["apply os.system"][0])
    out = tmp_path / "model.pt"
    argv = ["export-checkpoint", "--config", str(path), "--out", str(out)]
    message = _cli_error(argv, "liftgs export-checkpoint: ")
    assert "refusing YAML tag !!python/object/apply:os.system" in message
    assert not marker.exists() and not out.exists()


def test_export_checkpoint_without_a_config_is_one_line(tmp_path):
    argv = ["export-checkpoint", "--config", str(tmp_path / "none.yml"), "--out", str(tmp_path / "m.pt")]
    assert "no such config.yml" in _cli_error(argv, "liftgs export-checkpoint: ")


def test_cuda_device_without_cuda_is_one_line(toy, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match=r"^--device 'cuda': CUDA is not available"):
        resolve_device("cuda")
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt")
    argv = ["eval", "--checkpoint", str(checkpoint), "--data", str(toy), "--device", "cuda:0"]
    assert "CUDA is not available" in _cli_error(argv, "liftgs eval: ")
    assert resolve_device("auto") == torch.device("cpu")
