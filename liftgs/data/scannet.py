"""ScanNet scenes (SensReader-exported RGB-D frames + mesh annotations) as ``liftgs.scene.Scene``.

Expected files for a scene ``<id>`` (ScanNet v2 download layout, frames exported with ScanNet's
SensReader ``reader.py --export_color_images --export_depth_images --export_poses --export_intrinsics``)::

    <scannet_dir>/scans/<id>/<id>.txt                        axisAlignment = 16 numbers (row-major 4x4)
    <scannet_dir>/scans/<id>/<id>_vh_clean_2.ply             mesh (vertex x, y, z in scan coordinates)
    <scannet_dir>/scans/<id>/<id>.aggregation.json           segGroups: objectId, label, segments
    <scannet_dir>/scans/<id>/<id>_vh_clean_2.0.010000.segs.json   segIndices: segment id per mesh vertex
    <scannet_dir>/scans/<id>/[<frames_subdir>/]color/<i>.jpg       color, e.g. 1296 x 968
    <scannet_dir>/scans/<id>/[<frames_subdir>/]depth/<i>.png       uint16 millimetres, e.g. 640 x 480
    <scannet_dir>/scans/<id>/[<frames_subdir>/]pose/<i>.txt        4x4 camera-to-world (OpenCV axes)
    <scannet_dir>/scans/<id>/[<frames_subdir>/]intrinsic/intrinsic_color.txt, intrinsic_depth.txt (4x4)
    <scannet_dir>/scans/<id>/[<frames_subdir>/]instance-filt/<i>.png  optional 2D instances (objectId + 1)

``scannet_dir`` may also be the ``scans`` folder itself. Everything returned is in the axis-aligned
frame (z up, floor near z = 0, metres): poses and mesh vertices are left-multiplied by the alignment.
Color and depth keep their own resolutions; depth intrinsics go to ``Frame.K_depth`` when they differ.

Frames are read with the shared readers of ``liftgs.data.rgbd_io``: a frame that cannot be used (missing
or corrupt image, all-zero depth, non-finite pose, a file missing from one of the folders) is skipped and
counted; each scene logs one warning line with the counts. Structural problems (no usable frame, missing
mesh or annotation files) raise ``ScanNetError`` with a one-line message naming the file. Converting
scenes and annotations into a dataset root (``liftgs import-scannet``) is ``liftgs.data.import_scannet``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from plyfile import PlyData
from scipy.spatial import cKDTree

from liftgs.data.lifting import lift_frames
from liftgs.data.rgbd_io import (
    FrameSkipped,
    SkipCounter,
    find_frame_names,
    read_color_image,
    read_depth_image,
    read_instance_mask,
    read_intrinsics,
    read_pose,
    resize_labels,
    rgbd_frame,
    scale_image,
)
from liftgs.data.store import DatasetError, read_json
from liftgs.scene import NO_INSTANCE, Frame, Scene, SceneObject

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------------
# ScanNet files.
# ---------------------------------------------------------------------------------------------------------


class ScanNetError(DatasetError):
    """A ScanNet scene cannot be read; the message names the file or folder at fault."""


@dataclass(frozen=True)
class ScanNetScenePaths:
    """Where one ScanNet scene's files are (see the module docstring for the layout)."""

    scene_id: str
    scene_dir: Path  # scans/<scene_id>: alignment txt, mesh, aggregation, segments
    frames_dir: Path  # SensReader export: color/, depth/, pose/, intrinsic/, [instance-filt/]

    @classmethod
    def locate(cls, scannet_dir: Path, scene_id: str, frames_subdir: str = "") -> ScanNetScenePaths:
        scene_dir = scans_dir(scannet_dir) / scene_id
        if not scene_dir.is_dir():
            raise ScanNetError(f"unknown scene id {scene_id!r}: no folder {scene_dir}")
        return cls(scene_id, scene_dir, scene_dir / frames_subdir if frames_subdir else scene_dir)

    @property
    def meta_file(self) -> Path:
        return self.scene_dir / f"{self.scene_id}.txt"

    @property
    def mesh_file(self) -> Path:
        return self.scene_dir / f"{self.scene_id}_vh_clean_2.ply"

    @property
    def aggregation_file(self) -> Path:
        return self.scene_dir / f"{self.scene_id}.aggregation.json"

    @property
    def segments_file(self) -> Path:
        return self.scene_dir / f"{self.scene_id}_vh_clean_2.0.010000.segs.json"


def scans_dir(scannet_dir: Path) -> Path:
    """The folder of scene folders: ``scannet_dir/scans`` when it exists, else ``scannet_dir``."""
    return scannet_dir / "scans" if (scannet_dir / "scans").is_dir() else scannet_dir


def list_scene_ids(scannet_dir: Path) -> list[str]:
    """Sorted names of the scene folders under ``scans_dir(scannet_dir)``."""
    scans = scans_dir(scannet_dir)
    if not scans.is_dir():
        raise ScanNetError(f"ScanNet folder not found: {scans}")
    return sorted(p.name for p in scans.iterdir() if p.is_dir() and p.name.startswith("scene"))


def read_axis_alignment(meta_file: Path) -> np.ndarray:
    """[4, 4] float64 ``axisAlignment`` of a scene's ``<id>.txt`` (scan -> aligned, z up).

    ScanNet's test scenes carry no alignment: identity is returned then, with a warning.
    """
    try:
        lines = meta_file.read_text().splitlines()
    except OSError as error:
        raise ScanNetError(f"cannot read {meta_file}: {error}") from None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "axisAlignment":
            numbers = value.split()
            if len(numbers) != 16:
                raise ScanNetError(f"{meta_file}: axisAlignment has {len(numbers)} numbers, expected 16")
            try:
                alignment = np.array([float(x) for x in numbers], dtype=np.float64).reshape(4, 4)
            except ValueError:
                raise ScanNetError(f"{meta_file}: axisAlignment is not numeric") from None
            if not np.isfinite(alignment).all():
                raise ScanNetError(f"{meta_file}: axisAlignment is not finite")
            return alignment
    log.warning("%s: no axisAlignment line; using identity (scene stays in scan coordinates)", meta_file)
    return np.eye(4)


def read_mesh_vertices(mesh_file: Path) -> np.ndarray:
    """[V, 3] float64 vertex positions of a ScanNet ``_vh_clean_2.ply`` (scan coordinates)."""
    try:
        vertex = PlyData.read(str(mesh_file))["vertex"]
        return np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1).astype(np.float64)
    except FileNotFoundError:
        raise ScanNetError(f"missing file {mesh_file}") from None
    except (OSError, ValueError, KeyError) as error:
        raise ScanNetError(f"cannot read mesh vertices from {mesh_file}: {error}") from None


@dataclass(frozen=True)
class AggregatedObject:
    """One ``segGroups`` entry of ``<id>.aggregation.json``."""

    object_id: int
    label: str
    segments: tuple[int, ...]


def read_aggregation(aggregation_file: Path) -> list[AggregatedObject]:
    """The annotated objects of a scene (ids are ScanRefer's / ReferIt3D's ``object_id``/``target_id``)."""
    data = read_json(aggregation_file, ScanNetError)
    try:
        objects = [
            AggregatedObject(int(g["objectId"]), str(g["label"]), tuple(int(s) for s in g["segments"]))
            for g in data["segGroups"]
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise ScanNetError(f"{aggregation_file}: malformed segGroups ({error!r})") from None
    ids = [o.object_id for o in objects]
    if len(set(ids)) != len(ids):
        raise ScanNetError(f"{aggregation_file}: duplicate objectId")
    return objects


def read_object_labels(scannet_dir: Path, scene_id: str) -> dict[int, str]:
    """object_id -> category label of a scene, from its aggregation file only (no mesh, no frames)."""
    paths = ScanNetScenePaths.locate(scannet_dir, scene_id)
    return {o.object_id: o.label for o in read_aggregation(paths.aggregation_file)}


def read_vertex_instances(
    segments_file: Path, objects: list[AggregatedObject], num_vertices: int
) -> np.ndarray:
    """[V] int64 object id of every mesh vertex (``NO_INSTANCE`` where no segGroup covers it)."""
    data = read_json(segments_file, ScanNetError)
    try:
        seg_indices = np.asarray(data["segIndices"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as error:
        raise ScanNetError(f"{segments_file}: malformed segIndices ({error!r})") from None
    if seg_indices.shape != (num_vertices,):
        raise ScanNetError(
            f"{segments_file}: {seg_indices.size} segment indices for a mesh of {num_vertices} vertices"
        )
    if seg_indices.size and seg_indices.min() < 0:
        raise ScanNetError(f"{segments_file}: negative segment index")
    owner = np.full(int(seg_indices.max(initial=0)) + 1, NO_INSTANCE, dtype=np.int64)  # segment -> object
    for obj in objects:
        segments = np.asarray(obj.segments, dtype=np.int64)
        owner[segments[segments < len(owner)]] = obj.object_id
    return owner[seg_indices]


def object_boxes(
    vertices: np.ndarray,  # [V, 3] aligned world xyz
    vertex_instance: np.ndarray,  # [V] int64 object id per vertex
    objects: list[AggregatedObject],
) -> dict[int, SceneObject]:
    """Axis-aligned box of each object's vertices; objects that own no vertex are left out."""
    result: dict[int, SceneObject] = {}
    for obj in objects:
        xyz = vertices[vertex_instance == obj.object_id]
        if len(xyz):
            box = np.concatenate([xyz.min(axis=0), xyz.max(axis=0)])
            result[obj.object_id] = SceneObject(obj.object_id, obj.label, box)
    return result


def label_points(
    points: np.ndarray,  # [P, 3] world xyz
    vertices: np.ndarray,  # [V, 3] aligned mesh vertices
    vertex_instance: np.ndarray,  # [V] int64
    max_distance: float,
) -> np.ndarray:
    """[P] int64 object id of each point's nearest mesh vertex; ``NO_INSTANCE`` beyond ``max_distance`` m."""
    distance, index = cKDTree(vertices).query(points, k=1, distance_upper_bound=max_distance)
    labels = np.full(len(points), NO_INSTANCE, dtype=np.int64)
    hit = np.isfinite(distance)
    labels[hit] = vertex_instance[index[hit]]
    return labels


def transform_points(transform: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """``transform`` [4, 4] applied to points [N, 3]."""
    return xyz @ transform[:3, :3].T + transform[:3, 3]


# ---------------------------------------------------------------------------------------------------------
# Frames and scenes.
# ---------------------------------------------------------------------------------------------------------


def _frame_names(frames_dir: Path) -> list[str]:
    """Numeric names present in any of color/, depth/, pose/ (a frame missing a file is skipped later)."""
    suffixes = {"color": (".jpg",), "depth": (".png",), "pose": (".txt",)}
    return [name for name in find_frame_names(frames_dir, suffixes) if name.isdigit()]


def _instance_dir(frames_dir: Path) -> Path | None:
    for name in ("instance-filt", "instance"):
        if (frames_dir / name).is_dir():
            return frames_dir / name
    return None


def read_scannet_frames(
    paths: ScanNetScenePaths,
    alignment: np.ndarray,  # [4, 4] scan -> aligned world
    frame_stride: int = 20,
    image_scale: float = 1.0,
    depth_scale: float = 1e-3,
) -> tuple[list[Frame], SkipCounter]:
    """Reads every ``frame_stride``-th exported frame; unusable frames are skipped and counted.

    Args:
        alignment: left-multiplied onto every camera-to-world pose.
        image_scale: resize factor for color images (and their instance masks); depth keeps its size.
        depth_scale: metres per depth PNG unit (ScanNet: millimetres).

    Returns:
        frames: in frame-id order; ``c2w`` aligned, ``K`` color intrinsics, ``K_depth`` depth intrinsics
            when they differ from ``K``.
        skips: the counted skips (not yet logged).
    """
    if frame_stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
    if not image_scale > 0:
        raise ValueError(f"image_scale must be > 0, got {image_scale}")
    root = paths.frames_dir
    names = _frame_names(root)[::frame_stride]
    K_color = read_intrinsics(root / "intrinsic" / "intrinsic_color.txt", ScanNetError)
    K_depth = read_intrinsics(root / "intrinsic" / "intrinsic_depth.txt", ScanNetError)
    instance_dir = _instance_dir(root)
    frames: list[Frame] = []
    skips = SkipCounter()
    for name in names:
        try:
            c2w = alignment @ read_pose(root / "pose" / f"{name}.txt")
            image, K = scale_image(read_color_image(root / "color" / f"{name}.jpg"), K_color, image_scale)
            depth = read_depth_image(root / "depth" / f"{name}.png", depth_scale)
            instance = None
            if instance_dir is not None:
                instance = resize_labels(read_instance_mask(instance_dir / f"{name}.png"), *image.shape[:2])
        except FrameSkipped as skipped:
            skips.add(skipped.reason)
            continue
        frames.append(rgbd_frame(name, image, depth, K, c2w, K_depth, instance))
    return frames, skips


def load_scannet_scene(
    scannet_dir: Path,
    scene_id: str,
    frames_subdir: str = "",
    frame_stride: int = 20,
    voxel_size: float = 0.04,
    image_scale: float = 1.0,
    label_distance: float = 0.1,
) -> Scene:
    """One ScanNet scene as a ``Scene`` in the axis-aligned frame.

    The point cloud is lifted from the kept frames (``lift_frames``: voxel means of ``voxel_size`` m);
    each point takes the object id of its nearest mesh vertex within ``label_distance`` m. Objects and
    their axis-aligned boxes come from the mesh segments of each aggregation segGroup.

    Raises:
        ScanNetError: unknown scene, missing/corrupt mesh or annotation files, or no usable frame.
    """
    paths = ScanNetScenePaths.locate(Path(scannet_dir), scene_id, frames_subdir)
    alignment = read_axis_alignment(paths.meta_file)
    objects = read_aggregation(paths.aggregation_file)
    vertices = read_mesh_vertices(paths.mesh_file)
    vertex_instance = read_vertex_instances(paths.segments_file, objects, len(vertices))
    vertices = transform_points(alignment, vertices)

    frames, skips = read_scannet_frames(paths, alignment, frame_stride, image_scale)
    skips.report(frames, ScanNetError, log, scene_id, paths.frames_dir)
    boxes = object_boxes(vertices, vertex_instance, objects)
    if len(boxes) < len(objects):
        empty = [o.object_id for o in objects if o.object_id not in boxes]
        log.warning(
            "%s: object(s) %s of %s own no mesh vertex: left out", scene_id, empty, paths.segments_file
        )
    points, colors, _ = lift_frames(frames, voxel_size)
    return Scene(
        scene_id=scene_id,
        points=points,
        colors=colors,
        point_instance=label_points(points, vertices, vertex_instance, label_distance),
        frames=frames,
        objects=boxes,
    )
