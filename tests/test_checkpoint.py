"""Checkpoint round trip and every kind of bad checkpoint."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from liftgs.model import CheckpointError, LiftGS, LiftGSConfig, load_model, save_checkpoint
from liftgs.model.config import config_from_dict, config_to_dict
from tests.support.network import text_features, tiny_config


def outputs(model: LiftGS) -> torch.Tensor:
    """Mask logits and Gaussian centres of a random scene and random text features (the text encoder is
    never built)."""
    g = torch.Generator().manual_seed(0)
    points = torch.rand(500, 3, generator=g) * 3
    width = model.config.text_dim
    with torch.no_grad():
        scene = model.encode_scene(points, torch.rand(500, 3, generator=g))
        text = text_features(
            torch.randn(1, 4, width, generator=g), torch.ones(1, 4, dtype=torch.bool), torch.zeros(1, width)
        )
        return torch.cat([model.ground(scene, text).mask_logits.flatten(), scene.gaussians.means.flatten()])


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = LiftGS(tiny_config()).eval()
    path = save_checkpoint(tmp_path / "ckpt" / "model.pt", model, extra={"step": 12, "metrics": {"acc": 0.5}})
    return model, path


def test_round_trip(saved):
    model, path = saved
    loaded, extra = load_model(path, expected_config=tiny_config())
    assert extra == {"step": 12, "metrics": {"acc": 0.5}}
    assert loaded.config == model.config and not loaded.training
    assert torch.equal(outputs(loaded), outputs(model))
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary file left behind


def test_config_dict_round_trip():
    config = tiny_config()
    assert config_from_dict(LiftGSConfig, config_to_dict(config)) == config
    with pytest.raises(ValueError, match="unknown field"):
        config_from_dict(LiftGSConfig, {**config_to_dict(config), "color": 1})


def test_failed_save_keeps_the_old_file(saved, monkeypatch):
    model, path = saved
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model)
    assert path.read_bytes() == before and len(list(path.parent.iterdir())) == 1


def expect_error(path, match: str, **kwargs) -> None:
    with pytest.raises(CheckpointError, match=match) as info:
        load_model(path, **kwargs)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.pt", "checkpoint not found")


def test_truncated_file(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "truncated or corrupt")


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a checkpoint" * 10)
    expect_error(path, "truncated or corrupt")


def test_other_torch_file(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    expect_error(path, "not a LIFT-GS checkpoint")


def rewrite(path, **changes) -> None:
    payload = torch.load(path, weights_only=True)
    payload.update(changes)
    torch.save(payload, path)


def test_other_version(saved):
    _, path = saved
    rewrite(path, version=99)
    expect_error(path, "version 99")


def test_weights_from_another_config(saved):
    _, path = saved
    config = tiny_config()
    config.decoder.d_model *= 2
    rewrite(path, config=config_to_dict(config))
    expect_error(path, "weights do not match the stored config")


def test_config_other_than_expected(saved):
    _, path = saved
    other = dataclasses.replace(tiny_config(), voxel_size=2 * tiny_config().voxel_size)
    expect_error(path, "differs from the expected one \\(voxel_size\\)", expected_config=other)


def test_unknown_config_field(saved):
    _, path = saved
    rewrite(path, config={**config_to_dict(tiny_config()), "future_option": 1})
    expect_error(path, "bad config: .*future_option")
