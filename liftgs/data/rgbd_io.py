"""Reading posed RGB-D frames from files: the readers every frame source shares, and skip accounting.

Used by ``liftgs.data.store`` (the project's scene folders), ``liftgs.data.scannet`` (SensReader exports)
and ``liftgs.data.nerfstudio_data`` (``transforms.json`` captures). Units follow ``liftgs.scene``: images
uint8 RGB, depth float32 metres (0 = no measurement), intrinsics in pixels, poses camera-to-world.

A frame that cannot be used is not an error: each per-frame reader raises ``FrameSkipped`` with a short
reason ("missing depth", "non-finite pose", ...), the loader counts it in a ``SkipCounter``, and each scene
logs one warning line with the counts (or raises its own error when no frame is usable).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from liftgs.scene import NO_INSTANCE, Frame


class FrameSkipped(Exception):
    """Raised while reading one frame that cannot be used; ``reason`` is a short counted label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SkipCounter:
    """Counts the frames a loader dropped, by reason, and reports them once per scene."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, reason: str, count: int = 1) -> None:
        self.counts[reason] += count

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """e.g. ``"2 non-finite pose, 1 missing depth"`` (most frequent first)."""
        return ", ".join(f"{n} {reason}" for reason, n in self.counts.most_common())

    def report(
        self,
        frames: Sequence[Frame],
        error: type[Exception],
        logger: logging.Logger,
        scene: str,
        source: Path | None = None,
    ) -> None:
        """Raises ``error`` when no frame was kept; else logs one warning line on ``logger`` when any was
        skipped, e.g. ``"scene0000_00: skipped 2 of 9 frames in <source> (2 non-finite pose)"``.

        Args:
            frames: the frames kept (the frames read are these and the skipped ones).
            scene: what the messages start with (a scene id, or the folder of a scene).
            source: the folder or file read, when ``scene`` does not name it.
        """
        num_read = len(frames) + self.total
        where = "" if source is None else f" in {source}"
        if not frames:
            detail = f" ({self.summary()})" if self.total else ""
            raise error(f"{scene}: no usable frame among {num_read}{where}{detail}")
        if self.total:
            logger.warning(
                "%s: skipped %d of %d frames%s (%s)", scene, self.total, num_read, where, self.summary()
            )


def frame_sort_key(name: str) -> tuple[int, int | str]:
    """Frame order: numeric names in numeric order ("2" before "10"), then the others alphabetically."""
    return (0, int(name)) if name.isdigit() else (1, name)


def find_frame_names(frames_dir: Path, suffixes: Mapping[str, Sequence[str]]) -> list[str]:
    """File stems found in any of the sub-folders of ``frames_dir`` that ``suffixes`` names.

    Args:
        suffixes: sub-folder -> accepted file suffixes, e.g. ``{"color": (".jpg",), "pose": (".txt",)}``.
            A missing sub-folder contributes nothing; a frame missing from some folder is listed (its
            reader then skips it, counted).

    Returns:
        the names in ``frame_sort_key`` order.
    """
    names: set[str] = set()
    for folder, accepted in suffixes.items():
        if (frames_dir / folder).is_dir():
            names.update(p.stem for p in (frames_dir / folder).iterdir() if p.suffix in accepted)
    return sorted(names, key=frame_sort_key)


def read_color_image(path: Path) -> np.ndarray:
    """[H, W, 3] uint8 RGB; raises ``FrameSkipped`` when the file is missing or cannot be decoded."""
    if not path.is_file():
        raise FrameSkipped("missing color image")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as error:  # PIL's decoding errors
        raise FrameSkipped("unreadable color image") from error


def read_depth_image(path: Path, scale: float) -> np.ndarray:
    """[H, W] float32 metres from a single-channel PNG (or ``.npy``) times ``scale``; 0 = no measurement.

    The product is taken in float64 and rounded once, so millimetre PNGs with ``scale=1e-3`` give exactly
    ``value / 1000`` in float32. Raises ``FrameSkipped`` when the file is missing, unreadable, not
    single-channel, or has no valid depth.
    """
    if not path.is_file():
        raise FrameSkipped("missing depth")
    try:
        if path.suffix == ".npy":
            raw = np.load(path, allow_pickle=False)
        else:
            with Image.open(path) as image:
                raw = np.asarray(image)
    except (OSError, ValueError, SyntaxError) as error:
        raise FrameSkipped("unreadable depth") from error
    if raw.ndim != 2:
        raise FrameSkipped("depth not single-channel")
    depth = (raw.astype(np.float64) * scale).astype(np.float32)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    if not depth.any():
        raise FrameSkipped("all-zero depth")
    return depth


def read_instance_mask(path: Path) -> np.ndarray:
    """[h, w] int32 object ids (``NO_INSTANCE`` = none) from a PNG storing ``object_id + 1`` (0 = none).

    Raises ``FrameSkipped`` when the file is missing, unreadable or not single-channel.
    """
    if not path.is_file():
        raise FrameSkipped("missing instance mask")
    try:
        with Image.open(path) as image:
            raw = np.asarray(image).astype(np.int32)
    except (OSError, ValueError, SyntaxError) as error:
        raise FrameSkipped("unreadable instance mask") from error
    if raw.ndim != 2:
        raise FrameSkipped("instance mask not single-channel")
    return (raw - 1).clip(min=NO_INSTANCE)


def read_matrix4(path: Path) -> np.ndarray:
    """[4, 4] float64 from a text file of 4 rows x 4 numbers (ScanNet's and the store's poses).

    Raises ``OSError`` / ``ValueError`` when the file cannot be read or holds another shape.
    """
    matrix = np.loadtxt(path, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"{path}: expected a 4x4 matrix, got shape {matrix.shape}")
    return matrix


def require_finite_pose(c2w: np.ndarray) -> np.ndarray:
    """Returns ``c2w`` [4, 4] unchanged; raises ``FrameSkipped`` when it holds NaN/inf (lost tracking)."""
    if c2w.shape != (4, 4):
        raise FrameSkipped("malformed pose")
    if not np.isfinite(c2w).all():
        raise FrameSkipped("non-finite pose")
    return c2w


def read_pose(path: Path) -> np.ndarray:
    """[4, 4] camera-to-world of one frame; ``FrameSkipped`` when missing, unreadable or non-finite."""
    if not path.is_file():
        raise FrameSkipped("missing pose")
    try:
        c2w = read_matrix4(path)
    except (OSError, ValueError) as error:
        raise FrameSkipped("unreadable pose") from error
    return require_finite_pose(c2w)


def read_intrinsics(path: Path, error: type[Exception]) -> np.ndarray:
    """[3, 3] pinhole K from a text matrix: ScanNet's 4x4 ``intrinsic_*.txt`` (K top-left) or a plain 3x3.

    Raises ``error`` with a one-line message naming the file when it is missing, unreadable, of another
    shape, or not a valid pinhole (finite, fx > 0, fy > 0): intrinsics are shared by a whole scene.
    """
    try:
        matrix = np.loadtxt(path, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise error(f"cannot read intrinsics {path}: {exc}") from None
    if matrix.shape not in ((4, 4), (3, 3)):
        raise error(f"{path}: expected a 4x4 or 3x3 intrinsic matrix, got shape {matrix.shape}")
    K = matrix[:3, :3]
    if not (np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0):
        raise error(f"{path}: invalid intrinsics (need finite fx, fy > 0)")
    return K


def scale_image(
    image: np.ndarray,  # [H, W, 3] uint8 RGB
    K: np.ndarray,  # [3, 3] pixels of ``image``
    scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Resizes an image by ``scale`` (bilinear) and returns it with its rescaled intrinsics [3, 3]."""
    if scale == 1.0:
        return image, K
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    K = K.copy()
    K[0] *= size[0] / width
    K[1] *= size[1] / height
    return resized, K


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an [h, w] integer label map to [height, width] (same camera)."""
    if labels.shape == (height, width):
        return labels
    rows = (np.arange(height) * labels.shape[0]) // height
    cols = (np.arange(width) * labels.shape[1]) // width
    return labels[rows[:, None], cols[None, :]]


def rgbd_frame(
    name: str,
    image: np.ndarray,  # [H, W, 3] uint8
    depth: np.ndarray,  # [h, w] float32 metres
    K: np.ndarray,  # [3, 3] pixels of ``image``
    c2w: np.ndarray,  # [4, 4] camera-to-world, OpenCV axes
    K_depth: np.ndarray,  # [3, 3] pixels of ``depth``
    instance: np.ndarray | None = None,  # [H, W] int32 object ids
) -> Frame:
    """A ``Frame`` that keeps ``K_depth`` only when the depth map's camera differs from the image's
    (another resolution or other intrinsics); otherwise ``Frame.K_depth`` is None."""
    same_camera = depth.shape == image.shape[:2] and np.allclose(K, K_depth)
    return Frame(
        name=name, image=image, depth=depth, K=K, c2w=c2w, instance=instance,
        K_depth=None if same_camera else K_depth,
    )  # fmt: skip
