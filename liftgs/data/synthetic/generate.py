"""Generating the synthetic grounding benchmark: one scene from (seed, index), a dataset root, the CLI.

Each scene depends only on the dataset seed and its index (its random stream is
``numpy.random.default_rng([seed, index])``), so any subset of a dataset can be generated and later
completed with identical results. The split is a function of the index alone (``index % 10``: 0-7
train, 8 val, 9 test). Val and test expressions also use held-out words and sentence shapes
(``vocabulary``, ``phrasing``); test scenes also use held-out room shapes.

Per scene: a layout (``layout``), a camera trajectory (``camera_path``), ray-cast RGB-D and instance
views (``raycast``), the point cloud lifted from those views (``liftgs.data.lifting``), and referring
expressions (``expressions``). A scene is regenerated from its random stream (up to a few times) when its
room has no walkable camera loop or some object is not clearly seen in any view.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from liftgs.atomic import atomic_directory, write_json_atomic, write_text_atomic
from liftgs.data.dataset import GENERATE_FLAGS_KEY, GENERATING_KEY
from liftgs.data.lifting import lift_frames
from liftgs.data.store import DatasetError, read_json, save_expressions, write_scene
from liftgs.data.synthetic.camera_path import camera_path, intrinsics
from liftgs.data.synthetic.expressions import GeneratedExpression, describe_scene
from liftgs.data.synthetic.layout import HELD_OUT_ROOM_SHAPES, ROOM_SHAPES, Layout, sample_layout
from liftgs.data.synthetic.objects import CATEGORIES, COLORS
from liftgs.data.synthetic.phrasing import FRAMES, PREDICATES, SENTENCES
from liftgs.data.synthetic.raycast import SceneRaycaster
from liftgs.data.synthetic.vocabulary import CATEGORY_WORDS, COLOR_WORDS
from liftgs.scene import Frame, Scene, SceneObject

GENERATOR_VERSION = 2
SPLITS = ("train", "val", "test")
DEFAULT_SEED = 0
DEFAULT_NUM_SCENES = 300
_ATTEMPTS = 20


@dataclass(frozen=True)
class SceneOptions:
    """How each scene is rendered and populated (stored in ``meta.json``)."""

    image_width: int = 160
    image_height: int = 120
    num_views: int = 20
    hfov_deg: float = 60.0
    voxel_size: float = 0.04
    """Edge (m) of the voxels the lifted point cloud is averaged in."""
    min_objects: int = 5
    max_objects: int = 12
    min_pixels: int = 30
    """Every object must cover at least this many pixels in some view (else the scene is redrawn)."""

    def __post_init__(self) -> None:
        if min(self.image_width, self.image_height, self.num_views, self.min_objects) < 1:
            raise ValueError(f"image size, num_views and min_objects must be positive: {self}")
        if self.max_objects < self.min_objects or not 10 <= self.hfov_deg <= 150 or self.voxel_size <= 0:
            raise ValueError(f"inconsistent scene options: {self}")


def scene_id(index: int) -> str:
    return f"scan{index:04d}"


def scene_index(scene_id_: str) -> int:
    """The index of ``scanNNNN``; DatasetError for anything else."""
    if not (scene_id_.startswith("scan") and scene_id_[4:].isdigit()):
        raise DatasetError(f"unknown scene id {scene_id_!r}: synthetic scene ids look like scan0000")
    return int(scene_id_[4:])


def split_of(index: int) -> str:
    """Split of a scene index: 8 in 10 train, 1 val, 1 test."""
    return {8: "val", 9: "test"}.get(index % 10, "train")


def room_shapes(split: str) -> tuple[str, ...]:
    """Room shapes a split draws from: the test split adds the held-out shapes."""
    return ROOM_SHAPES if split == "test" else tuple(s for s in ROOM_SHAPES if s not in HELD_OUT_ROOM_SHAPES)


@dataclass
class GeneratedScene:
    scene: Scene
    expressions: list[GeneratedExpression]
    layout: Layout
    info: dict = field(default_factory=dict)  # written to scene_meta.json


def _clearly_seen(frames: list[Frame], num_objects: int, min_pixels: int) -> bool:
    best = np.zeros(num_objects, dtype=np.int64)
    for frame in frames:
        counts = np.bincount(frame.instance.ravel() + 1, minlength=num_objects + 1)[1:]
        best = np.maximum(best, counts)
    return bool((best >= min_pixels).all())


def generate_scene(seed: int, index: int, options: SceneOptions = SceneOptions()) -> GeneratedScene:
    """The scene at ``index`` of the dataset with ``seed`` (deterministic from the two)."""
    rng = np.random.default_rng([seed, index])
    split = split_of(index)
    shapes = room_shapes(split)
    K = intrinsics(options.image_width, options.image_height, options.hfov_deg)
    for _ in range(_ATTEMPTS):
        layout = sample_layout(rng, shapes, (options.min_objects, options.max_objects))
        try:
            poses = camera_path(layout, rng, options.num_views)
        except ValueError:
            continue
        azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.uniform(np.deg2rad(45), np.deg2rad(70))
        light = np.array(
            [np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation), np.sin(elevation)]
        )
        raycaster = SceneRaycaster(layout.parts(), light)
        frames = []
        for i, c2w in enumerate(poses):
            view = raycaster.render(K, c2w, options.image_width, options.image_height)
            frames.append(Frame(str(i), view.image, view.depth, K, c2w, view.instance))
        if not _clearly_seen(frames, len(layout.objects), options.min_pixels):
            continue
        points, colors, point_instance = lift_frames(frames, options.voxel_size)
        if len(np.unique(point_instance[point_instance >= 0])) < len(layout.objects):
            continue
        break
    else:
        raise RuntimeError(f"scene {index} (seed {seed}): no usable layout in {_ATTEMPTS} attempts")

    sid = scene_id(index)
    objects = {
        o.object_id: SceneObject(
            object_id=o.object_id,
            name=o.category,
            box=o.box.copy(),
            attributes={"color": o.color} | ({} if o.support_id is None else {"on": str(o.support_id)}),
        )
        for o in layout.objects
    }
    scene = Scene(sid, points, colors, point_instance, frames, objects)
    expressions = describe_scene(layout, rng, sid, held_out=split != "train")
    info = {
        "scene_id": sid,
        "index": index,
        "split": split,
        "room_shape": layout.room.shape,
        "theme": layout.theme,
        "room_outline": layout.room.polygon.round(4).tolist(),
        "wall_height": round(layout.room.wall_height, 4),
        "light_direction": light.round(6).tolist(),
    }
    return GeneratedScene(scene, expressions, layout, info)


# ------------------------------------------------------------------------------------------- dataset root


def write_generated_scene(root: Path, generated: GeneratedScene) -> None:
    """Writes one scene folder atomically (built in a temporary folder, then renamed into ``scans/``)."""
    with atomic_directory(root / "scans" / generated.scene.scene_id) as folder:
        write_scene(generated.scene, folder)
        save_expressions(
            folder / "expressions.json",
            [g.expression for g in generated.expressions],
        )
        write_json_atomic(folder / "scene_meta.json", generated.info)


def _generate_and_write(root: Path, seed: int, index: int, options: SceneOptions) -> str:
    write_generated_scene(root, generate_scene(seed, index, options))
    return scene_id(index)


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset root was generated with (``meta.json``)."""

    seed: int = DEFAULT_SEED
    num_scenes: int = DEFAULT_NUM_SCENES
    options: SceneOptions = SceneOptions()

    @classmethod
    def read(cls, root: Path) -> DatasetSpec | None:
        path = root / "meta.json"
        if not path.exists():
            return None
        try:
            meta = json.loads(path.read_text())
            return cls(int(meta["seed"]), int(meta["num_scenes"]), SceneOptions(**meta["options"]))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DatasetError(f"{path}: not a synthetic dataset description ({error})") from None

    def flags(self) -> str:
        """The ``liftgs generate`` flags (besides ``--out``) that make, or finish, this dataset."""
        options = self.options
        return (
            f"--num-scenes {self.num_scenes} --seed {self.seed} --image-width {options.image_width} "
            f"--image-height {options.image_height} --num-views {options.num_views} "
            f"--voxel-size {options.voxel_size:g}"
        )


def _requested(spec: DatasetSpec, scene_ids: Sequence[str] | None) -> list[int]:
    if scene_ids is None:
        return list(range(spec.num_scenes))
    indices = [scene_index(s) for s in scene_ids]
    for sid, index in zip(scene_ids, indices, strict=True):
        if index >= spec.num_scenes:
            raise DatasetError(f"unknown scene id {sid!r}: the dataset has {spec.num_scenes} scenes")
    return indices


def requested_scenes(root: Path, scene_ids: Sequence[str] | None = None) -> list[str]:
    """The scene ids asked for (all of the dataset's when None), checked against its size."""
    spec = DatasetSpec.read(root) or DatasetSpec()
    return [scene_id(i) for i in _requested(spec, scene_ids)]


def missing_scenes(root: Path, scene_ids: Sequence[str] | None = None) -> list[str]:
    """Requested scenes (all when None) that have no scene folder under ``root/scans`` yet."""
    return [s for s in requested_scenes(root, scene_ids) if not (root / "scans" / s).is_dir()]


def _dataset_meta(
    spec: DatasetSpec, present: list[int], counts: dict[str, Counter], generating: bool
) -> dict:
    return {
        GENERATE_FLAGS_KEY: spec.flags(),
        "generator": "liftgs.data.synthetic",
        "version": GENERATOR_VERSION,
        "seed": spec.seed,
        "num_scenes": spec.num_scenes,
        "options": asdict(spec.options),
        "complete": len(present) == spec.num_scenes,
        GENERATING_KEY: generating,
        "scenes": {split: counts[split]["scenes"] for split in SPLITS},
        "expressions": {split: counts[split]["expressions"] for split in SPLITS},
        "unique_expressions": {split: counts[split]["unique"] for split in SPLITS},
        "categories": list(CATEGORIES),
        "colors": list(COLORS),
        "held_out": {
            "room_shapes": list(HELD_OUT_ROOM_SHAPES),
            "category_words": {c: list(held) for c, (_, held) in CATEGORY_WORDS.items()},
            "color_words": {c: list(held) for c, (_, held) in COLOR_WORDS.items()},
            "predicates": {kind: list(held) for kind, (_, held) in PREDICATES.items()},
            "frames": [frame[0] for frame in FRAMES[1]],
            "sentences": {kind: list(held) for kind, (_, held) in SENTENCES.items()},
        },
    }


def write_index(root: Path, spec: DatasetSpec, generating: bool = False) -> dict:
    """(Re)writes ``splits/``, ``annotations/`` and ``meta.json`` from the scene folders present.

    ``generating`` marks the root as being generated (``meta.json`` ``"generating": true``) until the run
    that set it finishes: a root a killed run left behind is never read as a dataset
    (``liftgs.data.dataset.check_dataset_finished``).
    """
    present = sorted(i for i in range(spec.num_scenes) if (root / "scans" / scene_id(i)).is_dir())
    counts: dict[str, Counter] = {split: Counter() for split in SPLITS}
    records: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for index in present:
        split = split_of(index)
        scene_records = read_json(root / "scans" / scene_id(index) / "expressions.json")
        records[split] += scene_records
        counts[split].update(
            scenes=1,
            expressions=len(scene_records),
            unique=sum(r["eval_type"] == "unique" for r in scene_records),
        )
    (root / "splits").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        ids = [scene_id(i) for i in present if split_of(i) == split]
        write_text_atomic(root / "splits" / f"{split}.txt", "".join(f"{sid}\n" for sid in ids))
        write_json_atomic(root / "annotations" / f"{split}.json", records[split])
    meta = _dataset_meta(spec, present, counts, generating)
    write_json_atomic(root / "meta.json", meta)
    return meta


def ensure_dataset(
    root: str | Path,
    scene_ids: Sequence[str] | None = None,
    spec: DatasetSpec | None = None,
    workers: int = 1,
    progress: bool = True,
) -> dict:
    """Generates the requested scenes (all when None) that are missing under ``root``, then writes the index.

    Resumable: scene folders appear whole (``atomic_directory``), so a killed run leaves only whole scenes
    and a root marked as being generated; calling this again finishes it. An existing root keeps the seed
    and options it was generated with; asking for another ``spec`` there raises ``DatasetError``. No lifted
    point features are made (``liftgs lift-features`` does that). Returns the contents of ``meta.json``.
    """
    root = Path(root)
    existing = DatasetSpec.read(root)
    if existing is not None and spec is not None and existing != spec:
        raise DatasetError(f"{root / 'meta.json'}: dataset was generated with {existing}, not {spec}")
    spec = existing or spec or DatasetSpec()
    missing = [i for i in _requested(spec, scene_ids) if not (root / "scans" / scene_id(i)).is_dir()]
    (root / "scans").mkdir(parents=True, exist_ok=True)
    if existing is None or missing:  # claim the folder first so an interrupted run resumes with the same spec
        write_index(root, spec, generating=True)
    bar = tqdm(total=len(missing), desc=f"generating {root}", unit="scene", disable=not progress)
    if workers <= 1 or len(missing) <= 1:
        for index in missing:
            _generate_and_write(root, spec.seed, index, spec.options)
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            jobs = [pool.submit(_generate_and_write, root, spec.seed, i, spec.options) for i in missing]
            for job in as_completed(jobs):
                job.result()
                bar.update()
    bar.close()
    return write_index(root, spec)


# --------------------------------------------------------------------------------------------------- CLI


@dataclass
class GenerateCommand:
    """Generate the synthetic indoor-scene grounding benchmark (deterministic for a seed).

    Resumable: rerunning the same command on a root an interrupted run left behind (its meta.json names
    the same seed, size and options) generates only the scenes still missing. Other options there are
    refused unless --overwrite.
    """

    out: Path
    """Dataset root to create (or to finish, when an earlier run with the same options was interrupted)."""
    num_scenes: int = DEFAULT_NUM_SCENES
    """Scenes scan0000... (split by index: 8 in 10 train, 1 val, 1 test)."""
    seed: int = DEFAULT_SEED
    """Dataset seed; scene i depends only on (seed, i)."""
    overwrite: bool = False
    """Replace an existing dataset at --out."""
    workers: int = 2
    """Parallel processes."""
    image_width: int = SceneOptions.image_width
    """Rendered view width in pixels."""
    image_height: int = SceneOptions.image_height
    """Rendered view height in pixels."""
    num_views: int = SceneOptions.num_views
    """Posed RGB-D views per scene."""
    voxel_size: float = SceneOptions.voxel_size
    """Voxel edge (m) of the lifted point cloud."""

    def main(self) -> None:
        out = self.out.expanduser()
        try:
            if self.num_scenes < 1 or self.workers < 1:
                raise ValueError("--num-scenes and --workers must be >= 1")
            options = SceneOptions(
                image_width=self.image_width,
                image_height=self.image_height,
                num_views=self.num_views,
                voxel_size=self.voxel_size,
            )
            spec = DatasetSpec(self.seed, self.num_scenes, options)
            self._prepare(out, spec)
            meta = ensure_dataset(out, spec=spec, workers=self.workers)
        except (ValueError, OSError) as error:  # DatasetError is a ValueError
            raise SystemExit(f"liftgs generate: {error}") from None
        summary = ", ".join(
            f"{s}: {meta['scenes'][s]} scenes / {meta['expressions'][s]} expressions" for s in SPLITS
        )
        print(f"wrote {out} ({summary})")

    def _prepare(self, out: Path, spec: DatasetSpec) -> None:
        """Empties ``out`` for --overwrite, or checks that the dataset there is this one (then it resumes)."""
        if out.exists() and not out.is_dir():
            raise ValueError(f"{out} is a file, not a folder")
        if not (out.exists() and any(out.iterdir())):
            return
        if not (out / "meta.json").exists():
            raise ValueError(f"{out} is not empty and not a liftgs dataset (no meta.json); not touching it")
        if self.overwrite:
            for name in ("scans", "annotations", "splits"):
                shutil.rmtree(out / name, ignore_errors=True)
            (out / "meta.json").unlink()
            return
        try:
            existing = DatasetSpec.read(out)
        except DatasetError as error:
            raise ValueError(f"{error}; pass --overwrite to replace the dataset") from None
        if existing != spec:
            raise ValueError(
                f"{out} holds another dataset (`liftgs generate --out {out} {existing.flags()}` makes or "
                "finishes it); pass "
                "--overwrite to replace it"
            )
        present = spec.num_scenes - len(missing_scenes(out))
        if present < spec.num_scenes:
            print(f"liftgs generate: resuming {out}: {present} of {spec.num_scenes} scenes already there")


__all__ = [
    "DatasetSpec",
    "GenerateCommand",
    "SceneOptions",
    "ensure_dataset",
    "generate_scene",
    "missing_scenes",
    "split_of",
]
