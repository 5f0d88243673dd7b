"""Reading checkpoints of an older format: their config and weights in today's names, or one clear error.

Format 2 files predate the options of ``FORMAT2_ADDED``; ``migrate_format2`` gives them the values that build
the network the file holds.

Format 1 stored ``config_to_dict`` of a ``LiftGSConfig`` whose defaults were a larger network with every
relational option off (``FORMAT1_DEFAULTS``), spelled ``colour`` where today's names say ``color``, and
had options whose other code paths are gone. ``migrate_format1`` turns such a file into format 2:

- fields the file lacks take the format-1 defaults (not today's), and the fields it has win;
- ``decoder.colour_channels`` becomes ``decoder.color_channels``; weights under ``decoder.heads.colour.``
  move to ``decoder.heads.color.``;
- each option that no longer exists must hold the value today's network always has wherever the option
  mattered (``FORMAT1_FIXED``); the first that does not is a ``ValueError`` naming it.
"""

from __future__ import annotations

import copy
from typing import Any

from liftgs.model.config import SYNTHETIC_RELATION_KINDS

FORMAT1_DEFAULTS: dict[str, Any] = {
    "voxel_size": 0.05,
    "max_points": 20000,
    "subsample": "fps",
    "seed": 0,
    "text_encoder": "minilm",
    "text_dim": 384,
    "encoder": {
        "enc_channels": [64, 96, 128],
        "enc_depths": [1, 2, 2],
        "dec_channels": [64, 96],
        "dec_depths": [1, 1],
        "head_dim": 32,
        "patch_size": 96,
        "mlp_ratio": 2.0,
        "orders": ["z", "hilbert", "z-trans", "hilbert-trans"],
        "extra_channels": 0,
    },
    "decoder": {
        "d_model": 128,
        "point_dim": 64,
        "num_queries": 16,
        "num_layers": 3,
        "num_heads": 4,
        "ffn_ratio": 2.0,
        "point_ffn": False,
        "align_dim": 64,
        "dropout": 0.0,
        "lifted_affinity": False,
        "lifted_projection_seed": 0,
        "anchor_slots": 0,
        "anchors_avoid_target_words": False,
        "anchors_read_words_only": False,
        "relation_coefficients": "query",
        "relation_kinds": list(SYNTHETIC_RELATION_KINDS),
        "colour_channels": 0,
        "read_target_words": False,
        "anchors_grounded": False,
        "candidate_relative": False,
        "colour_from_words": False,
        "colour_anchors": False,
    },
    "gaussians": {
        "gaussians_per_point": 1,
        "feature_dim": 0,
        "hidden": 64,
        "max_offset": 1.0,
        "min_scale": 0.05,
        "max_scale": 3.0,
        "init_scale": 0.7,
        "init_opacity": 0.9,
    },
}
"""``config_to_dict(LiftGSConfig())`` of format 1: what a format-1 file meant by a field it lacks."""

FORMAT1_FIXED: tuple[tuple[str, Any, str], ...] = (
    ("point_ffn", False, "always"),
    ("read_target_words", True, "always"),
    ("anchors_avoid_target_words", False, "anchors"),
    ("anchors_read_words_only", False, "anchors"),
    ("relation_coefficients", "relation", "anchors"),
    ("anchors_grounded", True, "anchors"),
    ("candidate_relative", True, "anchors or color"),
    ("colour_from_words", True, "color"),
    ("colour_anchors", True, "anchors and color"),
)
"""Format-1 decoder options that no longer exist: (name, the value today's network always has, where the
option mattered: always, with anchor slots, with a color term, with either or with both)."""

RENAMED_WEIGHTS = (("decoder.heads.colour.", "decoder.heads.color."),)
"""(format-1 prefix, format-2 prefix) of state-dict keys."""


def migrate_format1(config: Any, state_dict: Any) -> tuple[dict[str, Any], Any]:
    """(format-2 config dict, state dict) of a format-1 file's ``config`` and ``state_dict``.

    Raises:
        ValueError (one line): the config is not a dict, or uses an option whose code path is gone.
    """
    if not isinstance(config, dict):
        raise ValueError(f"expected a dict, got {type(config).__name__}")
    merged = _with_defaults(FORMAT1_DEFAULTS, config)
    decoder = merged.get("decoder")
    if isinstance(decoder, dict):
        anchors = bool(decoder.get("anchor_slots"))
        color = bool(decoder.get("colour_channels"))
        matters = {
            "always": True,
            "anchors": anchors,
            "color": color,
            "anchors or color": anchors or color,
            "anchors and color": anchors and color,
        }
        for name, value, where in FORMAT1_FIXED:
            stored = decoder.pop(name)
            if matters[where] and stored != value:
                raise ValueError(
                    f"decoder.{name}={stored!r}: a network this version no longer builds (it builds "
                    f"{value!r}); retrain it"
                )
        decoder["color_channels"] = decoder.pop("colour_channels")
    if isinstance(state_dict, dict):
        state_dict = {_renamed(key): value for key, value in state_dict.items()}
    return merged, state_dict


FORMAT2_ADDED: dict[str, Any] = {"decoder": {"color_names": False}}
"""Options added since format 2, at the values that build the network a format-2 file holds."""


def migrate_format2(config: Any) -> dict[str, Any]:
    """Format-3 config dict of a format-2 file's ``config``: the options it predates take ``FORMAT2_ADDED``.

    Raises:
        ValueError (one line): the config is not a dict.
    """
    if not isinstance(config, dict):
        raise ValueError(f"expected a dict, got {type(config).__name__}")
    return _with_defaults(FORMAT2_ADDED, config)


def _with_defaults(defaults: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """``stored`` with the fields it lacks taken from ``defaults`` (nested dicts merged field by field)."""
    merged = copy.deepcopy(defaults)
    for key, value in stored.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _with_defaults(merged[key], value)
        else:
            merged[key] = value
    return merged


def _renamed(key: str) -> str:
    for old, new in RENAMED_WEIGHTS:
        if key.startswith(old):
            return new + key[len(old) :]
    return key
