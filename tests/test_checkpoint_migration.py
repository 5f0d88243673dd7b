"""Format-1 and format-2 checkpoints load to the same network, or fail in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from liftgs.model import CheckpointError, LiftGSConfig, load_model, save_checkpoint
from liftgs.model.checkpoint import VERSION
from liftgs.model.config import config_to_dict
from liftgs.model.migration import FORMAT1_DEFAULTS
from method_configs.liftgs import lifted_features_network

ROOT = Path(__file__).resolve().parent.parent
FORMAT1 = ROOT / "assets" / "legacy" / "lifted_features_format1.pt"
"""A format-1 checkpoint of the lifted-feature network (``lifted_features_network``)."""
REFERENCE = Path(__file__).resolve().parent / "data" / "lifted_features_format1_outputs.json"
"""Outputs of ``FORMAT1`` on ``reference_inputs`` as the format-1 code computed them (float32 values)."""


def load_reference() -> dict[str, torch.Tensor]:
    with open(REFERENCE) as file:
        stored = json.load(file)
    return {
        name: torch.tensor(item["values"], dtype=torch.float64).reshape(item["shape"]).float()
        for name, item in stored.items()
    }


def reference_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    rng = np.random.default_rng(0)
    points = torch.from_numpy(rng.uniform([0, 0, 0], [2, 2, 1], size=(600, 3)).astype(np.float32))
    colors = torch.from_numpy(rng.uniform(0, 1, size=(600, 3)).astype(np.float32))
    extra = torch.from_numpy(rng.normal(size=(600, 32)).astype(np.float32))
    return points, colors, extra, ["the red chair next to the table", "the lamp farthest from the door"]


def test_a_format1_checkpoint_loads_to_the_same_network_and_outputs():
    assert torch.load(FORMAT1, weights_only=True)["version"] == 1  # written before format 2
    model, _ = load_model(FORMAT1)
    expected = lifted_features_network()
    expected.decoder.color_names = False  # format 1 predates color names
    assert model.config == expected
    points, colors, extra, texts = reference_inputs()
    with torch.no_grad():
        scene = model.encode_scene(points, colors, extra)
        out = model.ground(scene, model.encode_text(texts), all_layers=False)
    reference = load_reference()
    got = {name: getattr(out, name) for name in ("mask_logits", "token_logits", "scores", "boxes")}
    got |= {"anchor_centres": out.anchor_centres, "relation_logits": out.relation_logits}
    gaussians = scene.gaussians
    got |= {name: getattr(gaussians, name) for name in ("means", "scales", "opacities", "colors", "features")}
    assert set(got) == set(reference)
    for name, value in got.items():
        torch.testing.assert_close(value, reference[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.fixture
def format1(tmp_path) -> tuple[Path, dict]:
    """A path to rewrite ``FORMAT1`` to, and its payload."""
    return tmp_path / "old.pt", torch.load(FORMAT1, weights_only=True)


def test_fields_a_format1_file_lacks_take_the_format1_defaults(format1):
    path, payload = format1
    config = payload["config"]
    del config["voxel_size"], config["max_points"], config["gaussians"]["hidden"]
    torch.save(payload, path)
    assert FORMAT1_DEFAULTS["gaussians"]["hidden"] != LiftGSConfig().gaussians.hidden
    with pytest.raises(CheckpointError, match="weights do not match the stored config: .*of another shape"):
        load_model(path)  # hidden became format 1's default (64), so the 32-wide weights do not fit
    payload["config"]["gaussians"]["hidden"] = 32
    torch.save(payload, path)
    model, _ = load_model(path)
    assert (model.config.voxel_size, model.config.max_points) == (0.05, 20000)  # format 1's, not today's
    assert (LiftGSConfig().voxel_size, LiftGSConfig().max_points) == (0.1, 3000)


@pytest.mark.parametrize(
    "name, value",
    [("read_target_words", False), ("relation_coefficients", "query"), ("colour_from_words", False)],
)
def test_a_format1_option_whose_code_path_is_gone_fails_in_one_line(format1, name, value):
    path, payload = format1
    payload["config"]["decoder"][name] = value
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=f"decoder.{name}={value!r}: a network this version") as info:
        load_model(path)
    assert "\n" not in str(info.value)


def test_a_format1_option_that_did_not_matter_is_dropped(format1):
    """Without color channels, format 1's color options built nothing: any value loads."""
    path, payload = format1
    decoder = payload["config"]["decoder"]
    decoder["colour_channels"] = 0
    decoder["colour_from_words"] = decoder["colour_anchors"] = False
    payload["state_dict"] = {k: v for k, v in payload["state_dict"].items() if ".colour." not in k}
    torch.save(payload, path)
    model, _ = load_model(path)
    assert model.config.decoder.color_channels == 0 and model.decoder.heads.color is None


def test_files_are_written_with_todays_names(tmp_path):
    model, _ = load_model(FORMAT1)
    path = save_checkpoint(tmp_path / "new.pt", model)
    payload = torch.load(path, weights_only=True)
    assert payload["version"] == VERSION == 3
    assert payload["config"] == config_to_dict(model.config)
    assert "color_channels" in payload["config"]["decoder"]
    assert not [key for key in payload["state_dict"] if "colour" in key]
    assert any(key.startswith("decoder.heads.color.") for key in payload["state_dict"])


def test_a_file_with_python_objects_fails_in_one_line_without_unsafe_advice(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"format": "liftgs", "hook": Path.cwd}, path)
    with pytest.raises(
        CheckpointError, match="is not a LIFT-GS checkpoint: it holds more than tensors"
    ) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message and "weights_only" not in message and "unsupported global" in message.lower()
    assert "safe_globals" not in message


def test_a_format2_checkpoint_loads_without_color_names(tmp_path):
    """A format-2 file predates ``decoder.color_names``: its network is built without them and keeps its
    outputs."""
    model, _ = load_model(FORMAT1)
    path = save_checkpoint(tmp_path / "format2.pt", model)
    payload = torch.load(path, weights_only=True)
    del payload["config"]["decoder"]["color_names"]
    payload["version"] = 2
    torch.save(payload, path)
    loaded, _ = load_model(path)
    assert loaded.config == model.config and loaded.decoder.heads.color.named is None
    points, colors, extra, texts = reference_inputs()
    with torch.no_grad():
        expected = model.ground(model.encode_scene(points, colors, extra), model.encode_text(texts))
        got = loaded.ground(loaded.encode_scene(points, colors, extra), loaded.encode_text(texts))
    torch.testing.assert_close(got.mask_logits, expected.mask_logits)
