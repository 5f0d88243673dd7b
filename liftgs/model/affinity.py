"""Lifted-feature affinity: an open-vocabulary prior on the decoder's mask logits.

The lifted point features (``liftgs.pseudo.lift``) are 2D foundation-model embeddings carried onto the
points and narrowed by a fixed random projection. When those embeddings live in the text encoder's token
space (the embedded benchmark's stand-in labels embed object names with the same text encoder; with real
CLIP features, a text encoder whose tokens live in CLIP's joint space), the cosine between a point's
feature and the projected embedding of the words naming the target says, with no training, which points
belong to objects of that category (ConceptFusion-style retrieval).

``LiftedAffinity`` adds that cosine to every query's mask logits. The words come from the query's own
token alignment: the text tokens weighted by ``softmax(token_logits)`` over the query's tokens, which the
token loss trains to point at the target's name. The scale and offset are learned, so the decoder can
lean on the prior or shrink it away where the features do not match the text space.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liftgs.model.projection import feature_projection

AFFINITY_SCALE_INIT = 4.0
"""Initial multiplier of the cosine (learned): about the mask dot products' initial range."""
AFFINITY_OFFSET_INIT = 0.5
"""Initial cosine at which the prior is neutral (learned): same-category points score well above it."""


class LiftedAffinity(nn.Module):
    """Mask-logit prior [B, Q, Pv] from token alignment, text tokens and unit lifted point features."""

    def __init__(self, text_dim: int, lifted_dim: int, projection_seed: int) -> None:
        super().__init__()
        projection = feature_projection(text_dim, lifted_dim, projection_seed)
        if projection is None:
            raise ValueError("decoder.lifted_affinity needs lifted features (encoder.extra_channels > 0)")
        self.register_buffer("projection", projection, persistent=False)  # [Dt, E], rebuilt from the seed
        self.log_scale = nn.Parameter(torch.tensor(math.log(AFFINITY_SCALE_INIT)))
        self.offset = nn.Parameter(torch.tensor(AFFINITY_OFFSET_INIT))

    def forward(
        self,
        token_weights: Tensor,  # [B, N, T] for each of N readers (queries, anchors), weights over the tokens
        tokens: Tensor,  # [B, T, Dt] the text encoder's token embeddings
        lifted: Tensor,  # [Pv, E] unit lifted features (zero rows: points no labelled frame saw)
    ) -> Tensor:
        """[B, N, Pv] the prior's logits: ``scale * (cosine - offset)``. A query's weights are
        ``softmax(token_logits)`` over its tokens."""
        return self.log_scale.exp() * (self.cosine(token_weights, tokens, lifted) - self.offset)

    def cosine(
        self,
        token_weights: Tensor,  # [B, N, T] for each of N readers, weights over the tokens (sum 1)
        tokens: Tensor,  # [B, T, Dt]
        lifted: Tensor,  # [Pv, E] unit lifted features
    ) -> Tensor:
        """[B, N, Pv] cosine between each point's lifted feature and the projected weighted words."""
        named = token_weights @ tokens  # [B, N, Dt] the words each reader chose
        text = F.normalize(named @ self.projection, dim=-1)  # [B, N, E]
        return text @ lifted.T
