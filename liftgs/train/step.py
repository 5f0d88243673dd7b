"""One training step's forward pass and losses over a ``TrainBatch`` (no nerfstudio here).

Per scene: ``encode`` once, ``encode_text`` (pseudo-queries: then ``insert_segments``) + ``ground`` for
all its expressions together, then one rasterize call renders RGB, depth, features and every supervised
layer's mask probabilities into the views (``liftgs.losses.rendering``), and
``liftgs.losses.criterion.scene_losses`` compares them with the targets. A batch's losses are the means of
its scenes' losses, so a data-parallel step over ranks with equal scene counts averages to the
single-process step on the union batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from liftgs.losses.criterion import (
    IGNORED_RELATION,
    LossConfig,
    SceneOutputs,
    match_metrics,
    scene_losses,
)
from liftgs.losses.rendering import render_views
from liftgs.losses.tokens import anchor_tokens, positive_tokens
from liftgs.train.batch import SceneBatch, TrainBatch
from liftgs.train.pseudo import insert_segments

LAYER_KEYS = ("mask_logits", "token_logits", "scores")
ANCHOR_KEYS = ("anchor_token_weights",)
"""Supervised outputs of a decoder layer with the relational geometry term."""


def forward_scene(model, batch: SceneBatch, config: LossConfig, backend: str = "auto") -> SceneOutputs:
    """Runs ``model`` (a ``liftgs.model.LiftGS``) on one scene's batch and renders what the losses need.

    Masks are rendered only for 2D targets (every decoder layer when deep supervision is on, else the last);
    RGB/depth are rendered whenever the batch has views.
    """
    scene = model.encode(batch)
    text = model.encode_text(batch.texts)
    if batch.segment_embeddings is not None:
        text = insert_segments(text, batch.segment_embeddings)
    output = model.ground(scene, text)
    supervised = output.aux if config.deep_supervision else output.aux[-1:]
    layers = [
        {key: layer[key] for key in (*LAYER_KEYS, *ANCHOR_KEYS) if key in layer} for layer in supervised
    ]
    length = int(text.mask.shape[1])
    positives = [
        positive_tokens(strings, names, length).to(text.mask.device)
        for strings, names in zip(text.token_strings, batch.targets.names, strict=True)
    ]
    anchor_positives = None
    if config.anchor_words and batch.targets.anchor_names is not None:
        anchor_positives = [
            anchor_tokens(strings, names, length).to(text.mask.device)
            for strings, names in zip(text.token_strings, batch.targets.anchor_names, strict=True)
        ]
    relation_labels = None
    if config.relation and output.relation_logits is not None and batch.targets.relations is not None:
        relation_labels = relation_indices(batch.targets.relations, model.config.decoder.relation_kinds)
        relation_labels = relation_labels.to(text.mask.device)
    rendered = None
    if batch.views is not None:
        mask_logits = None
        if batch.targets.kind == "views":
            mask_logits = torch.stack([layer["mask_logits"] for layer in layers])  # [L, B, Q, Pv]
        rendered = render_views(scene.gaussians, batch.views, mask_logits, backend)
    return SceneOutputs(
        layers=layers,
        text_mask=text.mask,
        positives=positives,
        anchor_positives=anchor_positives,
        relation_logits=output.relation_logits,
        relation_labels=relation_labels,
        source_to_voxel=scene.source_to_voxel,
        rendered=rendered,
    )


def relation_indices(relations: list[str | None], kinds: tuple[str, ...]) -> Tensor:
    """[B] int64: each text's relation as an index into ``kinds``, ``IGNORED_RELATION`` when it is None or
    not among them (no relation loss for that text)."""
    index = {kind: i for i, kind in enumerate(kinds)}
    return torch.tensor([index.get(r, IGNORED_RELATION) for r in relations], dtype=torch.int64)


def batch_losses(
    model, batch: TrainBatch, config: LossConfig, backend: str = "auto"
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """Weighted losses (means over the batch's scenes) and diagnostics (``top1_iou``, ``matched_iou``).

    Raises:
        ValueError: an empty batch.
    """
    if not batch:
        raise ValueError("batch: no scenes")
    totals: dict[str, Tensor] = {}
    metrics: dict[str, float] = {}
    for scene_batch in batch:
        outputs = forward_scene(model, scene_batch, config, backend)
        losses, matches = scene_losses(outputs, scene_batch.targets, scene_batch.views, config)
        for key, value in losses.items():
            totals[key] = totals.get(key, 0.0) + value / len(batch)
        for key, value in match_metrics(outputs, scene_batch.targets, matches).items():
            metrics[key] = metrics.get(key, 0.0) + value / len(batch)
    return totals, metrics
