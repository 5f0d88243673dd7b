"""Explicit relational terms on the mask logits: where the sentence's other objects are, and voxel color.

Referring expressions single out one instance among look-alikes by its relation to *other* named objects
("the chair closest to the door", "the lamp between the bed and the desk") or by an attribute ("the red
chair"). Attention in the decoder sees positions only in its queries and keys, so a query can look at the
door but cannot carry *where* the door is into the mask it paints. Two terms make that explicit:

``AnchorGeometry`` gives every query ``slots`` anchors. Each anchor chooses words of the sentence (its own
softmax over the text tokens, steered away from the words the query reads as its target); the decoder's
grounding heads paint the mask of a reader made of those words (the anchor's referent map,
``GroundingHeads._anchor_referents``), and the map's weighted centre and spread locate the anchor object.
Every voxel then gets two numbers per anchor, in metres: its horizontal distance to the anchor's centre
minus the anchor's horizontal spread (about the footprint gap) and its height above the anchor's centre.
Each number is also taken relative to the query's *candidates*, the voxels its other mask terms already
favour (``candidate_weights``): standardised over them (``standardise``), so "closest to the door" raises
the nearest look-alike and lowers the farthest by about the same amount in a room of any scale. A
relation classifier on the pooled sentence (its softmax over ``DecoderConfig.relation_kinds``) mixes a
learned row of coefficients per kind, one per number: "closest to" can lower the logits of far voxels,
"farthest from" raise them, "between" penalise the distance to two anchors, "on top of" reward height.
"closest" or "farthest" is the sentence's, and the classifier can be trained on the annotated kind
(``LossConfig.relation``).

``VoxelColor`` embeds each voxel's mean RGB with a small MLP (once per scene; layer-normalised, so the
term does not start negligibly small) and adds the dot product of that embedding with a projection of the
text-encoder embeddings of words each reader picks itself (its softmax over the tokens): "red" keeps its
meaning there, while the query stream mixes the whole sentence. For the queries the embeddings are taken
relative to their candidates' mean one; the same term also paints the anchors' referent maps ("the white
shelf").

Both start neutral: the coefficient table and the color projection are zero-initialised, so a fresh
model's logits equal those of the decoder without them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liftgs.model.types import TextFeatures

SQUARED_EPS = 1e-12
"""Floor under squared lengths (m^2) before a square root: d sqrt(x)/dx is infinite at 0, and a referent map
whose sigmoids all underflow (every weight 0) would otherwise turn every gradient into NaN."""
GEOMETRY_FEATURES = 2
"""Numbers per voxel and anchor: horizontal gap to the anchor, height above it (metres)."""
RELATIVE_SPREAD_FLOOR = 0.1
"""Smallest spread (metres) ``standardise`` divides by: when a query's candidates are one small object, its
look-alikes' standardised distances stay finite."""


def candidate_weights(mask_logits: Tensor) -> Tensor:
    """[B, Q, Pv] mask logits -> [B, Q, Pv] weights over the voxels, summing to 1 per query:
    ``sigmoid(logits)`` normalised and detached (the candidates steer the relational terms; they are not
    trained through them)."""
    weights = torch.sigmoid(mask_logits.detach())
    return weights / weights.sum(-1, keepdim=True).clamp_min(1e-6)


def pick_words(
    readers: Tensor,  # [B, N, A] reader-side projections
    keys: Tensor,  # [B, T, A] token-side projections
    log_inv_temperature: Tensor,  # [] learned
    token_mask: Tensor,  # [B, T] True = real token
    bias: Tensor | None = None,  # [B, N, T] added to the logits before the softmax
) -> Tensor:
    """[B, N, T]: each reader's softmax over the real tokens of the cosine between its projection and the
    tokens', times the inverse temperature (plus ``bias``)."""
    logits = F.normalize(readers, dim=-1) @ F.normalize(keys, dim=-1).transpose(1, 2)
    logits = logits * log_inv_temperature.exp()
    if bias is not None:
        logits = logits + bias
    return logits.masked_fill(~token_mask.unsqueeze(1), float("-inf")).softmax(-1)


def standardise(
    features: Tensor,  # [B, Q, K, Pv, F]
    weights: Tensor,  # [B, Q, Pv] candidate weights (sum 1 per query)
) -> Tensor:
    """[B, Q, K, Pv, F]: each feature minus its weighted mean over the voxels, divided by its weighted
    standard deviation (at least ``RELATIVE_SPREAD_FLOOR``)."""
    w = weights[:, :, None, :, None]
    mean = (w * features).sum(3, keepdim=True)
    centred = features - mean
    variance = (w * centred.square()).sum(3, keepdim=True)
    spread = variance.clamp_min(RELATIVE_SPREAD_FLOOR**2).sqrt()  # clamped before the root: finite gradient
    return centred / spread


def referent_centres(
    referent_logits: Tensor,  # [B, Q, K, Pv]
    xyz: Tensor,  # [Pv, 3] metres
) -> tuple[Tensor, Tensor]:
    """(weights [B, Q, K, Pv], centres [B, Q, K, 3]): each anchor's referent map ``sigmoid(logits)``
    normalised to sum 1 over the voxels, and its weighted mean position (metres)."""
    referent = torch.sigmoid(referent_logits)
    weights = referent / referent.sum(-1, keepdim=True).clamp_min(1e-6)
    return weights, weights @ xyz


class AnchorGeometry(nn.Module):
    """Mask-logit term [B, Q, Pv] from each query's ``slots`` anchors (see the module docstring).

    The caller locates the anchors: ``token_weights`` says which words each anchor reads, and the decoder's
    grounding heads paint their referent logits (``GroundingHeads._anchor_referents``).
    """

    def __init__(
        self, d_model: int, align_dim: int, slots: int, sentence_dim: int, relation_kinds: int
    ) -> None:
        super().__init__()
        if slots < 1:
            raise ValueError(f"decoder.anchor_slots must be >= 1 to build AnchorGeometry, got {slots}")
        if relation_kinds < 1:
            raise ValueError("decoder.relation_kinds: the relation classifier needs at least one kind")
        self.slots = slots
        self.features_per_anchor = 2 * GEOMETRY_FEATURES  # absolute and standardised over the candidates
        self.anchor_align = nn.Linear(d_model, slots * align_dim)
        self.token_align = nn.Linear(d_model, align_dim)
        self.log_inv_temperature = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.relation_classifier = nn.Linear(sentence_dim, relation_kinds)
        outputs = slots * self.features_per_anchor
        self.relation_table = nn.Parameter(torch.zeros(relation_kinds, outputs))  # zero: starts neutral

    def forward(
        self,
        referent_logits: Tensor,  # [B, Q, K, Pv] where each anchor's object is (logit per voxel)
        xyz: Tensor,  # [Pv, 3] metres, z up
        candidates: Tensor,  # [B, Q, Pv] ``candidate_weights``
        sentence: Tensor,  # [B, Dt] pooled text embedding
    ) -> tuple[Tensor, Tensor]:
        """(mask-logit term [B, Q, Pv], anchor centres [B, Q, K, 3] in metres: where each anchor was
        located, ``referent_centres``)."""
        weights, centres = referent_centres(referent_logits, xyz)
        features = self.features(weights, centres, xyz)  # [B, Q, K, Pv, 2]
        features = torch.cat([features, standardise(features, candidates)], dim=-1)
        shape = (features.shape[0], 1, self.slots, 1, self.features_per_anchor)
        return (self.coefficient_values(sentence).view(shape) * features).sum(dim=(2, 4)), centres

    def coefficient_values(self, sentence: Tensor) -> Tensor:
        """[B, slots * features_per_anchor], shared by the text's queries: the relation classifier's softmax
        times the table of per-kind coefficients."""
        return self.relation_logits(sentence).softmax(-1) @ self.relation_table

    def relation_logits(self, sentence: Tensor) -> Tensor:
        """[B, R]: the relation classifier's logits over ``DecoderConfig.relation_kinds`` from the pooled
        text embedding [B, Dt] (unit-normalised first)."""
        return self.relation_classifier(F.normalize(sentence, dim=-1))

    def token_weights(
        self, queries: Tensor, words: Tensor, target_logits: Tensor, token_mask: Tensor
    ) -> Tensor:
        """[B, Q, K, T]: each anchor's softmax over the real tokens, steered away from the words the query
        reads as its target: a word's share ``p`` of the query's alignment softmax adds ``log(1 - p)`` to the
        anchor's logits. The alignment is not trained through this.

        Args: queries [B, Q, d_model] normalised query features; words [B, T, d_model] normalised token
        features of the decoder's sequence; target_logits [B, Q, T] the query's token alignment; token_mask
        [B, T] True = real token."""
        anchors = self.anchor_align(queries).unflatten(-1, (self.slots, -1)).flatten(1, 2)  # [B, Q * K, A]
        target_logits = target_logits.detach().repeat_interleave(self.slots, dim=1)  # [B, Q * K, T]
        target = target_logits.softmax(-1)
        away_from_target = torch.log1p(-target.clamp(max=1 - 1e-4))
        weights = pick_words(
            anchors, self.token_align(words), self.log_inv_temperature, token_mask, away_from_target
        )
        return weights.unflatten(1, (queries.shape[1], self.slots))

    @staticmethod
    def features(
        weights: Tensor,  # [B, Q, K, Pv] each anchor's referent weights (``referent_centres``)
        centre: Tensor,  # [B, Q, K, 3] their weighted mean position (metres)
        xyz: Tensor,  # [Pv, 3] metres, z up
    ) -> Tensor:
        """[B, Q, K, Pv, 2]: per voxel and anchor, the horizontal distance to the anchor's centre minus the
        anchor's horizontal spread (RMS distance of its referent voxels to the centre), and the height above
        the centre; metres."""
        horizontal = xyz[:, :2] - centre[..., None, :2]  # [B, Q, K, Pv, 2]
        distance = (horizontal.square().sum(-1) + 1e-6).sqrt()  # [B, Q, K, Pv]
        spread_sq = (weights * distance.square()).sum(-1, keepdim=True)  # [B, Q, K, 1]
        spread = spread_sq.clamp_min(SQUARED_EPS).sqrt()  # an empty referent map has spread 0, not a NaN grad
        height = xyz[:, 2] - centre[..., 2:]  # [B, Q, K, Pv]
        return torch.stack([distance - spread, height], dim=-1)


class VoxelColor(nn.Module):
    """Mask-logit term [B, N, Pv] of N readers (queries or anchors): a color vector per reader dotted with
    an embedding of each voxel's RGB.

    The reader's color vector is a projection of the text-encoder embeddings of the words it picks (a
    softmax over the sentence's tokens from the reader's features: "red" in "the red chair", "white" in
    "the chair near the white door"). With ``color_names`` the tokens of a color name enter it only
    through the RGB they name (``TextFeatures.word_colors``, embedded like the voxels' colors, then
    projected; zero-initialised), and the picker's keys carry a learned mark on them: the term compares a
    color word's own color with the voxels' colors and cannot memorise the trained color words'
    embeddings. See docs/experiments.md, *Color names and the word gap*.
    """

    def __init__(self, d_model: int, channels: int, text_dim: int, pick_dim: int, color_names: bool) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"decoder.color_channels must be >= 1 to build VoxelColor, got {channels}")
        self.embed = nn.Sequential(
            nn.Linear(3, channels), nn.ReLU(), nn.Linear(channels, channels), nn.LayerNorm(channels)
        )
        self.pick_reader = nn.Linear(d_model, pick_dim)
        self.pick_token = nn.Linear(text_dim, pick_dim)
        self.log_inv_temperature = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.query = nn.Linear(text_dim, channels)
        nn.init.zeros_(self.query.weight)
        nn.init.zeros_(self.query.bias)
        self.named = None
        if color_names:
            self.named = nn.Linear(channels, channels, bias=False)
            nn.init.zeros_(self.named.weight)
            self.named_key = nn.Parameter(torch.zeros(pick_dim))

    def embed_colors(self, colors: Tensor) -> Tensor:
        """[Pv, 3] RGB in [0, 1] -> [Pv, channels]; text-independent, computed once per scene."""
        return self.embed(colors - 0.5)

    def word_weights(self, readers: Tensor, text: TextFeatures) -> Tensor:
        """[B, N, T]: each reader's softmax over the real tokens (readers [B, N, d_model]). With color names,
        the tokens of a color name carry a learned mark in the picker's keys."""
        keys = self.pick_token(text.tokens)
        if self.named is not None:
            keys = keys + text.named_color.unsqueeze(-1) * self.named_key
        return pick_words(self.pick_reader(readers), keys, self.log_inv_temperature, text.mask)

    def forward(
        self,
        readers: Tensor,  # [B, N, d_model]
        color_embed: Tensor,  # [Pv, C] ``embed_colors``
        text: TextFeatures,
        candidates: Tensor | None = None,  # [B, N, Pv] ``candidate_weights``
    ) -> Tensor:
        """[B, N, Pv]; with ``candidates`` each voxel's embedding is taken relative to the candidates' mean
        one."""
        weights = self.word_weights(readers, text)  # [B, N, T]
        if self.named is None:
            projected = self.query(weights @ text.tokens)  # [B, N, C]
        else:  # a color name's color is its RGB's, not its embedding's
            named = text.named_color.unsqueeze(-1)  # [B, T, 1]
            projected = self.query(weights @ (text.tokens * ~named))
            projected = projected + self.named(weights @ (self.embed_colors(text.word_colors) * named))
        term = projected @ color_embed.T  # [B, N, Pv]
        if candidates is not None:
            term = term - (projected * (candidates @ color_embed)).sum(-1, keepdim=True)
        return term / math.sqrt(color_embed.shape[-1])
