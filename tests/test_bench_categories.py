"""``liftgs bench categories``: each category's voxels, the two figures per pair, and the command's table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liftgs.benchmarks.categories import (
    NO_CATEGORY,
    BenchCategories,
    category_names,
    recognise_categories,
    score_pair,
    voxel_categories,
)
from liftgs.data.synthetic.vocabulary import CATEGORY_WORDS
from liftgs.model import load_model
from liftgs.scene import NO_INSTANCE
from tests.support.network import save_tiny_checkpoint
from tests.support.scenes import SPLIT, toy_scene, write_toy_dataset


def test_a_voxel_takes_the_category_most_of_its_points_have():
    scene = toy_scene(names=["chair", "table", "chair"])
    # voxel 0: floor + both chairs (chair 2 : none 1); voxel 1: floor only; voxel 2: the table
    scene.point_instance = np.array([NO_INSTANCE, 0, 2, NO_INSTANCE, 1, 1], dtype=np.int64)
    source_to_voxel = torch.tensor([0, 0, 0, 1, 2, 2])
    names, categories = voxel_categories(scene, source_to_voxel, 3)
    assert names == ["chair", "table"]
    assert categories.tolist() == [0, NO_CATEGORY, 1]


def test_a_pair_scores_the_top_voxel_and_the_grounded_iou():
    truth = torch.tensor([True, True, False, False])
    probs = torch.tensor([0.2, 0.9, 0.8, 0.1])
    assert score_pair(probs, torch.tensor([False, True, True, False]), truth) == (True, 1 / 3)
    assert score_pair(probs.flip(0), truth, truth) == (False, 1.0)


def test_every_category_of_a_scene_is_queried_once(tmp_path):
    model, _ = load_model(save_tiny_checkpoint(tmp_path / "tiny.pt"))
    model.eval()
    scene = toy_scene(names=["chair", "table", "chair", "lamp"])
    results = recognise_categories(model, scene)
    assert sorted(r.category for r in results) == ["chair", "lamp", "table"]
    assert all(r.name == r.category and not r.held_out for r in results)
    assert all(r.scene_id == scene.scene_id and 0.0 <= r.iou <= 1.0 for r in results)


def test_all_names_ask_for_a_category_by_each_seen_and_held_out_name_of_the_vocabulary(tmp_path):
    seen, held_out = CATEGORY_WORDS["lamp"]
    assert category_names("lamp", "all") == [(w, False) for w in seen] + [(w, True) for w in held_out]
    assert category_names("lamp", "canonical") == [("lamp", False)]
    assert category_names("hammock", "all") == [("hammock", False)]  # not in the vocabulary: its own name
    model, _ = load_model(save_tiny_checkpoint(tmp_path / "tiny.pt"))
    model.eval()
    results = recognise_categories(model, toy_scene(names=["chair", "table", "lamp"]), names="all")
    asked = {(r.category, r.name, r.held_out) for r in results}
    expected = {(c, w, h) for c in ("chair", "table", "lamp") for w, h in category_names(c, "all")}
    assert asked == expected and len(results) == len(expected)


def test_the_command_prints_a_row_per_category_and_refuses_bad_input(tmp_path, capsys):
    write_toy_dataset(tmp_path / "data")
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt")
    BenchCategories(checkpoint=checkpoint, data=tmp_path / "data", split=SPLIT, device="cpu").main()
    out = capsys.readouterr().out
    for row in ("chair", "table", "lamp", "all"):
        assert row in out
    assert "held-out names" not in out
    BenchCategories(
        checkpoint=checkpoint, data=tmp_path / "data", split=SPLIT, names="all", device="cpu"
    ).main()
    out = capsys.readouterr().out
    assert "all, seen names" in out and "all, held-out names" in out
    with pytest.raises(SystemExit, match="--max-scenes must be >= 1"):
        BenchCategories(checkpoint=checkpoint, data=tmp_path / "data", split=SPLIT, max_scenes=0).main()
    with pytest.raises(SystemExit, match="liftgs bench categories: .*"):
        BenchCategories(checkpoint=checkpoint, data=tmp_path / "data", split="nosuchsplit").main()
