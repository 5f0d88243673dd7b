"""The on-disk scene format (ScanNet-export-like) and referring-expression files.

One folder per scene, named by its scene id::

    <scene_id>/color/<i>.png            RGB uint8 (.jpg is read too, as ScanNet exports it)
    <scene_id>/depth/<i>.png            uint16 millimetres, 0 = no measurement
    <scene_id>/pose/<i>.txt             4x4 camera-to-world, OpenCV axes (x right, y down, z forward)
    <scene_id>/instance/<i>.png         uint16 object_id + 1, 0 = no object (optional)
    <scene_id>/intrinsic/intrinsic_color.txt   4x4, K in the top-left 3x3 (as ScanNet writes it)
    <scene_id>/intrinsic/intrinsic_depth.txt   4x4, K of the depth maps
    <scene_id>/<scene_id>_points.ply    vertex x, y, z (float32), red, green, blue (uint8), instance (int32,
                                        object id, -1 = none)
    <scene_id>/objects.json             [{"object_id", "object_name", "attributes", "box"}], box =
                                        [xmin, ymin, zmin, xmax, ymax, zmax] metres

Loading is tolerant of bad frames: a frame whose color, depth, pose (or instance mask, when the scene has
an ``instance/`` folder) is missing or unreadable, whose depth is all zero, or whose pose is not finite is
skipped; the skips of a scene are counted and reported in one warning line. A scene without any usable
frame, or with a missing/corrupt point cloud or object list, raises ``DatasetError`` naming the file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from plyfile import PlyData, PlyElement, PlyParseError

from liftgs.atomic import write_json_atomic
from liftgs.data.point_features import LiftedFeaturesError, load_lifted_features, load_lifted_space
from liftgs.data.rgbd_io import (
    FrameSkipped,
    SkipCounter,
    find_frame_names,
    read_color_image,
    read_depth_image,
    read_instance_mask,
    read_intrinsics,
    read_pose,
    rgbd_frame,
)
from liftgs.scene import NO_INSTANCE, Expression, Frame, Scene, SceneObject

logger = logging.getLogger(__name__)

MAX_DEPTH_M = 65.535
"""Largest depth a uint16 millimetre PNG can hold; deeper measurements are written as 0 (invalid)."""

COLOR_SUFFIXES = (".png", ".jpg")
"""Color images may be PNG (written here) or JPEG (ScanNet's exporter); the first that exists is read."""

FRAME_SUFFIXES = {"color": COLOR_SUFFIXES, "depth": (".png",), "pose": (".txt",), "instance": (".png",)}
"""Frame folders of a scene and the file suffixes read in each."""

DEPTH_PNG_SCALE = 1e-3
"""Metres per unit of a depth PNG (millimetres, as ``write_depth_png`` writes them)."""

_PNG_COMPRESS_LEVEL = 1
"""Fast PNG compression: the files are small and written by the thousand."""


class DatasetError(ValueError):
    """A dataset file is missing or malformed; the message is one line naming the file."""


# ----------------------------------------------------------------------------------------------- writing


def _write_matrix(path: Path, matrix: np.ndarray) -> None:
    """Writes a matrix as text rows (what ``np.loadtxt`` reads; faster than ``np.savetxt``)."""
    path.write_text("".join(" ".join(f"{value:.9g}" for value in row) + "\n" for row in matrix))


def _intrinsic_4x4(K: np.ndarray) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = K
    return matrix


def _shared_intrinsics(scene: Scene, attribute: str) -> np.ndarray:
    """The one K all frames share (``attribute``: "K" or "depth_intrinsics"); one per scene on disk."""
    matrices = [np.asarray(getattr(frame, attribute), dtype=np.float64) for frame in scene.frames]
    for frame, matrix in zip(scene.frames, matrices, strict=True):
        if not np.allclose(matrix, matrices[0]):
            raise ValueError(
                f"scene {scene.scene_id}: frame {frame.name} has other {attribute} than frame "
                f"{scene.frames[0].name}; the scene format stores one intrinsic matrix per scene"
            )
    return matrices[0]


def write_depth_png(path: Path, depth: np.ndarray) -> None:
    """Writes [H, W] metres as uint16 millimetres (non-finite, negative or > 65.535 m become 0)."""
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0) & (depth <= MAX_DEPTH_M)
    millimetres = np.where(valid, np.round(np.where(valid, depth, 0) * 1000.0), 0).astype(np.uint16)
    Image.fromarray(millimetres).save(path, compress_level=_PNG_COMPRESS_LEVEL)


def write_instance_png(path: Path, instance: np.ndarray) -> None:
    """Writes [H, W] object ids (``NO_INSTANCE`` = none) as uint16 ``object_id + 1``."""
    instance = np.asarray(instance, dtype=np.int64)
    if instance.min(initial=0) < NO_INSTANCE or instance.max(initial=0) >= np.iinfo(np.uint16).max:
        raise ValueError(f"{path}: instance ids must lie in [-1, 65534]")
    Image.fromarray((instance + 1).astype(np.uint16)).save(path, compress_level=_PNG_COMPRESS_LEVEL)


def write_points_ply(
    path: Path,
    points: np.ndarray,  # [P, 3] float world metres
    colors: np.ndarray,  # [P, 3] float in [0, 1]
    instance: np.ndarray,  # [P] int object ids, -1 = none
) -> None:
    """Writes a binary PLY with x, y, z, red, green, blue, instance vertex properties."""
    vertex = np.empty(
        len(points),
        dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
               ("instance", "i4")],
    )  # fmt: skip
    for axis, name in enumerate("xyz"):
        vertex[name] = points[:, axis]
    rgb = np.clip(np.round(np.asarray(colors) * 255.0), 0, 255).astype(np.uint8)
    for channel, name in enumerate(("red", "green", "blue")):
        vertex[name] = rgb[:, channel]
    vertex["instance"] = instance
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(path))


def objects_to_json(objects: dict[int, SceneObject]) -> list[dict]:
    return [
        {
            "object_id": obj.object_id,
            "object_name": obj.name,
            "attributes": dict(obj.attributes),
            "box": [float(x) for x in obj.box],
        }
        for obj in sorted(objects.values(), key=lambda o: o.object_id)
    ]


def write_scene(scene: Scene, scene_dir: str | Path) -> None:
    """Writes ``scene`` in the format described in the module docstring (folders are created).

    Frames are written under their ``name``; all frames must share one color K and one depth K.
    Existing files of the same names are overwritten; other files are left alone. The files are written
    plainly: write into ``liftgs.atomic.atomic_directory`` (as ``liftgs generate`` and ``liftgs
    import-scannet`` do) so that the scene folder appears whole or not at all.
    """
    scene_dir = Path(scene_dir)
    for sub in ("color", "depth", "pose", "intrinsic"):
        (scene_dir / sub).mkdir(parents=True, exist_ok=True)
    if scene.frames:
        _write_matrix(
            scene_dir / "intrinsic/intrinsic_color.txt", _intrinsic_4x4(_shared_intrinsics(scene, "K"))
        )
        _write_matrix(
            scene_dir / "intrinsic/intrinsic_depth.txt",
            _intrinsic_4x4(_shared_intrinsics(scene, "depth_intrinsics")),
        )
    if any(frame.instance is not None for frame in scene.frames):
        (scene_dir / "instance").mkdir(exist_ok=True)
    for frame in scene.frames:
        Image.fromarray(np.asarray(frame.image, dtype=np.uint8)).save(
            scene_dir / f"color/{frame.name}.png", compress_level=_PNG_COMPRESS_LEVEL
        )
        write_depth_png(scene_dir / f"depth/{frame.name}.png", frame.depth)
        _write_matrix(scene_dir / f"pose/{frame.name}.txt", frame.c2w)
        if frame.instance is not None:
            write_instance_png(scene_dir / f"instance/{frame.name}.png", frame.instance)
    write_points_ply(
        scene_dir / f"{scene.scene_id}_points.ply", scene.points, scene.colors, scene.point_instance
    )
    (scene_dir / "objects.json").write_text(json.dumps(objects_to_json(scene.objects), indent=1))


# ----------------------------------------------------------------------------------------------- reading


def read_json(path: str | Path, error: type[DatasetError] = DatasetError) -> Any:
    """The parsed JSON file; raises ``error`` naming the file when it is missing or malformed."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise error(f"missing file {path}") from None
    except (OSError, ValueError) as exc:
        raise error(f"cannot parse {path}: {exc}") from None


def read_points_ply(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reads a scene point cloud: points [P, 3] f32, colors [P, 3] f32 in [0, 1], instance [P] i64.

    ``instance`` is all ``NO_INSTANCE`` when the file has no ``instance`` property (e.g. plain scans).
    Raises ``DatasetError`` when the file is missing, unreadable, empty or holds non-finite coordinates.
    """
    try:
        vertex = PlyData.read(str(path))["vertex"].data
        points = np.stack([vertex[name] for name in "xyz"], axis=1).astype(np.float32)
        colors = np.stack([vertex[name] for name in ("red", "green", "blue")], axis=1).astype(np.float32)
    except FileNotFoundError:
        raise DatasetError(f"{path}: point cloud not found") from None
    except (OSError, ValueError, KeyError, PlyParseError) as error:
        raise DatasetError(f"{path}: unreadable point cloud ({type(error).__name__}: {error})") from None
    names = vertex.dtype.names or ()
    instance = (
        vertex["instance"].astype(np.int64) if "instance" in names else np.full(len(points), NO_INSTANCE)
    )
    if len(points) == 0:
        raise DatasetError(f"{path}: point cloud has no points")
    if not np.isfinite(points).all():
        raise DatasetError(f"{path}: point cloud has non-finite coordinates")
    return points, colors / 255.0, instance


def objects_from_json(records: list, path: Path) -> dict[int, SceneObject]:
    objects: dict[int, SceneObject] = {}
    try:
        for record in records:
            box = np.asarray(record["box"], dtype=np.float64)
            if box.shape != (6,) or not np.isfinite(box).all():
                raise ValueError(f"object {record['object_id']} has a bad box {record['box']}")
            obj = SceneObject(
                object_id=int(record["object_id"]),
                name=str(record["object_name"]),
                box=box,
                attributes={str(k): str(v) for k, v in record.get("attributes", {}).items()},
            )
            objects[obj.object_id] = obj
    except (TypeError, KeyError, ValueError) as error:
        raise DatasetError(f"{path}: malformed object list ({type(error).__name__}: {error})") from None
    return objects


def load_objects(scene_dir: str | Path) -> dict[int, SceneObject]:
    """Reads ``objects.json`` of a scene folder (cheap: no images or points)."""
    path = Path(scene_dir) / "objects.json"
    return objects_from_json(read_json(path), path)


def list_frame_names(scene_dir: str | Path, folders: Sequence[str] | None = None) -> list[str]:
    """Names of the frames of a scene folder that have a file in any of ``folders``, in frame order
    (numeric names numerically, then the others alphabetically).

    ``folders`` default to every frame folder (``color``, ``depth``, ``pose``, ``instance``); e.g.
    ``["color"]`` lists the color images. A name listed may still miss a file in another folder.
    """
    folders = FRAME_SUFFIXES if folders is None else folders
    return find_frame_names(Path(scene_dir), {folder: FRAME_SUFFIXES[folder] for folder in folders})


def read_scene_intrinsics(scene_dir: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(K [3, 3] of the color images, K [3, 3] of the depth maps or None when the scene has no
    ``intrinsic/intrinsic_depth.txt``: then depth maps must share the color images' camera and size)."""
    scene_dir = Path(scene_dir)
    K = read_intrinsics(scene_dir / "intrinsic/intrinsic_color.txt", DatasetError)
    depth_path = scene_dir / "intrinsic/intrinsic_depth.txt"
    return K, read_intrinsics(depth_path, DatasetError) if depth_path.exists() else None


def read_frame_image(scene_dir: str | Path, name: str) -> np.ndarray:
    """[H, W, 3] uint8 color image of frame ``name`` (``color/<name>.png`` or ``.jpg``).

    Raises ``FrameSkipped`` when it is missing or unreadable.
    """
    candidates = [Path(scene_dir) / "color" / f"{name}{suffix}" for suffix in COLOR_SUFFIXES]
    return read_color_image(next((path for path in candidates if path.is_file()), candidates[0]))


def read_frame_instance(scene_dir: str | Path, name: str, shape: tuple[int, int]) -> np.ndarray:
    """[H, W] int32 object ids (``NO_INSTANCE`` = none) of frame ``name``, for an image of ``shape`` (H, W).

    Raises ``FrameSkipped`` when the mask is missing, unreadable or of another size than the image.
    """
    instance = read_instance_mask(Path(scene_dir) / "instance" / f"{name}.png")
    if instance.shape != tuple(shape):
        raise FrameSkipped("instance mask size differs from the image")
    return instance


def read_frame(
    scene_dir: str | Path, name: str, intrinsics: tuple[np.ndarray, np.ndarray] | None = None
) -> Frame:
    """Frame ``name`` of a scene folder: image, depth, pose, and its instance mask when the scene has an
    ``instance/`` folder.

    Args:
        intrinsics: ``read_scene_intrinsics(scene_dir)`` (read here when None; pass it for many frames).

    Raises:
        FrameSkipped: a file is missing or unreadable, the depth is all zero, the pose is not finite, or the
            instance mask has another size than the image (``reason`` says which).
        DatasetError: the depth map has another size than the color image and the scene has no depth
            intrinsics (``intrinsic/intrinsic_depth.txt``) to say where its pixels look.
    """
    scene_dir = Path(scene_dir)
    K, K_depth = read_scene_intrinsics(scene_dir) if intrinsics is None else intrinsics
    image = read_frame_image(scene_dir, name)
    depth = read_depth_image(scene_dir / "depth" / f"{name}.png", DEPTH_PNG_SCALE)
    if K_depth is None:
        if depth.shape != image.shape[:2]:
            raise DatasetError(
                f"{scene_dir}: frame {name} has a {depth.shape[1]}x{depth.shape[0]} depth map for a "
                f"{image.shape[1]}x{image.shape[0]} color image and the scene has no "
                "intrinsic/intrinsic_depth.txt; add the depth camera's intrinsics there"
            )
        K_depth = K
    c2w = read_pose(scene_dir / "pose" / f"{name}.txt")
    instance = None
    if (scene_dir / "instance").is_dir():
        instance = read_frame_instance(scene_dir, name, image.shape[:2])
    return rgbd_frame(name, image, depth, K, c2w, K_depth, instance)


def read_frames(scene_dir: str | Path) -> list[Frame]:
    """Reads every usable frame of a scene folder (bad frames are skipped, counted and warned about once).

    Raises:
        DatasetError: unreadable intrinsics, depth maps of another size than their images without depth
            intrinsics, or no usable frame.
    """
    scene_dir = Path(scene_dir)
    intrinsics = read_scene_intrinsics(scene_dir)
    frames: list[Frame] = []
    skips = SkipCounter()
    for name in list_frame_names(scene_dir):
        try:
            frames.append(read_frame(scene_dir, name, intrinsics))
        except FrameSkipped as skipped:
            skips.add(skipped.reason)
    skips.report(frames, DatasetError, logger, str(scene_dir))
    return frames


def load_scene(scene_dir: str | Path, load_frames: bool = True, load_point_features: bool = True) -> Scene:
    """Reads a scene folder written by ``write_scene`` (or a ScanNet export in the same layout).

    The scene id is the folder's name. With ``load_frames=False`` only the point cloud and objects are
    read (fast), and ``frames`` is empty. ``point_features`` come from ``lifted_features.npz`` when the
    folder has one (``liftgs lift-features``) and ``load_point_features`` is True.
    """
    scene_dir = Path(scene_dir)
    if not scene_dir.is_dir():
        raise DatasetError(f"{scene_dir}: scene folder not found")
    scene_id = scene_dir.name
    points, colors, instance = read_points_ply(scene_dir / f"{scene_id}_points.ply")
    objects = load_objects(scene_dir)
    frames = read_frames(scene_dir) if load_frames else []
    try:
        point_features = load_lifted_features(scene_dir, len(points)) if load_point_features else None
        space = None if point_features is None else load_lifted_space(scene_dir)
    except LiftedFeaturesError as error:
        raise DatasetError(str(error)) from None
    return Scene(
        scene_id=scene_id, points=points, colors=colors, point_instance=instance, frames=frames,
        objects=objects, point_features=point_features, point_feature_space=space,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------- expressions


def save_expressions(
    path: str | Path, expressions: Sequence[Expression], extras: Sequence[dict] | None = None
) -> None:
    """Writes ScanRefer-style records (a JSON list, atomically); ``extras[i]`` (optional) adds fields to
    record ``i``."""
    if extras is not None and len(extras) != len(expressions):
        raise ValueError(f"extras has {len(extras)} entries for {len(expressions)} expressions")
    records = [expr.to_json() for expr in expressions]
    for record, extra in zip(records, extras or [{}] * len(records), strict=True):
        record.update(extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, records)


def load_expressions(path: str | Path) -> list[Expression]:
    """Reads a JSON list of ScanRefer-style records (ids may be strings or ints; extra fields ignored)."""
    path = Path(path)
    records = read_json(path)
    if not isinstance(records, list):
        raise DatasetError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    expressions = []
    for index, record in enumerate(records):
        try:
            expression = Expression.from_json(record)
        except (TypeError, KeyError, ValueError) as error:
            raise DatasetError(
                f"{path}: record {index} is malformed ({type(error).__name__}: {error})"
            ) from None
        if expression.eval_type not in ("unique", "multiple"):
            raise DatasetError(f"{path}: record {index} has eval_type {expression.eval_type!r}")
        expressions.append(expression)
    return expressions
