"""Grounding decoder in the Locate 3D shape: learned queries read the text tokens and the point features.

Two streams: the sequence ``[queries || text tokens]`` (width ``d_model``) and the scene's points (width
``point_dim``, kept small because there are 5k-20k of them). Each layer (pre-norm, residual):

1. self-attention over ``[queries || text tokens]`` (padded tokens masked out),
2. queries -> points cross-attention (the sequence reads the scene), then an FFN on the sequence,
3. points -> ``[queries || tokens]`` cross-attention (point features updated).

The queries start from learned embeddings plus a projection of the mean text token, so every query knows
the text before the first layer. After every layer the shared heads predict, for each query:

- query <-> token alignment logits (cosine of projections times a learned inverse temperature); the query
  then adds a projection of the text encoder's embeddings of the words it aligns with (zero-initialised:
  the attention stream keeps little of a modifier, "red" in "the red chair", the encoder's embedding does);
- per-point mask logits: ``MLP(query) . point_features / sqrt(point_dim)`` times a learned scale plus a
  learned bias; with ``lifted_affinity`` plus the open-vocabulary prior of ``liftgs.model.affinity``; then
  the relational terms of ``liftgs.model.relations`` (``anchor_slots`` anchors located by these same heads:
  each anchor's referent map is the mask they paint for its words, plus the color term; and the
  ``color_channels`` voxel-color term), measured relative to the voxels the other terms favour;
- a grounding score and an axis-aligned box (centre and size refine the query's mask-weighted point
  statistics, after the relational terms).

All layers' outputs are kept for deep supervision. In training, the text tokens carry ``token_noise``
(``GroundingDecoder.noisy_text``).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liftgs.model.affinity import LiftedAffinity
from liftgs.model.config import DecoderConfig
from liftgs.model.relations import AnchorGeometry, VoxelColor, candidate_weights
from liftgs.model.types import DecoderPoints, GroundingOutput, TextFeatures

PAD_LOGIT = -1e4
"""Token logit written at padded token positions."""
MASK_SCALE_INIT = 8.0
"""Initial multiplier of the mask dot products (learned, like the token alignment's inverse temperature):
at 1 the logits start near 0 and need hundreds of steps to grow confident."""
MASK_BIAS_INIT = -2.0
"""Initial mask logit offset (learned): objects are small, so a point starts as "not the object" (p 0.12)."""


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def add_token_noise(text: TextFeatures, noise: float) -> TextFeatures:
    """``text`` with isotropic Gaussian noise on every token embedding [B, T, Dt], scaled per token so its
    expected norm is ``noise`` times the token's norm (padding stays zero)."""
    tokens = text.tokens
    scale = noise * tokens.norm(dim=-1, keepdim=True) / math.sqrt(tokens.shape[-1])
    return dataclasses.replace(text, tokens=tokens + torch.randn_like(tokens) * scale)


class FourierPosition(nn.Module):
    """Embedding of xyz (metres) from sin/cos at octave frequencies, then a linear layer."""

    def __init__(self, dim: int, num_freqs: int = 8, min_wavelength: float = 0.1) -> None:
        super().__init__()
        self.register_buffer(
            "freqs", 2 * math.pi / min_wavelength / 2.0 ** torch.arange(num_freqs), persistent=False
        )
        self.proj = nn.Linear(6 * num_freqs, dim)

    def forward(self, xyz: Tensor) -> Tensor:
        """[..., 3] -> [..., dim]."""
        angles = (xyz.unsqueeze(-1) * self.freqs).flatten(-2)
        return self.proj(torch.cat([angles.sin(), angles.cos()], dim=-1))


class Attention(nn.Module):
    """Pre-norm residual multi-head attention of ``x`` (width ``dim``) over a context (width ``context_dim``)
    in an inner width ``inner_dim``. Positional embeddings are added to queries and keys, not values."""

    def __init__(self, dim: int, context_dim: int, inner_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if inner_dim % num_heads:
            raise ValueError(f"decoder: attention width {inner_dim} not divisible by {num_heads} heads")
        self.heads = num_heads
        self.dropout = dropout
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, inner_dim)
        self.k = nn.Linear(context_dim, inner_dim)
        self.v = nn.Linear(context_dim, inner_dim)
        self.out = nn.Linear(inner_dim, dim)

    def forward(
        self,
        x: Tensor,  # [B, N, dim]
        x_pos: Tensor,  # [B, N, dim]
        context: Tensor | None,  # [B, M, context_dim]; None = self-attention over norm(x)
        context_pos: Tensor,  # [B, M, context_dim]
        ignore: Tensor | None,  # [B, M] bool, True = masked key
    ) -> Tensor:
        normed = self.norm(x)
        context = normed if context is None else context
        q = self._heads(self.q(normed + x_pos))
        k = self._heads(self.k(context + context_pos))
        v = self._heads(self.v(context))
        mask = None if ignore is None else ~ignore[:, None, None, :]
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # [B, H, N, hd]
        return x + self.out(out.transpose(1, 2).flatten(2))

    def _heads(self, t: Tensor) -> Tensor:
        """[B, N, inner] -> [B, H, N, inner / H]."""
        return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)


class FeedForward(nn.Module):
    """Pre-norm residual two-layer MLP."""

    def __init__(self, dim: int, ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class DecoderLayer(nn.Module):
    """One decoder layer: self-attention over [queries || tokens], queries <-> points cross-attention."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        d, dp, h, p = config.d_model, config.point_dim, config.num_heads, config.dropout
        self.self_attn = Attention(d, d, d, h, p)
        self.read_points = Attention(d, dp, dp, h, p)
        self.ffn = FeedForward(d, config.ffn_ratio, p)
        self.seq_norm = nn.LayerNorm(d)
        self.update_points = Attention(dp, d, dp, h, p)

    def forward(
        self,
        seq: Tensor,  # [B, Q + T, d_model] queries then text tokens
        seq_pos: Tensor,  # [B, Q + T, d_model]
        seq_ignore: Tensor,  # [B, Q + T] True = padded token
        points: Tensor,  # [B, P, point_dim]
        point_pos: Tensor,  # [B, P, point_dim]
    ) -> tuple[Tensor, Tensor]:
        seq = self.self_attn(seq, seq_pos, None, seq_pos, seq_ignore)
        seq = self.ffn(self.read_points(seq, seq_pos, points, point_pos, None))
        points = self.update_points(points, point_pos, self.seq_norm(seq), seq_pos, seq_ignore)
        return seq, points


class GroundingHeads(nn.Module):
    """Per-layer predictions from query features, text-token features and point features."""

    def __init__(self, config: DecoderConfig, text_dim: int, lifted_dim: int) -> None:
        super().__init__()
        d, dp = config.d_model, config.point_dim
        seed = config.lifted_projection_seed
        self.affinity = LiftedAffinity(text_dim, lifted_dim, seed) if config.lifted_affinity else None
        self.anchors = None
        if config.anchor_slots:
            self.anchors = AnchorGeometry(
                d, config.align_dim, config.anchor_slots, text_dim, len(config.relation_kinds)
            )
        self.color = None
        if config.color_channels:
            self.color = VoxelColor(d, config.color_channels, text_dim, config.align_dim, config.color_names)
        self.target_words = nn.Linear(text_dim, d)
        nn.init.zeros_(self.target_words.weight)  # zero: a fresh query is the attention stream's alone
        nn.init.zeros_(self.target_words.bias)
        self.query_norm = nn.LayerNorm(d)
        self.point_norm = nn.LayerNorm(dp)
        self.token_norm = nn.LayerNorm(d)
        self.mask_embed = mlp([d, d, d, dp])
        self.query_align = nn.Linear(d, config.align_dim)
        self.token_align = nn.Linear(d, config.align_dim)
        self.log_inv_temperature = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.mask_log_scale = nn.Parameter(torch.tensor(math.log(MASK_SCALE_INIT)))
        self.mask_bias = nn.Parameter(torch.tensor(MASK_BIAS_INIT))
        self.score = nn.Linear(d, 1)
        self.box = mlp([d, d, 6])

    def forward(
        self,
        queries: Tensor,  # [B, Q, d_model]
        tokens: Tensor,  # [B, T, d_model]
        text: TextFeatures,
        points: Tensor,  # [B, P, point_dim] the point stream after the layer
        prepared: DecoderPoints,  # the scene's text-independent inputs (lifted features, colors)
        xyz: Tensor,  # [P, 3] metres
    ) -> dict[str, Tensor]:
        q = self.query_norm(queries)
        p = self.point_norm(points)
        qa = F.normalize(self.query_align(q), dim=-1)
        words = self.token_norm(tokens)
        ta = F.normalize(self.token_align(words), dim=-1)
        token_logits = qa @ ta.transpose(1, 2) * self.log_inv_temperature.exp()  # [B, Q, T]
        token_logits = token_logits.masked_fill(~text.mask.unsqueeze(1), PAD_LOGIT)
        token_weights = token_logits.softmax(-1)
        q = self._read_words(q, token_weights, text)
        mask_logits = self._mask_logits(q, p, token_weights, text, prepared)  # [B, Q, P]
        relational = self.anchors is not None or self.color is not None
        candidates = candidate_weights(mask_logits) if relational else None  # [B, Q, P]
        if self.anchors is not None:
            assert candidates is not None
            anchor_weights = self.anchors.token_weights(q, words, token_logits, text.mask)  # [B, Q, K, T]
            referents = self._anchor_referents(anchor_weights, words, text, p, prepared)
            geometry, anchor_centres = self.anchors(referents, xyz, candidates, text.pooled)
            mask_logits = mask_logits + geometry
        if self.color is not None:
            assert prepared.color is not None  # ``GroundingDecoder.prepare`` requires it
            mask_logits = mask_logits + self.color(q, prepared.color, text, candidates)
        outputs = {
            "mask_logits": mask_logits,
            "token_logits": token_logits,
            "scores": self.score(q).squeeze(-1),
            "boxes": self._boxes(self.box(q), mask_logits, xyz),
        }
        if self.anchors is not None:
            outputs["anchor_centres"] = anchor_centres
            outputs["anchor_token_weights"] = anchor_weights
            outputs["relation_logits"] = self.anchors.relation_logits(text.pooled)
        return outputs

    def _read_words(self, q: Tensor, token_weights: Tensor, text: TextFeatures) -> Tensor:
        """q [B, N, d_model] plus the projected encoder embeddings of the words each reader weighs
        (token_weights [B, N, T])."""
        return q + self.target_words(token_weights @ text.tokens)

    def _mask_logits(
        self, q: Tensor, p: Tensor, token_weights: Tensor, text: TextFeatures, prepared: DecoderPoints
    ) -> Tensor:
        """[B, N, P] mask logits of N readers (features q [B, N, d_model], words token_weights [B, N, T])
        over the normalised points p [B, P, point_dim]: the scaled mask-embedding dot product, the bias and,
        with ``lifted_affinity``, the lifted prior of the readers' words. The relational terms come on top."""
        similarity = self.mask_embed(q) @ p.transpose(1, 2) / math.sqrt(p.shape[-1])
        logits = similarity * self.mask_log_scale.exp() + self.mask_bias
        if self.affinity is not None:
            assert prepared.lifted is not None  # ``GroundingDecoder.prepare`` requires it
            logits = logits + self.affinity(token_weights, text.tokens, prepared.lifted)
        return logits

    def _anchor_referents(
        self, weights: Tensor, words: Tensor, text: TextFeatures, p: Tensor, prepared: DecoderPoints
    ) -> Tensor:
        """[B, Q, K, P] referent logits of the anchors reading the words ``weights`` [B, Q, K, T]: the mask
        the heads paint for a reader made of those words, plus the color term of those words. words
        [B, T, d_model] normalised."""
        flat = weights.flatten(1, 2)  # [B, Q * K, T]
        readers = self._read_words(flat @ words, flat, text)
        logits = self._mask_logits(readers, p, flat, text, prepared)
        if self.color is not None:
            assert prepared.color is not None  # ``GroundingDecoder.prepare`` requires it
            logits = logits + self.color(readers, prepared.color, text)
        return logits.unflatten(1, weights.shape[1:3])

    @staticmethod
    def _boxes(raw: Tensor, mask_logits: Tensor, xyz: Tensor) -> Tensor:
        """Boxes [B, Q, 6] (min, max corners): the mask-weighted centre shifted by ``raw[..., :3]`` metres and
        the mask-weighted extent (sqrt(12) * std, exact for a uniform box) scaled by ``exp(raw[..., 3:])``."""
        weights = torch.sigmoid(mask_logits)
        weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-6)  # [B, Q, P]
        origin = xyz.mean(0)
        local = xyz - origin  # centred: keeps E[x^2] - E[x]^2 accurate in float32
        mean = weights @ local  # [B, Q, 3]
        var = (weights @ local.square() - mean.square()).clamp_min(1e-8)
        center = origin + mean + raw[..., :3]
        size = math.sqrt(12.0) * var.sqrt() * raw[..., 3:].clamp(max=5.0).exp()
        return torch.cat([center - size / 2, center + size / 2], dim=-1)


class GroundingDecoder(nn.Module):
    """Point features + text tokens -> ``GroundingOutput`` (mask, token, score and box predictions)."""

    def __init__(self, config: DecoderConfig, point_dim: int, text_dim: int, lifted_dim: int = 0) -> None:
        super().__init__()
        d, dp = config.d_model, config.point_dim
        self.config = config
        self.point_proj = nn.Sequential(nn.Linear(point_dim, dp), nn.LayerNorm(dp))
        self.point_pos = FourierPosition(dp)
        self.text_proj = nn.Sequential(nn.Linear(text_dim, d), nn.LayerNorm(d))
        self.query_feat = nn.Embedding(config.num_queries, d)
        self.query_from_text = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.query_pos = nn.Embedding(config.num_queries, d)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_layers))
        self.heads = GroundingHeads(config, text_dim, lifted_dim)

    def prepare(
        self,
        point_features: Tensor,  # [P, point_dim of the encoder]
        xyz: Tensor,  # [P, 3] metres
        lifted: Tensor | None = None,  # [P, E] lifted features (needed with ``lifted_affinity``)
        colors: Tensor | None = None,  # [P, 3] RGB in [0, 1] (needed with ``color_channels``)
    ) -> DecoderPoints:
        """The text-independent point inputs of ``forward``: computed once per scene, reused per query.

        Raises:
            ValueError: the decoder has a lifted affinity and ``lifted`` is None, or a color term and
                ``colors`` is None.
        """
        centre = torch.cat([xyz[:, :2].mean(0), xyz.new_zeros(1)])
        unit_lifted = None
        if self.heads.affinity is not None:
            if lifted is None:
                raise ValueError("decoder.lifted_affinity: the scene has no lifted point features")
            unit_lifted = F.normalize(lifted, dim=-1)
        color = None
        if self.heads.color is not None:
            if colors is None:
                raise ValueError("decoder.color_channels: no voxel colors given")
            color = self.heads.color.embed_colors(colors)
        return DecoderPoints(
            embed=self.point_proj(point_features),
            pos=self.point_pos(xyz - centre),
            lifted=unit_lifted,
            color=color,
        )

    def noisy_text(self, text: TextFeatures) -> TextFeatures:
        """``text`` with ``config.token_noise`` on its tokens (``add_token_noise``)."""
        return add_token_noise(text, self.config.token_noise)

    def forward(
        self,
        prepared: DecoderPoints,  # ``prepare`` of the scene
        xyz: Tensor,  # [P, 3] metres
        text: TextFeatures,
        all_layers: bool = True,
    ) -> GroundingOutput:
        """Decodes B texts against one scene; ``all_layers=False`` runs the heads after the last layer only
        (``aux`` then holds just the final outputs: for inference)."""
        if self.training and self.config.token_noise > 0:
            text = self.noisy_text(text)
        batch = int(text.mask.shape[0])
        num_queries = self.config.num_queries
        points = prepared.embed.expand(batch, -1, -1)
        point_pos = prepared.pos.expand(batch, -1, -1)
        tokens = self.text_proj(text.tokens)
        weights = text.mask.to(tokens.dtype).unsqueeze(-1)  # [B, T, 1]
        sentence = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # [B, d]
        queries = self.query_feat.weight + self.query_from_text(sentence).unsqueeze(1)  # [B, Q, d]
        seq = torch.cat([queries, tokens], dim=1)
        seq_pos = torch.cat([self.query_pos.weight.expand(batch, -1, -1), torch.zeros_like(tokens)], dim=1)
        seq_ignore = torch.cat([text.mask.new_zeros(batch, num_queries), ~text.mask], dim=1)
        aux = []
        for i, layer in enumerate(self.layers):
            seq, points = layer(seq, seq_pos, seq_ignore, points, point_pos)
            if all_layers or i == len(self.layers) - 1:
                queries, tokens = seq[:, :num_queries], seq[:, num_queries:]
                aux.append(self.heads(queries, tokens, text, points, prepared, xyz))
        return GroundingOutput(**aux[-1], aux=aux)
