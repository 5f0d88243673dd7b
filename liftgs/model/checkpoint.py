"""Checkpoints: tensors and plain data only, written atomically, read with ``weights_only=True``.

Layout of the file (a ``torch.save`` dict): ``format`` (``"liftgs"``), ``version`` (int), ``config`` (the
``LiftGSConfig`` as a plain dict), ``state_dict`` (the trainable network; the frozen text encoder is rebuilt
from ``config.text_encoder``), ``extra`` (caller's plain data: step, metrics, ...). Files of format versions
1 and 2 are read through ``liftgs.model.migration``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from liftgs.atomic import atomic_path
from liftgs.model.config import LiftGSConfig, config_from_dict, config_to_dict
from liftgs.model.liftgs import LiftGS
from liftgs.model.migration import migrate_format1, migrate_format2
from liftgs.model.text import TextEncoder

FORMAT = "liftgs"
VERSION = 3
"""Format 3: ``LiftGSConfig`` with the shipped network as defaults, ``color`` spellings and
``decoder.color_names``."""
READABLE_VERSIONS = (1, 2, VERSION)


class CheckpointError(Exception):
    """A checkpoint that cannot be used: missing, unreadable, of another format/version or config."""


def save_checkpoint(path: str | Path, model: LiftGS, extra: dict[str, Any] | None = None) -> Path:
    """Writes ``model`` (config, weights) and ``extra`` to ``path`` atomically (``liftgs.atomic``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": config_to_dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        torch.save(payload, file)
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
    except pickle.UnpicklingError as error:  # what ``weights_only`` refuses to rebuild
        raise CheckpointError(
            f"{path} is not a LIFT-GS checkpoint: it holds more than tensors and plain data, which is not "
            f"unpickled ({_refused(error)})"
        ) from error
    except Exception as error:  # torch raises several types for truncated/corrupt files
        raise CheckpointError(
            f"cannot read checkpoint {path} (truncated or corrupt?): {_first_line(error)}"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a LIFT-GS checkpoint")
    version = payload.get("version")
    if version not in READABLE_VERSIONS:
        readable = ", ".join(map(str, READABLE_VERSIONS))
        raise CheckpointError(f"{path}: checkpoint version {version} (this code reads {readable})")
    stored_config, state_dict = payload.get("config"), payload.get("state_dict")
    try:
        if version == 1:
            stored_config, state_dict = migrate_format1(stored_config, state_dict)
        if version in (1, 2):
            stored_config = migrate_format2(stored_config)
        config = config_from_dict(LiftGSConfig, stored_config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: bad config: {_first_line(error)}") from error
    if expected_config is not None and config != expected_config:
        raise CheckpointError(
            f"{path}: stored config differs from the expected one ({_diff(config, expected_config)})"
        )
    try:
        model = LiftGS(config, text_encoder=text_encoder)
    except (TypeError, ValueError) as error:  # values of the wrong type or out of range
        raise CheckpointError(f"{path}: bad config: {_first_line(error)}") from error
    mismatch = _weights_mismatch(model.state_dict(), state_dict)
    if mismatch is not None:
        raise CheckpointError(f"{path}: weights do not match the stored config: {mismatch}")
    model.load_state_dict(state_dict)
    return model.to(map_location).eval(), payload.get("extra", {})


def _first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (its type when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__


def _refused(error: BaseException) -> str:
    """The first sentence of what ``torch.load(weights_only=True)`` refused (e.g. ``Unsupported global:
    GLOBAL getattr was not an allowed global by default``), without its advice to load the file unsafely
    or to allowlist what it holds."""
    lines = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
    details = [line for line in lines if "weights_only" not in line and "torch.load" not in line]
    return details[0].split(". ")[0].rstrip(".") if details else type(error).__name__


def _weights_mismatch(expected: dict[str, torch.Tensor], stored: Any) -> str | None:
    """What keeps ``stored`` from loading into a model whose state dict is ``expected`` (counts of missing,
    unexpected and reshaped weights, each with one example), or None when it fits."""
    if not isinstance(stored, dict):
        return f"state_dict is a {type(stored).__name__}, not a dict"
    missing = [key for key in expected if key not in stored]
    unexpected = [key for key in stored if key not in expected]
    reshaped = [
        key
        for key, value in expected.items()
        if key in stored and tuple(getattr(stored[key], "shape", ())) != tuple(value.shape)
    ]
    problems = [
        f"{len(keys)} {label} (e.g. {keys[0]})"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped))
        if keys
    ]
    return "; ".join(problems) or None


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
