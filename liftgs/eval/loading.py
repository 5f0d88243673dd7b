"""Loading a trained LiftGS for evaluation and the CLI: a standalone ``.pt`` or a nerfstudio run.

- ``*.pt`` (or any non-YAML file): ``liftgs.model.checkpoint.load_model``.
- ``config.yml`` of an ``ns-train`` run: the newest ``nerfstudio_models/step-*.ckpt`` of that run, with
  the LiftGS network's weights taken out of the pipeline state (see ``_load_nerfstudio``).

Every failure is a ``ModelLoadError`` with a one-line message naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

import liftgs

if TYPE_CHECKING:
    from liftgs.model import LiftGS

DEFAULT_CHECKPOINT = Path(liftgs.__file__).resolve().parent.parent / "assets" / "liftgs_synthetic.pt"
"""The demo checkpoint shipped in the repository (``assets/liftgs_synthetic.pt``)."""


class ModelLoadError(ValueError):
    """A checkpoint or nerfstudio run could not be loaded; the message is one line naming the file."""


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ModelLoadError(f"--device {device!r}: {error}") from None


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
        ``(model, info)``: ``info`` holds ``"checkpoint"`` (the file read) and whatever extra data the
        checkpoint carried.
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
    import yaml

    from liftgs.model import LiftGS

    try:
        config = yaml.load(config_path.read_text(), Loader=yaml.Loader)  # as ns-eval reads it
        model_config = config.pipeline.model
    except Exception as error:  # yaml errors, unimportable config classes, a YAML that is no ns config
        raise ModelLoadError(
            f"{config_path}: not a readable nerfstudio config: {_first_line(error)}"
        ) from None
    network_config = _find_liftgs_config(model_config)
    if network_config is None:
        raise ModelLoadError(
            f"{config_path}: its model ({type(model_config).__name__}) has no LiftGSConfig; "
            "is this a LIFT-GS run?"
        )
    checkpoint_dir = config_path.parent / Path(getattr(config, "relative_model_dir", "nerfstudio_models"))
    checkpoints = sorted(checkpoint_dir.glob("step-*.ckpt"))
    if not checkpoints:
        raise ModelLoadError(f"{config_path}: no step-*.ckpt in {checkpoint_dir}")
    try:
        state = torch.load(checkpoints[-1], map_location="cpu", weights_only=True)["pipeline"]
    except Exception as error:  # torch raises several types for truncated/corrupt files
        raise ModelLoadError(
            f"cannot read {checkpoints[-1]} (truncated or corrupt?): {_first_line(error)}"
        ) from None
    model = LiftGS(network_config)
    expected = model.state_dict()
    prefix = _state_prefix(state, list(expected))
    if prefix is None:
        raise ModelLoadError(f"{checkpoints[-1]}: no LiftGS weights matching {config_path}'s config")
    try:
        model.load_state_dict({name: state[prefix + name] for name in expected})
    except RuntimeError as error:
        raise ModelLoadError(
            f"{checkpoints[-1]}: weights do not match {config_path}'s config: {_first_line(error)}"
        ) from None
    return model, {"step": int(checkpoints[-1].stem.split("-")[-1])}


def _find_liftgs_config(model_config):
    """The ``LiftGSConfig`` that is ``model_config`` or one of its (dataclass) fields, else None."""
    import dataclasses

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


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
