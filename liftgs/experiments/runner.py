"""Running one grid run in-process: pseudo-labels, ``ns-train`` (the registered method's TrainerConfig with
the run's command-line arguments), checkpoint export, and grounding evaluation with ``liftgs.eval``.

A run's exported checkpoint records the exact command that trained it, so a finished run is recognised
(and not retrained) only when its command is unchanged.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.plugins.types import MethodSpecification
from nerfstudio.scripts.train import main as ns_train

from liftgs.data.dataset import GroundingDataset
from liftgs.eval.evaluate import EvalResult, evaluate
from liftgs.experiments.grid import RunSettings, RunSpec, command_line, ns_train_args, pseudo_folder
from liftgs.model import CheckpointError, load_model, save_checkpoint
from liftgs.nerfstudio.export import load_trained_pipeline
from liftgs.nerfstudio.pipeline import flatten_summary
from liftgs.pseudo.command import label_dataset
from liftgs.pseudo.noise import NoiseConfig
from liftgs.pseudo.synthetic import SyntheticLabeller
from method_configs.liftgs import liftgs, liftgs_3d
from method_configs.liftgs_pretrain import liftgs_pretrain

METHODS: dict[str, MethodSpecification] = {
    "liftgs": liftgs,
    "liftgs-3d": liftgs_3d,
    "liftgs-pretrain": liftgs_pretrain,
}


def trainer_config(run: RunSpec, settings: RunSettings) -> TrainerConfig:
    """The TrainerConfig ``ns-train <method> <args>`` builds: the method's config with the run's flags."""
    default = copy.deepcopy(METHODS[run.method].config)
    parsed = tyro.conf.FlagConversionOff[TrainerConfig]  # booleans take a value, as in ns-train
    return tyro.cli(parsed, default=default, args=ns_train_args(run, settings))  # type: ignore[call-overload]


def make_pseudo_labels(root: Path, noise: float, text_encoder: str, split: str) -> str:
    """Stand-in pseudo-labels of ``split``'s scenes at noise level ``noise`` (resumable; frames already
    labelled are kept); returns the labeller's summary line."""
    from liftgs.model.text import build_text_encoder

    labeller = SyntheticLabeller(
        build_text_encoder(text_encoder), NoiseConfig().scaled(noise), 0, text_encoder
    )
    return label_dataset(root, labeller, folder=pseudo_folder(noise), split=split, progress=False).line()


def trained_checkpoint(run: RunSpec, settings: RunSettings) -> Path | None:
    """The run's exported checkpoint when it was trained by the run's current command, else None."""
    path = settings.checkpoint(run.name)
    if not path.is_file():
        return None
    try:
        _, extra = load_model(path)
    except CheckpointError:
        return None
    return path if extra.get("command") == command_line(run, settings) else None


def train(run: RunSpec, settings: RunSettings) -> float:
    """Trains ``run`` (pseudo-labels first for pretraining) and exports its checkpoint; returns seconds."""
    start = time.perf_counter()
    config = trainer_config(run, settings)
    if run.method == "liftgs-pretrain":
        assert run.noise is not None
        network = config.pipeline.model.network
        split = config.pipeline.datamanager.train_split
        print(make_pseudo_labels(settings.data, run.noise, network.text_encoder, split))
    ns_train(config)
    _, pipeline, step = load_trained_pipeline(config.get_base_dir() / "config.yml")
    extra = {"method": run.method, "step": step, "run": run.name, "command": command_line(run, settings)}
    save_checkpoint(settings.checkpoint(run.name), pipeline.model.network, extra)
    return time.perf_counter() - start


@dataclass
class Scored:
    result: EvalResult
    seconds: float


def score(checkpoint: Path, data: Path, split: str, max_scenes: int | None, device: str) -> Scored:
    """Grounding accuracy of a checkpoint on ``split`` (its first ``max_scenes`` scenes)."""
    start = time.perf_counter()
    model, _ = load_model(checkpoint, map_location=device)
    with torch.no_grad():
        result = evaluate(model.to(device), GroundingDataset(data, split), max_scenes=max_scenes)
    return Scored(result, time.perf_counter() - start)


def evaluation_record(split: str, max_scenes: int | None) -> dict:
    """How a run was scored, as ``results.json`` records it (a kept result must match it)."""
    return {"split": split, "max_scenes": max_scenes}


@dataclass(frozen=True)
class RunTask:
    """Trains one run (unless its checkpoint is current) and scores it; returns the run's ``results.json``
    record. A plain dataclass, so it travels to worker processes.

    Attributes:
        settings: what every run shares.
        split: the split scored.
        max_scenes: score only its first N scenes (None: all).
        trained_s: runs whose checkpoint was made by their current command, with their recorded training
            seconds (these are scored again, not retrained).
    """

    settings: RunSettings
    split: str
    max_scenes: int | None
    trained_s: dict[str, float]

    def __call__(self, run: RunSpec) -> dict:
        train_s = self.trained_s.get(run.name)
        if train_s is None:
            train_s = train(run, self.settings)
        scored = score(
            self.settings.checkpoint(run.name), self.settings.data, self.split, self.max_scenes,
            self.settings.device,
        )  # fmt: skip
        return {
            "method": run.method,
            "fraction": run.fraction,
            "noise": run.noise,
            "init": run.init,
            "command": command_line(run, self.settings),
            "eval": evaluation_record(self.split, self.max_scenes),
            "train_s": train_s,
            "eval_s": scored.seconds,
            "metrics": flatten_summary(scored.result.summary),
            "skipped": dict(scored.result.skipped),
        }
