"""What a pseudo-labeller sees of a frame, and what every labeller provides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from liftgs.pseudo.segments import PseudoLabels
from liftgs.scene import Frame


class WeightsNotFoundError(FileNotFoundError):
    """Foundation-model weights are not available locally; the message is one line saying what to do."""


@dataclass
class FrameInput:
    """One frame handed to a labeller.

    Attributes:
        scene_id: the frame's scene.
        name: the frame's name inside its scene (``color/<name>.png``).
        image: [H, W, 3] uint8 RGB.
        instance: [H, W] int32 object ids (-1 = none), read only for labellers that need them.
        object_names: object id -> category name, read only for labellers that need them.
        depth, depth_K, K, c2w: the frame's z-depth [h, w] float32 metres (0 = none), its intrinsics, the
            color intrinsics and the camera-to-world pose (``liftgs.scene`` conventions), or None; read only
            by labellers that need the geometry (the stand-in's wall and floor segments).
    """

    scene_id: str
    name: str
    image: np.ndarray  # [H, W, 3] uint8
    instance: np.ndarray | None = None  # [H, W] int32
    object_names: dict[int, str] = field(default_factory=dict)
    depth: np.ndarray | None = None  # [h, w] float32
    depth_K: np.ndarray | None = None  # [3, 3]
    K: np.ndarray | None = None  # [3, 3]
    c2w: np.ndarray | None = None  # [4, 4]

    @classmethod
    def from_frame(cls, scene_id: str, frame: Frame, object_names: dict[int, str]) -> FrameInput:
        """Everything a labeller may read of a loaded ``Frame``."""
        return cls(
            scene_id, frame.name, frame.image, frame.instance, object_names,
            frame.depth, frame.depth_intrinsics, frame.K, frame.c2w,
        )  # fmt: skip


class Labeller(Protocol):
    """Turns a frame into ``PseudoLabels`` whose embeddings are ``embedding_dim`` wide."""

    needs_instances: bool
    """True when ``label`` reads ``FrameInput.instance`` and ``object_names``."""

    @property
    def embedding_dim(self) -> int: ...

    def info(self) -> dict:
        """Plain JSON-able description (name, weights, settings): equal infos make equal labels."""
        ...

    def label(self, frame: FrameInput) -> PseudoLabels: ...
