"""Pretraining batches from 2D pseudo-labels (``liftgs pseudo-label``): no expression and no 3D label read.

Per scene, V views are drawn among the frames that have segments. The pseudo-queries are embeddings of
segments seen in those views, read the way a typed query is: a short carrier sentence (``CARRIERS``) around
a word for the segment. Two ways, by what the labelling offers:

- **captions** (a vocabulary is known: ``PseudoConfig.vocabulary``, or the one the labeller recorded, as the
  stand-in does): each segment is named by the vocabulary entry nearest its embedding (``SegmentNamer``, the
  way CLIP names a crop zero-shot); the queries are distinct names, e.g. "the sofa.", and a query's target in
  every sampled view is the union of that view's segments of the same name. Pretraining then teaches exactly
  what a typed category name asks for.
- **embeddings** (no vocabulary): the carrier's placeholder word ``SEGMENT_NAME`` gets the segment embedding
  itself (``insert_segments``); the queries are distinct embeddings (a candidate whose cosine with an
  already chosen query is >= ``tau`` is the same thing seen again), and a query's target in every sampled
  view is the union of that view's segments whose embedding has cosine >= ``tau`` with the query's.

Either way the same object seen in another view is a positive there, not a false negative. The views also
carry per-pixel segment-embedding maps (``Views.features``) for feature distillation, projected to the
Gaussians' feature width (see ``liftgs.pseudo.lift.feature_projection``).

Bad input is skipped and counted (``PseudoBatchSampler.skipped``, one log line per scene): frames without
pseudo-labels or segments, unreadable files, embeddings whose width is not the model's ``text_dim``.
``scenes_with_pseudo_labels`` finds the scenes that have any, so a dataset never labelled fails early.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from liftgs.losses.targets import ExpressionTargets
from liftgs.losses.tokens import token_words
from liftgs.model.text import TextEncoder
from liftgs.model.types import TextFeatures
from liftgs.pseudo.segments import (
    DEFAULT_FOLDER,
    PseudoLabelError,
    load_pseudo_labels,
    pseudo_dir,
    pseudo_path,
    read_labeller_info,
)
from liftgs.scene import Scene
from liftgs.train.batch import EpochSampler, SamplerConfig, SceneBatch, scene_views
from liftgs.train.cache import LABEL_UPSAMPLE, SceneTensorCache, SceneTensors, label_coverage, resample_labels

logger = logging.getLogger(__name__)

SEGMENT_NAME = "segment"
"""The placeholder word of embedding pseudo-queries; its tokens carry the segment's embedding and are the
positives of the query <-> token alignment."""
CARRIERS = ("{}", "the {}.", "a {}", "find the {}.", "the {} in the room.", "where is the {}?")
"""Carrier sentences of the pseudo-queries (``{}``: the query's word), one drawn per query."""

SKIP_NO_LABELS = "frame without pseudo-labels"
SKIP_NO_SEGMENTS = "frame without segments"
SKIP_WRONG_WIDTH = "embeddings of the wrong width"
SKIP_UNREADABLE = "unreadable pseudo-labels"
SKIP_NO_FRAMES = "scene without usable pseudo-labelled frames"
SKIP_NO_PSEUDO_SCENE = "scene without pseudo-labels"


@dataclass
class PseudoConfig:
    """Where pretraining's pseudo-labels are and how pseudo-queries find their targets."""

    folder: str = DEFAULT_FOLDER
    """Folder under each scene written by ``liftgs pseudo-label --folder``."""
    vocabulary: Path | None = None
    """Caption vocabulary: a text file of names, one per line (e.g. the categories expected in the scenes).
    None = the vocabulary the labeller recorded in ``labeller.json``, if any; with neither, the queries are
    the embeddings themselves (see the module docstring)."""
    tau: float = 0.9
    """Embedding pseudo-queries: a segment is a positive of a query when their embeddings' cosine >= tau."""
    projection_seed: int = 0
    """Seed of the fixed random projection of embeddings to the Gaussians' feature width."""

    def __post_init__(self) -> None:
        if not -1.0 <= self.tau <= 1.0:
            raise ValueError(f"tau must be a cosine in [-1, 1], got {self.tau}")


@dataclass
class PseudoScene:
    """A scene's views with their pseudo-labels (K usable frames, render resolution H x W).

    Attributes:
        tensors: the scene at render resolution, its 2D instance maps removed (never used here).
        frame_ids: [K] indices into ``tensors``' frames of the frames with segments.
        segments: [K, 2H, 2W] int16 segment ids (-1 = none) at ``LABEL_UPSAMPLE`` x the render resolution.
        embeddings: per usable frame, [S_k, D] float32 L2-normalised segment embeddings.
        pixels: per usable frame, [S_k] int64 pixels of each segment in ``segments``.
    """

    tensors: SceneTensors
    frame_ids: list[int]
    segments: Tensor  # [K, 2H, 2W]
    embeddings: list[Tensor]
    pixels: list[Tensor]

    @classmethod
    def load(
        cls,
        scene: Scene,
        scene_dir: Path,
        height: int,
        width: int,
        folder: str,
        embedding_dim: int,
        skipped: Counter[str],
    ) -> PseudoScene | None:
        """Reads the scene's pseudo-labels; frames that cannot be used are counted in ``skipped``.

        Returns None (counted as ``SKIP_NO_FRAMES``) when no frame has usable segments.
        """
        tensors = SceneTensors.from_scene(scene, height, width)
        tensors = replace(tensors, instance=None, object_pixels={}, object_names={})
        label_hw = (LABEL_UPSAMPLE * height, LABEL_UPSAMPLE * width)
        frame_ids, segments, embeddings, pixels = [], [], [], []
        local: Counter[str] = Counter()
        for index, frame in enumerate(scene.frames):
            try:
                labels = load_pseudo_labels(scene_dir, frame.name, folder)
            except PseudoLabelError as error:
                missing = not pseudo_path(scene_dir, frame.name, folder).is_file()
                local[SKIP_NO_LABELS if missing else SKIP_UNREADABLE] += 1
                if not missing:
                    logger.warning("%s", error)
                continue
            segment_map = resample_labels(labels.segment_map, label_hw)
            counts = torch.bincount(segment_map.flatten().long() + 1, minlength=labels.num_segments + 1)[1:]
            if labels.num_segments == 0 or not bool((counts > 0).any()):
                local[SKIP_NO_SEGMENTS] += 1
                continue
            if labels.embedding_dim != embedding_dim:
                local[SKIP_WRONG_WIDTH] += 1
                continue
            frame_ids.append(index)
            segments.append(segment_map)
            embeddings.append(F.normalize(torch.as_tensor(labels.embeddings), dim=-1))
            pixels.append(counts)
        if not frame_ids:
            local[SKIP_NO_FRAMES] += 1
        if local:
            logger.warning("scene %s: skipped %s", scene.scene_id, dict(local))
        skipped.update(local)
        if not frame_ids:
            return None
        return cls(tensors, frame_ids, torch.stack(segments), embeddings, pixels)


def scenes_with_pseudo_labels(root: Path, scene_ids: Sequence[str], folder: str) -> list[str]:
    """The scenes of ``root/scans`` whose pseudo-label folder holds at least one frame file.

    Raises:
        ValueError: none of them has any (one line telling the user to run ``liftgs pseudo-label``).
    """
    labelled = [s for s in scene_ids if any(pseudo_dir(root / "scans" / s, folder).glob("*.npz"))]
    if not labelled:
        raise ValueError(
            f"no pseudo-labels in {root}/scans/*/{folder} for any of {len(scene_ids)} scenes: "
            f"run `liftgs pseudo-label --data {root} --folder {folder}` first"
        )
    return labelled


def _lookup(table: Tensor, segment_map: Tensor) -> Tensor:  # [S, C], [h, w] -> [h, w, C]
    """Per pixel, the row of its segment; pixels without a segment (id -1) get zeros."""
    padded = torch.cat([table, table.new_zeros(1, table.shape[1])])  # row S (= index -1) is "none"
    return padded[segment_map.long()]


def caption_vocabulary(config: PseudoConfig, scene_dirs: Sequence[Path]) -> list[str] | None:
    """The names pseudo-queries are captioned with: ``config.vocabulary``'s lines, else the ``vocabulary`` the
    first labelled scene's ``labeller.json`` records, else None (embedding pseudo-queries).

    Raises:
        ValueError: the vocabulary file is unreadable or names nothing.
    """
    if config.vocabulary is not None:
        try:
            lines = Path(config.vocabulary).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"pseudo vocabulary {config.vocabulary}: unreadable ({error})") from None
        names = [line.strip() for line in lines if line.strip()]
        if not names:
            raise ValueError(f"pseudo vocabulary {config.vocabulary}: no names in it")
        return names
    for scene_dir in scene_dirs:
        info = read_labeller_info(scene_dir, config.folder)
        if info is not None:
            return list(info["vocabulary"]) if info.get("vocabulary") else None
    return None


@dataclass
class SegmentNamer:
    """Zero-shot names of segments: the vocabulary entry whose text embedding is nearest (cosine).

    Attributes:
        names: the N distinct names.
        embeddings: [N, D] L2-normalised pooled text embeddings of ``names``.
    """

    names: list[str]
    embeddings: Tensor  # [N, D]

    @classmethod
    def from_encoder(cls, names: Sequence[str], encoder: TextEncoder) -> SegmentNamer:
        distinct = list(dict.fromkeys(names))
        pooled = encoder.encode(distinct).pooled.float().cpu()
        return cls(distinct, F.normalize(pooled, dim=-1))

    def nearest(self, embeddings: Tensor) -> Tensor:  # [S, D] -> [S] int64 indices into ``names``
        if embeddings.shape[-1] != self.embeddings.shape[-1]:
            width = self.embeddings.shape[-1]
            raise ValueError(f"segment embeddings of width {embeddings.shape[-1]}, vocabulary of {width}")
        return (F.normalize(embeddings.float(), dim=-1) @ self.embeddings.T).argmax(-1)


def insert_segments(text: TextFeatures, embeddings: Tensor) -> TextFeatures:
    """The encoded carriers ``text`` (E texts, each with the word ``SEGMENT_NAME``) with the segment
    embeddings [E, Dt] in place of that word: each of its tokens becomes the unit embedding times the
    token's own norm, and the pooled embedding the unit embedding times the pooled norm, so a pseudo-query
    has the scale of the encoder's outputs whatever the scale of the labeller's embeddings.

    Raises:
        ValueError: a text lacks the placeholder word, or the counts or widths differ.
    """
    if embeddings.shape != (len(text), text.tokens.shape[-1]):
        raise ValueError(f"segment embeddings {tuple(embeddings.shape)} for {len(text)} texts of width "
                         f"{text.tokens.shape[-1]}")  # fmt: skip
    unit = F.normalize(embeddings.to(text.tokens), dim=-1)
    tokens = text.tokens.clone()
    for index, strings in enumerate(text.token_strings):
        slots = [t for t, word in enumerate(token_words(strings)) if word == SEGMENT_NAME]
        if not slots:
            raise ValueError(f"pseudo-query text {index} has no {SEGMENT_NAME!r} word: {strings}")
        tokens[index, slots] = unit[index] * tokens[index, slots].norm(dim=-1, keepdim=True)
    pooled = unit * text.pooled.norm(dim=-1, keepdim=True)
    return replace(text, tokens=tokens, pooled=pooled)


class PseudoBatchSampler(EpochSampler):
    """Draws pretraining steps: S scenes (epochs over a shuffled list), <= E pseudo-queries each, V views.

    Args:
        cache: builds/keeps each scene's ``PseudoScene`` (None for a scene without usable frames), counting
            skipped frames in ``skipped``.
        scene_ids: the scenes with pseudo-labels.
        config: batch sizes (``expressions_per_scene`` = pseudo-queries per scene; a query's segment must
            cover ``min_target_pixels`` label pixels).
        tau: cosine threshold of "the same thing" (embedding pseudo-queries).
        projection: [D, F] embedding -> feature map projection, or None (views carry no feature maps).
        skipped: the counter ``cache`` counts skipped frames and scenes in (reason -> count).
        seed: sampling seed.
        namer: names the segments (caption pseudo-queries), or None (embedding pseudo-queries).
    """

    def __init__(
        self,
        cache: SceneTensorCache[PseudoScene | None],
        scene_ids: Sequence[str],
        config: SamplerConfig,
        tau: float,
        projection: Tensor | None,
        skipped: Counter[str],
        seed: int = 0,
        namer: SegmentNamer | None = None,
    ) -> None:
        if not scene_ids:
            raise ValueError("scene_ids: no scenes with pseudo-labels")
        self.cache = cache
        self.scene_ids = list(scene_ids)
        self.config = config
        self.tau = tau
        self.projection = projection
        self.skipped = skipped
        self.namer = namer
        self.rng = np.random.default_rng(seed)
        self._order: list[str] = []

    def _large_segments(self, scene: PseudoScene, views: list[int]) -> list[tuple[int, int]]:
        """(view, segment) pairs of the segments covering at least ``min_target_pixels`` label pixels."""
        return [
            (view, segment)
            for view in views
            for segment in torch.nonzero(scene.pixels[view] >= self.config.min_target_pixels)[:, 0].tolist()
        ]

    def _pick_names(self, scene: PseudoScene, views: list[int]) -> tuple[list[str], list[Tensor]] | None:
        """Up to E distinct names of large enough segments, and per view [S_v, E] whether each of the
        view's segments bears each name; None when no segment is large enough."""
        assert self.namer is not None
        names = {view: self.namer.nearest(scene.embeddings[view]) for view in views}  # [S_v] each
        candidates = sorted(
            {int(names[view][segment]) for view, segment in self._large_segments(scene, views)}
        )
        if not candidates:
            return None
        chosen = torch.as_tensor(self.rng.permutation(candidates)[: self.config.expressions_per_scene])
        positives = [(names[view][:, None] == chosen[None]).float() for view in views]
        return [self.namer.names[int(index)] for index in chosen], positives

    def _pick_queries(self, scene: PseudoScene, views: list[int]) -> Tensor | None:  # [E, D]
        """Up to E distinct segment embeddings of the chosen views (large enough segments only)."""
        candidates = self._large_segments(scene, views)
        chosen: list[Tensor] = []
        for index in self.rng.permutation(len(candidates)):
            view, segment = candidates[index]
            embedding = scene.embeddings[view][segment]
            if all(float(embedding @ other) < self.tau for other in chosen):
                chosen.append(embedding)
            if len(chosen) == self.config.expressions_per_scene:
                break
        return torch.stack(chosen) if chosen else None

    def sample_scene(self, scene_id: str) -> SceneBatch | None:
        """One scene's batch, or None when the scene has no usable frame or no large enough segment."""
        scene = self.cache.get(scene_id)
        if scene is None:
            return None
        count = min(self.config.views_per_scene, len(scene.frame_ids))
        views = [int(v) for v in self.rng.choice(len(scene.frame_ids), size=count, replace=False)]
        queries = None
        if self.namer is not None:
            picked = self._pick_names(scene, views)
            if picked is None:
                return None
            words, positives = picked
        else:
            queries = self._pick_queries(scene, views)
            if queries is None:
                return None
            words = [SEGMENT_NAME] * len(queries)
            positives = [(scene.embeddings[view] @ queries.T >= self.tau).float() for view in views]  # [S, E]
        hits, features = [], []
        for view, positive in zip(views, positives, strict=True):
            hits.append(_lookup(positive, scene.segments[view]))  # [2H, 2W, E]
            if self.projection is not None:
                features.append(_lookup(scene.embeddings[view] @ self.projection, scene.segments[view]))
        masks = label_coverage(torch.stack(hits).permute(3, 0, 1, 2).flatten(0, 1))  # [E*V, H, W]
        masks = masks.unflatten(0, (len(words), len(views)))  # [E, V, H, W]
        carriers = self.rng.integers(len(CARRIERS), size=len(words))
        frame_ids = [scene.frame_ids[view] for view in views]
        batch_views = scene_views(scene.tensors, frame_ids)
        if features:
            maps = label_coverage(torch.stack(features).permute(0, 3, 1, 2).flatten(0, 1))  # [V*F, H, W]
            batch_views.features = maps.unflatten(0, (len(views), -1)).permute(0, 2, 3, 1)  # [V, H, W, F]
        return SceneBatch(
            scene_id=scene_id,
            points=scene.tensors.points,
            colors=scene.tensors.colors,
            texts=[CARRIERS[i].format(word) for i, word in zip(carriers, words, strict=True)],
            targets=ExpressionTargets(
                kind="views", masks=[mask[None] for mask in masks], names=[[word] for word in words]
            ),
            views=batch_views,
            segment_embeddings=queries,
            point_features=scene.tensors.point_features,
            point_feature_space=scene.tensors.point_feature_space,
        )

    def nothing_usable(self) -> str:
        return f"no scene gave a pseudo-labelled batch (skipped: {dict(self.skipped)})"
