"""Damaged pseudo-label and lifted-feature files: resumable runs redo them instead of counting them done,
and the lifter names a bad file in one line instead of crashing."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from liftgs.data.point_features import LIFTED_FILE, save_lifted_features
from liftgs.data.store import DatasetError, load_scene, write_scene
from liftgs.pseudo.command import label_dataset
from liftgs.pseudo.lift_dataset import LiftFeaturesCommand, lift_dataset
from liftgs.pseudo.noise import NoiseConfig
from liftgs.pseudo.segments import PseudoLabelError, pseudo_path, read_pseudo_labels
from liftgs.pseudo.synthetic import SyntheticLabeller
from tests.support.network import HashTextEncoder
from tests.support.scenes import toy_scene

FOLDER = "pseudo-test"


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


@pytest.fixture
def labelled(tmp_path):
    """A dataset root of one toy scene (4 frames) whose frames are pseudo-labelled in ``FOLDER``."""
    root = tmp_path / "root"
    write_scene(toy_scene(num_frames=4, height=24, width=32), root / "scans/toy0000")
    labeller = SyntheticLabeller(HashTextEncoder(dim=16), NoiseConfig().scaled(0.0))
    assert label_dataset(root, labeller, folder=FOLDER, progress=False).labelled == 4
    return root, labeller


def test_pseudo_label_redoes_an_unreadable_label_file(labelled, caplog):
    root, labeller = labelled
    bad = pseudo_path(root / "scans/toy0000", "2", FOLDER)
    _truncate(bad)
    with pytest.raises(PseudoLabelError, match="unreadable pseudo-labels"):
        read_pseudo_labels(bad)
    with caplog.at_level(logging.WARNING, logger="liftgs.pseudo.command"):
        summary = label_dataset(root, labeller, folder=FOLDER, progress=False)
    assert (summary.labelled, summary.skipped) == (1, 3)
    assert read_pseudo_labels(bad).num_segments > 0
    assert any(str(bad) in record.getMessage() for record in caplog.records)


def test_lift_features_names_an_unreadable_label_file_and_redoes_unreadable_features(
    labelled, caplog, capsys
):
    root, labeller = labelled
    scene_dir = root / "scans/toy0000"
    bad = pseudo_path(scene_dir, "1", FOLDER)
    _truncate(bad)
    with caplog.at_level(logging.WARNING, logger="liftgs.pseudo.lift_dataset"):
        summary = lift_dataset(root, FOLDER, dim=8, progress=False)
    assert (summary.lifted, summary.unreadable) == (0, 1)
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and str(bad) in warnings[0] and "\n" not in warnings[0]
    assert "run `liftgs pseudo-label`" in summary.line()
    assert not (scene_dir / LIFTED_FILE).exists()

    label_dataset(root, labeller, folder=FOLDER, progress=False)  # the advice: redo the bad file
    LiftFeaturesCommand(root, source="stored", folder=FOLDER, dim=8, progress=False).main()
    assert capsys.readouterr().out.startswith(
        f"lift-features (pseudo-labels in {FOLDER}/; every scene): 1 scenes lifted, 0 skipped"
    )
    assert load_scene(scene_dir, load_frames=False).point_features.shape[1] == 8

    _truncate(scene_dir / LIFTED_FILE)
    with pytest.raises(DatasetError, match=r"unreadable lifted features .* run `liftgs lift-features` again"):
        load_scene(scene_dir, load_frames=False)
    again = lift_dataset(root, FOLDER, dim=8, progress=False)
    assert (again.lifted, again.skipped) == (1, 0)  # redone, not counted as already done
    assert lift_dataset(root, FOLDER, dim=8, progress=False).skipped == 1

    save_lifted_features(scene_dir, np.zeros((3, 8)), {})  # another cloud's rows
    with pytest.raises(DatasetError, match="for a cloud of .* run `liftgs lift-features` again"):
        load_scene(scene_dir, load_frames=False)
    assert lift_dataset(root, FOLDER, dim=8, progress=False).lifted == 1  # the advice fixes it
