"""``liftgs pseudo-label``: resume, sharding, bad input and the summary, over scenes written by the store."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from liftgs.cli import main as cli_main
from liftgs.data.store import DatasetError, list_frame_names, write_scene
from liftgs.model.types import TextFeatures
from liftgs.pseudo.command import SYNTHETIC_GENERATOR, label_dataset, parse_shard
from liftgs.pseudo.noise import NoiseConfig
from liftgs.pseudo.segments import NO_SEGMENT, PseudoLabelError, load_pseudo_labels, pseudo_path
from liftgs.pseudo.synthetic import SyntheticLabeller
from liftgs.scene import Frame, Scene, SceneObject
from tests.support.network import text_features

SCENES = ["scan0000", "scan0001", "scan0002"]
FRAMES = ["0", "1", "2"]
NAMES = {0: "chair", 1: "table"}


class HashEncoder:
    """A stand-in text encoder (8-d, deterministic per text) that counts what it encodes."""

    dim = 8

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: list[str]) -> TextFeatures:
        self.calls += 1
        pooled = torch.stack(
            [
                torch.randn(self.dim, generator=torch.Generator().manual_seed(len(t) * 31 + ord(t[0])))
                for t in texts
            ]
        )
        return text_features(pooled[:, None], torch.ones(len(texts), 1, dtype=torch.bool), pooled)


class CountingLabeller(SyntheticLabeller):
    """The stand-in labeller that records the frames it labels and can crash after ``crash_after`` of them."""

    def __init__(self, noise: float = 0.0, crash_after: int | None = None, wrong_width: bool = False) -> None:
        super().__init__(HashEncoder(), NoiseConfig().scaled(noise), text_encoder_spec="hash")
        self.labelled: list[tuple[str, str]] = []
        self.crash_after = crash_after
        self.wrong_width = wrong_width

    def label(self, frame):
        if self.crash_after is not None and len(self.labelled) == self.crash_after:
            raise KeyboardInterrupt
        self.labelled.append((frame.scene_id, frame.name))
        labels = super().label(frame)
        if self.wrong_width:
            labels.embeddings = labels.embeddings[:, :5]
        return labels


def _scene(scene_id: str) -> Scene:
    frames = []
    for i, name in enumerate(FRAMES):
        instance = np.full((12, 16), NO_SEGMENT, dtype=np.int32)
        if name != "2":  # frame 2 sees no object
            instance[1:6, 1 + i : 8 + i] = 0
            instance[7:11, 4:14] = 1
        frames.append(
            Frame(
                name=name, image=np.full((12, 16, 3), 40 * i, np.uint8), depth=np.ones((12, 16), np.float32),
                K=np.array([[20.0, 0, 8], [0, 20.0, 6], [0, 0, 1]]), c2w=np.eye(4), instance=instance,
            )
        )  # fmt: skip
    objects = {i: SceneObject(i, name, np.array([0, 0, 0, 1, 1, 1.0])) for i, name in NAMES.items()}
    points = np.zeros((4, 3), np.float32)
    return Scene(scene_id, points, np.zeros((4, 3), np.float32), np.zeros(4, np.int64), frames, objects)


@pytest.fixture
def root(tmp_path):
    for scene_id in SCENES:
        write_scene(_scene(scene_id), tmp_path / "scans" / scene_id)
    return tmp_path


def _outputs(root) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.glob("scans/*/pseudo*/*.npz")}


def test_labels_every_frame_and_counts_them(root):
    summary = label_dataset(root, CountingLabeller(), progress=False)
    assert (summary.labelled, summary.empty, summary.skipped, summary.unreadable) == (9, 0, 0, 0)
    labels = load_pseudo_labels(root / "scans/scan0001", "0", expected_dim=8)
    assert labels.num_segments == 3 and labels.segment_map.shape == (12, 16)  # chair, table, wall
    assert load_pseudo_labels(root / "scans/scan0001", "2").num_segments == 1  # no object: the wall alone


def test_resume_skips_done_frames_without_recomputing(root):
    label_dataset(root, CountingLabeller(), progress=False)
    before = _outputs(root)
    pseudo_path(root / "scans/scan0002", "1").unlink()
    labeller = CountingLabeller()
    summary = label_dataset(root, labeller, progress=False)
    assert labeller.labelled == [("scan0002", "1")]
    assert (summary.labelled, summary.skipped) == (1, 8)
    after = _outputs(root)
    assert after.keys() == before.keys()
    assert all(after[k] == before[k] for k in before if "scan0002/pseudo/1" not in k)


def test_interrupted_run_resumes_where_it_stopped(root):
    with pytest.raises(KeyboardInterrupt):
        label_dataset(root, CountingLabeller(crash_after=4), progress=False)
    assert len(_outputs(root)) == 4
    labeller = CountingLabeller()
    summary = label_dataset(root, labeller, progress=False)
    assert (summary.labelled, summary.skipped) == (5, 4) and len(labeller.labelled) == 5
    assert len(_outputs(root)) == 9


def test_shards_split_the_scenes(root):
    first = CountingLabeller()
    second = CountingLabeller()
    label_dataset(root, first, shard=(0, 2), progress=False)
    label_dataset(root, second, shard=(1, 2), progress=False)
    assert {s for s, _ in first.labelled} == {"scan0000", "scan0002"}
    assert {s for s, _ in second.labelled} == {"scan0001"}
    assert parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "x", "1/2/3"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_folder_made_with_other_settings_is_refused_unless_overwrite(root):
    label_dataset(root, CountingLabeller(noise=0.0), progress=False)
    clean = [load_pseudo_labels(root / "scans/scan0000", name).segment_map for name in FRAMES]
    with pytest.raises(PseudoLabelError, match="differs in noise"):
        label_dataset(root, CountingLabeller(noise=1.0), progress=False)
    with pytest.raises(KeyboardInterrupt):  # an overwrite interrupted in the first scene
        label_dataset(root, CountingLabeller(noise=1.0, crash_after=2), overwrite=True, progress=False)
    assert len(list(root.glob("scans/scan0000/pseudo/*.npz"))) == 2  # the old labels are gone
    labeller = CountingLabeller(noise=1.0)
    summary = label_dataset(root, labeller, overwrite=True, progress=False)  # the same command resumes
    assert (summary.labelled, summary.skipped) == (7, 2)
    noisy = [load_pseudo_labels(root / "scans/scan0000", name).segment_map for name in FRAMES]
    assert not all(np.array_equal(a, b) for a, b in zip(noisy, clean, strict=True))
    label_dataset(root, CountingLabeller(noise=0.0), folder="pseudo-clean", progress=False)  # side by side
    assert len(_outputs(root)) == 18


def test_wrong_embedding_width_is_a_clear_error(root):
    with pytest.raises(PseudoLabelError, match="5-d but 8-d"):
        label_dataset(root, CountingLabeller(wrong_width=True), progress=False)
    assert not _outputs(root)


def test_unreadable_frames_are_counted_and_retried(root):
    (root / "scans/scan0000/color/1.png").write_bytes(b"broken")
    (root / "scans/scan0001/instance/0.png").unlink()
    summary = label_dataset(root, CountingLabeller(), progress=False)
    assert (summary.labelled, summary.unreadable) == (7, 2)
    assert not pseudo_path(root / "scans/scan0000", "1").exists()


def test_instance_labeller_on_a_dataset_without_instances(root):
    for path in (root / "scans/scan0000/instance").iterdir():
        path.unlink()
    (root / "scans/scan0000/instance").rmdir()
    with pytest.raises(DatasetError, match="instance"):
        label_dataset(root, CountingLabeller(), progress=False)


def test_frames_listed_in_numeric_order(tmp_path):
    (tmp_path / "color").mkdir()
    for name in ("10.png", "2.jpg", "1.png", "notes.txt"):
        (tmp_path / "color" / name).touch()
    assert list_frame_names(tmp_path, ["color"]) == ["1", "2", "10"]


def test_cli_defaults_to_the_stand_in_on_the_benchmark_and_prints_the_summary(root, capsys):
    with pytest.raises(SystemExit, match="not the synthetic benchmark"):
        cli_main(["pseudo-label", "--data", str(root)])
    (root / "meta.json").write_text(json.dumps({"generator": SYNTHETIC_GENERATOR}))
    cli_main(["pseudo-label", "--data", str(root), "--noise", "0.5", "--shard", "1/3", "--no-progress"])
    assert (
        "3 frames labelled (0 empty), 0 skipped (already done), 0 unreadable, in 1 scenes"
        in capsys.readouterr().out
    )
    labels = load_pseudo_labels(root / "scans/scan0001", "0", expected_dim=384)  # MiniLM
    assert labels.meta["labeller"] == "synthetic"
    with pytest.raises(SystemExit, match="--shard"):
        cli_main(["pseudo-label", "--data", str(root), "--shard", "3/3"])
