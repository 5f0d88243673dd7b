"""Plain containers passed between the model's parts and its users (trainer, viewer, evaluation).

Frames and units: every xyz is in the scene's world frame (z up, metres, see ``liftgs.scene``); boxes are
axis-aligned ``(xmin, ymin, zmin, xmax, ymax, zmax)`` in metres, like ``liftgs.scene.SceneObject.box``.
Quaternions are ``wxyz`` (gsplat's convention).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass, replace

from torch import Tensor


def _map_tensors(obj, fn: Callable[[Tensor], Tensor]):
    """A copy of dataclass ``obj`` with ``fn`` applied to every tensor field (nested dataclasses too)."""
    changes = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, Tensor):
            changes[f.name] = fn(value)
        elif is_dataclass(value):
            changes[f.name] = _map_tensors(value, fn)
    return replace(obj, **changes)


def is_special_token(token: str) -> bool:
    """``[CLS]``, ``[SEP]``, ``<start_of_text>``, ``<end_of_text>`` and the like (a token string of
    ``TextFeatures.token_strings``)."""
    return (token.startswith("[") and token.endswith("]")) or (token.startswith("<") and token.endswith(">"))


@dataclass
class TextFeatures:
    """Token embeddings of a batch of texts from a frozen text encoder.

    Attributes:
        tokens: [B, T, Dt] float token embeddings (padded to the batch's longest text).
        mask: [B, T] bool, True = a real token, False = padding.
        pooled: [B, Dt] one embedding per text (the encoder's own pooling; see each encoder).
        token_strings: per text, the ``mask.sum()`` token strings of the real tokens (special ones included).
        word_colors: [B, T, 3] RGB in [0, 1] of the color name each token is part of, 0 elsewhere
            (``liftgs.model.color_names``).
        named_color: [B, T] bool, True = the token is part of a color name.
    """

    tokens: Tensor  # [B, T, Dt]
    mask: Tensor  # [B, T] bool
    pooled: Tensor  # [B, Dt]
    token_strings: list[list[str]]
    word_colors: Tensor  # [B, T, 3]
    named_color: Tensor  # [B, T] bool

    def to(self, device) -> TextFeatures:
        return _map_tensors(self, lambda t: t.to(device))

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


@dataclass
class Gaussians:
    """3D Gaussians predicted from a scene's voxel points (world frame).

    Attributes:
        means: [G, 3] centres (metres).
        quats: [G, 4] unit quaternions, wxyz.
        scales: [G, 3] standard deviations along the rotated axes (metres, not log).
        opacities: [G] in (0, 1).
        colors: [G, 3] RGB in (0, 1).
        features: [G, F] optional feature vector to render as extra channels, else None.
        point_index: [G] int64 index of the voxel point each Gaussian comes from; per-point values
            (mask logits ``[..., Pv]``) become per-Gaussian values with ``take``.
    """

    means: Tensor  # [G, 3]
    quats: Tensor  # [G, 4]
    scales: Tensor  # [G, 3]
    opacities: Tensor  # [G]
    colors: Tensor  # [G, 3]
    features: Tensor | None  # [G, F]
    point_index: Tensor  # [G] int64

    def __len__(self) -> int:
        return int(self.means.shape[0])

    def take(self, point_values: Tensor, dim: int = -1) -> Tensor:
        """Per-Gaussian copy of per-point values: ``[..., Pv, ...] -> [..., G, ...]`` along ``dim``."""
        return point_values.index_select(dim, self.point_index)

    def to(self, device) -> Gaussians:
        return _map_tensors(self, lambda t: t.to(device))


@dataclass
class DecoderPoints:
    """The grounding decoder's text-independent view of a scene's points (``GroundingDecoder.prepare``).

    Attributes:
        embed: [Pv, point_dim] point features projected to the decoder's point width.
        pos: [Pv, point_dim] positional embedding of the voxel centres (relative to the floor centre).
        lifted: [Pv, E] unit lifted features of the voxels (zero rows where none), for the decoder's
            lifted affinity; None when the decoder has none.
        color: [Pv, C] embedding of the voxels' RGB for the decoder's color term; None when it has none.
    """

    embed: Tensor  # [Pv, point_dim]
    pos: Tensor  # [Pv, point_dim]
    lifted: Tensor | None = None  # [Pv, E]
    color: Tensor | None = None  # [Pv, C]


@dataclass
class SceneFeatures:
    """The encoder's view of one scene, computed once by ``LiftGS.encode_scene`` and reused per query.

    Attributes:
        points: [Pv, 3] voxel centres (mean of the source points in each voxel; metres).
        colors: [Pv, 3] mean RGB in [0, 1] per voxel.
        features: [Pv, D] point features from the encoder.
        gaussians: the scene reconstruction predicted from ``features``.
        decoder_points: the decoder's per-scene point inputs, computed once so a query does not redo them.
        source_to_voxel: [P] int64 voxel index of every input point (points of voxels dropped by the
            ``max_points`` cap map to the nearest kept voxel).
        voxel_size: voxel edge in metres.
    """

    points: Tensor  # [Pv, 3]
    colors: Tensor  # [Pv, 3]
    features: Tensor  # [Pv, D]
    gaussians: Gaussians
    decoder_points: DecoderPoints
    source_to_voxel: Tensor  # [P] int64
    voxel_size: float

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])

    def to(self, device) -> SceneFeatures:
        return _map_tensors(self, lambda t: t.to(device))

    def detach(self) -> SceneFeatures:
        """A copy cut from the autograd graph (for caching encoded scenes across queries)."""
        return _map_tensors(self, Tensor.detach)


@dataclass
class GroundingOutput:
    """Decoder outputs for B texts against one scene (final layer; ``aux`` holds every layer).

    Attributes:
        mask_logits: [B, Q, Pv] per-query, per-point mask logits.
        token_logits: [B, Q, T] query <-> text token alignment logits; padded tokens are -1e4.
        scores: [B, Q] grounding score logit per query (higher = this query is the referred object).
        boxes: [B, Q, 6] axis-aligned boxes ``(xmin, ymin, zmin, xmax, ymax, zmax)`` in metres.
        anchor_centres: [B, Q, K, 3] where each query's K anchors of the relational geometry term were
            located (weighted centre of their referent maps, metres); None without the term.
        anchor_token_weights: [B, Q, K, T] which words each of those anchors reads (a softmax over the
            text's tokens); None without the term.
        relation_logits: [B, R] the relation classifier's logits over ``DecoderConfig.relation_kinds``
            (one per text: it reads the pooled sentence only); None without the geometry term.
        aux: one dict per decoder layer (the last equals the final outputs) with keys
            ``mask_logits``, ``token_logits``, ``scores``, ``boxes`` (and the two ``anchor_*``,
            ``relation_logits``) as above.
    """

    mask_logits: Tensor  # [B, Q, Pv]
    token_logits: Tensor  # [B, Q, T]
    scores: Tensor  # [B, Q]
    boxes: Tensor  # [B, Q, 6]
    anchor_centres: Tensor | None = None  # [B, Q, K, 3]
    anchor_token_weights: Tensor | None = None  # [B, Q, K, T]
    relation_logits: Tensor | None = None  # [B, R]
    aux: list[dict[str, Tensor]] = field(default_factory=list)


@dataclass
class Prediction:
    """The grounded object for one text: the best-scoring query's outputs.

    Attributes:
        point_probs: [Pv] sigmoid of the query's mask logits.
        mask: [Pv] bool, the grounded voxels, never none (the grounding rule of
            ``liftgs.model.grounded_mask``).
        score: sigmoid of the query's grounding score.
        box: [6] axis-aligned box of the ``mask`` voxels, ``(xmin, ymin, zmin, xmax, ymax, zmax)`` metres.
        token_scores: [T] sigmoid of the query's token alignment logits over the real tokens.
        token_strings: the text's tokens, aligned with ``token_scores``.
        query_index: which decoder query won.
        anchor_centres: [K, 3] where that query located its anchors (``GroundingOutput.anchor_centres``),
            or None for a model without the relational geometry term.
        below_threshold: no voxel reached the threshold, so ``mask`` was grounded at the fallback one.
    """

    point_probs: Tensor  # [Pv]
    mask: Tensor  # [Pv] bool
    score: float
    box: Tensor  # [6]
    token_scores: Tensor  # [T]
    token_strings: list[str]
    query_index: int
    anchor_centres: Tensor | None = None  # [K, 3]
    below_threshold: bool = False
