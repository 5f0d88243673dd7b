"""``LiftGSConfig``: every hyper-parameter of the network, as plain data (saved inside checkpoints).

The config is a tree of dataclasses holding only ints, floats, bools, strings and tuples, so that
``config_to_dict``/``config_from_dict`` round-trip it through ``torch.load(weights_only=True)`` and tyro
can expose every field as a CLI flag.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class EncoderConfig:
    """Serialised point transformer (Point Transformer v3 style, sized for CPU).

    Stage ``s`` runs ``enc_depths[s]`` attention blocks at ``enc_channels[s]`` channels on a grid
    ``2**s`` times coarser than the input voxels; the decoder side of the U-Net runs ``dec_depths[s]``
    blocks at ``dec_channels[s]`` channels after unpooling from stage ``s + 1``. The output point features
    have ``dec_channels[0]`` channels.
    """

    enc_channels: tuple[int, ...] = (64, 96, 128)
    enc_depths: tuple[int, ...] = (1, 2, 2)
    dec_channels: tuple[int, ...] = (64, 96)
    dec_depths: tuple[int, ...] = (1, 1)
    head_dim: int = 32
    """Channels per attention head (heads = channels // head_dim)."""
    patch_size: int = 96
    """Points per attention window along the serialisation order."""
    mlp_ratio: float = 2.0
    orders: tuple[str, ...] = ("z", "hilbert", "z-trans", "hilbert-trans")
    """Space-filling curves; block ``i`` of a stage (its decoder blocks counting on after its encoder blocks)
    attends within windows of order ``i % len(orders)``."""
    extra_channels: int = 0
    """Width of optional extra per-point input features (besides xyz and rgb)."""


CoefficientSource = Literal["query", "sentence", "query+sentence", "relation", "query+relation"]
"""Where the relational geometry term's coefficients come from (``DecoderConfig.relation_coefficients``)."""

SYNTHETIC_RELATION_KINDS = (
    "category",
    "color",
    "largest",
    "smallest",
    "tallest",
    "on",
    "under",
    "near",
    "between",
    "closest",
    "farthest",
    "wall",
    "corner",
    "middle",
)
"""The embedded benchmark's relation kinds (``Expression.relation``; see ``liftgs.data.synthetic``)."""


@dataclass
class DecoderConfig:
    """Grounding decoder in the Locate 3D shape (learned queries, text tokens, point features)."""

    d_model: int = 128
    """Width of the query and text-token stream."""
    point_dim: int = 64
    """Width of the point stream (and of the mask embedding): small, since every point carries it."""
    num_queries: int = 16
    num_layers: int = 3
    num_heads: int = 4
    ffn_ratio: float = 2.0
    point_ffn: bool = False
    """Whether the points->queries update also runs an FFN on every point (costly at 20k points)."""
    align_dim: int = 64
    """Width of the query/token projections whose cosine similarity gives ``token_logits``."""
    dropout: float = 0.0
    lifted_affinity: bool = False
    """Add to the mask logits a learned multiple of the cosine between each point's lifted feature and the
    words each query aligns with (``liftgs.model.affinity``). Needs lifted features that are projections
    of embeddings in the text encoder's token space (``encoder.extra_channels`` > 0); ``LiftGS.encode``
    refuses scenes whose lifting meta says otherwise (``check_point_feature_space``)."""
    lifted_projection_seed: int = 0
    """Seed of the lifted features' random projection (``liftgs.pseudo.lift.feature_projection``)."""
    anchor_slots: int = 0
    """Anchors per query of the relational geometry term (``liftgs.model.relations.AnchorGeometry``): each
    picks words of the sentence, locates the voxels they name through the lifted affinity, and adds to the
    mask logits query-weighted distances and heights relative to them. 0 = off; needs ``lifted_affinity``."""
    anchors_avoid_target_words: bool = False
    """Steer each anchor away from every word the query's alignment marks as its target (the sigmoid of the
    word's alignment logit) instead of from the words' softmax share, which for a two-word name ("trash
    can") is about a half each and let anchors read the target's own words. Needs ``anchor_slots``."""
    anchors_read_words_only: bool = False
    """Let anchors choose among the sentence's words only, not its special tokens (``[CLS]``, ``[SEP]``,
    CLIP's start and end; ``TextFeatures.word_mask``): in runs whose anchors did not learn to find the
    anchor object, many read ``[CLS]``, whose map is the target's category. Needs ``anchor_slots``."""
    relation_coefficients: CoefficientSource = "query"
    """Where the relational geometry term's per-feature coefficients come from: ``"query"`` (a projection of
    each query's features), ``"sentence"`` (a projection of the text's pooled embedding,
    ``TextFeatures.pooled``, shared by its queries) or ``"query+sentence"`` (their sum). Whether a relation
    is "closest" or "farthest" is a property of the whole sentence: a logistic regression on MiniLM's pooled
    embeddings of the training split's phrasings tells the two apart for 179 of the 180 test-only phrasings
    ("with the shortest distance to"). Trained that way (``"sentence"``, three seeds on the synthetic
    benchmark) the network gained on val but lost on those test-only phrasings (README). ``"relation"``
    passes the pooled embedding through a relation classifier first: the coefficients are its softmax over
    ``relation_kinds`` times a learned table (one coefficient row per kind), plus the query projection with
    ``"query+relation"``; ``LossConfig.relation`` can supervise the classifier with the annotation's
    relation kind (a text-side label). With that loss, ``"relation"`` is the method configs' choice: over
    three seeds on the synthetic benchmark it beat ``"query"`` by 2.4 points on val and 4.7 on test
    (Acc@0.25), most on the test-only phrasings (README). Needs ``anchor_slots``."""
    relation_kinds: tuple[str, ...] = SYNTHETIC_RELATION_KINDS
    """Classes of the relation classifier (``relation_coefficients`` ``"relation"``): the values of
    ``Expression.relation`` the relation loss learns; texts whose relation is unknown or not listed are not
    supervised."""
    colour_channels: int = 0
    """Width of the voxel-colour term (``liftgs.model.relations.VoxelColour``): an embedding of each voxel's
    RGB dotted with a query projection, added to the mask logits. 0 = off."""
    read_target_words: bool = False
    """Add to each query, before the mask, score, box and relational heads, a projection of the text
    encoder's embeddings of the words it aligns with (``softmax(token_logits)`` over its tokens). The
    attention stream keeps little of a modifier ("red" in "the red chair"); the encoder's contextual
    embedding of the target's name keeps it. Zero-initialised: a fresh model's outputs are unchanged."""
    anchors_grounded: bool = False
    """Locate each anchor with the grounding heads themselves: its referent map is the mask the heads paint
    for a query made of the anchor's words (their decoder features plus, with ``read_target_words``, their
    encoder embeddings), instead of the lifted affinity of those words alone. The heads have learned to
    find named objects from point features; the lifted features of a voxel are a noisy label. With it,
    ``anchor_slots`` does not need ``lifted_affinity``."""
    candidate_relative: bool = False
    """Also measure the relational terms against the query's candidates: each anchor's distance and height
    standardised over the voxels the query's other mask terms already favour (mean 0, spread 1 under the
    weights ``sigmoid(logits)``), and each voxel's colour embedding minus their mean. "Closest to the door"
    then raises the nearest look-alike and lowers the others whatever the room's scale, instead of
    shifting all of them by their distance in metres. Needs ``anchor_slots`` or ``colour_channels``."""
    colour_from_words: bool = False
    """Key the colour term on words instead of the query's features: each query picks words of the sentence
    (its own softmax over the tokens) and a projection of their text-encoder embeddings is dotted with the
    voxels' colour embeddings. The query stream mixes the whole sentence; the encoder's embedding of "red"
    is red. Needs ``colour_channels``."""
    colour_anchors: bool = False
    """Add the colour term to each grounded anchor's referent map too, so "the white shelf" finds the white
    one of two shelves. Needs ``anchors_grounded`` and ``colour_channels``."""


@dataclass
class GaussianConfig:
    """Per-point Gaussian head: ``gaussians_per_point`` Gaussians around every voxel point."""

    gaussians_per_point: int = 1
    feature_dim: int = 0
    """Width of the optional rendered feature vector per Gaussian (0 = none)."""
    hidden: int = 64
    max_offset: float = 1.0
    """Offsets are ``tanh(.) * max_offset * voxel_size``."""
    min_scale: float = 0.05
    max_scale: float = 3.0
    """Scales are ``voxel_size * (min_scale + (max_scale - min_scale) * sigmoid(.))``."""
    init_scale: float = 0.7
    init_opacity: float = 0.9


@dataclass
class LiftGSConfig:
    """The whole network. ``text_encoder`` is a ``build_text_encoder`` spec; its width is ``text_dim``."""

    voxel_size: float = 0.05
    """Voxel edge in metres used by ``LiftGS.encode_scene`` (``voxelize``)."""
    max_points: int = 20000
    """Cap on voxels per scene; more are subsampled (``subsample``, fixed ``seed``)."""
    subsample: Literal["fps", "random"] = "fps"
    seed: int = 0
    text_encoder: str = "minilm"
    text_dim: int = 384
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    gaussians: GaussianConfig = field(default_factory=GaussianConfig)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config, dict_factory=lambda items: {k: _plain(v) for k, v in items})


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuilds a config dataclass from ``config_to_dict`` output.

    Raises:
        ValueError: unknown field names or a non-dict where a nested config belongs.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected a dict, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    defaults = cls()
    for name, value in data.items():
        default = getattr(defaults, name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = config_from_dict(type(default), value)
        elif isinstance(default, tuple):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)
