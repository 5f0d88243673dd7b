"""``liftgs export-checkpoint``: a trained ``ns-train liftgs`` run -> a standalone LIFT-GS checkpoint.

Reads the run's ``config.yml``, rebuilds its pipeline without loading any dataset, loads the latest (or
``--step``) nerfstudio checkpoint of the run and writes the network with
``liftgs.model.checkpoint.save_checkpoint`` (config + weights, no optimiser state, no text encoder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from nerfstudio.engine.trainer import TrainerConfig

from liftgs.model import save_checkpoint


def latest_step(checkpoint_dir: Path) -> int:
    """The highest N of ``step-N.ckpt`` in ``checkpoint_dir``.

    Raises:
        FileNotFoundError: no checkpoint there.
    """
    steps = [int(path.stem.split("-")[1]) for path in checkpoint_dir.glob("step-*.ckpt")]
    if not steps:
        raise FileNotFoundError(f"{checkpoint_dir}: no step-*.ckpt checkpoint (did the run save one?)")
    return max(steps)


def load_trained_pipeline(config_path: Path, step: int | None = None):
    """``(TrainerConfig, pipeline on CPU in eval mode, step)`` of an ``ns-train`` run directory's config."""
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: no such config.yml")
    config = yaml.load(config_path.read_text(), Loader=yaml.Loader)
    if not isinstance(config, TrainerConfig):
        raise ValueError(f"{config_path}: not a nerfstudio trainer config")
    checkpoint_dir = config_path.parent / config.relative_model_dir
    step = latest_step(checkpoint_dir) if step is None else step
    state = torch.load(checkpoint_dir / f"step-{step:09d}.ckpt", map_location="cpu", weights_only=True)
    pipeline = config.pipeline.setup(device="cpu", test_mode="inference")
    pipeline.load_pipeline(state["pipeline"], state["step"])
    return config, pipeline.eval(), step


@dataclass
class ExportCheckpoint:
    """Exports the LIFT-GS network of an ns-train run to a standalone checkpoint."""

    config: Path
    """The run's config.yml (outputs/<experiment>/liftgs/<timestamp>/config.yml)."""
    out: Path = Path("assets/liftgs_synthetic.pt")
    step: int | None = None
    """Checkpoint step to export (default: the latest)."""

    def main(self) -> None:
        config, pipeline, step = load_trained_pipeline(self.config, self.step)
        extra = {"method": config.method_name, "step": step, "run": str(self.config.parent)}
        path = save_checkpoint(self.out, pipeline.model.network, extra)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {config.method_name} step {step})")
