"""Explicit relational terms on the mask logits: where the sentence's other objects are, and voxel colour.

Referring expressions single out one instance among look-alikes by its relation to *other* named objects
("the chair closest to the door", "the lamp between the bed and the desk") or by an attribute ("the red
chair"). Attention in the decoder sees positions only in its queries and keys, so a query can look at the
door but cannot carry *where* the door is into the mask it paints. Two terms make that explicit:

``AnchorGeometry`` gives every query ``slots`` anchors. Each anchor chooses words of the sentence (its own
softmax over the text tokens, steered away from the words the query reads as its target), the lifted
affinity turns those words into a soft map of the voxels they name (``LiftedAffinity.cosine``), and the
map's weighted centre and spread locate the anchor object. Every voxel then gets two numbers per anchor,
in metres: its horizontal distance to the anchor's centre minus the anchor's horizontal spread (about the
footprint gap) and its height above the anchor's centre. The query predicts one coefficient per number, so
"closest to" can lower the logits of far voxels, "farthest from" raise them, "between" penalise the
distance to two anchors, "on top of" reward height.

``VoxelColour`` embeds each voxel's mean RGB with a small MLP (once per scene; layer-normalised, so the
term does not start negligibly small) and adds the dot product of that embedding with a projection of the
query: a colour word can score voxels directly instead of through the encoder's features.

Both start neutral: the query-side projections are zero-initialised, so a fresh model's logits equal those
of the decoder without them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liftgs.model.affinity import LiftedAffinity
from liftgs.model.types import TextFeatures

REFERENT_SCALE_INIT = 10.0
"""Initial multiplier of the anchor words' cosine before the sigmoid that makes the referent map (learned):
sharper than the affinity's, since only the named object should weigh in the anchor's centre."""
REFERENT_OFFSET_INIT = 0.5
"""Initial cosine at which a voxel is half in the anchor's referent map (learned)."""
GEOMETRY_FEATURES = 2
"""Numbers per voxel and anchor: horizontal gap to the anchor, height above it (metres)."""


class AnchorGeometry(nn.Module):
    """Mask-logit term [B, Q, Pv] from each query's ``slots`` anchors (see the module docstring)."""

    def __init__(self, d_model: int, align_dim: int, slots: int) -> None:
        super().__init__()
        if slots < 1:
            raise ValueError(f"decoder.anchor_slots must be >= 1 to build AnchorGeometry, got {slots}")
        self.slots = slots
        self.anchor_align = nn.Linear(d_model, slots * align_dim)
        self.token_align = nn.Linear(d_model, align_dim)
        self.log_inv_temperature = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.referent_log_scale = nn.Parameter(torch.tensor(math.log(REFERENT_SCALE_INIT)))
        self.referent_offset = nn.Parameter(torch.tensor(REFERENT_OFFSET_INIT))
        self.coefficients = nn.Linear(d_model, slots * GEOMETRY_FEATURES)
        nn.init.zeros_(self.coefficients.weight)
        nn.init.zeros_(self.coefficients.bias)

    def forward(
        self,
        queries: Tensor,  # [B, Q, d_model] normalised query features
        words: Tensor,  # [B, T, d_model] normalised token features of the decoder's sequence
        target_logits: Tensor,  # [B, Q, T] the query's token alignment (the words naming its target)
        text: TextFeatures,  # the text encoder's tokens [B, T, Dt] and mask [B, T]
        lifted: Tensor,  # [Pv, E] unit lifted features
        xyz: Tensor,  # [Pv, 3] metres, z up
        affinity: LiftedAffinity,
    ) -> Tensor:
        batch, num_queries = queries.shape[:2]
        weights = self.token_weights(queries, words, target_logits, text.mask)
        features = self.features(weights, text.tokens, lifted, xyz, affinity)  # [B, Q, K, Pv, F]
        coefficients = self.coefficients(queries).view(batch, num_queries, self.slots, 1, GEOMETRY_FEATURES)
        return (coefficients * features).sum(dim=(2, 4))

    def token_weights(
        self, queries: Tensor, words: Tensor, target_logits: Tensor, token_mask: Tensor
    ) -> Tensor:
        """[B, Q, K, T]: each anchor's softmax over the real tokens, steered away from the words the query
        reads as its target (their alignment probability ``p`` adds ``log(1 - p)`` to the anchor's logits;
        the alignment itself is not trained through this). Shapes as in ``forward``."""
        anchors = self.anchor_align(queries).unflatten(-1, (self.slots, -1))  # [B, Q, K, A]
        anchors = F.normalize(anchors, dim=-1).flatten(1, 2)  # [B, Q * K, A]
        keys = F.normalize(self.token_align(words), dim=-1)  # [B, T, A]
        logits = anchors @ keys.transpose(1, 2) * self.log_inv_temperature.exp()  # [B, Q * K, T]
        target = target_logits.detach().softmax(-1).repeat_interleave(self.slots, dim=1)
        logits = logits + torch.log1p(-target.clamp(max=1 - 1e-4))
        logits = logits.masked_fill(~token_mask.unsqueeze(1), float("-inf"))
        return logits.softmax(-1).unflatten(1, (queries.shape[1], self.slots))

    def features(
        self,
        token_weights: Tensor,  # [B, Q, K, T]
        tokens: Tensor,  # [B, T, Dt]
        lifted: Tensor,  # [Pv, E]
        xyz: Tensor,  # [Pv, 3] metres, z up
        affinity: LiftedAffinity,
    ) -> Tensor:
        """[B, Q, K, Pv, 2]: per voxel and anchor, the horizontal distance to the anchor's centre minus the
        anchor's horizontal spread (RMS distance of its referent voxels to the centre), and the height above
        the centre; metres. The referent map is ``sigmoid(scale * (cosine - offset))`` of the anchor's
        words (``LiftedAffinity.cosine``), the centre its weighted mean position."""
        cosine = affinity.cosine(token_weights.flatten(1, 2), tokens, lifted)  # [B, Q * K, Pv]
        referent = torch.sigmoid(self.referent_log_scale.exp() * (cosine - self.referent_offset))
        weights = referent / referent.sum(-1, keepdim=True).clamp_min(1e-6)
        centre = weights @ xyz  # [B, Q * K, 3]
        horizontal = xyz[:, :2] - centre[..., None, :2]  # [B, Q * K, Pv, 2]
        distance = (horizontal.square().sum(-1) + 1e-6).sqrt()  # [B, Q * K, Pv]
        spread = (weights * distance.square()).sum(-1, keepdim=True).sqrt()  # [B, Q * K, 1]
        height = xyz[:, 2] - centre[..., 2:]  # [B, Q * K, Pv]
        features = torch.stack([distance - spread, height], dim=-1)  # [B, Q * K, Pv, F]
        return features.unflatten(1, token_weights.shape[1:3])


class VoxelColour(nn.Module):
    """Mask-logit term [B, Q, Pv]: a query projection dotted with an embedding of each voxel's RGB."""

    def __init__(self, d_model: int, channels: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"decoder.colour_channels must be >= 1 to build VoxelColour, got {channels}")
        self.embed = nn.Sequential(
            nn.Linear(3, channels), nn.ReLU(), nn.Linear(channels, channels), nn.LayerNorm(channels)
        )
        self.query = nn.Linear(d_model, channels)
        nn.init.zeros_(self.query.weight)
        nn.init.zeros_(self.query.bias)

    def embed_colours(self, colors: Tensor) -> Tensor:
        """[Pv, 3] RGB in [0, 1] -> [Pv, channels]; text-independent, computed once per scene."""
        return self.embed(colors - 0.5)

    def forward(self, queries: Tensor, colour_embed: Tensor) -> Tensor:
        """queries [B, Q, d_model], colour_embed [Pv, C] -> [B, Q, Pv]."""
        return self.query(queries) @ colour_embed.T / math.sqrt(colour_embed.shape[-1])
