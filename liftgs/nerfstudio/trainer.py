"""nerfstudio's ``Trainer`` with checkpoints that survive an interruption and resumes that finish the run.

- ``save_checkpoint`` writes ``step-N.ckpt`` through ``liftgs.atomic`` (a temporary file renamed when
  complete), so Ctrl-C or a kill during a save leaves the previous checkpoint in charge; older checkpoints
  are deleted (``save_only_latest_checkpoint``) only once the new one is in place.
- ``--load-dir`` resumes from the newest readable checkpoint there (unreadable newer ones are skipped with
  one warning line; ``liftgs.nerfstudio.run_files``); every failure stops ``ns-train`` with one line.
- ``max_num_iterations`` is the run's total: a run resumed after step S trains steps S+1 .. max-1, which
  keeps nerfstudio's progress column (step / max_num_iterations) at or under 100% and the learning-rate
  schedule (over the total) on course. nerfstudio itself runs max_num_iterations further steps after S,
  while its progress and ETA still divide by max_num_iterations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from nerfstudio.engine.trainer import Trainer, TrainerConfig
from nerfstudio.utils.decorators import check_main_thread
from nerfstudio.utils.rich_utils import CONSOLE

from liftgs.atomic import atomic_path
from liftgs.model.loading import ModelLoadError
from liftgs.nerfstudio.datamanager import LiftGSDataManagerConfig, check_training_root
from liftgs.nerfstudio.run_files import newest_checkpoint, read_checkpoint


@dataclass
class LiftGSTrainerConfig(TrainerConfig):
    """nerfstudio's ``TrainerConfig`` that builds a ``LiftGSTrainer``."""

    _target: type = field(default_factory=lambda: LiftGSTrainer)

    def save_config(self) -> None:
        """Checks the dataset first: ``ns-train`` saves the config (making the run's folder) before it builds
        the pipeline, so a bad ``--data`` ends here in one line and leaves no run folder behind."""
        datamanager = self.pipeline.datamanager
        if isinstance(datamanager, LiftGSDataManagerConfig):
            check_training_root(datamanager.data, datamanager.train_split, datamanager.eval_split)
        super().save_config()


class LiftGSTrainer(Trainer):
    """nerfstudio's ``Trainer`` with atomic checkpoints, resumes that skip unreadable checkpoints and
    ``max_num_iterations`` counted from step 0 (module docstring)."""

    config: LiftGSTrainerConfig

    def checkpoint_state(self, step: int) -> dict:
        """What nerfstudio saves: step, pipeline, optimizers, schedulers and grad scaler state dicts."""
        pipeline = self.pipeline.module if hasattr(self.pipeline, "module") else self.pipeline
        return {
            "step": step,
            "pipeline": pipeline.state_dict(),
            "optimizers": {k: v.state_dict() for (k, v) in self.optimizers.optimizers.items()},
            "schedulers": {k: v.state_dict() for (k, v) in self.optimizers.schedulers.items()},
            "scalers": self.grad_scaler.state_dict(),
        }

    @check_main_thread
    def save_checkpoint(self, step: int) -> None:
        """Writes ``step-<step:09d>.ckpt`` atomically; then deletes older ones if only the latest is kept."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        path = self.checkpoint_dir / f"step-{step:09d}.ckpt"
        with atomic_path(path) as temporary:
            torch.save(self.checkpoint_state(step), temporary)
        if self.config.save_only_latest_checkpoint:
            for other in self.checkpoint_dir.glob("*.ckpt"):
                if other != path:
                    other.unlink()

    def _load_checkpoint(self) -> None:
        """Loads ``--load-dir`` (newest readable, or ``--load-step``) or ``--load-checkpoint``, if given."""
        try:
            found = self._checkpoint_to_resume()
        except ModelLoadError as error:
            raise SystemExit(f"ns-train: cannot resume: {error}") from None
        if found is None:
            CONSOLE.print("No Nerfstudio checkpoint to load, so training from scratch.")
            return
        path, state = found
        self._start_step = state["step"] + 1
        self.pipeline.load_pipeline(state["pipeline"], state["step"])
        self.optimizers.load_optimizers(state["optimizers"])
        if "schedulers" in state and self.config.load_scheduler:
            self.optimizers.load_schedulers(state["schedulers"])
        self.grad_scaler.load_state_dict(state["scalers"])
        CONSOLE.print(f"Done loading Nerfstudio checkpoint from {path}")

    def _checkpoint_to_resume(self) -> tuple[Path, dict] | None:
        if self.config.load_dir is not None:
            _, path, state = newest_checkpoint(self.config.load_dir, self.config.load_step)
            return path, state
        if self.config.load_checkpoint is not None:
            return self.config.load_checkpoint, read_checkpoint(self.config.load_checkpoint)
        return None

    def train(self) -> None:
        """nerfstudio's training loop over the steps left until ``max_num_iterations``."""
        total = self.config.max_num_iterations
        remaining = total - self._start_step
        if remaining <= 0:
            done = self._start_step - 1
            CONSOLE.print(
                f"The checkpoint of step {done} completes max_num_iterations {total}: nothing to train."
            )
            return
        # nerfstudio's loop runs steps _start_step .. _start_step + max_num_iterations - 1.
        self.config.max_num_iterations = remaining
        try:
            super().train()
        finally:
            self.config.max_num_iterations = total
