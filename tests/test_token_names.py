"""The words a training text names its target and anchors by: ``Expression.target_words`` /
``anchor_words`` when the annotation records them, the category names otherwise."""

from __future__ import annotations

import dataclasses

import pytest

from liftgs.losses.tokens import anchor_tokens, naming_tokens, positive_tokens
from liftgs.scene import Expression
from liftgs.train.batch import expression_targets

# WordPiece tokens of "the couch by the drapes." ("couch" in two pieces, as a tokenizer may split it).
TOKENS = ["[CLS]", "the", "cou", "##ch", "by", "the", "drapes", ".", "[SEP]"]
LENGTH = 12
OBJECT_NAMES = {0: "sofa", 3: "curtain"}


def _couch(**fields) -> Expression:
    description = "the couch by the drapes."
    expression = Expression("room0000", 0, "sofa", 0, description, description.split(), "unique")
    return dataclasses.replace(expression, **fields)


def _positives(expression: Expression) -> list[int]:
    (target,) = expression_targets("room0000", [expression], OBJECT_NAMES)
    return (
        positive_tokens(TOKENS, [target.name] * len(target.object_ids), LENGTH)[0]
        .nonzero()
        .flatten()
        .tolist()
    )


def _anchors(expression: Expression) -> list[list[int]]:
    (target,) = expression_targets("room0000", [expression], OBJECT_NAMES)
    return [row.nonzero().flatten().tolist() for row in anchor_tokens(TOKENS, target.anchor_names, LENGTH)]


def test_target_words_mark_exactly_the_tokens_of_the_phrase():
    assert _positives(_couch(target_words="couch")) == [2, 3]


def test_without_target_words_the_object_name_marks_the_tokens():
    # "sofa" is no word of the text: every real token is positive, as the alignment loss asks.
    assert _positives(_couch()) == list(range(len(TOKENS)))
    sofa_tokens = ["[CLS]", "the", "sofa", "by", "the", "drapes", ".", "[SEP]"]
    (target,) = expression_targets("room0000", [_couch()], OBJECT_NAMES)
    assert target.name == "sofa"
    assert positive_tokens(sofa_tokens, [target.name], LENGTH)[0].nonzero().flatten().tolist() == [2]


def test_anchor_words_name_the_anchors_in_anchor_ids_order():
    assert _anchors(_couch(anchor_ids=(3,), anchor_words=("drapes",))) == [[6]]
    (target,) = expression_targets(
        "room0000", [_couch(anchor_ids=(3, 7), anchor_words=("drapes", "rug"))], OBJECT_NAMES
    )
    assert target.anchor_names == ["drapes", "rug"]  # object 7 is no known object: its words still count


def test_without_anchor_words_the_anchors_category_names_are_used():
    (target,) = expression_targets("room0000", [_couch(anchor_ids=(3, 7))], OBJECT_NAMES)
    assert target.anchor_names == ["curtain"]  # object 7 has no name: left out
    assert _anchors(_couch(anchor_ids=(3,))) == []  # the text calls the curtain something else


def test_anchor_words_not_one_per_anchor_are_refused():
    with pytest.raises(ValueError, match="expression 0 of 'room0000': 1 anchor_words for 2 anchor_ids"):
        _couch(anchor_ids=(3, 7), anchor_words=("drapes",))
    with pytest.raises(ValueError, match="wording must be a list"):
        Expression.from_json({**_couch().to_json(), "wording": "unseen words"})


def test_a_name_is_matched_as_a_whole_run_of_words_up_to_plurals():
    tokens = [
        "[CLS]",
        "the",
        "table",
        "lamp",
        "on",
        "the",
        "coffee",
        "table",
        "near",
        "the",
        "shel",
        "##ves",
        ".",
    ]
    hits = naming_tokens(tokens, ["table lamp", "coffee table", "shelf", "lamp table"], len(tokens))
    assert hits[0].nonzero().flatten().tolist() == [2, 3]
    assert hits[1].nonzero().flatten().tolist() == [6, 7]
    assert hits[2].nonzero().flatten().tolist() == [10, 11]
    assert not hits[3].any()
