"""Explicit relational terms on the mask logits: where the sentence's other objects are, and voxel colour.

Referring expressions single out one instance among look-alikes by its relation to *other* named objects
("the chair closest to the door", "the lamp between the bed and the desk") or by an attribute ("the red
chair"). Attention in the decoder sees positions only in its queries and keys, so a query can look at the
door but cannot carry *where* the door is into the mask it paints. Two terms make that explicit:

``AnchorGeometry`` gives every query ``slots`` anchors. Each anchor chooses words of the sentence (its own
softmax over the text tokens, steered away from the words the query reads as its target), those words
become a soft map of the voxels they name (the referent map: by default the lifted affinity of the words,
``LiftedAffinity.cosine``; with ``anchors_grounded`` the mask the decoder's heads paint for them), and the
map's weighted centre and spread locate the anchor object. Every voxel then gets two numbers per anchor,
in metres: its horizontal distance to the anchor's centre minus the anchor's horizontal spread (about the
footprint gap) and its height above the anchor's centre. The query predicts one coefficient per number, so
"closest to" can lower the logits of far voxels, "farthest from" raise them, "between" penalise the
distance to two anchors, "on top of" reward height.

``VoxelColour`` embeds each voxel's mean RGB with a small MLP (once per scene; layer-normalised, so the
term does not start negligibly small) and adds the dot product of that embedding with a projection of the
query: a colour word can score voxels directly instead of through the encoder's features. With
``from_words`` the query side is a projection of the text-encoder embeddings of words the query picks
itself (its softmax over the tokens): "red" keeps its meaning there, while the query stream mixes the whole
sentence. The same term can also paint the grounded anchors' referent maps ("the white shelf").

With ``candidate_relative`` both terms also see their numbers relative to the query's *candidates*, the
voxels its other mask terms already favour (``candidate_weights``): distances and heights standardised
over them (``standardise``), colour embeddings minus their mean. An absolute distance shifts every chair's
logits by its metres, so which chairs cross the mask threshold depends on the room; the standardised one
raises the nearest look-alike and lowers the farthest by about the same amount in every room.

The coefficients of the geometry term come from the query, from the pooled sentence, or from a relation
classifier on the pooled sentence (its softmax over relation kinds times a learned row per kind:
``coefficient_source``); "closest" or "farthest" is the sentence's, and the classifier can be trained on
the annotated kind (``LossConfig.relation``).

Both start neutral: the query-side projections are zero-initialised, so a fresh model's logits equal those
of the decoder without them.
"""

from __future__ import annotations

import math
from typing import get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liftgs.model.affinity import LiftedAffinity
from liftgs.model.config import CoefficientSource

REFERENT_SCALE_INIT = 10.0
"""Initial multiplier of the anchor words' cosine before the sigmoid that makes the referent map (learned):
sharper than the affinity's, since only the named object should weigh in the anchor's centre."""
REFERENT_OFFSET_INIT = 0.5
"""Initial cosine at which a voxel is half in the anchor's referent map (learned)."""
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

    The caller locates the anchors: ``token_weights`` says which words each anchor reads, and their referent
    logits come either from ``lifted_referent_logits`` (the lifted affinity of those words; needs
    ``lifted_referents``) or from the decoder's own mask heads (``DecoderConfig.anchors_grounded``).
    """

    def __init__(
        self,
        d_model: int,
        align_dim: int,
        slots: int,
        relative: bool = False,
        lifted_referents: bool = True,
        steer_by_sigmoid: bool = False,
        coefficient_source: CoefficientSource = "query",
        sentence_dim: int = 0,
        relation_kinds: int = 0,
    ) -> None:
        super().__init__()
        if slots < 1:
            raise ValueError(f"decoder.anchor_slots must be >= 1 to build AnchorGeometry, got {slots}")
        if coefficient_source not in get_args(CoefficientSource):
            choices = ", ".join(get_args(CoefficientSource))
            got = coefficient_source
            raise ValueError(f"decoder.relation_coefficients must be one of {choices}; got {got}")
        reads_sentence = coefficient_source != "query"
        if reads_sentence and sentence_dim < 1:
            raise ValueError("AnchorGeometry: sentence coefficients need the pooled text embedding's width")
        if "relation" in coefficient_source and relation_kinds < 1:
            raise ValueError("decoder.relation_kinds: the relation classifier needs at least one kind")
        self.slots = slots
        self.steer_by_sigmoid = steer_by_sigmoid
        self.relative = relative
        self.features_per_anchor = GEOMETRY_FEATURES * (2 if relative else 1)
        self.anchor_align = nn.Linear(d_model, slots * align_dim)
        self.token_align = nn.Linear(d_model, align_dim)
        self.log_inv_temperature = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        if lifted_referents:
            self.referent_log_scale = nn.Parameter(torch.tensor(math.log(REFERENT_SCALE_INIT)))
            self.referent_offset = nn.Parameter(torch.tensor(REFERENT_OFFSET_INIT))
        outputs = slots * self.features_per_anchor
        self.coefficients = nn.Linear(d_model, outputs) if "query" in coefficient_source else None
        self.sentence_coefficients = None
        if "sentence" in coefficient_source:
            self.sentence_coefficients = nn.Linear(sentence_dim, outputs)
        for layer in (self.coefficients, self.sentence_coefficients):
            if layer is not None:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        self.relation_classifier = None
        if "relation" in coefficient_source:
            self.relation_classifier = nn.Linear(sentence_dim, relation_kinds)
            self.relation_table = nn.Parameter(torch.zeros(relation_kinds, outputs))  # zero: starts neutral

    def forward(
        self,
        queries: Tensor,  # [B, Q, d_model] normalised query features
        referent_logits: Tensor,  # [B, Q, K, Pv] where each anchor's object is (logit per voxel)
        xyz: Tensor,  # [Pv, 3] metres, z up
        candidates: Tensor | None = None,  # [B, Q, Pv] ``candidate_weights``; required iff ``relative``
        sentence: Tensor | None = None,  # [B, Dt] pooled text embedding; required for sentence coefficients
    ) -> tuple[Tensor, Tensor]:
        """(mask-logit term [B, Q, Pv], anchor centres [B, Q, K, 3] in metres: where each anchor was
        located, ``referent_centres``)."""
        if (candidates is None) == self.relative:
            raise ValueError("AnchorGeometry: candidate weights are needed exactly when it is relative")
        batch, num_queries = queries.shape[:2]
        weights, centres = referent_centres(referent_logits, xyz)
        features = self.features(weights, centres, xyz)  # [B, Q, K, Pv, 2]
        if candidates is not None:
            features = torch.cat([features, standardise(features, candidates)], dim=-1)
        shape = (batch, num_queries, self.slots, 1, self.features_per_anchor)
        return (self.coefficient_values(queries, sentence).view(shape) * features).sum(dim=(2, 4)), centres

    def coefficient_values(self, queries: Tensor, sentence: Tensor | None) -> Tensor:
        """[B, Q, slots * features_per_anchor], by ``coefficient_source``: the query projection, the (unit)
        pooled sentence embedding's projection shared by the text's queries, the relation classifier's
        softmax times the table of per-kind coefficients (also shared), or the query's plus one of those."""
        values = queries.new_zeros(*queries.shape[:2], self.slots * self.features_per_anchor)
        if self.coefficients is not None:
            values = values + self.coefficients(queries)
        if self.sentence_coefficients is None and self.relation_classifier is None:
            return values
        if sentence is None:
            raise ValueError("AnchorGeometry: sentence coefficients need the pooled text embedding")
        if self.sentence_coefficients is not None:
            values = values + self.sentence_coefficients(F.normalize(sentence, dim=-1)).unsqueeze(1)
        if self.relation_classifier is not None:
            kinds = self.relation_logits(sentence).softmax(-1)  # [B, R]
            values = values + (kinds @ self.relation_table).unsqueeze(1)
        return values

    def relation_logits(self, sentence: Tensor) -> Tensor:
        """[B, R]: the relation classifier's logits over ``DecoderConfig.relation_kinds`` from the pooled
        text embedding [B, Dt] (unit-normalised first), for coefficient sources with ``"relation"``."""
        if self.relation_classifier is None:
            raise ValueError("AnchorGeometry: no relation classifier (relation_coefficients without it)")
        return self.relation_classifier(F.normalize(sentence, dim=-1))

    def token_weights(
        self, queries: Tensor, words: Tensor, target_logits: Tensor, token_mask: Tensor
    ) -> Tensor:
        """[B, Q, K, T]: each anchor's softmax over the real tokens, steered away from the words the query
        reads as its target: a word's target probability ``p`` adds ``log(1 - p)`` to the anchor's logits,
        with ``p`` its share of the alignment's softmax, or with ``steer_by_sigmoid`` the sigmoid of its
        alignment logit (what the focal alignment loss trains: every word of "trash can" near 1, where the
        softmax gives each about a half and barely steers). The alignment is not trained through this.

        Args: queries [B, Q, d_model] normalised query features; words [B, T, d_model] normalised token
        features of the decoder's sequence; target_logits [B, Q, T] the query's token alignment; token_mask
        [B, T] True = real token."""
        anchors = self.anchor_align(queries).unflatten(-1, (self.slots, -1)).flatten(1, 2)  # [B, Q * K, A]
        target_logits = target_logits.detach().repeat_interleave(self.slots, dim=1)  # [B, Q * K, T]
        if self.steer_by_sigmoid:
            away_from_target = F.logsigmoid(-target_logits)  # log(1 - sigmoid)
        else:
            target = target_logits.softmax(-1)
            away_from_target = torch.log1p(-target.clamp(max=1 - 1e-4))
        weights = pick_words(
            anchors, self.token_align(words), self.log_inv_temperature, token_mask, away_from_target
        )
        return weights.unflatten(1, (queries.shape[1], self.slots))

    def lifted_referent_logits(
        self,
        token_weights: Tensor,  # [B, Q, K, T]
        tokens: Tensor,  # [B, T, Dt] the text encoder's token embeddings
        lifted: Tensor,  # [Pv, E] unit lifted features
        affinity: LiftedAffinity,
    ) -> Tensor:
        """[B, Q, K, Pv]: ``scale * (cosine - offset)`` of the anchor's words and each voxel's lifted feature
        (``LiftedAffinity.cosine``); scale and offset are learned."""
        cosine = affinity.cosine(token_weights.flatten(1, 2), tokens, lifted)  # [B, Q * K, Pv]
        logits = self.referent_log_scale.exp() * (cosine - self.referent_offset)
        return logits.unflatten(1, token_weights.shape[1:3])

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


class VoxelColour(nn.Module):
    """Mask-logit term [B, N, Pv] of N readers (queries or grounded anchors): a colour vector per reader
    dotted with an embedding of each voxel's RGB.

    The reader's colour vector is a projection of its features, or with ``from_words`` a projection of the
    text-encoder embeddings of the words it picks (a softmax over the sentence's tokens from the reader's
    features: "red" in "the red chair", "white" in "the chair near the white door").
    """

    def __init__(
        self, d_model: int, channels: int, text_dim: int = 0, from_words: bool = False, pick_dim: int = 64
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"decoder.colour_channels must be >= 1 to build VoxelColour, got {channels}")
        if from_words and text_dim < 1:
            raise ValueError(f"VoxelColour(from_words=True) needs the text embedding width, got {text_dim}")
        self.embed = nn.Sequential(
            nn.Linear(3, channels), nn.ReLU(), nn.Linear(channels, channels), nn.LayerNorm(channels)
        )
        self.from_words = from_words
        if from_words:
            self.pick_reader = nn.Linear(d_model, pick_dim)
            self.pick_token = nn.Linear(text_dim, pick_dim)
            self.log_inv_temperature = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.query = nn.Linear(text_dim if from_words else d_model, channels)
        nn.init.zeros_(self.query.weight)
        nn.init.zeros_(self.query.bias)

    def embed_colours(self, colors: Tensor) -> Tensor:
        """[Pv, 3] RGB in [0, 1] -> [Pv, channels]; text-independent, computed once per scene."""
        return self.embed(colors - 0.5)

    def word_weights(self, readers: Tensor, tokens: Tensor, token_mask: Tensor) -> Tensor:
        """[B, N, T]: each reader's softmax over the real tokens (``from_words``). readers [B, N, d_model],
        tokens [B, T, Dt] text-encoder embeddings, token_mask [B, T] True = real token."""
        return pick_words(
            self.pick_reader(readers), self.pick_token(tokens), self.log_inv_temperature, token_mask
        )

    def forward(
        self,
        readers: Tensor,  # [B, N, d_model]
        colour_embed: Tensor,  # [Pv, C] ``embed_colours``
        candidates: Tensor | None = None,  # [B, N, Pv] ``candidate_weights``
        tokens: Tensor | None = None,  # [B, T, Dt] text-encoder embeddings; required iff ``from_words``
        token_mask: Tensor | None = None,  # [B, T] True = real token; required iff ``from_words``
    ) -> Tensor:
        """[B, N, Pv]; with ``candidates`` each voxel's embedding is taken relative to the candidates' mean
        one."""
        if self.from_words:
            if tokens is None or token_mask is None:
                raise ValueError("VoxelColour(from_words=True) needs the text tokens and their mask")
            readers = self.word_weights(readers, tokens, token_mask) @ tokens  # [B, N, Dt]
        projected = self.query(readers)  # [B, N, C]
        term = projected @ colour_embed.T  # [B, N, Pv]
        if candidates is not None:
            term = term - (projected * (candidates @ colour_embed)).sum(-1, keepdim=True)
        return term / math.sqrt(colour_embed.shape[-1])
