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

    enc_channels: tuple[int, ...] = (32, 64, 96)
    enc_depths: tuple[int, ...] = (1, 1, 1)
    dec_channels: tuple[int, ...] = (64, 64)
    dec_depths: tuple[int, ...] = (1, 1)
    head_dim: int = 32
    """Channels per attention head (heads = channels // head_dim)."""
    patch_size: int = 64
    """Points per attention window along the serialisation order."""
    mlp_ratio: float = 2.0
    orders: tuple[str, ...] = ("z", "hilbert", "z-trans", "hilbert-trans")
    """Space-filling curves; block ``i`` of a stage (its decoder blocks counting on after its encoder blocks)
    attends within windows of order ``i % len(orders)``."""
    extra_channels: int = 0
    """Width of the lifted per-point features read besides xyz and rgb (``Scene.point_features``, made by
    ``liftgs lift-features``); 0 = points only (``method_configs.liftgs.lifted_features_network`` reads
    them)."""


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
    """Grounding decoder in the Locate 3D shape (learned queries, text tokens, point features) with the
    relational terms of ``liftgs.model.relations`` (see ``liftgs.model.decoder`` for the whole path)."""

    d_model: int = 96
    """Width of the query and text-token stream."""
    point_dim: int = 64
    """Width of the point stream (and of the mask embedding): small, since every point carries it."""
    num_queries: int = 8
    num_layers: int = 2
    num_heads: int = 4
    ffn_ratio: float = 2.0
    align_dim: int = 64
    """Width of the query/token projections whose cosine similarity gives ``token_logits``."""
    dropout: float = 0.0
    token_noise: float = 0.5
    """Training only: Gaussian noise added to each text token embedding, of expected norm ``token_noise``
    times the token's norm (``GroundingDecoder.noisy_text``). Keeps the decoder from keying on the exact
    embedding of the words it was trained on, so other words of similar meaning land where they do; the
    pooled sentence embedding is left clean. See docs/experiments.md, *Token noise*."""
    lifted_affinity: bool = False
    """Add to the mask logits a learned multiple of the cosine between each point's lifted feature and the
    words each query aligns with (``liftgs.model.affinity``). Needs lifted features that are projections
    of embeddings in the text encoder's token space (``encoder.extra_channels`` > 0); ``LiftGS.encode``
    refuses scenes whose lifting meta says otherwise (``check_point_feature_space``)."""
    lifted_projection_seed: int = 0
    """Seed of the lifted features' random projection (``liftgs.pseudo.lift.feature_projection``)."""
    anchor_slots: int = 2
    """Anchors per query of the relational geometry term (``liftgs.model.relations.AnchorGeometry``): each
    picks words of the sentence, is located by the grounding heads' own mask for those words, and adds to
    the mask logits distances and heights relative to it, with coefficients from a relation classifier on
    the pooled sentence. 0 = no geometry term."""
    relation_kinds: tuple[str, ...] = SYNTHETIC_RELATION_KINDS
    """Classes of the relation classifier: the values of ``Expression.relation`` the relation loss learns;
    texts whose relation is unknown or not listed are not supervised."""
    color_channels: int = 16
    """Width of the voxel-color term (``liftgs.model.relations.VoxelColor``): an embedding of each voxel's
    RGB dotted with a projection of the words each query (and each anchor) picks. 0 = no color term."""
    color_names: bool = True
    """The color term reads the color names among the words it picks through the RGB they name
    (``liftgs.model.color_names``), so a color word the network never trained on still means its color.
    Without a color term (``color_channels`` 0) it has no effect."""


@dataclass
class GaussianConfig:
    """Per-point Gaussian head: ``gaussians_per_point`` Gaussians around every voxel point."""

    gaussians_per_point: int = 1
    feature_dim: int = 16
    """Width of the rendered feature vector per Gaussian (0 = none): the target of ``liftgs-pretrain``'s
    feature distillation, so the pretrained and fine-tuned networks are the same."""
    hidden: int = 32
    max_offset: float = 1.0
    """Offsets are ``tanh(.) * max_offset * voxel_size``."""
    min_scale: float = 0.05
    max_scale: float = 3.0
    """Scales are ``voxel_size * (min_scale + (max_scale - min_scale) * sigmoid(.))``."""
    init_scale: float = 0.7
    init_opacity: float = 0.9


@dataclass
class LiftGSConfig:
    """The whole network; the defaults are the network ``ns-train liftgs`` trains (points only: xyz, rgb and
    the text). ``text_encoder`` is a ``build_text_encoder`` spec; its width is ``text_dim``."""

    voxel_size: float = 0.1
    """Voxel edge in metres used by ``LiftGS.encode_scene`` (``voxelize``)."""
    max_points: int = 3000
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
