"""The data model every part of LIFT-GS shares: scenes, posed frames, objects and referring expressions.

Conventions (written once, here, and assumed everywhere else):

- World frame: right-handed, z up, metres. A scene's floor lies at z = 0 for the synthetic benchmark and
  ScanNet after axis alignment.
- Camera poses ``c2w`` are 4x4 camera-to-world matrices with OpenCV camera axes (x right, y down,
  z forward). ``viewmat = inverse(c2w)`` is what the rasterizer takes.
- Intrinsics ``K`` are 3x3 in pixels of the image they belong to (``fx, fy, cx, cy``; pixel centres at
  integer + 0.5 follow gsplat's convention).
- Depth is in metres, float32, with 0 meaning "no measurement".
- Instance ids in memory are object ids (>= 0) and ``-1`` means "no object". On disk, instance PNGs store
  ``object_id + 1`` so that 0 means none (see ``liftgs.data.store``).
- Colors are float32 in [0, 1] for point clouds and uint8 [H, W, 3] for images.

Everything here is numpy: the data layer does not depend on torch. Models convert at their boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

NO_INSTANCE = -1
"""Instance id that marks pixels/points that belong to no object."""


@dataclass
class Frame:
    """One posed RGB-D view of a scene.

    Attributes:
        name: frame identifier inside its scene (e.g. ``"12"``).
        image: [H, W, 3] uint8 RGB.
        depth: [H, W] float32 metres, 0 = invalid. May have its own resolution; see ``K_depth``.
        K: [3, 3] float64 color intrinsics in pixels of ``image``.
        c2w: [4, 4] float64 camera-to-world, OpenCV axes.
        instance: [H, W] int32 object ids (``NO_INSTANCE`` = none), or None when the source has no 2D labels.
        K_depth: [3, 3] depth intrinsics when depth's resolution differs from the image's, else None.
    """

    name: str
    image: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    c2w: np.ndarray
    instance: np.ndarray | None = None
    K_depth: np.ndarray | None = None

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def depth_intrinsics(self) -> np.ndarray:
        """[3, 3] intrinsics of the depth map (the color ones when both share a resolution).

        Raises:
            ValueError: the depth map has another size than the image and the frame has no ``K_depth``
                (the color intrinsics would put its pixels in the wrong place).
        """
        if self.K_depth is not None:
            return self.K_depth
        if self.depth.shape[:2] != self.image.shape[:2]:
            raise ValueError(
                f"frame {self.name}: depth map of shape {list(self.depth.shape)} for an image of shape "
                f"{list(self.image.shape[:2])} and no depth intrinsics (K_depth)"
            )
        return self.K


@dataclass
class SceneObject:
    """An annotated object of a scene.

    Attributes:
        object_id: id used by instance masks and annotations (>= 0).
        name: category name ("chair", "trash can", ...).
        box: [6] float64 axis-aligned box ``(xmin, ymin, zmin, xmax, ymax, zmax)`` in world metres.
        attributes: free-form descriptors, e.g. ``{"color": "blue", "size": "large"}``.
    """

    object_id: int
    name: str
    box: np.ndarray
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def center(self) -> np.ndarray:
        return (self.box[:3] + self.box[3:]) / 2.0


@dataclass(frozen=True)
class PointFeatureSpace:
    """Where a scene's lifted point features come from: ``embedding_dim``-d L2-normalised embeddings (CLIP
    image embeddings, or the stand-in labeller's text embeddings) mapped to the stored width by the fixed
    random projection ``liftgs.model.projection.feature_projection(embedding_dim, C, projection_seed)``."""

    embedding_dim: int
    projection_seed: int


@dataclass
class Scene:
    """A scene: a lifted point cloud, its posed frames and its objects.

    Attributes:
        scene_id: e.g. ``"scan0000"`` or ScanNet's ``"scene0000_00"``.
        points: [P, 3] float32 world xyz (metres).
        colors: [P, 3] float32 RGB in [0, 1].
        point_instance: [P] int64 object id per point (``NO_INSTANCE`` = none). Used by evaluation and the
            3D-supervised baseline only: the render-supervised path never reads it.
        frames: posed views, possibly empty when only the point cloud is needed.
        objects: object_id -> SceneObject.
        point_features: [P, C] float32 per-point features lifted from 2D foundation-model pseudo-labels
            (``liftgs.pseudo.lift``; the encoder's optional extra input), or None when the scene has none.
        point_feature_space: what ``point_features`` are projections of (from the lifting's meta), or None
            when unknown.
    """

    scene_id: str
    points: np.ndarray
    colors: np.ndarray
    point_instance: np.ndarray
    frames: list[Frame] = field(default_factory=list)
    objects: dict[int, SceneObject] = field(default_factory=dict)
    point_features: np.ndarray | None = None
    point_feature_space: PointFeatureSpace | None = None

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])


EvalType = Literal["unique", "multiple"]

SEEN_WORDS, UNSEEN_WORDS = "seen words", "unseen words"
SEEN_SHAPE, UNSEEN_SHAPE, LONG = "seen shape", "unseen shape", "long"
"""The embedded benchmark's wording labels (``Expression.wording``): whether the sentence uses only words
every split uses, and whether its shape is one every split uses, one held out for val/test, or a long
multi-sentence description."""


@dataclass
class Expression:
    """A referring expression in ScanRefer's fields (plus ``eval_type`` and an optional ``relation``).

    ``eval_type`` is "unique" when the target is the only object of its category in the scene, else
    "multiple" (ScanRefer's definition). ``relation`` names what kind of reference singles the target out
    when the annotation says so (the embedded benchmark's ``relation`` field: "category", "color",
    "closest", ...); evaluation then also reports accuracy per relation. None when unknown.
    ``anchor_ids`` are the object ids of the other objects the sentence names ("the chair closest to *the
    door*"), when the annotation lists them (the embedded benchmark and Sr3D do); evaluation then also
    reports whether the model located them.
    ``wording`` names the wording groups the sentence belongs to when the annotation says so (the embedded
    benchmark's "seen words"/"unseen words", "seen shape"/"unseen shape", "long"); evaluation then also
    reports accuracy per group. ``target_words`` is the phrase the description calls its target by
    ("couch" for a sofa) and ``anchor_words`` the phrases naming each of ``anchor_ids``, when the annotation
    records them; training marks those words as the ones the target (or anchor) is named by, and falls
    back to ``object_name`` otherwise.
    """

    scene_id: str
    object_id: int
    object_name: str
    ann_id: int
    description: str
    token: list[str]
    eval_type: EvalType
    relation: str | None = None
    anchor_ids: tuple[int, ...] = ()
    wording: tuple[str, ...] = ()
    target_words: str | None = None
    anchor_words: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"expression {self.ann_id} of {self.scene_id!r}"
        for name in ("wording", "anchor_words"):
            if isinstance(getattr(self, name), str):
                raise ValueError(f"{where}: {name} must be a list of strings, not a string")
        if self.anchor_words and len(self.anchor_words) != len(self.anchor_ids):
            raise ValueError(
                f"{where}: {len(self.anchor_words)} anchor_words for {len(self.anchor_ids)} anchor_ids"
            )

    def to_json(self) -> dict:
        record = {
            "scene_id": self.scene_id,
            "object_id": str(self.object_id),
            "object_name": self.object_name,
            "ann_id": str(self.ann_id),
            "description": self.description,
            "token": list(self.token),
            "eval_type": self.eval_type,
        }
        if self.relation is not None:
            record["relation"] = self.relation
        if self.anchor_ids:
            record["anchor_ids"] = [str(i) for i in self.anchor_ids]
        if self.wording:
            record["wording"] = list(self.wording)
        if self.target_words is not None:
            record["target_words"] = self.target_words
        if self.anchor_words:
            record["anchor_words"] = list(self.anchor_words)
        return record

    @classmethod
    def from_json(cls, record: dict) -> Expression:
        """Reads a ScanRefer-style record; ids may be strings (as in ScanRefer) or ints."""
        description = str(record["description"])
        return cls(
            scene_id=str(record["scene_id"]),
            object_id=int(record["object_id"]),
            object_name=str(record["object_name"]).replace("_", " "),
            ann_id=int(record.get("ann_id", 0)),
            description=description,
            token=list(record.get("token") or description.split()),
            eval_type=record.get("eval_type", "multiple"),
            relation=None if record.get("relation") is None else str(record["relation"]),
            anchor_ids=tuple(int(i) for i in record.get("anchor_ids") or ()),
            wording=_strings(record, "wording"),
            target_words=None if record.get("target_words") is None else str(record["target_words"]),
            anchor_words=_strings(record, "anchor_words"),
        )


def _strings(record: dict, key: str) -> tuple[str, ...] | str:
    """``record[key]`` as a tuple of strings (empty when absent); a lone string is passed on unchanged, for
    ``Expression``'s own check to refuse rather than be split into its characters."""
    value = record.get(key) or ()
    return value if isinstance(value, str) else tuple(str(v) for v in value)
