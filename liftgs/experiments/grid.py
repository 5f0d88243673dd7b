"""The experiment grid (supervision, data efficiency, pseudo-label noise) as a list of runs, each an exact
``ns-train`` command line.

Runs (deduplicated by name; a run shared by two studies is trained once):

- (a) supervision: ``scratch-f1`` (``liftgs``, render-supervised, 100% of the expressions) vs ``3d-f1``
  (``liftgs-3d``), same network and step budget;
- (b) data efficiency: ``scratch-f<F>`` vs ``finetune-f<F>-noise<N0>`` (``liftgs`` from the checkpoint of
  ``pretrain-noise<N0>``) for every labelled fraction F, N0 = the pretraining noise level;
- (c) pseudo-label noise: ``pretrain-noise<N>`` (``liftgs-pretrain`` on pseudo-labels made at noise level
  N) then ``finetune-f<Fn>-noise<N>`` at one fraction Fn (the smallest of the fractions).

Every run trains the same network (``LiftGSConfig()``, whose Gaussian features are the distillation
target, so pretrained weights load) for the same number of steps (pretraining has its own
budget).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Method = Literal["liftgs", "liftgs-3d", "liftgs-pretrain"]
NEVER = 10**9
"""Period of the trainer's periodic evaluations: never during an experiment run (scored afterwards)."""


@dataclass(frozen=True)
class RunSpec:
    """One training run of the grid.

    Attributes:
        name: unique run name (also its output folder and checkpoint name).
        method: the ``ns-train`` method.
        fraction: labelled fraction of the training expressions (fine-tuning / scratch / 3D runs).
        noise: pseudo-label noise level (pretraining runs and the runs fine-tuned from them), else None.
        init: name of the pretraining run whose checkpoint initialises this one, or None (from scratch).
    """

    name: str
    method: Method
    fraction: float = 1.0
    noise: float | None = None
    init: str | None = None


def pseudo_folder(noise: float) -> str:
    """The pseudo-label folder (under each scene) of noise level ``noise``."""
    return f"pseudo-noise{noise:g}"


def pretrain_name(noise: float) -> str:
    return f"pretrain-noise{noise:g}"


def scratch_name(fraction: float) -> str:
    return f"scratch-f{fraction:g}"


def finetune_name(fraction: float, noise: float) -> str:
    return f"finetune-f{fraction:g}-noise{noise:g}"


THREE_D = "3d-f1"


def plan_runs(
    fractions: Sequence[float], noise_levels: Sequence[float], pretrain_noise: float
) -> list[RunSpec]:
    """The grid's runs in a valid order (a pretraining run before the runs initialised from it).

    Raises:
        ValueError: no fraction / noise level, or a fraction outside (0, 1].
    """
    if not fractions or not noise_levels:
        raise ValueError("--fractions and --noise-levels need at least one value each")
    bad = [f for f in fractions if not 0.0 < f <= 1.0]
    if bad:
        raise ValueError(f"--fractions must be in (0, 1], got {bad}")
    noise_fraction = min(fractions)
    runs = [RunSpec(scratch_name(1.0), "liftgs"), RunSpec(THREE_D, "liftgs-3d")]
    runs += [RunSpec(scratch_name(f), "liftgs", fraction=f) for f in fractions]
    for noise in dict.fromkeys([pretrain_noise, *noise_levels]):
        runs.append(RunSpec(pretrain_name(noise), "liftgs-pretrain", noise=noise))
    for fraction in fractions:
        init = pretrain_name(pretrain_noise)
        runs.append(
            RunSpec(finetune_name(fraction, pretrain_noise), "liftgs", fraction, pretrain_noise, init)
        )
    for noise in noise_levels:
        init = pretrain_name(noise)
        runs.append(RunSpec(finetune_name(noise_fraction, noise), "liftgs", noise_fraction, noise, init))
    return list({run.name: run for run in runs}.values())


@dataclass(frozen=True)
class RunSettings:
    """What every run of one ``liftgs experiments`` invocation shares."""

    data: Path
    work_dir: Path
    """Run outputs (``runs/``) and exported checkpoints (``checkpoints/``)."""
    steps: int
    pretrain_steps: int
    device: str
    threads: int

    def checkpoint(self, name: str) -> Path:
        return self.work_dir / "checkpoints" / f"{name}.pt"


def ns_train_args(run: RunSpec, settings: RunSettings) -> list[str]:
    """The ``ns-train <method>`` arguments of ``run`` (what ``liftgs experiments`` parses and trains)."""
    steps = settings.pretrain_steps if run.method == "liftgs-pretrain" else settings.steps
    args = [
        "--data", str(settings.data),
        "--output-dir", str(settings.work_dir / "runs"),
        "--experiment-name", run.name,
        "--timestamp", "run",
        "--max-num-iterations", str(steps),
        "--optimizers.liftgs.scheduler.max-steps", str(steps),
        "--optimizers.liftgs.scheduler.warmup-steps", str(max(1, min(100, steps // 10))),
        "--steps-per-save", str(steps),
        "--steps-per-eval-batch", str(NEVER),
        "--steps-per-eval-image", str(NEVER),
        "--steps-per-eval-all-images", str(NEVER),
        "--machine.device-type", settings.device,
        "--pipeline.threads", str(settings.threads),
        "--vis", "tensorboard",
        "--viewer.quit-on-train-completion", "True",
    ]  # fmt: skip
    if run.method == "liftgs-pretrain":
        assert run.noise is not None
        args += ["--pipeline.datamanager.pseudo.folder", pseudo_folder(run.noise)]
    else:
        args += ["--pipeline.datamanager.labelled-fraction", f"{run.fraction:g}"]
    if run.init is not None:
        args += ["--pipeline.model.init-checkpoint", str(settings.checkpoint(run.init))]
    return args


def command_line(run: RunSpec, settings: RunSettings) -> str:
    """The exact shell command that trains ``run``."""
    return " ".join(["ns-train", run.method, *ns_train_args(run, settings)])
