"""Checkpoints: tensors and plain data only, written atomically, read with ``weights_only=True``.

Layout of the file (a ``torch.save`` dict): ``format`` (``"liftgs"``), ``version`` (int), ``config`` (the
``LiftGSConfig`` as a plain dict), ``state_dict`` (the trainable network; the frozen text encoder is rebuilt
from ``config.text_encoder``), ``extra`` (caller's plain data: step, metrics, ...).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from liftgs.model.config import LiftGSConfig, config_from_dict, config_to_dict
from liftgs.model.liftgs import LiftGS
from liftgs.model.text import TextEncoder

FORMAT = "liftgs"
VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be used: missing, unreadable, of another format/version or config."""


def save_checkpoint(path: str | Path, model: LiftGS, extra: dict[str, Any] | None = None) -> Path:
    """Writes ``model`` (config, weights) and ``extra`` to ``path`` atomically (temp file, os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": config_to_dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_model(
    path: str | Path,
    text_encoder: TextEncoder | None = None,
    expected_config: LiftGSConfig | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[LiftGS, dict[str, Any]]:
    """Rebuilds the model saved by ``save_checkpoint``; returns it (eval mode) and the ``extra`` dict.

    Args:
        text_encoder: use this encoder instead of building ``config.text_encoder``.
        expected_config: when given, the stored config must equal it.
    Raises:
        CheckpointError: missing or unreadable file, wrong format/version, a config that differs from
            ``expected_config`` or weights that do not fit the stored config.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for truncated/corrupt files
        raise CheckpointError(
            f"cannot read checkpoint {path} (truncated or corrupt?): {_first_line(error)}"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a LIFT-GS checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {payload.get('version')} (this code reads {VERSION})"
        )
    try:
        config = config_from_dict(LiftGSConfig, payload["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: bad config: {_first_line(error)}") from error
    if expected_config is not None and config != expected_config:
        raise CheckpointError(
            f"{path}: stored config differs from the expected one ({_diff(config, expected_config)})"
        )
    model = LiftGS(config, text_encoder=text_encoder)
    try:
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(
            f"{path}: weights do not match the stored config: {_first_line(error)}"
        ) from error
    return model.to(map_location).eval(), payload.get("extra", {})


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    if not text:
        return type(error).__name__
    return text.splitlines()[-1 if text.startswith("Error(s)") else 0].strip()[:200]


def _diff(a: Any, b: Any, prefix: str = "") -> str:
    """Comma-separated dotted names of the config fields where ``a`` and ``b`` differ."""
    da, db = config_to_dict(a), config_to_dict(b)
    return ", ".join(_diff_dicts(da, db, prefix))


def _diff_dicts(a: dict, b: dict, prefix: str) -> list[str]:
    names = []
    for key in a:
        if isinstance(a[key], dict):
            names += _diff_dicts(a[key], b[key], f"{prefix}{key}.")
        elif a[key] != b[key]:
            names.append(f"{prefix}{key}")
    return names
