"""``liftgs export-checkpoint``: a trained ``ns-train liftgs`` run -> a standalone LIFT-GS checkpoint.

Reads the run's ``config.yml`` (``liftgs.config_yaml``: nothing in it is run), rebuilds its pipeline
without loading any dataset, loads the newest readable (or ``--step``) nerfstudio checkpoint of the run and
writes the network with ``liftgs.model.checkpoint.save_checkpoint`` (config + weights, no optimiser state,
no text encoder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from liftgs.model import save_checkpoint
from liftgs.model.loading import ModelLoadError, first_line
from liftgs.nerfstudio.run_files import newest_checkpoint, read_trainer_config, run_checkpoint_dir


def load_trained_pipeline(config_path: Path, step: int | None = None):
    """``(TrainerConfig, pipeline on CPU in eval mode, step)`` of an ``ns-train`` run directory's config.

    Raises:
        ModelLoadError: unreadable or refused config, no readable checkpoint, weights that do not fit.
    """
    config = read_trainer_config(config_path)
    step, checkpoint, state = newest_checkpoint(run_checkpoint_dir(config_path, config), step)
    pipeline = config.pipeline.setup(device="cpu", test_mode="inference")
    try:
        pipeline.load_pipeline(state["pipeline"], state["step"])
    except (RuntimeError, KeyError) as error:
        raise ModelLoadError(f"{checkpoint}: does not fit {config_path}: {first_line(error)}") from None
    return config, pipeline.eval(), step


@dataclass
class ExportCheckpoint:
    """Exports the LIFT-GS network of an ns-train run to a standalone checkpoint."""

    config: Path
    """The run's config.yml (outputs/<experiment>/liftgs/<timestamp>/config.yml)."""
    out: Path = Path("assets/liftgs_synthetic.pt")
    step: int | None = None
    """Checkpoint step to export (default: the newest readable one)."""

    def main(self) -> None:
        try:
            config, pipeline, step = load_trained_pipeline(self.config, self.step)
            extra = {"method": config.method_name, "step": step, "run": str(self.config.parent)}
            path = save_checkpoint(self.out, pipeline.model.network, extra)
        except (ModelLoadError, OSError) as error:
            raise SystemExit(f"liftgs export-checkpoint: {error}") from None
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {config.method_name} step {step})")
