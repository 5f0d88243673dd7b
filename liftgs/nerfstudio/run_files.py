"""Reading an ``ns-train`` run folder: its ``config.yml`` (no code runs) and its newest intact checkpoint.

A run folder holds ``config.yml`` and ``<relative_model_dir>/step-<N:09d>.ckpt`` files (nerfstudio's
layout). A checkpoint that cannot be read (a save cut short by a kill, a full disk) is skipped with one
warning line and the next older one is used; errors are ``ModelLoadError`` with a one-line message.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch

from liftgs.config_yaml import ConfigYAMLError, read_config_yaml
from liftgs.model.loading import ModelLoadError, first_line

log = logging.getLogger(__name__)

_CHECKPOINT_NAME = re.compile(r"step-(\d+)\.ckpt")


def read_trainer_config(config_path: Path):
    """The ``TrainerConfig`` of a run's ``config.yml``, read with ``liftgs.config_yaml.ConfigLoader``."""
    from nerfstudio.engine.trainer import TrainerConfig

    config_path = Path(config_path)
    if not config_path.is_file():
        raise ModelLoadError(f"{config_path}: no such config.yml")
    try:
        config = read_config_yaml(config_path)
    except ConfigYAMLError as error:
        raise ModelLoadError(str(error)) from None
    if not isinstance(config, TrainerConfig):
        kind = type(config).__name__
        raise ModelLoadError(f"{config_path}: not a nerfstudio config (a {kind}, not a TrainerConfig)")
    return config


def run_checkpoint_dir(config_path: Path, config) -> Path:
    """The folder of a run's checkpoints: ``relative_model_dir`` beside its ``config.yml``."""
    return Path(config_path).parent / Path(config.relative_model_dir)


def checkpoint_files(folder: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``step-N.ckpt`` in ``folder``, oldest first (temporary files excluded)."""
    found = []
    for path in Path(folder).glob("step-*.ckpt"):
        match = _CHECKPOINT_NAME.fullmatch(path.name)
        if match is not None and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A nerfstudio checkpoint (``step``, ``pipeline``, ...) read with ``weights_only=True`` on the CPU."""
    if not Path(path).is_file():
        raise ModelLoadError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or corrupt files
        reason = first_line(error).split(". ")[0]  # torch appends paragraphs of advice
        raise ModelLoadError(f"{path}: unreadable (truncated or corrupt?): {reason}") from None
    if not isinstance(state, dict) or not {"step", "pipeline"} <= state.keys():
        raise ModelLoadError(f"{path}: not a nerfstudio checkpoint (no step and pipeline entries)")
    return state


def newest_checkpoint(folder: Path, step: int | None = None) -> tuple[int, Path, dict[str, Any]]:
    """``(step, path, state)`` of the newest readable checkpoint in ``folder``, or of ``step`` when given.

    Unreadable newer checkpoints are skipped with one warning line each.

    Raises:
        ModelLoadError: no checkpoint, the asked step is missing or unreadable, or none is readable.
    """
    folder = Path(folder)
    found = checkpoint_files(folder)
    if not found:
        raise ModelLoadError(f"{folder}: no step-*.ckpt checkpoint (did the run save one?)")
    if step is not None:
        paths = dict(found)
        if step not in paths:
            steps = ", ".join(str(s) for s, _ in found)
            raise ModelLoadError(f"{folder}: no checkpoint of step {step} (steps there: {steps})")
        return step, paths[step], read_checkpoint(paths[step])
    for found_step, path in reversed(found):
        try:
            return found_step, path, read_checkpoint(path)
        except ModelLoadError as error:
            log.warning("skipping %s; using the next older checkpoint", error)
    raise ModelLoadError(f"{folder}: none of its {len(found)} checkpoints is readable")
