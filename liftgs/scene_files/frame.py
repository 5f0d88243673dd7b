"""From a scene file's frame to the network's: z up, metres, floor at z = 0 (``SceneTransform``).

Files come y-up, z-up or y-down (COLMAP), in metres, millimetres or nerfstudio's normalised cube. The
network frame is ``p_net = scale * R @ p_file + t`` with ``R`` a proper rotation taking the file's up axis to
+z, ``scale`` file units -> metres and ``t`` putting the floor at z = 0 and the centre of the scene's
horizontal extent at x = y = 0. The transform is saved with a grounding answer so that boxes and points
map back to the file's own frame (``to_file``, ``box_to_file``).

``up="auto"`` (the rule, for indoor scenes with a floor in view):

1. For each of the six axis ends (low and high x, y, z), the *end slab* is the points within
   ``SLAB_FRACTION`` of that axis's robust extent (1st-99th percentile) of its robust end (1st or 99th
   percentile). A floor (or a ceiling) is the largest flat surface of a room scan, so the vertical axis is
   the one whose denser end slab holds the largest fraction of the points.
2. Along that axis the floor is the denser end when it holds at least ``FLOOR_DOMINANCE`` times the other
   end's fraction (captures see the floor more than the ceiling); otherwise the end nearer the points'
   median (furniture stands on the floor, so the mass sits low).

``scale="auto"``: the floor-to-top extent ``h`` (floor to the 99th height percentile) of an indoor room lies
in ``ROOM_HEIGHT_RANGE`` metres. If ``h`` falls in that range read as metres, centimetres or millimetres,
that unit is used (1, 0.01, 0.001); otherwise (a normalised cube, unknown units) the scene is scaled so
that ``h = ROOM_HEIGHT`` metres. A single object or an outdoor scene needs ``scale`` (and ``up``) given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from liftgs.scene_files.rotation import quaternion_from_matrix, quaternion_multiply

UP_CHOICES = ("auto", "x", "y", "z", "-x", "-y", "-z")
"""Accepted ``up`` values: ``auto`` or the file axis pointing up (``+x`` is accepted for ``x``)."""
SLAB_FRACTION = 0.03
"""Thickness of an end slab, as a fraction of the axis's robust extent (a floor's noise fits in it)."""
FLOOR_DOMINANCE = 2.0
"""An end slab this many times denser than the opposite one is the floor."""
ROOM_HEIGHT_RANGE = (1.5, 6.0)
"""Floor-to-top extents (metres) read as an indoor room when snapping units."""
ROOM_HEIGHT = 2.5
"""Assumed floor-to-top extent (metres) of a scene whose extent matches no unit."""
UNIT_FACTORS = {"metres": 1.0, "centimetres": 0.01, "millimetres": 0.001}
"""File units tried by ``scale="auto"``, as metres per file unit."""
FRAME_SAMPLE = 200_000
"""At most this many points (a fixed-seed random subset) decide ``up`` and ``scale``: plenty for percentiles
and slab fractions, and placing a scene of millions of splats stays fast."""
_LOW, _HIGH = 1.0, 99.0  # robust extent percentiles
_AXES = "xyz"


@dataclass(frozen=True)
class SceneTransform:
    """File frame -> network frame (z up, metres): ``p_net = scale * rotation @ p_file + translation``.

    Attributes:
        rotation: [3, 3] proper rotation (file axes -> network axes).
        scale: metres per file unit (> 0).
        translation: [3] metres.
        up: the file axis that became +z (``"+y"``, ``"-z"``, ...) or ``"custom"``.
        scale_source: how ``scale`` was chosen: ``"given"``, a unit name (``"millimetres"``) or
            ``"room height"`` (the ``ROOM_HEIGHT`` assumption).
    """

    rotation: np.ndarray  # [3, 3]
    scale: float
    translation: np.ndarray  # [3]
    up: str = "custom"
    scale_source: str = "given"

    @property
    def matrix(self) -> np.ndarray:
        """[4, 4] homogeneous file -> network similarity."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.scale * self.rotation
        matrix[:3, 3] = self.translation
        return matrix

    def to_network(self, points: np.ndarray) -> np.ndarray:
        """[..., 3] file-frame points -> network frame (float64)."""
        return self.scale * (np.asarray(points, dtype=np.float64) @ self.rotation.T) + self.translation

    def to_file(self, points: np.ndarray) -> np.ndarray:
        """[..., 3] network-frame points -> the file's frame (float64); inverts ``to_network``."""
        return ((np.asarray(points, dtype=np.float64) - self.translation) / self.scale) @ self.rotation

    def box_to_file(self, box: np.ndarray) -> np.ndarray:
        """[8, 3] file-frame corners of a network-frame axis-aligned box ``(xmin, ymin, zmin, xmax, ymax,
        zmax)``; corner ``i`` takes the max along axis ``k`` when bit ``k`` of ``i`` is set."""
        low, high = np.asarray(box, dtype=np.float64)[:3], np.asarray(box, dtype=np.float64)[3:]
        bits = (np.arange(8)[:, None] >> np.arange(3)) & 1
        return self.to_file(np.where(bits == 1, high, low))

    def to_network_gaussians(
        self,
        means: np.ndarray,  # [N, 3] file frame
        scales: np.ndarray,  # [N, 3] standard deviations, file units
        quats: np.ndarray,  # [N, 4] wxyz
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gaussians carried to the network frame: means, scales (metres) and quaternions rotated."""
        rotated = quaternion_multiply(quaternion_from_matrix(self.rotation), quats)
        return self.to_network(means), scales * np.float32(self.scale), rotated

    def describe(self) -> str:
        """One line for logs: the up axis, the scale and how it was chosen."""
        return f"up {self.up}, scale {self.scale:.6g} m per file unit ({self.scale_source})"

    def to_json(self) -> dict[str, Any]:
        return {
            "file_to_network": self.matrix.tolist(),
            "rotation": self.rotation.tolist(),
            "scale": float(self.scale),
            "translation": self.translation.tolist(),
            "up": self.up,
            "scale_source": self.scale_source,
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> SceneTransform:
        """Inverse of ``to_json``.

        Raises:
            ValueError: missing keys, a rotation that is not proper, or a non-positive scale.
        """
        try:
            rotation = np.asarray(record["rotation"], dtype=np.float64).reshape(3, 3)
            translation = np.asarray(record["translation"], dtype=np.float64).reshape(3)
            scale = float(record["scale"])
            up, source = str(record.get("up", "custom")), str(record.get("scale_source", "given"))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"scene transform: bad record ({error})") from None
        if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6) or np.linalg.det(rotation) < 0:
            raise ValueError("scene transform: rotation is not a proper rotation matrix")
        if not (np.isfinite(scale) and scale > 0) or not np.isfinite(translation).all():
            raise ValueError(f"scene transform: scale must be finite and > 0 (got {scale})")
        return cls(rotation, scale, translation, up, source)


def parse_up(up: str) -> str:
    """``"auto"`` or a signed axis ``"+x" .. "-z"``.

    Raises:
        ValueError: anything else.
    """
    value = up.strip().lower()
    if value not in UP_CHOICES and value not in ("+x", "+y", "+z"):
        raise ValueError(f"up must be one of {', '.join(UP_CHOICES)}, got {up!r}")
    return value if value == "auto" or value[0] in "+-" else "+" + value


def parse_scale(scale: str | float) -> float | None:
    """``None`` for ``"auto"``, else the positive float given (metres per file unit).

    Raises:
        ValueError: not ``"auto"`` and not a finite positive number.
    """
    if isinstance(scale, str) and scale.strip().lower() == "auto":
        return None
    try:
        value = float(scale)
    except ValueError:
        raise ValueError(f"scale must be 'auto' or a positive number, got {scale!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"scale must be 'auto' or a positive number, got {scale!r}")
    return value


def up_rotation(up: str) -> np.ndarray:
    """[3, 3] proper rotation taking the signed file axis ``up`` (``"+y"``) to +z; rows are the new axes."""
    z_row = np.zeros(3)
    z_row[_AXES.index(up[1])] = 1.0 if up[0] == "+" else -1.0
    x_row = np.eye(3)[0] if up[1] != "x" else np.eye(3)[1]
    return np.stack([x_row, np.cross(z_row, x_row), z_row])


def _end_slabs(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per axis: [3, 2] fraction of points in the low/high end slab, [3, 2] the slabs' median coordinate,
    and [3] the points' median."""
    low, high = np.percentile(points, [_LOW, _HIGH], axis=0)
    band = SLAB_FRACTION * np.maximum(high - low, 1e-12)
    fractions, heights = np.zeros((3, 2)), np.zeros((3, 2))
    for axis in range(3):
        values = points[:, axis]
        for end, anchor in enumerate((low[axis], high[axis])):
            slab = values[np.abs(values - anchor) <= band[axis]]
            fractions[axis, end] = slab.size / values.size
            heights[axis, end] = np.median(slab) if slab.size else anchor
    return fractions, heights, np.median(points, axis=0)


def estimate_up(points: np.ndarray) -> str:
    """The signed file axis pointing up (``"+z"``, ``"-y"``, ...) of [N, 3] points, by the module's rule."""
    fractions, _, median = _end_slabs(points)
    axis = int(np.argmax(fractions.max(axis=1)))
    low_fraction, high_fraction = fractions[axis]
    if low_fraction >= FLOOR_DOMINANCE * high_fraction:
        floor_end = 0
    elif high_fraction >= FLOOR_DOMINANCE * low_fraction:
        floor_end = 1
    else:
        low, high = np.percentile(points[:, axis], [_LOW, _HIGH])
        floor_end = 0 if median[axis] - low <= high - median[axis] else 1
    return ("+" if floor_end == 0 else "-") + _AXES[axis]


def estimate_scene_transform(
    points: np.ndarray,  # [N, 3] file frame (the points the network will read; see FRAME_SAMPLE)
    up: str = "auto",
    scale: str | float = "auto",
) -> SceneTransform:
    """The file -> network transform of a scene (module docstring: the ``auto`` rules).

    Raises:
        ValueError: a bad ``up`` or ``scale`` value, or fewer than 3 points.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] < 3:
        raise ValueError(f"need [N >= 3, 3] points to place a scene, got shape {list(points.shape)}")
    if points.shape[0] > FRAME_SAMPLE:
        points = points[np.random.default_rng(0).choice(points.shape[0], FRAME_SAMPLE, replace=False)]
    up = parse_up(up)
    given_scale = parse_scale(scale)
    if up == "auto":
        up = estimate_up(points)
    rotation = up_rotation(up)
    rotated = points @ rotation.T  # file units, z up
    _, heights, _ = _end_slabs(rotated)
    floor = heights[2, 0]
    top = np.percentile(rotated[:, 2], _HIGH)
    extent = float(top - floor)
    if given_scale is not None:
        factor, source = given_scale, "given"
    else:
        factor, source = _snap_scale(extent)
    low, high = np.percentile(rotated[:, :2], [_LOW, _HIGH], axis=0)
    centre = np.array([*(low + high) / 2, floor])
    return SceneTransform(rotation, factor, -factor * centre, up, source)


def _snap_scale(extent: float) -> tuple[float, str]:
    """Metres per file unit from a floor-to-top ``extent`` in file units, and how it was chosen."""
    lowest, highest = ROOM_HEIGHT_RANGE
    for unit, factor in UNIT_FACTORS.items():
        if lowest <= extent * factor <= highest:
            return factor, unit
    if not extent > 0:
        return 1.0, "metres"
    return ROOM_HEIGHT / extent, "room height"
