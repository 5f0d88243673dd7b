"""``ns-train liftgs`` on a bad ``--data``: one line, and no run folder left behind."""

from __future__ import annotations

import pytest
from nerfstudio.scripts.train import main as ns_train

from liftgs.data.dataset import GroundingDataset
from liftgs.nerfstudio.datamanager import check_lifted_features
from tests.support.network import tiny_config
from tests.support.scenes import SPLIT, write_toy_dataset
from tests.support.training import tiny_trainer


def _no_val_root(tmp_path):
    root = tmp_path / "no-val"
    write_toy_dataset(root)
    (root / "splits/train.txt").write_text("toy0000\n")
    (root / "splits/val.txt").write_text("")
    return root


@pytest.mark.parametrize("kind", ["missing", "empty", "no val scene"])
def test_ns_train_refuses_a_bad_data_root_before_making_the_run_folder(tmp_path, kind):
    data = {
        "missing": tmp_path / "nowhere",
        "empty": tmp_path / "empty",
        "no val scene": _no_val_root(tmp_path),
    }
    (tmp_path / "empty").mkdir()
    expected = {
        "missing": "dataset root not found",
        "empty": "empty folder",
        "no val scene": "lists no scene",
    }
    config = tiny_trainer("liftgs", tmp_path / "outputs", 1)
    config.data = data[kind]
    with pytest.raises(SystemExit) as raised:
        ns_train(config)
    message = str(raised.value.code)
    assert message.startswith("ns-train: ") and expected[kind] in message and "\n" not in message
    assert not (tmp_path / "outputs").exists()


def test_a_network_that_reads_lifted_features_names_the_commands_that_make_them(tmp_path):
    root = tmp_path / "toy"
    write_toy_dataset(root)
    (root / "splits/val.txt").write_text("toy0001\n")
    (root / "annotations/val.json").write_text("[]")
    data = [GroundingDataset(root, SPLIT), GroundingDataset(root, "val")]
    network = tiny_config()
    check_lifted_features(data, network)  # reads none: nothing to check
    network.encoder.extra_channels = 32
    with pytest.raises(SystemExit) as raised:
        check_lifted_features(data, network)
    assert str(raised.value.code) == (
        f"ns-train: the network reads lifted point features and 2 '{SPLIT}' scenes (e.g. toy0000), 1 'val' "
        f"scenes (e.g. toy0001) have none; run `liftgs lift-features --data {root} --split {SPLIT}` and "
        f"`liftgs lift-features --data {root} --split val`"
    )
