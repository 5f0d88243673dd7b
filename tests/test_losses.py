"""Matcher, token positives and criterion maths on hand-made tensors (no model, no renderer)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from liftgs.losses.criterion import (
    LossConfig,
    Match,
    anchor_word_loss,
    bce_loss,
    dice_loss,
    grounding_losses,
    voxel_targets,
)
from liftgs.losses.matcher import hungarian_match, pairwise_bce_cost, pairwise_dice_cost
from liftgs.losses.tokens import anchor_tokens, positive_tokens, token_words


def brute_force_cost(cost: np.ndarray) -> float:
    q, m = cost.shape
    if q >= m:
        return min(
            sum(cost[r, c] for c, r in enumerate(rows)) for rows in itertools.permutations(range(q), m)
        )
    return min(sum(cost[r, c] for r, c in enumerate(cols)) for cols in itertools.permutations(range(m), q))


@pytest.mark.parametrize("shape", [(5, 3), (4, 4), (2, 4), (6, 1)])
def test_hungarian_matches_brute_force(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        cost = rng.normal(size=shape)
        rows, cols = hungarian_match(torch.as_tensor(cost))
        assert len(rows) == min(shape) and len(set(rows.tolist())) == len(rows)
        assert len(set(cols.tolist())) == len(cols)
        assert cost[rows.numpy(), cols.numpy()].sum() == pytest.approx(brute_force_cost(cost))


def test_hungarian_rejects_bad_cost():
    with pytest.raises(ValueError, match="NaN"):
        hungarian_match(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match=r"\[Q, M\]"):
        hungarian_match(torch.zeros(3))


def test_pairwise_costs_equal_rowwise_losses():
    torch.manual_seed(0)
    probs = torch.rand(4, 30)
    targets = (torch.rand(3, 30) > 0.5).float()
    bce = pairwise_bce_cost(probs, targets)
    dice = pairwise_dice_cost(probs, targets)
    for q, m in itertools.product(range(4), range(3)):
        assert bce[q, m] == pytest.approx(float(bce_loss(probs[q : q + 1], targets[m : m + 1])), rel=1e-5)
        assert dice[q, m] == pytest.approx(float(dice_loss(probs[q : q + 1], targets[m : m + 1])), rel=1e-5)


def _config(**overrides) -> LossConfig:
    return LossConfig(**{"match_score": 0.0, **overrides})


def test_bce_is_the_mean_over_the_elements():
    probs = torch.tensor([[0.5, 0.1, 0.1, 0.1]])
    target = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    plain = (-math.log(0.5) - 3 * math.log(0.9)) / 4
    assert float(bce_loss(probs, target)) == pytest.approx(plain, rel=1e-5)


def test_grounding_losses_hand_values():
    probs = torch.tensor([[[0.5, 0.5, 0.5, 0.5], [0.9, 0.9, 0.1, 0.1]]])  # [B=1, Q=2, N=4]
    target = [torch.tensor([[1.0, 1.0, 0.0, 0.0]])]
    scores = torch.tensor([[-1.0, 2.0]])
    token_logits = torch.zeros(1, 2, 3)
    text_mask = torch.tensor([[True, True, False]])
    positives = [torch.tensor([[False, True, False]])]
    losses, matches = grounding_losses(probs, token_logits, scores, text_mask, target, positives, _config())
    assert matches[0].rows.tolist() == [1] and matches[0].cols.tolist() == [0]
    assert float(losses["mask_bce"]) == pytest.approx(-math.log(0.9), rel=1e-5)
    assert float(losses["mask_dice"]) == pytest.approx(1.0 - (2 * 1.8 + 1) / (2.0 + 2.0 + 1), rel=1e-5)
    softplus = lambda x: math.log1p(math.exp(x))
    assert float(losses["score"]) == pytest.approx((softplus(-1.0) + softplus(-2.0)) / 2, rel=1e-5)
    # focal at logit 0 (p = 0.5): alpha * 0.25 * log 2 for a positive, (1 - alpha) * 0.25 * log 2 otherwise.
    alpha, unit = 0.25, 0.25 * math.log(2.0)
    matched = (alpha * unit + (1 - alpha) * unit) / 2  # tokens 0 (negative) and 1 (positive) are real
    unmatched = (1 - alpha) * unit  # every real token negative
    assert float(losses["token"]) == pytest.approx(matched + unmatched, rel=1e-5)


def test_matching_is_general_over_many_targets():
    targets = torch.eye(3).repeat_interleave(2, dim=1)  # [M=3, N=6]
    probs = targets[[2, 0, 1]].clamp(0.05, 0.95)[None]  # query q predicts target (q + 2) % 3
    probs = torch.cat([probs, torch.full((1, 1, 6), 0.5)], dim=1)  # + a useless query
    losses, matches = grounding_losses(
        probs, torch.zeros(1, 4, 2), torch.zeros(1, 4), torch.ones(1, 2, dtype=torch.bool),
        [targets], [torch.ones(3, 2, dtype=torch.bool)], _config(),
    )  # fmt: skip
    assert dict(zip(matches[0].rows.tolist(), matches[0].cols.tolist(), strict=True)) == {0: 2, 1: 0, 2: 1}
    assert float(losses["mask_dice"]) < 0.1


def test_score_cost_breaks_ties_towards_the_confident_query():
    probs = torch.full((1, 2, 4), 0.5)
    scores = torch.tensor([[-3.0, 3.0]])
    args = (torch.zeros(1, 2, 1), scores, torch.ones(1, 1, dtype=torch.bool), [torch.ones(1, 4)])
    _, matches = grounding_losses(probs, *args, [torch.ones(1, 1, dtype=torch.bool)], LossConfig())
    assert matches[0].rows.tolist() == [1]


def test_voxel_targets_majority():
    source_to_voxel = torch.tensor([0, 0, 0, 1, 1, 2])
    masks = torch.tensor([[True, True, False, True, False, False]])
    assert voxel_targets(masks, source_to_voxel, 4).tolist() == [[1.0, 1.0, 0.0, 0.0]]


def test_positive_tokens_wordpiece():
    tokens = ["[CLS]", "the", "trash", "can", "near", "the", "night", "##stand", "chairs", "[SEP]"]
    assert token_words(tokens)[6:8] == ["nightstand", "nightstand"]
    positives = positive_tokens(tokens, ["nightstand", "trash can", "chair", "sofa"], 12)
    assert positives.shape == (4, 12)
    assert positives[0].nonzero().flatten().tolist() == [6, 7]
    assert positives[1].nonzero().flatten().tolist() == [2, 3]
    assert positives[2].nonzero().flatten().tolist() == [8]
    assert positives[3].nonzero().flatten().tolist() == list(range(10))  # no word names it: all real tokens


def test_positive_tokens_bpe_and_plurals():
    tokens = ["<start_of_text>", "two</w>", "night", "stands</w>", "and</w>", "tables</w>", "<end_of_text>"]
    positives = positive_tokens(tokens, ["nightstand", "table"], 7)
    assert positives[0].nonzero().flatten().tolist() == [2, 3]
    assert positives[1].nonzero().flatten().tolist() == [5]
    with pytest.raises(ValueError, match="length"):
        positive_tokens(tokens, ["table"], 3)


def test_anchor_tokens_name_only_the_anchors_the_text_names():
    tokens = ["[CLS]", "the", "lamp", "between", "the", "beds", "and", "the", "trash", "can", "[SEP]"]
    hits = anchor_tokens(tokens, ["bed", "sofa", "trash can"], 12)  # the sofa is called nothing here
    assert [row.nonzero().flatten().tolist() for row in hits] == [[5], [8, 9]]
    assert anchor_tokens(tokens, [], 12).shape == (0, 12)


def test_anchor_word_loss_assigns_slots_to_anchors_one_to_one():
    weights = torch.tensor([[0.05, 0.05, 0.0, 0.9], [0.1, 0.8, 0.1, 0.0]])  # [K, T]: slot 0 reads token 3
    weights = weights.expand(1, 2, 2, 4).clone().requires_grad_(True)  # [B=1, Q=2, K, T]
    positives = [torch.tensor([[False, True, False, False], [False, False, False, True]])]  # [A, T]
    loss = anchor_word_loss(weights, positives, [Match(torch.tensor([1]), torch.tensor([0]))])
    assert loss.item() == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2)
    loss.backward()
    assert weights.grad[0, 0].abs().sum() == 0 and weights.grad[0, 1, 0, 3] < 0  # only the matched query
    no_anchor = [torch.zeros(0, 4, dtype=torch.bool)]
    assert anchor_word_loss(weights, no_anchor, [Match(torch.tensor([1]), torch.tensor([0]))]) is None
