"""ScanNet scenes (SensReader-exported RGB-D frames + mesh annotations) as ``liftgs.scene.Scene``.

Expected files for a scene ``<id>`` (ScanNet v2 download layout, frames exported with ScanNet's
SensReader ``reader.py --export_color_images --export_depth_images --export_poses --export_intrinsics``)::

    <scannet_dir>/scans/<id>/<id>.txt                        axisAlignment = 16 numbers (row-major 4x4)
    <scannet_dir>/scans/<id>/<id>_vh_clean_2.ply             mesh (vertex x, y, z in scan coordinates)
    <scannet_dir>/scans/<id>/<id>.aggregation.json           segGroups: objectId, label, segments
    <scannet_dir>/scans/<id>/<id>_vh_clean_2.0.010000.segs.json   segIndices: segment id per mesh vertex
    <scannet_dir>/scans/<id>/[<frames_subdir>/]color/<i>.jpg       colour, e.g. 1296 x 968
    <scannet_dir>/scans/<id>/[<frames_subdir>/]depth/<i>.png       uint16 millimetres, e.g. 640 x 480
    <scannet_dir>/scans/<id>/[<frames_subdir>/]pose/<i>.txt        4x4 camera-to-world (OpenCV axes)
    <scannet_dir>/scans/<id>/[<frames_subdir>/]intrinsic/intrinsic_color.txt, intrinsic_depth.txt (4x4)
    <scannet_dir>/scans/<id>/[<frames_subdir>/]instance-filt/<i>.png  optional 2D instances (objectId + 1)

``scannet_dir`` may also be the ``scans`` folder itself. Everything returned is in the axis-aligned
frame (z up, floor near z = 0, metres): poses and mesh vertices are left-multiplied by the alignment.
Colour and depth keep their own resolutions; depth intrinsics go to ``Frame.K_depth`` when they differ.

The frame-reading helpers in the first section (images, depth maps, poses, skip accounting) are shared with
``liftgs.data.nerfstudio_data``. A frame that cannot be used (missing or corrupt image, all-zero depth,
non-finite pose, a file missing from one of the folders) is skipped and counted; each scene logs one
warning line with the counts. Structural problems (no usable frame, missing mesh or annotation files)
raise ``ScanNetError`` with a one-line message naming the file.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from plyfile import PlyData
from rich.progress import track
from scipy.spatial import cKDTree

from liftgs.data.lifting import lift_frames
from liftgs.data.referit3d import SceneLabels, load_referit3d, load_scanrefer
from liftgs.data.store import DatasetError, load_objects, save_expressions, write_scene
from liftgs.scene import NO_INSTANCE, Expression, Frame, Scene, SceneObject

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------------
# Frame reading shared by the RGB-D loaders (ScanNet, nerfstudio data).
# ---------------------------------------------------------------------------------------------------------


class FrameSkipped(Exception):
    """Raised while reading one frame that cannot be used; ``reason`` is a short counted label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SkipCounter:
    """Counts the frames a loader dropped, by reason, and reports them in one warning line per scene."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, reason: str) -> None:
        self.counts[reason] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """e.g. ``"2 non-finite pose, 1 missing depth"`` (most frequent first)."""
        return ", ".join(f"{n} {reason}" for reason, n in self.counts.most_common())

    def warn(self, logger: logging.Logger, scene_id: str, source: Path, num_frames: int) -> None:
        """Logs one warning line on ``logger`` when any of ``num_frames`` frames was skipped."""
        if self.total:
            logger.warning(
                "%s: skipped %d of %d frames in %s (%s)",
                scene_id,
                self.total,
                num_frames,
                source,
                self.summary(),
            )


def read_color_image(path: Path) -> np.ndarray:
    """[H, W, 3] uint8 RGB; raises ``FrameSkipped`` when the file is missing or cannot be decoded."""
    if not path.is_file():
        raise FrameSkipped("missing colour image")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as error:  # PIL's decoding errors
        raise FrameSkipped("unreadable colour image") from error


def read_depth_image(path: Path, scale: float) -> np.ndarray:
    """[H, W] float32 metres from a single-channel PNG (or ``.npy``) times ``scale``; 0 = no measurement.

    Raises ``FrameSkipped`` when the file is missing, unreadable, not single-channel, or has no valid depth.
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
    depth = raw.astype(np.float32) * np.float32(scale)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    if not depth.any():
        raise FrameSkipped("all-zero depth")
    return depth


def require_finite_pose(c2w: np.ndarray) -> np.ndarray:
    """Returns ``c2w`` [4, 4] unchanged; raises ``FrameSkipped`` when it holds NaN/inf (lost tracking)."""
    if c2w.shape != (4, 4):
        raise FrameSkipped("malformed pose")
    if not np.isfinite(c2w).all():
        raise FrameSkipped("non-finite pose")
    return c2w


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


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ScanNetError(f"missing file {path}") from None
    except (OSError, ValueError) as error:
        raise ScanNetError(f"cannot parse {path}: {error}") from None


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


def read_matrix4(path: Path) -> np.ndarray:
    """[4, 4] float64 from a text file of 4 rows x 4 numbers (ScanNet poses and intrinsics)."""
    matrix = np.loadtxt(path, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"{path}: expected a 4x4 matrix, got shape {matrix.shape}")
    return matrix


def read_intrinsics(path: Path) -> np.ndarray:
    """[3, 3] pinhole intrinsics from ScanNet's 4x4 ``intrinsic_*.txt``."""
    try:
        K = read_matrix4(path)[:3, :3]
    except (OSError, ValueError) as error:
        raise ScanNetError(f"cannot read intrinsics {path}: {error}") from None
    if not (np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0):
        raise ScanNetError(f"{path}: invalid intrinsics (need finite fx, fy > 0)")
    return K


def read_pose(path: Path) -> np.ndarray:
    """[4, 4] camera-to-world of one frame; ``FrameSkipped`` when missing, unreadable or non-finite."""
    if not path.is_file():
        raise FrameSkipped("missing pose")
    try:
        c2w = read_matrix4(path)
    except (OSError, ValueError) as error:
        raise FrameSkipped("unreadable pose") from error
    return require_finite_pose(c2w)


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
    data = _read_json(aggregation_file)
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
    data = _read_json(segments_file)
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


def _frame_ids(frames_dir: Path) -> list[int]:
    """Numeric ids present in any of color/, depth/, pose/ (a frame missing one file is skipped later)."""
    ids: set[int] = set()
    for folder, suffix in (("color", ".jpg"), ("depth", ".png"), ("pose", ".txt")):
        ids.update(int(p.stem) for p in (frames_dir / folder).glob(f"*{suffix}") if p.stem.isdigit())
    return sorted(ids)


def _instance_dir(frames_dir: Path) -> Path | None:
    for name in ("instance-filt", "instance"):
        if (frames_dir / name).is_dir():
            return frames_dir / name
    return None


def read_instance_mask(path: Path, height: int, width: int) -> np.ndarray:
    """[height, width] int32 object ids from a ScanNet 2D instance PNG (value = objectId + 1, 0 = none)."""
    if not path.is_file():
        raise FrameSkipped("missing instance mask")
    try:
        with Image.open(path) as image:
            raw = np.asarray(image).astype(np.int32)
    except (OSError, ValueError, SyntaxError) as error:
        raise FrameSkipped("unreadable instance mask") from error
    if raw.ndim != 2:
        raise FrameSkipped("instance mask not single-channel")
    return resize_labels(raw - 1, height, width).clip(min=NO_INSTANCE)


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
        image_scale: resize factor for colour images (and their instance masks); depth keeps its size.
        depth_scale: metres per depth PNG unit (ScanNet: millimetres).

    Returns:
        frames: in frame-id order; ``c2w`` aligned, ``K`` colour intrinsics, ``K_depth`` depth intrinsics
            when they differ from ``K``.
        skips: the counted skips (not yet logged).
    """
    if frame_stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
    if not image_scale > 0:
        raise ValueError(f"image_scale must be > 0, got {image_scale}")
    root = paths.frames_dir
    ids = _frame_ids(root)[::frame_stride]
    K_color = read_intrinsics(root / "intrinsic" / "intrinsic_color.txt")
    K_depth = read_intrinsics(root / "intrinsic" / "intrinsic_depth.txt")
    instance_dir = _instance_dir(root)
    frames: list[Frame] = []
    skips = SkipCounter()
    for i in ids:
        try:
            c2w = alignment @ read_pose(root / "pose" / f"{i}.txt")
            image, K = scale_image(read_color_image(root / "color" / f"{i}.jpg"), K_color, image_scale)
            depth = read_depth_image(root / "depth" / f"{i}.png", depth_scale)
            height, width = image.shape[:2]
            instance = (
                None if instance_dir is None else read_instance_mask(instance_dir / f"{i}.png", height, width)
            )
        except FrameSkipped as skipped:
            skips.add(skipped.reason)
            continue
        same_camera = depth.shape == (height, width) and np.allclose(K, K_depth)
        frames.append(
            Frame(
                name=str(i),
                image=image,
                depth=depth,
                K=K,
                c2w=c2w,
                instance=instance,
                K_depth=None if same_camera else K_depth.copy(),
            )
        )
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
    num_read = len(frames) + skips.total
    if not frames:
        detail = f" ({skips.summary()})" if skips.total else ""
        raise ScanNetError(f"{scene_id}: no usable frame among {num_read} in {paths.frames_dir}{detail}")
    skips.warn(log, scene_id, paths.frames_dir, num_read)
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


# ---------------------------------------------------------------------------------------------------------
# Conversion into the project's dataset root (``liftgs import-scannet``).
# ---------------------------------------------------------------------------------------------------------


class _LazySceneLabels(Mapping[str, Mapping[int, str]]):
    """scene_id -> object labels, read from each scene's aggregation file on first use."""

    def __init__(self, scannet_dir: Path) -> None:
        self.scannet_dir = scannet_dir
        self.cache: dict[str, dict[int, str]] = {}

    def __getitem__(self, scene_id: str) -> dict[int, str]:
        if scene_id not in self.cache:
            if not (scans_dir(self.scannet_dir) / scene_id).is_dir():
                raise KeyError(scene_id)
            self.cache[scene_id] = read_object_labels(self.scannet_dir, scene_id)
        return self.cache[scene_id]

    def __contains__(self, scene_id: object) -> bool:
        try:
            self[str(scene_id)]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(list_scene_ids(self.scannet_dir))

    def __len__(self) -> int:
        return len(list_scene_ids(self.scannet_dir))


def split_name(annotation_file: Path) -> str:
    """Split written for an annotation file: its lower-case stem without a ``scanrefer[_filtered]_`` prefix.

    ``ScanRefer_filtered_train.json`` -> ``train``, ``sr3d_test.csv`` -> ``sr3d_test``.
    """
    stem = annotation_file.stem.lower()
    for prefix in ("scanrefer_filtered_", "scanrefer_"):
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return stem[len(prefix) :]
    return stem


def _read_annotation_splits(
    scanrefer: Sequence[Path],
    referit3d: Sequence[Path],
    labels: SceneLabels,
    scene_ids: Collection[str] | None,
) -> dict[str, list[tuple[Expression, dict]]]:
    """split -> (expression, extra record fields) for every annotation file."""
    splits: dict[str, list[tuple[Expression, dict]]] = {}
    for path in [*scanrefer, *referit3d]:
        name = split_name(path)
        if name in splits:
            raise ScanNetError(f"two annotation files map to split {name!r} (second: {path}); rename one")
        if path in scanrefer:
            splits[name] = [(e, {}) for e in load_scanrefer(path, labels, scene_ids)]
        else:
            splits[name] = [
                (
                    r.expression,
                    {
                        "stimulus_id": r.stimulus_id,
                        "hard": r.hard,
                        "view_dependent": r.view_dependent,
                        "mentions_target_class": r.mentions_target_class,
                    },
                )
                for r in load_referit3d(path, labels, scene_ids)
            ]
    return splits


def import_scannet(
    scannet_dir: Path,
    out: Path,
    scanrefer: Sequence[Path] = (),
    referit3d: Sequence[Path] = (),
    scene_ids: Sequence[str] | None = None,
    overwrite: bool = False,
    **scene_options,
) -> dict[str, list[str]]:
    """Converts ScanNet scenes and their annotations into a dataset root readable by ``GroundingDataset``.

    Writes ``out/scans/<scene_id>/`` (``store.write_scene``), ``out/annotations/<split>.json`` (ScanRefer
    fields + ``eval_type``; ReferIt3D rows also carry ``stimulus_id``, ``hard``, ``view_dependent``,
    ``mentions_target_class``) and ``out/splits/<split>.txt`` (the split's scene ids), one split per
    annotation file (see ``split_name``), or one split ``all`` over every scene without annotations.
    Expressions whose target owns no mesh vertex (so has no box) are dropped, counted in one warning line.

    Args:
        scene_ids: scenes to import; None means every scene the annotations name (each must exist), or
            every scene under ``scannet_dir`` when no annotation file is given.
        overwrite: re-import scenes already in ``out`` (otherwise they are kept and not re-read).
        scene_options: passed to ``load_scannet_scene`` (``frames_subdir``, ``frame_stride``, ...).

    Returns:
        split -> its scene ids.
    """
    scannet_dir, out = Path(scannet_dir), Path(out)
    labels = _LazySceneLabels(scannet_dir)
    wanted = None if scene_ids is None else set(scene_ids)
    splits = _read_annotation_splits(list(map(Path, scanrefer)), list(map(Path, referit3d)), labels, wanted)
    if wanted is not None:
        scenes = sorted(wanted)
    elif splits:
        scenes = sorted({e.scene_id for records in splits.values() for e, _ in records})
    else:
        scenes = list_scene_ids(scannet_dir)
    for scene_id in track(scenes, description="importing ScanNet scenes"):
        _import_scene(scannet_dir, scene_id, out / "scans", overwrite, scene_options)
    boxed = {scene_id: load_objects(out / "scans" / scene_id) for scene_id in scenes}
    scene_lists = {}
    for name, records in splits.items():
        kept = [(e, extra) for e, extra in records if e.object_id in boxed[e.scene_id]]
        if len(kept) < len(records):
            log.warning(
                "split %s: dropped %d expression(s) whose target has no box", name, len(records) - len(kept)
            )
        splits[name] = kept
        scene_lists[name] = sorted({e.scene_id for e, _ in kept})
    if not splits:
        splits["all"], scene_lists["all"] = [], scenes
    (out / "splits").mkdir(parents=True, exist_ok=True)
    for name, records in splits.items():
        save_expressions(
            out / "annotations" / f"{name}.json", [e for e, _ in records], [x for _, x in records]
        )
        (out / "splits" / f"{name}.txt").write_text("".join(f"{s}\n" for s in scene_lists[name]))
    return scene_lists


def _import_scene(scannet_dir: Path, scene_id: str, scans_out: Path, overwrite: bool, options: dict) -> None:
    """Writes one scene folder atomically (a partial folder is renamed into place when complete)."""
    target = scans_out / scene_id
    if target.exists() and not overwrite:
        log.info("%s: already imported in %s, kept", scene_id, target)
        return
    scene = load_scannet_scene(scannet_dir, scene_id, **options)
    partial = scans_out / f".{scene_id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    write_scene(scene, partial)
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)


@dataclass
class ImportScanNetCommand:
    """Convert ScanNet scenes (+ ScanRefer / ReferIt3D annotations) into a LIFT-GS dataset root."""

    scannet_dir: Path
    """ScanNet root holding ``scans/<scene_id>/`` (or the ``scans`` folder itself)."""
    out: Path
    """Dataset root to write: ``scans/``, ``annotations/<split>.json``, ``splits/<split>.txt``."""
    scanrefer: tuple[Path, ...] = ()
    """ScanRefer JSON files, e.g. ScanRefer_filtered_train.json ScanRefer_filtered_val.json."""
    referit3d: tuple[Path, ...] = ()
    """ReferIt3D CSV files, e.g. sr3d_train.csv nr3d_test.csv."""
    scene_ids: tuple[str, ...] = ()
    """Scenes to import (default: those the annotations name, or all scenes without annotations)."""
    frames_subdir: str = ""
    """Sub-folder of each scene holding the SensReader export (color/, depth/, pose/, intrinsic/)."""
    frame_stride: int = 20
    """Keep every n-th frame."""
    voxel_size: float = 0.04
    """Voxel edge (metres) of the lifted point cloud."""
    image_scale: float = 1.0
    """Resize factor for colour images (e.g. 0.5 turns 1296x968 into 648x484)."""
    overwrite: bool = False
    """Re-import scenes already present in ``out``."""

    def main(self) -> None:
        try:
            scene_lists = import_scannet(
                self.scannet_dir,
                self.out,
                self.scanrefer,
                self.referit3d,
                self.scene_ids or None,
                self.overwrite,
                frames_subdir=self.frames_subdir,
                frame_stride=self.frame_stride,
                voxel_size=self.voxel_size,
                image_scale=self.image_scale,
            )
        except DatasetError as error:
            raise SystemExit(f"liftgs import-scannet: {error}") from None
        for name, scenes in scene_lists.items():
            print(f"split {name}: {len(scenes)} scene(s) -> {self.out / 'splits' / (name + '.txt')}")
