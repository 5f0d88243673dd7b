"""Pseudo-labels of one frame (2D segments + one embedding per segment) and their on-disk format.

In memory (``PseudoLabels``) a frame's segments are a non-overlapping id map ``segment_map`` [H, W] int32
with ids ``0 .. S-1`` and ``NO_SEGMENT`` (-1) for pixels no segment covers, and ``embeddings`` [S, D]
float32 whose row ``k`` describes segment ``k`` (L2-normalised: a CLIP-like image embedding, or the stand-in
labeller's text embedding). Every id ``0 .. S-1`` covers at least one pixel.

On disk, beside the frame it labels::

    <scene_dir>/<folder>/<frame>.npz     folder defaults to "pseudo"
        segment_map   [H, W] uint16  segment id + 1, 0 = none (as instance PNGs store object_id + 1)
        embeddings    [S, D] float16
        scores        [S]    float32 the labeller's confidence per segment (SAM's predicted IoU; 1 otherwise)
        meta          JSON string   {"format": 1, "labeller": ..., ...}
    <scene_dir>/<folder>/labeller.json   how the folder was made (labeller name, settings, embedding_dim)

Files are written atomically (``liftgs.atomic``), so an interrupted frame leaves no ``.npz`` behind; a file
damaged otherwise (a full disk, a copy cut short) raises ``PseudoLabelError`` when read, and
``liftgs pseudo-label`` redoes it.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liftgs.atomic import atomic_open, write_text_atomic

NO_SEGMENT = -1
"""Segment id of pixels no segment covers."""

DEFAULT_FOLDER = "pseudo"
"""Folder under a scene directory that holds its pseudo-labels."""

FORMAT_VERSION = 1
_MAX_SEGMENTS = int(np.iinfo(np.uint16).max) - 1


class PseudoLabelError(ValueError):
    """Pseudo-labels are malformed, inconsistent or missing; the message is one line naming the file."""


@dataclass
class PseudoLabels:
    """2D segments of one frame with an embedding per segment.

    Attributes:
        segment_map: [H, W] int32 segment ids ``0 .. S-1``, ``NO_SEGMENT`` (-1) = none.
        embeddings: [S, D] float32, L2-normalised rows; row ``k`` belongs to segment ``k``.
        scores: [S] float32 labeller confidence in [0, 1] (all 1 when the labeller has none).
        meta: plain JSON-able facts about how the labels were made.
    """

    segment_map: np.ndarray  # [H, W] int32
    embeddings: np.ndarray  # [S, D] float32
    scores: np.ndarray  # [S] float32
    meta: dict = field(default_factory=dict)

    @property
    def num_segments(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def embedding_dim(self) -> int:
        return int(self.embeddings.shape[1])

    def masks(self) -> np.ndarray:
        """[S, H, W] bool, one binary mask per segment."""
        return self.segment_map[None] == np.arange(self.num_segments)[:, None, None]

    def validate(self, where: str, expected_dim: int | None = None) -> PseudoLabels:
        """Checks shapes and ids (``where`` names the file or labeller in the error); returns ``self``.

        Raises:
            PseudoLabelError: a wrong shape, an embedding width other than ``expected_dim``, segment ids out
                of range or a segment id without pixels.
        """
        if self.segment_map.ndim != 2:
            raise PseudoLabelError(f"{where}: segment_map must be [H, W], got shape {self.segment_map.shape}")
        if self.embeddings.ndim != 2:
            raise PseudoLabelError(f"{where}: embeddings must be [S, D], got shape {self.embeddings.shape}")
        if expected_dim is not None and self.embedding_dim != expected_dim:
            raise PseudoLabelError(
                f"{where}: embeddings are {self.embedding_dim}-d but {expected_dim}-d are expected"
            )
        if self.scores.shape != (self.num_segments,):
            raise PseudoLabelError(
                f"{where}: scores have shape {self.scores.shape}, expected ({self.num_segments},)"
            )
        if self.num_segments > _MAX_SEGMENTS:
            raise PseudoLabelError(f"{where}: {self.num_segments} segments, at most {_MAX_SEGMENTS} fit")
        present = np.unique(self.segment_map)
        present = present[present != NO_SEGMENT]
        if not np.array_equal(present, np.arange(self.num_segments)):
            raise PseudoLabelError(
                f"{where}: segment ids must be exactly 0..{self.num_segments - 1} for "
                f"{self.num_segments} embeddings, found {present.tolist()[:8]}"
            )
        if not np.isfinite(self.embeddings).all():
            raise PseudoLabelError(f"{where}: embeddings are not finite")
        return self


def empty_labels(height: int, width: int, dim: int, meta: dict | None = None) -> PseudoLabels:
    """Labels of a frame in which nothing was segmented."""
    return PseudoLabels(
        segment_map=np.full((height, width), NO_SEGMENT, dtype=np.int32),
        embeddings=np.zeros((0, dim), dtype=np.float32),
        scores=np.zeros(0, dtype=np.float32),
        meta=dict(meta or {}),
    )


def remap(
    segment_map: np.ndarray,  # [H, W] int ids 0..S-1, -1 = none
    new_ids: np.ndarray,  # [S] int new id of each segment, -1 = unlabel it
) -> np.ndarray:
    """[H, W] int32 map with segment ``k`` renamed ``new_ids[k]`` (-1 stays -1)."""
    return np.append(np.asarray(new_ids, dtype=np.int32), np.int32(NO_SEGMENT))[segment_map]


def compact(
    segment_map: np.ndarray,  # [H, W] int ids, -1 = none, ids may have gaps
    *per_segment: np.ndarray,  # arrays indexed by the old ids along axis 0
) -> tuple[np.ndarray, ...]:
    """Renumbers the ids present in ``segment_map`` to ``0 .. S-1`` (keeping their order).

    Returns the new [H, W] int32 map followed by each ``per_segment`` array restricted to the present ids.
    """
    present = np.unique(segment_map)
    present = present[present != NO_SEGMENT]
    lookup = np.full(int(segment_map.max(initial=NO_SEGMENT)) + 2, NO_SEGMENT, dtype=np.int32)
    lookup[present + 1] = np.arange(len(present), dtype=np.int32)
    new_map = lookup[segment_map + 1]
    return (new_map, *(array[present] for array in per_segment))


def masks_to_segment_map(
    masks: np.ndarray,  # [N, H, W] bool, may overlap
    min_area: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Flattens overlapping masks into a non-overlapping id map.

    Masks are painted largest first, so a smaller mask lying on a larger one (a part on its object) stays
    visible; masks left with fewer than ``min_area`` visible pixels are dropped and the rest repainted (so
    the pixels of a dropped mask go back to the masks below it).

    Returns:
        segment_map: [H, W] int32 ids ``0 .. S-1`` (-1 = none).
        kept: [S] int64 index into ``masks`` of each segment.
    """
    n, height, width = masks.shape

    def paint(order: np.ndarray) -> np.ndarray:
        segment_map = np.full((height, width), NO_SEGMENT, dtype=np.int32)
        for index in order:
            segment_map[masks[index]] = index
        return segment_map

    order = np.argsort(-masks.reshape(n, height * width).sum(axis=1), kind="stable")
    visible = np.bincount(paint(order).ravel() + 1, minlength=n + 1)[1:]
    new_map, kept = compact(paint(order[visible[order] >= min_area]), np.arange(n))
    return new_map, kept


def pseudo_dir(scene_dir: str | Path, folder: str = DEFAULT_FOLDER) -> Path:
    return Path(scene_dir) / folder


def pseudo_path(scene_dir: str | Path, frame_name: str, folder: str = DEFAULT_FOLDER) -> Path:
    """Where the pseudo-labels of frame ``frame_name`` of a scene live."""
    return pseudo_dir(scene_dir, folder) / f"{frame_name}.npz"


def save_pseudo_labels(path: str | Path, labels: PseudoLabels) -> None:
    """Writes ``labels`` (validated first) atomically to ``path`` (an ``.npz`` file)."""
    path = Path(path)
    labels.validate(str(path))
    meta = json.dumps({"format": FORMAT_VERSION, **labels.meta})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as file:
        np.savez_compressed(
            file,
            segment_map=(labels.segment_map + 1).astype(np.uint16),
            embeddings=labels.embeddings.astype(np.float16),
            scores=labels.scores.astype(np.float32),
            meta=np.array(meta),
        )


def read_pseudo_labels(path: str | Path, expected_dim: int | None = None) -> PseudoLabels:
    """Reads one ``.npz`` written by ``save_pseudo_labels``.

    Raises:
        PseudoLabelError: the file is missing, unreadable or malformed, or its width is not ``expected_dim``.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            labels = PseudoLabels(
                segment_map=data["segment_map"].astype(np.int32) - 1,
                embeddings=data["embeddings"].astype(np.float32),
                scores=data["scores"].astype(np.float32),
                meta=json.loads(str(data["meta"])),
            )
    except FileNotFoundError:
        raise PseudoLabelError(f"{path}: no pseudo-labels (run `liftgs pseudo-label` first)") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise PseudoLabelError(
            f"{path}: unreadable pseudo-labels ({type(error).__name__}: {error})"
        ) from None
    return labels.validate(str(path), expected_dim)


def load_pseudo_labels(
    scene_dir: str | Path,
    frame_name: str,
    folder: str = DEFAULT_FOLDER,
    expected_dim: int | None = None,
) -> PseudoLabels:
    """The pseudo-labels of frame ``frame_name`` of the scene in ``scene_dir`` (see the module docstring)."""
    return read_pseudo_labels(pseudo_path(scene_dir, frame_name, folder), expected_dim)


def write_labeller_info(scene_dir: str | Path, info: dict, folder: str = DEFAULT_FOLDER) -> None:
    """Records (atomically) how a scene's pseudo-label folder is made."""
    path = pseudo_dir(scene_dir, folder) / "labeller.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(info, indent=1, sort_keys=True))


def read_labeller_info(scene_dir: str | Path, folder: str = DEFAULT_FOLDER) -> dict | None:
    """The record written by ``write_labeller_info``, or None when the folder has none yet."""
    path = pseudo_dir(scene_dir, folder) / "labeller.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise PseudoLabelError(f"{path}: unreadable ({type(error).__name__}: {error})") from None
