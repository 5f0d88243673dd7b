"""``LiftGS``: point encoder + Gaussian head (the scene reconstruction) + text-conditioned grounding decoder.

Use ``encode_scene`` once per scene (cacheable: it does not depend on the text) and ``ground`` per batch of
queries; ``predict`` reduces the decoder's queries to the best-scoring one per text.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from liftgs.model.config import LiftGSConfig
from liftgs.model.decoder import GroundingDecoder
from liftgs.model.encoder import PointEncoder
from liftgs.model.gaussian_head import GaussianHead
from liftgs.model.grounded_mask import answer_voxels, link_distance, mask_box
from liftgs.model.text import TextEncoder, build_text_encoder
from liftgs.model.types import GroundingOutput, Prediction, SceneFeatures, TextFeatures
from liftgs.model.voxelize import voxelize
from liftgs.scene import PointFeatureSpace


class PointCloud(Protocol):
    """What ``LiftGS.encode`` reads: a ``liftgs.scene.Scene`` or a training ``SceneBatch``."""

    points: Tensor | np.ndarray  # [P, 3] world metres
    colors: Tensor | np.ndarray  # [P, 3] RGB in [0, 1]
    point_features: Tensor | np.ndarray | None  # [P, C] lifted features, or None
    point_feature_space: PointFeatureSpace | None  # what point_features are projections of, if known


class LiftGS(nn.Module):
    """The LIFT-GS network.

    The frozen text encoder is not a submodule (its weights are not trained nor saved in checkpoints):
    it is built lazily from ``config.text_encoder`` unless one is given, keeping the last
    ``text_cache_size`` encoded strings (a training run sets it to its number of distinct texts). It
    follows the network's device: after ``.to("cuda")`` the next text is encoded on the GPU.
    """

    text_cache_size: int = 1024

    def __init__(self, config: LiftGSConfig, text_encoder: TextEncoder | None = None) -> None:
        super().__init__()
        self.config = config
        self.encoder = PointEncoder(config.encoder)
        self.gaussian_head = GaussianHead(config.gaussians, self.encoder.out_channels)
        self.decoder = GroundingDecoder(
            config.decoder, self.encoder.out_channels, config.text_dim, config.encoder.extra_channels
        )
        self._text_encoder = None
        if text_encoder is not None:
            self.text_encoder = text_encoder

    @property
    def text_encoder(self) -> TextEncoder:
        if self._text_encoder is None:
            self.text_encoder = build_text_encoder(self.config.text_encoder)
            self._text_encoder.cache_size = self.text_cache_size
        if self._text_encoder.device != self.device:
            self._text_encoder.to(self.device)
        return self._text_encoder

    @text_encoder.setter
    def text_encoder(self, encoder: TextEncoder) -> None:
        if encoder.dim != self.config.text_dim:
            raise ValueError(
                f"text encoder gives {encoder.dim}-d tokens but config.text_dim is {self.config.text_dim}"
            )
        self._text_encoder = encoder

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode_scene(
        self,
        points: Tensor | np.ndarray,  # [P, 3] world metres
        colors: Tensor | np.ndarray,  # [P, 3] RGB in [0, 1]
        extra: Tensor | np.ndarray | None = None,  # [P, E] with E = config.encoder.extra_channels
    ) -> SceneFeatures:
        """Voxelises the cloud (``config.voxel_size``, at most ``config.max_points`` voxels), encodes it and
        predicts its Gaussians. Differentiable w.r.t. the network (call ``.detach()`` on the result to cache).

        Raises:
            ValueError: bad shapes, too few voxels (see ``voxelize``), or ``extra`` missing for a model that
                reads lifted point features (or given to one that does not).
        """
        cfg = self.config
        if (extra is None) == self.reads_point_features:
            raise ValueError(
                f"this model reads {cfg.encoder.extra_channels} lifted features per point and the scene has "
                "none (run `liftgs lift-features`)"
                if extra is None
                else "this model reads no per-point features besides xyz and rgb"
            )
        device = self.device
        voxels = voxelize(
            torch.as_tensor(points, dtype=torch.float32, device=device),
            torch.as_tensor(colors, dtype=torch.float32, device=device),
            cfg.voxel_size,
            max_points=cfg.max_points,
            method=cfg.subsample,
            seed=cfg.seed,
            extra=extra,
        )
        features = self.encoder(voxels.points, voxels.colors, voxels.grid, cfg.voxel_size, voxels.extra)
        gaussians = self.gaussian_head(features, voxels.points, voxels.colors, cfg.voxel_size)
        return SceneFeatures(
            points=voxels.points,
            colors=voxels.colors,
            features=features,
            gaussians=gaussians,
            decoder_points=self.decoder.prepare(features, voxels.points, voxels.extra, voxels.colors),
            source_to_voxel=voxels.source_to_voxel,
            voxel_size=cfg.voxel_size,
        )

    @property
    def reads_point_features(self) -> bool:
        """Whether the encoder takes lifted per-point features (``Scene.point_features``) besides xyz, rgb."""
        return self.config.encoder.extra_channels > 0

    def encode(self, scene: PointCloud) -> SceneFeatures:
        """``encode_scene`` of a scene (or a training batch's scene): its points, colors and, when the model
        reads them, its lifted point features.

        Raises:
            ValueError: as ``encode_scene``, or the model's lifted affinity cannot compare the scene's lifted
                features with its text tokens (``check_point_feature_space``).
        """
        extra = None
        if self.reads_point_features:
            self.check_point_feature_space(scene.point_feature_space)
            extra = scene.point_features
        return self.encode_scene(scene.points, scene.colors, extra)

    def check_point_feature_space(self, space: PointFeatureSpace | None) -> None:
        """The lifted affinity scores points by the cosine between their lifted features and the projected
        text tokens, so the features must be projections of embeddings in the text encoder's space
        (``text_dim`` wide) through the same random projection (``decoder.lifted_projection_seed``).

        Raises:
            ValueError (one line): ``space`` is known and differs. Nothing is checked when it is unknown or
                the model has no affinity.
        """
        decoder, text_dim = self.config.decoder, self.config.text_dim
        if not decoder.lifted_affinity or space is None:
            return
        if (space.embedding_dim, space.projection_seed) != (text_dim, decoder.lifted_projection_seed):
            raise ValueError(
                f"the scene's lifted features project {space.embedding_dim}-d embeddings (seed "
                f"{space.projection_seed}), but this model's lifted affinity compares them with its "
                f"{text_dim}-d text tokens (seed {decoder.lifted_projection_seed}): lift features whose "
                "embeddings share the text encoder's space (e.g. CLIP image embeddings with an open_clip "
                "text encoder of the same model), or train the points-only default network"
            )

    def encode_text(self, texts: list[str]) -> TextFeatures:
        """Frozen text features of ``texts`` on the model's device (see ``TextEncoder.encode``)."""
        return self.text_encoder.encode(texts).to(self.device)

    def ground(self, scene: SceneFeatures, text: TextFeatures, all_layers: bool = True) -> GroundingOutput:
        """Decodes B texts against one encoded scene: mask logits [B, Q, Pv], token logits [B, Q, T], ...

        ``all_layers=False`` skips the intermediate layers' heads (``aux`` = [final outputs]; inference)."""
        return self.decoder(scene.decoder_points, scene.points, text, all_layers)

    def forward(self, scene: SceneFeatures, text: TextFeatures) -> GroundingOutput:
        return self.ground(scene, text)

    @torch.no_grad()
    def predict(self, scene: SceneFeatures, texts: list[str], threshold: float = 0.5) -> list[Prediction]:
        """The best-scoring query's mask, box and token scores for each text. The grounded voxels follow the
        grounding rule of ``liftgs.model.grounded_mask`` (``answer_voxels``: never none;
        ``Prediction.below_threshold`` says when it fell back); the box is theirs."""
        text = self.encode_text(texts)
        out = self.ground(scene, text, all_layers=False)
        link = link_distance(scene.points, scene.voxel_size)
        predictions = []
        for b in range(len(texts)):
            q = int(out.scores[b].argmax())
            probs = torch.sigmoid(out.mask_logits[b, q])
            valid = text.mask[b]
            grounded, below_threshold = answer_voxels(scene.points, probs, threshold, link)
            predictions.append(
                Prediction(
                    point_probs=probs,
                    mask=grounded,
                    score=float(torch.sigmoid(out.scores[b, q])),
                    box=mask_box(scene.points, grounded),
                    below_threshold=below_threshold,
                    token_scores=torch.sigmoid(out.token_logits[b, q][valid]),
                    token_strings=text.token_strings[b],
                    query_index=q,
                    anchor_centres=None if out.anchor_centres is None else out.anchor_centres[b, q],
                )
            )
        return predictions
