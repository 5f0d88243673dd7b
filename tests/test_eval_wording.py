"""Accuracy per wording group (``Expression.wording``): the summary, and ``liftgs eval``'s JSON and table."""

from __future__ import annotations

import dataclasses
import json

import pytest

from liftgs import cli
from liftgs.data.dataset import GroundingDataset
from liftgs.data.store import save_expressions
from liftgs.eval.evaluate import evaluate
from liftgs.eval.metrics import WORDING_GROUPS, grounding_accuracy, wording_groups
from liftgs.model import LiftGS, load_model
from tests.support.network import save_tiny_checkpoint
from tests.support.oracle import make_oracle
from tests.support.scenes import SPLIT, write_toy_dataset

# One wording per toy expression (``write_toy_dataset``'s order; the last is the ghost, always a miss).
TOY_WORDING = [
    ("seen words", "seen shape"),
    ("seen words", "unseen shape"),
    ("unseen words", "seen shape"),
    ("seen words", "long"),
    ("unseen words", "long"),
    ("unseen words", "long"),
]
TOY_COUNTS = {
    "seen words": 3,
    "unseen words": 3,
    "seen shape": 2,
    "unseen shape": 1,
    "one sentence": 3,
    "long": 3,
}


def test_one_sentence_is_derived_from_the_one_sentence_shapes():
    assert wording_groups(("seen words", "seen shape")) == {"seen words", "seen shape", "one sentence"}
    assert wording_groups(("unseen words", "unseen shape")) == {
        "unseen words",
        "unseen shape",
        "one sentence",
    }
    assert wording_groups(("seen words", "long")) == {"seen words", "long"}
    assert wording_groups(()) == set()


def test_each_expression_counts_in_every_group_it_lists():
    ious = [0.9, 0.3, 0.1, 0.6]
    wordings = [
        ("long", "seen words"),  # listed out of order: the summary's order is fixed
        ("unseen shape", "unseen words"),
        ("seen shape", "seen words"),
        ("paraphrase",),  # a label outside the benchmark's comes after them
    ]
    summary = grounding_accuracy(ious, ["multiple"] * 4, wordings=wordings)
    assert summary["per_wording"] == {
        "seen words": {"count": 2, "acc@0.25": 0.5, "acc@0.5": 0.5},
        "unseen words": {"count": 1, "acc@0.25": 1.0, "acc@0.5": 0.0},
        "seen shape": {"count": 1, "acc@0.25": 0.0, "acc@0.5": 0.0},
        "unseen shape": {"count": 1, "acc@0.25": 1.0, "acc@0.5": 0.0},
        "one sentence": {"count": 2, "acc@0.25": 0.5, "acc@0.5": 0.0},
        "long": {"count": 1, "acc@0.25": 1.0, "acc@0.5": 1.0},
        "paraphrase": {"count": 1, "acc@0.25": 1.0, "acc@0.5": 1.0},
    }
    assert list(summary["per_wording"]) == [*WORDING_GROUPS, "paraphrase"]


def test_without_wording_labels_there_is_no_per_wording():
    ious = [0.9, 0.3]
    assert "per_wording" not in grounding_accuracy(ious, ["unique"] * 2)
    assert "per_wording" not in grounding_accuracy(ious, ["unique"] * 2, wordings=[(), ()])
    partly = grounding_accuracy(ious, ["unique"] * 2, wordings=[(), ("long",)])
    assert partly["per_wording"] == {"long": {"count": 1, "acc@0.25": 1.0, "acc@0.5": 0.0}}
    with pytest.raises(ValueError, match="wordings"):
        grounding_accuracy(ious, ["unique"] * 2, wordings=[("long",)])
    with pytest.raises(ValueError, match="not one string"):
        grounding_accuracy(ious, ["unique"] * 2, wordings=["long", "seen words"])


@pytest.fixture(scope="module")
def worded_dataset(tmp_path_factory):
    """The toy dataset with ``TOY_WORDING`` on its expressions, and a tiny random checkpoint."""
    root = tmp_path_factory.mktemp("worded")
    scenes, expressions = write_toy_dataset(root)
    expressions = [dataclasses.replace(e, wording=w) for e, w in zip(expressions, TOY_WORDING, strict=True)]
    save_expressions(root / "annotations" / f"{SPLIT}.json", expressions)
    return root, scenes, expressions, save_tiny_checkpoint(root / "tiny.pt")


def _run_eval(checkpoint, root, out) -> dict:
    """``liftgs eval`` of ``checkpoint`` on ``root``'s test split; its eval_results.json."""
    cli.main(["eval", "--device", "cpu", "--checkpoint", str(checkpoint), "--data", str(root),
              "--output-dir", str(out)])  # fmt: skip
    return json.loads((out / "eval_results.json").read_text())


def test_eval_json_and_console_show_the_wording_groups(worded_dataset, toy_dataset, tmp_path, capsys):
    root, _, _, checkpoint = worded_dataset
    result = _run_eval(checkpoint, root, tmp_path / "worded")
    printed = capsys.readouterr().out
    assert {group: row["count"] for group, row in result["per_wording"].items()} == TOY_COUNTS
    assert list(result["per_wording"]) == list(WORDING_GROUPS)
    assert [tuple(r["wording"]) for r in result["records"]] == TOY_WORDING
    table = printed[printed.index("per wording") :]
    rows = [line for line in table.splitlines() if any(group in line for group in WORDING_GROUPS)]
    assert [line.split("│")[1].strip() for line in rows] == list(WORDING_GROUPS)
    assert [int(line.split("│")[2]) for line in rows] == list(TOY_COUNTS.values())

    plain = _run_eval(toy_dataset.checkpoint, toy_dataset.root, tmp_path / "plain")
    assert "per_wording" not in plain and "per wording" not in capsys.readouterr().out
    assert all(r["wording"] == [] for r in plain["records"])


def test_per_wording_accuracy_of_an_oracle(worded_dataset, monkeypatch):
    """The oracle finds every target with points; only the ghost (unseen words, long) is a miss."""
    root, scenes, expressions, checkpoint = worded_dataset
    monkeypatch.setattr(LiftGS, "predict", make_oracle(scenes, expressions))
    result = evaluate(load_model(checkpoint)[0], GroundingDataset(root, SPLIT, load_frames=False))
    missed = {"unseen words", "long"}
    assert result.summary["per_wording"] == {
        group: {
            "count": count,
            "acc@0.25": (count - (group in missed)) / count,
            "acc@0.5": (count - (group in missed)) / count,
        }
        for group, count in TOY_COUNTS.items()
    }
    assert [r.wording for r in result.records] == TOY_WORDING
