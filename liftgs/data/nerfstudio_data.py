"""nerfstudio-format RGB-D captures (``transforms.json`` with depth, e.g. Record3D / Polycam) as a Scene.

The file follows nerfstudio's dataparser conventions:

- ``frames[i].file_path`` and ``frames[i].depth_file_path`` are relative to the folder of
  ``transforms.json`` (absolute paths are used as they are); frames are read in ``file_path`` order.
- ``fl_x, fl_y, cx, cy, w, h`` are pixels of the color image, given once at the top level or per frame
  (a frame's value wins). Camera models ``OPENCV`` / ``PINHOLE`` / ``SIMPLE_PINHOLE`` are accepted;
  distortion coefficients are ignored with a warning; fisheye and equirectangular cameras are refused.
- ``transform_matrix`` is camera-to-world in OpenGL/nerfstudio camera axes (x right, y up, z backward);
  it is converted to OpenCV axes (x right, y down, z forward) by flipping the camera's y and z axes.
- Depth (16-bit PNG, or ``.npy``) times ``depth_unit_scale_factor`` gives metres: nerfstudio's default
  1e-3 suits millimetre PNGs; the factor may also be set in ``transforms.json``. A depth map with another
  resolution than its image gets ``Frame.K_depth``: the color intrinsics rescaled to its size (same
  camera, as Record3D and Polycam record it).
- ``applied_transform`` (3x4, written by ``ns-process-data``: original capture frame -> this file's world)
  is kept as is by default; ``undo_applied_transform=True`` maps the poses back to the capture's frame.

The world frame is the file's: metric when the capture is (Record3D, Polycam), but its "up" axis is the
capture's (Polycam exports are z-up after nerfstudio's conversion; Record3D's ARKit world is y-up).
Unusable frames (missing/corrupt image or depth, all-zero depth, non-finite pose, image size other than
``w x h``) are skipped and counted in one warning line; a structurally broken file raises
``NerfstudioDataError`` naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from liftgs.data.lifting import lift_frames
from liftgs.data.rgbd_io import (
    FrameSkipped,
    SkipCounter,
    read_color_image,
    read_depth_image,
    require_finite_pose,
    rgbd_frame,
    scale_image,
)
from liftgs.data.store import DatasetError, read_json
from liftgs.scene import Frame, Scene

log = logging.getLogger(__name__)

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
"""Right-multiplied onto an OpenGL camera-to-world matrix it gives the OpenCV one (flips camera y, z)."""

DEFAULT_DEPTH_UNIT_SCALE_FACTOR = 1e-3
"""nerfstudio's default: depth PNGs in millimetres."""

PINHOLE_MODELS = frozenset({"OPENCV", "PINHOLE", "SIMPLE_PINHOLE"})
_INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h")
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


class NerfstudioDataError(DatasetError):
    """A ``transforms.json`` cannot be used; the message names the file."""


def opengl_to_opencv(c2w: np.ndarray) -> np.ndarray:
    """[4, 4] camera-to-world with OpenGL camera axes -> the same camera with OpenCV axes."""
    return c2w @ OPENGL_TO_OPENCV


def _transforms_path(data: Path) -> Path:
    path = data / "transforms.json" if data.is_dir() else data
    if not path.is_file():
        raise NerfstudioDataError(f"transforms file not found: {path}")
    return path


def _read_meta(path: Path) -> dict:
    meta = read_json(path, NerfstudioDataError)
    frames = meta.get("frames") if isinstance(meta, dict) else None
    if not isinstance(frames, list) or not all(isinstance(f, dict) for f in frames):
        raise NerfstudioDataError(f"{path}: expected an object with a 'frames' list of objects")
    model = meta.get("camera_model", "OPENCV")
    if model not in PINHOLE_MODELS:
        raise NerfstudioDataError(f"{path}: camera_model {model!r} is not supported (use a pinhole model)")
    return meta


def _intrinsics(meta: Mapping, frame: Mapping, path: Path, index: int) -> tuple[np.ndarray, int, int]:
    """K [3, 3] and image width, height of one frame (frame values override the global ones)."""
    values = {}
    for key in _INTRINSIC_KEYS:
        value = frame.get(key, meta.get(key))
        if value is None:
            raise NerfstudioDataError(f"{path}: frame {index} has no {key} (neither per frame nor global)")
        try:
            values[key] = float(value)
        except (TypeError, ValueError):
            raise NerfstudioDataError(f"{path}: frame {index} has a non-numeric {key}: {value!r}") from None
    K = np.array([[values["fl_x"], 0.0, values["cx"]], [0.0, values["fl_y"], values["cy"]], [0.0, 0.0, 1.0]])
    if not (np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0):
        raise NerfstudioDataError(f"{path}: frame {index} has invalid intrinsics {values}")
    return K, int(values["w"]), int(values["h"])


def _has_distortion(meta: Mapping, path: Path) -> bool:
    """True when the file (top level or any frame) gives non-zero distortion coefficients."""
    try:
        return any(
            any(
                float(c) != 0.0
                for c in [*(r.get(k, 0.0) for k in _DISTORTION_KEYS), *r.get("distortion_params", [])]
            )
            for r in (meta, *meta["frames"])
        )
    except (TypeError, ValueError):
        raise NerfstudioDataError(f"{path}: non-numeric distortion coefficients") from None


def _applied_transform(meta: Mapping, path: Path) -> np.ndarray:
    """[4, 4] ``applied_transform`` of the file (identity when absent)."""
    transform = np.eye(4)
    if "applied_transform" in meta:
        matrix = np.asarray(meta["applied_transform"], dtype=np.float64)
        if matrix.shape not in ((3, 4), (4, 4)) or not np.isfinite(matrix).all():
            raise NerfstudioDataError(f"{path}: applied_transform must be a finite 3x4 matrix")
        transform[:3] = matrix[:3]
    return transform


def _read_frame(
    record: Mapping,
    meta: Mapping,
    path: Path,
    index: int,
    depth_scale: float,
    world_from_file: np.ndarray,  # [4, 4] applied to every pose
    image_scale: float,
) -> Frame:
    """One frame; ``FrameSkipped`` for a per-frame problem, ``NerfstudioDataError`` for a broken file."""
    K, width, height = _intrinsics(meta, record, path, index)
    if "depth_file_path" not in record:
        raise FrameSkipped("no depth_file_path")
    try:
        pose = np.asarray(record["transform_matrix"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise FrameSkipped("malformed pose") from None
    c2w = world_from_file @ opengl_to_opencv(require_finite_pose(pose))
    image = read_color_image(path.parent / record["file_path"])
    if image.shape[:2] != (height, width):
        raise FrameSkipped("image size differs from w x h")
    depth = read_depth_image(path.parent / record["depth_file_path"], depth_scale)
    K_depth = K.copy()  # the same camera at the depth map's resolution
    K_depth[0] *= depth.shape[1] / width
    K_depth[1] *= depth.shape[0] / height
    image, K = scale_image(image, K, image_scale)
    return rgbd_frame(Path(record["file_path"]).stem, image, depth, K, c2w, K_depth)


def read_nerfstudio_frames(
    data: Path,
    frame_stride: int = 1,
    depth_unit_scale_factor: float | None = None,
    undo_applied_transform: bool = False,
    image_scale: float = 1.0,
) -> tuple[list[Frame], SkipCounter, Path]:
    """Reads every ``frame_stride``-th frame (in ``file_path`` order) of a ``transforms.json``.

    Args:
        data: the file or its folder.
        depth_unit_scale_factor: metres per depth unit; None reads ``depth_unit_scale_factor`` from the
            file, else nerfstudio's 1e-3.
        undo_applied_transform: express poses in the capture's original frame (inverse of the file's
            ``applied_transform``).
        image_scale: resize factor for color images; depth keeps its resolution.

    Returns:
        frames (OpenCV camera-to-world poses), the counted skips (not yet logged), the file's path.
    """
    if frame_stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
    path = _transforms_path(Path(data))
    meta = _read_meta(path)
    if depth_unit_scale_factor is None:
        depth_unit_scale_factor = meta.get("depth_unit_scale_factor", DEFAULT_DEPTH_UNIT_SCALE_FACTOR)
    if not (isinstance(depth_unit_scale_factor, int | float) and depth_unit_scale_factor > 0):
        raise NerfstudioDataError(
            f"{path}: depth_unit_scale_factor must be > 0, got {depth_unit_scale_factor!r}"
        )
    if _has_distortion(meta, path):
        log.warning("%s: lens distortion coefficients are ignored (images are used as pinhole)", path)
    world_from_file = np.eye(4)
    if undo_applied_transform:
        world_from_file = np.linalg.inv(_applied_transform(meta, path))
    try:
        order = sorted(range(len(meta["frames"])), key=lambda i: str(meta["frames"][i]["file_path"]))
    except (KeyError, TypeError):
        raise NerfstudioDataError(f"{path}: every frame needs a file_path") from None
    frames: list[Frame] = []
    skips = SkipCounter()
    for index in order[::frame_stride]:
        try:
            frame = _read_frame(
                meta["frames"][index],
                meta,
                path,
                index,
                depth_unit_scale_factor,
                world_from_file,
                image_scale,
            )
        except FrameSkipped as skipped:
            skips.add(skipped.reason)
            continue
        frames.append(frame)
    return frames, skips, path


def load_nerfstudio_scene(
    data: Path,
    scene_id: str | None = None,
    frame_stride: int = 1,
    voxel_size: float = 0.04,
    depth_unit_scale_factor: float | None = None,
    undo_applied_transform: bool = False,
    image_scale: float = 1.0,
) -> Scene:
    """A nerfstudio RGB-D capture as a ``Scene``: its frames and the point cloud lifted from their depth.

    The scene has no objects and every point's instance is ``NO_INSTANCE`` (no labels in the format).
    ``scene_id`` defaults to the name of the folder holding ``transforms.json``. Other arguments as in
    ``read_nerfstudio_frames``; ``voxel_size`` (metres) as in ``lift_frames``.

    Raises:
        NerfstudioDataError: missing or broken ``transforms.json``, or no usable frame.
    """
    frames, skips, path = read_nerfstudio_frames(
        data, frame_stride, depth_unit_scale_factor, undo_applied_transform, image_scale
    )
    scene_id = scene_id or path.parent.name
    skips.report(frames, NerfstudioDataError, log, scene_id, path)
    points, colors, instance = lift_frames(frames, voxel_size)
    return Scene(scene_id=scene_id, points=points, colors=colors, point_instance=instance, frames=frames)
