"""Grounding for the viewer: each scene encoded once (``LiftGS.encode_scene``) and cached, queries against it.

Shared by every client of one viewer process; thread-safe. Numbers leave here as numpy: per-voxel
probabilities ``[Pv]``, per-Gaussian colors ``[G, ...]``, boxes ``(xmin, ymin, zmin, xmax, ymax, zmax)``
in world metres.

Negative queries ("not the table") subtract softly: a candidate's probabilities are multiplied by
``1 - p_neg`` where ``p_neg`` is, per point, the largest probability any negative's best query gives.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from app.messages import one_line
from app.scenes import describe_ids
from app.splats import Splats
from app.state import check_query
from liftgs.eval.metrics import points_box
from liftgs.model.grounded_mask import grounded_voxels, link_distance
from liftgs.model.types import Gaussians, GroundingOutput, SceneFeatures, is_special_token
from liftgs.scene import Scene


class UnknownSceneError(ValueError):
    """A scene id the dataset does not have; the message lists the available ones."""


class SceneError(ValueError):
    """A scene the viewer cannot show (unreadable files, too few points to encode); one line naming it."""


@dataclass(frozen=True)
class LoadedScene:
    """A scene with its cached encoding.

    Attributes:
        scene: the dataset's scene (points, frames for the camera frustums, annotated objects).
        features: ``LiftGS.encode_scene`` output (reused by every query on this scene).
        splats: the predicted Gaussians as browser splats.
        voxel_points: [Pv, 3] float32 voxel centres.
        source_to_voxel: [P] int64 voxel of each of the scene's points.
        link: metres within which two voxels are neighbours when grounding (``link_distance``).
        encode_seconds: how long encoding took.
    """

    scene: Scene
    features: SceneFeatures
    splats: Splats
    voxel_points: np.ndarray
    source_to_voxel: np.ndarray
    link: float
    encode_seconds: float

    def gaussian_values(self, point_values: np.ndarray) -> np.ndarray:
        """Per-voxel values ``[Pv]`` -> per-Gaussian values ``[G]`` (of the splats shown)."""
        return point_values[self.splats.point_index]

    @property
    def view_gaussians(self) -> Gaussians:
        """The Gaussians the 2D view renders, one per splat shown (``splats``)."""
        return self.features.gaussians

    @property
    def display_note(self) -> str:
        """A line for the status about what is shown ("" when everything is)."""
        return ""

    def grounded(self, point_probs: np.ndarray, threshold: float) -> np.ndarray:
        """[Pv] bool, the grounded object's voxels of ``point_probs`` [Pv] at ``threshold``, by the grounding
        rule of ``liftgs.model.grounded_mask`` (``grounded_voxels``); none when no voxel reaches the
        threshold (where ``liftgs eval`` falls back to a lower one: the viewer's threshold is the person's
        slider)."""
        return grounded_voxels(
            torch.from_numpy(self.voxel_points),
            torch.from_numpy(point_probs),
            threshold,
            self.link,
        ).numpy()

    def point_mask(self, grounded: np.ndarray) -> np.ndarray:
        """[P] bool: the scene points whose voxel is in ``grounded`` ([Pv] bool)."""
        return grounded[self.source_to_voxel]

    def box(self, grounded: np.ndarray) -> np.ndarray | None:
        """[6] axis-aligned box of the scene points of the ``grounded`` voxels ([Pv] bool), None if empty."""
        return points_box(self.scene.points, self.point_mask(grounded))

    def region_label(self, query_index: int, point_mask: np.ndarray) -> str:
        """A candidate's label from what the model answered alone: its query and where the voxels it covers
        lie (their centre, metres), never the scene's annotations.

        Args:
            point_mask: [Pv] bool selected voxels.
        """
        if not point_mask.any():
            return f"query {query_index}"
        centre = self.features.points.float().cpu()[torch.as_tensor(point_mask)].mean(0).tolist()
        return f"query {query_index} at ({centre[0]:.1f}, {centre[1]:.1f}, {centre[2]:.1f})"


SAME_ANCHOR_DISTANCE = 0.1
"""Metres within which two anchors reading the same word count as one (both slots of "closest to the
door" often find the door)."""


@dataclass(frozen=True)
class LocatedAnchor:
    """Where one of a query's anchors (the relational geometry term's other objects: "the door" in "the
    chair closest to the door") was found.

    Attributes:
        word: the token the anchor reads most.
        weight: its share of the anchor's softmax over the tokens.
        centre: [3] float32 the anchor's centre in world metres.
    """

    word: str
    weight: float
    centre: np.ndarray


def located_anchors(
    output: GroundingOutput, query_index: int, token_strings: Sequence[str]
) -> tuple[LocatedAnchor, ...]:
    """The anchors of text 0's query ``query_index`` whose top token is a word (anchors reading ``[CLS]``
    and the like name nothing), one per word and place (``SAME_ANCHOR_DISTANCE``); empty for a model
    without anchors."""
    if output.anchor_centres is None or output.anchor_token_weights is None:
        return ()
    centres = output.anchor_centres[0, query_index].float().cpu().numpy()  # [K, 3]
    weights = output.anchor_token_weights[0, query_index, :, : len(token_strings)].float().cpu().numpy()
    anchors = []
    for centre, anchor_weights in zip(centres, weights, strict=True):
        top = int(anchor_weights.argmax())
        word = token_strings[top]
        near = [a for a in anchors if np.linalg.norm(a.centre - centre) < SAME_ANCHOR_DISTANCE]
        if not is_special_token(word) and all(a.word != word for a in near):
            anchors.append(LocatedAnchor(word, float(anchor_weights[top]), centre))
    return tuple(anchors)


@dataclass(frozen=True)
class Candidate:
    """One decoder query's answer to a text, negatives already subtracted.

    Attributes:
        query_index: the decoder query.
        score: sigmoid of its grounding score for the text.
        point_probs: [Pv] float32 mask probabilities.
        token_scores: [T] float32 sigmoid token-alignment scores over the text's real tokens.
        label: the query and the centre of what it covers at probability 0.5 (``region_label``).
        anchors: where the query located the other objects the text names (``located_anchors``).
    """

    query_index: int
    score: float
    point_probs: np.ndarray
    token_scores: np.ndarray
    label: str
    anchors: tuple[LocatedAnchor, ...] = ()


@dataclass(frozen=True)
class ReadRelation:
    """What the decoder's relation classifier reads the text as: a kind of ``DecoderConfig.relation_kinds``
    ("closest", "color", ...) and its softmax probability."""

    kind: str
    probability: float


@dataclass(frozen=True)
class GroundingResult:
    """The answer to one query on one scene: the top candidates, best first, and the relation the model
    read (None for a model without the relation classifier)."""

    scene_id: str
    text: str
    negatives: tuple[str, ...]
    token_strings: list[str]
    candidates: list[Candidate]
    seconds: float
    relation: ReadRelation | None = None


class ViewerEngine:
    """The model, the scenes it may show, and a small LRU cache of encoded scenes.

    Args:
        model: a ``LiftGS`` (eval mode is set here).
        scene_ids: the scenes the viewer offers.
        load_scene: ``scene_id -> Scene`` (e.g. ``GroundingDataset.scene``).
        top_k: candidates kept per query.
        cache_size: encoded scenes kept in memory.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        scene_ids: Sequence[str],
        load_scene: Callable[[str], Scene],
        top_k: int = 5,
        cache_size: int = 4,
    ) -> None:
        if not scene_ids:
            raise ValueError("the dataset has no scenes to show")
        self.model = model.eval()
        self.scene_ids = list(scene_ids)
        self._load_scene = load_scene
        self.top_k = top_k
        self._cache_size = cache_size
        self._cache: OrderedDict[str, LoadedScene] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._scene_locks: dict[str, threading.Lock] = {}
        # Hugging Face fast tokenizers must not be used by two threads at once.
        self._text_lock = threading.Lock()
        self._device = next(model.parameters()).device

    def check_scene(self, scene_id: str) -> None:
        """Raises ``UnknownSceneError`` (listing the available scenes) for an id the viewer does not offer."""
        if scene_id not in self.scene_ids:
            raise UnknownSceneError(f"unknown scene {scene_id!r}; available: {describe_ids(self.scene_ids)}")

    def load(self, scene_id: str) -> LoadedScene:
        """The scene with its encoding, computed on first use (concurrent callers share one encoding).

        Raises:
            UnknownSceneError: an id the viewer does not offer.
            SceneError: the scene cannot be read or encoded (e.g. fewer points than the model needs).
        """
        self.check_scene(scene_id)
        with self._cache_lock:
            if scene_id in self._cache:
                self._cache.move_to_end(scene_id)
                return self._cache[scene_id]
            scene_lock = self._scene_locks.setdefault(scene_id, threading.Lock())
        with scene_lock:
            with self._cache_lock:
                if scene_id in self._cache:
                    return self._cache[scene_id]
            try:
                loaded = self._encode(self._load_scene(scene_id))
            except (ValueError, OSError) as error:
                raise SceneError(f"scene {scene_id!r} cannot be shown: {one_line(error)}") from None
            with self._cache_lock:
                self._cache[scene_id] = loaded
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return loaded

    @torch.inference_mode()
    def warm_up(self) -> None:
        """Loads the (lazily built) text encoder now, so that the first query is not the slow one."""
        with self._text_lock:
            self.model.encode_text(["warm up"])

    @torch.inference_mode()
    def _encode(self, scene: Scene) -> LoadedScene:
        start = time.perf_counter()
        features = self.model.encode(scene)
        return LoadedScene(
            scene=scene,
            features=features,
            splats=Splats.from_gaussians(features.gaussians),
            voxel_points=features.points.float().cpu().numpy(),
            source_to_voxel=features.source_to_voxel.cpu().numpy(),
            link=link_distance(features.points, features.voxel_size),
            encode_seconds=time.perf_counter() - start,
        )

    @torch.inference_mode()
    def ground(self, loaded: LoadedScene, text: str, negatives: Sequence[str] = ()) -> GroundingResult:
        """Grounds ``text`` (minus ``negatives``) in the loaded scene; one decoder pass for all texts.

        Raises:
            ValueError: an empty or over-long query (``app.state.check_query``).
        """
        text = check_query(text)
        if not text:
            raise ValueError("empty query: type a description of an object")
        start = time.perf_counter()
        texts = [text, *negatives]
        with self._text_lock:
            text_features = self.model.encode_text(texts)
        # final layer only: the intermediate layers' heads (deep supervision) are training-time outputs
        output = self.model.ground(loaded.features, text_features.to(self._device), all_layers=False)
        scores = torch.sigmoid(output.scores.float()).cpu().numpy()  # [B, Q]
        probs = torch.sigmoid(output.mask_logits.float()).cpu().numpy()  # [B, Q, Pv]
        token_scores = torch.sigmoid(output.token_logits[0].float()).cpu().numpy()  # [Q, T]
        num_tokens = int(text_features.mask[0].sum())

        keep = np.ones(probs.shape[-1], dtype=np.float32)
        if negatives:
            best_negative = scores[1:].argmax(axis=1)  # [B-1]
            negative_probs = probs[np.arange(1, len(texts)), best_negative]  # [B-1, Pv]
            keep = 1.0 - negative_probs.max(axis=0)
        ranked = np.argsort(-scores[0], kind="stable")[: self.top_k]
        candidates = []
        for query_index in ranked:
            point_probs = (probs[0, query_index] * keep).astype(np.float32)
            label = loaded.region_label(int(query_index), point_probs >= 0.5)
            candidates.append(
                Candidate(
                    query_index=int(query_index),
                    score=float(scores[0, query_index]),
                    point_probs=point_probs,
                    token_scores=token_scores[query_index, :num_tokens].astype(np.float32),
                    label=label,
                    anchors=located_anchors(output, int(query_index), text_features.token_strings[0]),
                )
            )
        return GroundingResult(
            scene_id=loaded.scene.scene_id,
            text=text,
            negatives=tuple(negatives),
            token_strings=list(text_features.token_strings[0]),
            candidates=candidates,
            seconds=time.perf_counter() - start,
            relation=self._read_relation(output.relation_logits),
        )

    def _read_relation(self, relation_logits: torch.Tensor | None) -> ReadRelation | None:
        """The most probable relation kind of text 0 (relation_logits [B, R]), or None without them."""
        if relation_logits is None:
            return None
        probabilities = torch.softmax(relation_logits[0].float(), dim=-1)
        best = int(probabilities.argmax())
        return ReadRelation(self.model.config.decoder.relation_kinds[best], float(probabilities[best]))
