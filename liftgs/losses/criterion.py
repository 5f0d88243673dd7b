"""Training losses of LIFT-GS: render-supervised (2D) and the 3D-supervised baseline.

Both share one grounding loss over flat masks (``grounding_losses``): Hungarian-match the B texts' queries
to their targets with a BCE + dice (+ score, + token alignment) cost, then BCE + dice on the matched masks,
sigmoid-focal query <-> token alignment (matched queries align with the tokens naming their target,
unmatched ones with nothing) and a BCE grounding-score loss (matched queries positive). They differ only
in what a "mask" is:

- render-supervised (``targets.kind == "views"``): the masks are the mask probabilities rendered into the
  sampled views, ``[V * H * W]`` pixels, compared with the targets' 2D masks. No 3D label is read.
- 3D baseline (``targets.kind == "points"``): the masks are the per-voxel probabilities, compared with
  voxel targets derived from the per-point masks (a voxel is in the target when at least half of its
  source points are).

For a model with anchor slots and targets that name their anchors (``ExpressionTargets.anchor_names``),
the matched queries' slots are also asked to read the anchors' words (``anchor_word_loss``, weight
``LossConfig.anchor_words``): a text-side label, like the alignment's target names. Texts whose annotation
names their relation kind (``ExpressionTargets.relations``) also train the decoder's relation classifier
(cross-entropy, weight ``LossConfig.relation``): another text-side label.

Deep supervision: the same loss (own matching) on every decoder layer, intermediate layers weighted by
``LossConfig.aux``. Reconstruction losses (RGB L1, depth L1 on valid depth, optional feature cosine
distillation) compare the rendered Gaussians with the views. All losses are means over texts (and
pixels), so a batch's loss is the mean of its scenes' losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from liftgs.losses.matcher import EPS, hungarian_match, pairwise_bce_cost, pairwise_dice_cost
from liftgs.losses.rendering import RenderedViews
from liftgs.losses.targets import ExpressionTargets, Views

GROUNDING_KEYS = ("mask_bce", "mask_dice", "token", "score")
IGNORED_RELATION = -100
"""Relation label of a text the relation loss skips (unknown kind; ``F.cross_entropy``'s ignore index)."""
RECONSTRUCTION_KEYS = ("rgb", "depth", "feature")


@dataclass
class LossConfig:
    """Loss weights and matching costs (tyro exposes every field)."""

    mask_bce: float = 2.0
    mask_dice: float = 2.0
    token: float = 1.0
    """Sigmoid-focal query <-> token alignment."""
    score: float = 1.0
    """BCE on the per-query grounding score (matched queries positive)."""
    rgb: float = 1.0
    depth: float = 0.2
    feature: float = 0.0
    """Rendered-feature distillation (1 - cosine); used when views carry 2D feature maps."""
    aux: float = 0.5
    """Weight of every intermediate decoder layer's grounding losses (0 = supervise the last layer only)."""
    match_bce: float = 1.0
    match_dice: float = 1.0
    match_score: float = 1.0
    """Cost ``-sigmoid(score)`` of a query: prefer the query that already claims the expression."""
    anchor_words: float = 1.0
    """Anchor-word loss (``anchor_word_loss``): the matched query's anchor slots should read the words that
    name the objects the text relates its target to, when the annotation lists them (``anchor_ids``: the
    synthetic benchmark, Sr3D). A text-side label like the alignment's target names; no 3D label. A decoder
    without anchor slots adds nothing."""
    relation: float = 1.0
    """Cross-entropy of the decoder's relation classifier (``liftgs.model.relations.AnchorGeometry``)
    against the text's annotated relation kind, when it has one (``Expression.relation``: the synthetic
    benchmark, Sr3D's ``reference_type``). A text-side label; no 3D label. A decoder without anchor slots
    (so without the classifier) adds nothing."""
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0

    @property
    def deep_supervision(self) -> bool:
        return self.aux > 0


@dataclass
class SceneOutputs:
    """The forward pass of one scene's texts, as the criterion needs it.

    Attributes:
        layers: supervised decoder layers, last = final outputs; each a dict with ``mask_logits`` [B, Q, Pv],
            ``token_logits`` [B, Q, T], ``scores`` [B, Q] (and, for a model with anchors,
            ``anchor_token_weights`` [B, Q, K, T]).
        text_mask: [B, T] bool, True = real token.
        positives: per text, [M, T] bool tokens naming each target (``liftgs.losses.tokens``).
        anchor_positives: per text, [A, T] bool tokens naming each of its anchors (``anchor_tokens``), or None
            when the targets list no anchors.
        relation_logits: [B, R] the decoder's relation classifier, or None without one.
        relation_labels: [B] int64 index of each text's relation kind (``IGNORED_RELATION`` = unknown), or
            None when the relation loss is off or the targets name no relations.
        source_to_voxel: [P] int64 voxel of every source point (the 3D baseline maps its targets with it).
        rendered: the Gaussians rendered into the batch's views (``masks`` [L, B, Q, V, H, W] for the
            render-supervised path), or None when nothing was rendered.
    """

    layers: list[dict[str, Tensor]]
    text_mask: Tensor  # [B, T]
    positives: list[Tensor]
    source_to_voxel: Tensor  # [P]
    rendered: RenderedViews | None
    anchor_positives: list[Tensor] | None = None
    relation_logits: Tensor | None = None  # [B, R]
    relation_labels: Tensor | None = None  # [B]


@dataclass
class Match:
    """Queries ``rows`` matched to targets ``cols`` of one text (final layer)."""

    rows: Tensor  # [K] int64
    cols: Tensor  # [K] int64


def bce_loss(probs: Tensor, targets: Tensor) -> Tensor:  # [K, N], [K, N] -> [K]
    """Binary cross-entropy per row of probabilities (clamped to [EPS, 1 - EPS]): the mean over the N
    elements."""
    targets = targets.to(probs.dtype)
    return F.binary_cross_entropy(probs.clamp(EPS, 1.0 - EPS), targets, reduction="none").mean(-1)


def dice_loss(probs: Tensor, targets: Tensor) -> Tensor:  # [K, N], [K, N] -> [K]
    """``1 - soft dice`` per row (+1 smoothing, matching ``pairwise_dice_cost``)."""
    targets = targets.to(probs.dtype)
    return 1.0 - (2.0 * (probs * targets).sum(-1) + 1.0) / (probs.sum(-1) + targets.sum(-1) + 1.0)


def match_queries(
    probs: Tensor,  # [Q, N]
    scores: Tensor,  # [Q]
    targets: Tensor,  # [M, N]
    config: LossConfig,
) -> Match:
    """Hungarian match of one text's queries to its targets under the configured cost."""
    with torch.no_grad():
        cost = config.match_bce * pairwise_bce_cost(probs, targets)
        cost = cost + config.match_dice * pairwise_dice_cost(probs, targets)
        cost = cost - config.match_score * torch.sigmoid(scores)[:, None]
    rows, cols = hungarian_match(cost)
    return Match(rows.to(probs.device), cols.to(probs.device))


def grounding_losses(
    mask_probs: Tensor,  # [B, Q, N] predicted mask probabilities
    token_logits: Tensor,  # [B, Q, T]
    scores: Tensor,  # [B, Q] logits
    text_mask: Tensor,  # [B, T] bool
    target_masks: list[Tensor],  # per text [M_b, N]
    positives: list[Tensor],  # per text [M_b, T] bool
    config: LossConfig,
) -> tuple[dict[str, Tensor], list[Match]]:
    """Unweighted matched mask / token / score losses, each a mean over the B texts.

    Returns:
        ``({"mask_bce", "mask_dice", "token", "score"}: scalar tensors, one Match per text)``.
    """
    totals = {key: mask_probs.new_zeros(()) for key in GROUNDING_KEYS}
    matches = []
    for b, (targets, positive) in enumerate(zip(target_masks, positives, strict=True)):
        match = match_queries(mask_probs[b], scores[b], targets, config)
        matches.append(match)
        matched_probs, matched_targets = mask_probs[b, match.rows], targets[match.cols]
        bce = bce_loss(matched_probs, matched_targets)
        totals["mask_bce"] = totals["mask_bce"] + bce.mean()
        totals["mask_dice"] = totals["mask_dice"] + dice_loss(matched_probs, matched_targets).mean()

        token_targets = torch.zeros_like(token_logits[b])  # [Q, T]: unmatched queries align with nothing
        token_targets[match.rows] = positive[match.cols].to(token_targets.dtype)
        valid = text_mask[b].to(token_logits.dtype)  # [T]
        focal = sigmoid_focal_loss(
            token_logits[b], token_targets, config.focal_alpha, config.focal_gamma, reduction="none"
        )
        per_query = (focal * valid).sum(-1) / valid.sum().clamp(min=1.0)  # [Q]
        totals["token"] = totals["token"] + per_query.sum() / max(len(match.rows), 1)

        score_targets = torch.zeros_like(scores[b])
        score_targets[match.rows] = 1.0
        totals["score"] = totals["score"] + F.binary_cross_entropy_with_logits(scores[b], score_targets)
    count = max(len(target_masks), 1)
    return {key: value / count for key, value in totals.items()}, matches


def anchor_word_loss(
    anchor_weights: Tensor,  # [B, Q, K, T] each anchor slot's softmax over the tokens
    anchor_positives: list[Tensor],  # per text [A_b, T] bool, the tokens naming each anchor
    matches: list[Match],  # per text, the queries matched to its targets
) -> Tensor | None:
    """Mean over (text, matched query) pairs with named anchors of ``-log`` of the weight the query's slots
    put on each anchor's words, slots assigned to anchors one-to-one (Hungarian: "between the bed and the
    desk" wants one slot on each); None when no text names an anchor."""
    losses = []
    for b, (positive, match) in enumerate(zip(anchor_positives, matches, strict=True)):
        if positive.shape[0] == 0:
            continue
        for row in match.rows.tolist():
            on_anchor = anchor_weights[b, row] @ positive.to(anchor_weights.dtype).T  # [K, A]
            cost = -torch.log(on_anchor.clamp_min(EPS))
            slots, anchors = hungarian_match(cost)
            losses.append(cost[slots.to(cost.device), anchors.to(cost.device)].mean())
    return torch.stack(losses).mean() if losses else None


def voxel_targets(
    point_masks: Tensor,  # [M, P] bool over the source points
    source_to_voxel: Tensor,  # [P] int64
    num_voxels: int,
) -> Tensor:  # [M, Pv] float {0, 1}
    """A voxel belongs to a target when at least half of its source points do."""
    counts = torch.zeros(num_voxels, device=point_masks.device).index_add_(
        0, source_to_voxel, torch.ones_like(source_to_voxel, dtype=torch.float32)
    )
    hits = torch.zeros(point_masks.shape[0], num_voxels, device=point_masks.device).index_add_(
        1, source_to_voxel, point_masks.float()
    )
    return (hits >= 0.5 * counts.clamp(min=1.0)).float() * (counts > 0).float()


def _layer_masks(
    outputs: SceneOutputs, targets: ExpressionTargets
) -> tuple[list[Tensor], list[Tensor]]:  # per layer [B, Q, N]; per text [M, N]
    """Predicted and target masks as flat vectors of the same mask elements (pixels or voxels)."""
    if targets.kind == "views":
        if outputs.rendered is None or outputs.rendered.masks is None:
            raise ValueError("outputs: view targets need rendered masks (render_views with mask_logits)")
        rendered = outputs.rendered.masks  # [L, B, Q, V, H, W]
        if rendered.shape[0] != len(outputs.layers):
            raise ValueError(f"outputs: {rendered.shape[0]} rendered layers for {len(outputs.layers)} layers")
        predicted = [layer_masks.flatten(2) for layer_masks in rendered]
        return predicted, [mask.flatten(1) for mask in targets.masks]
    num_voxels = int(outputs.layers[-1]["mask_logits"].shape[-1])
    predicted = [torch.sigmoid(layer["mask_logits"]) for layer in outputs.layers]
    voxel = [voxel_targets(mask, outputs.source_to_voxel, num_voxels) for mask in targets.masks]
    return predicted, voxel


def reconstruction_losses(rendered: RenderedViews, views: Views) -> dict[str, Tensor]:
    """Unweighted RGB L1 (all pixels), depth L1 (pixels with depth > 0) and feature 1 - cosine."""
    losses = {"rgb": (rendered.rgb - views.images).abs().mean()}
    valid = views.depths > 0
    depth_error = (rendered.depth - views.depths).abs() * valid
    losses["depth"] = depth_error.sum() / valid.sum().clamp(min=1)
    if views.features is not None and rendered.features is not None:
        present = views.features.norm(dim=-1) > 0
        cosine = F.cosine_similarity(rendered.features, views.features, dim=-1)
        losses["feature"] = ((1.0 - cosine) * present).sum() / present.sum().clamp(min=1)
    return losses


def scene_losses(
    outputs: SceneOutputs,
    targets: ExpressionTargets,
    views: Views | None,
    config: LossConfig,
) -> tuple[dict[str, Tensor], list[Match]]:
    """Weighted losses of one scene (each a scalar) and the final layer's matches.

    Grounding losses sum the last layer (weight 1) and every earlier layer (weight ``config.aux``);
    reconstruction losses are added when the Gaussians were rendered into ``views``.
    """
    predicted, target_masks = _layer_masks(outputs, targets)
    weighted: dict[str, Tensor] = {}
    matches: list[Match] = []
    for index, (layer, probs) in enumerate(zip(outputs.layers, predicted, strict=True)):
        is_last = index == len(outputs.layers) - 1
        layer_weight = 1.0 if is_last else config.aux
        losses, layer_matches = grounding_losses(
            probs,
            layer["token_logits"],
            layer["scores"],
            outputs.text_mask,
            target_masks,
            outputs.positives,
            config,
        )
        if is_last:
            matches = layer_matches
        if config.anchor_words and outputs.anchor_positives is not None and "anchor_token_weights" in layer:
            anchor = anchor_word_loss(layer["anchor_token_weights"], outputs.anchor_positives, layer_matches)
            if anchor is not None:
                losses["anchor_words"] = anchor
        for key, value in losses.items():
            weighted[key] = weighted.get(key, 0.0) + layer_weight * getattr(config, key) * value
    labels = outputs.relation_labels
    if config.relation and labels is not None and bool((labels != IGNORED_RELATION).any()):
        assert outputs.relation_logits is not None  # labels are only built for a classifier
        relation = F.cross_entropy(outputs.relation_logits, labels, ignore_index=IGNORED_RELATION)
        weighted["relation"] = config.relation * relation
    if outputs.rendered is not None and views is not None:
        for key, value in reconstruction_losses(outputs.rendered, views).items():
            if getattr(config, key):
                weighted[key] = getattr(config, key) * value
    return weighted, matches


@torch.no_grad()
def match_metrics(
    outputs: SceneOutputs, targets: ExpressionTargets, matches: list[Match]
) -> dict[str, float]:
    """Training diagnostics of the final layer, means over texts (masks thresholded at 0.5).

    ``top1_iou``: IoU of the highest-scoring query's mask (what ``LiftGS.predict`` picks) with its best
    target; ``matched_iou``: IoU of the matched queries' masks with their targets. Pixels or voxels.
    """
    predicted, target_masks = _layer_masks(outputs, targets)
    scores = outputs.layers[-1]["scores"]  # [B, Q]
    top1, matched = [], []
    for b, match in enumerate(matches):
        truth = target_masks[b] > 0.5  # [M, N]
        best = predicted[-1][b, int(scores[b].argmax())] > 0.5  # [N]
        top1.append(float(_iou(best[None], truth).max()))
        matched.append(float(_iou(predicted[-1][b, match.rows] > 0.5, truth[match.cols]).mean()))
    count = max(len(matches), 1)
    return {"top1_iou": sum(top1) / count, "matched_iou": sum(matched) / count}


def _iou(a: Tensor, b: Tensor) -> Tensor:  # [K, N] bool, [K, N] bool -> [K]
    return (a & b).sum(-1) / (a | b).sum(-1).clamp(min=1)
