"""What a pseudo-labeller sees of a frame, and what every labeller provides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from liftgs.pseudo.segments import PseudoLabels


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
    """

    scene_id: str
    name: str
    image: np.ndarray  # [H, W, 3] uint8
    instance: np.ndarray | None = None  # [H, W] int32
    object_names: dict[int, str] = field(default_factory=dict)


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
