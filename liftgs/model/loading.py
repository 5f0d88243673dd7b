"""Loading a trained LiftGS for the CLI, evaluation and the viewer: a standalone ``.pt`` or a nerfstudio run.

- ``*.pt`` (or any non-YAML file): ``liftgs.model.checkpoint.load_model``.
- ``config.yml`` of an ``ns-train`` run: read with ``liftgs.config_yaml`` (nothing in it is run), weights
  from the run's newest readable ``step-*.ckpt`` (``liftgs.nerfstudio.run_files``), taken out of the
  pipeline state (see ``_load_nerfstudio``).

Every failure is a ``ModelLoadError`` with a one-line message naming the file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import torch

import liftgs

if TYPE_CHECKING:
    from liftgs.model import LiftGS, LiftGSConfig

DEFAULT_CHECKPOINT = Path(liftgs.__file__).resolve().parent.parent / "assets" / "liftgs_synthetic.pt"
"""The demo checkpoint shipped in the repository (``assets/liftgs_synthetic.pt``)."""


class ModelLoadError(ValueError):
    """A checkpoint or nerfstudio run could not be loaded; the message is one line naming the file."""


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else must name a device this machine has."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        target = torch.device(device)
    except RuntimeError as error:
        raise ModelLoadError(f"--device {device!r}: {first_line(error)}") from None
    if target.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelLoadError(f"--device {device!r}: CUDA is not available here (use cpu or auto)")
        if target.index is not None and target.index >= torch.cuda.device_count():
            raise ModelLoadError(
                f"--device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return target


def resolve_checkpoint(path: Path | None) -> Path:
    """``path``, or the shipped demo checkpoint when None; raises ``ModelLoadError`` if it does not exist."""
    if path is None:
        if not DEFAULT_CHECKPOINT.is_file():
            raise ModelLoadError(
                f"no --checkpoint given and the default {DEFAULT_CHECKPOINT} is missing "
                "(train one with ns-train liftgs, or pass --checkpoint PATH)"
            )
        return DEFAULT_CHECKPOINT
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"checkpoint not found: {path}")
    return path


def load_liftgs(path: Path | None, device: str = "auto") -> tuple[LiftGS, dict]:
    """The LiftGS network (eval mode, on ``device``) from a ``.pt`` checkpoint or a nerfstudio config.yml.

    Returns:
        ``(model, info)``: ``info`` holds ``"checkpoint"`` (the file given) and whatever extra data the
        checkpoint carried (``"step"`` for a nerfstudio run).
    """
    from liftgs.model.checkpoint import CheckpointError, load_model

    path = resolve_checkpoint(path)
    target = resolve_device(device)
    if path.suffix in (".yml", ".yaml"):
        model, info = _load_nerfstudio(path)
    else:
        try:
            model, info = load_model(path)
        except CheckpointError as error:
            raise ModelLoadError(str(error)) from None
    return model.to(target).eval(), {**info, "checkpoint": str(path)}


def _load_nerfstudio(config_path: Path) -> tuple[LiftGS, dict]:
    """The LiftGS inside an ``ns-train`` run: config from ``config.yml``, weights from its newest checkpoint.

    The network's config is the ``LiftGSConfig`` found among the fields of ``config.pipeline.model``; its
    weights are the pipeline state entries under the one prefix (e.g. ``_model.network.``) that holds a
    full LiftGS state dict.
    """
    from liftgs.model import LiftGS
    from liftgs.nerfstudio.run_files import newest_checkpoint, read_trainer_config, run_checkpoint_dir

    config = read_trainer_config(config_path)
    model_config = config.pipeline.model
    network_config = _find_liftgs_config(model_config)
    if network_config is None:
        raise ModelLoadError(
            f"{config_path}: its model ({type(model_config).__name__}) has no LiftGSConfig; "
            "is this a LIFT-GS run?"
        )
    step, checkpoint, state = newest_checkpoint(run_checkpoint_dir(config_path, config))
    model = LiftGS(network_config)
    expected = model.state_dict()
    prefix = _state_prefix(state["pipeline"], list(expected))
    if prefix is None:
        raise ModelLoadError(f"{checkpoint}: no LiftGS weights matching {config_path}'s config")
    try:
        model.load_state_dict({name: state["pipeline"][prefix + name] for name in expected})
    except RuntimeError as error:
        raise ModelLoadError(
            f"{checkpoint}: weights do not match {config_path}'s config: {first_line(error)}"
        ) from None
    return model, {"step": step}


def _find_liftgs_config(model_config) -> LiftGSConfig | None:
    """The ``LiftGSConfig`` that is ``model_config`` or one of its (dataclass) fields, else None."""
    from liftgs.model import LiftGSConfig

    if isinstance(model_config, LiftGSConfig):
        return model_config
    if dataclasses.is_dataclass(model_config):
        for field in dataclasses.fields(model_config):
            value = getattr(model_config, field.name, None)
            if isinstance(value, LiftGSConfig):
                return value
    return None


def _state_prefix(state: dict, names: list[str]) -> str | None:
    """The prefix ``p`` with ``p + name`` in ``state`` for every one of ``names`` (a LiftGS state dict)."""
    first = names[0]
    candidates = {key[: len(key) - len(first)] for key in state if key.endswith(first)}
    for prefix in sorted(candidates, key=len):
        if (prefix == "" or prefix.endswith(".")) and all(prefix + name in state for name in names):
            return prefix
    return None


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (at most 200 characters), else its type's name."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
