"""A grounding dataset split: its scenes (loaded lazily, LRU-cached) and its referring expressions.

Reads a dataset root in the layout of ``liftgs.data.store`` (the synthetic benchmark and imported ScanNet
share it)::

    ROOT/splits/<split>.txt          one scene id per line
    ROOT/annotations/<split>.json    ScanRefer-style records (+ eval_type)
    ROOT/scans/<scene_id>/...        one scene folder per scene

Construction checks the annotations against the split and each scene's ``objects.json`` (cheap), so a
record naming a scene outside the split or a missing object fails early with a one-line ``DatasetError``
naming the file; so do an empty split and a root whose ``liftgs generate`` did not finish.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from liftgs.data.store import DatasetError, load_expressions, load_objects, load_scene, read_json
from liftgs.scene import Expression, Scene, SceneObject

GENERATING_KEY = "generating"
"""``ROOT/meta.json`` key that is true while ``liftgs generate`` is writing the root (and after a killed
run, until the same command finishes it)."""
GENERATE_FLAGS_KEY = "generate_flags"
"""``ROOT/meta.json`` key holding the ``liftgs generate`` flags (besides ``--out``) that make the root."""


def generation_unfinished(root: Path) -> bool:
    """Whether ``ROOT/meta.json`` marks the root as being generated (or left so by a killed run)."""
    meta_path = Path(root) / "meta.json"
    if not meta_path.is_file():
        return False
    meta = read_json(meta_path)
    return isinstance(meta, dict) and bool(meta.get(GENERATING_KEY))


def check_dataset_finished(root: Path) -> None:
    """Raises ``DatasetError`` when ``root`` is a generated root whose generation did not finish."""
    if generation_unfinished(root):
        flags = read_json(root / "meta.json").get(GENERATE_FLAGS_KEY, "")
        raise DatasetError(
            f"{root}: `liftgs generate` has not finished writing this dataset (interrupted?); run "
            f"`{f'liftgs generate --out {root} {flags}'.strip()}` to finish it"
        )


def check_split(root: Path, split: str) -> list[str]:
    """The scene ids of ``ROOT/splits/<split>.txt``; ``DatasetError`` when the root is unfinished, or the
    split file is missing, unreadable or lists no scene."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder" if root.exists() else f"{root}: dataset root not found")
    check_dataset_finished(root)
    split_path = root / "splits" / f"{split}.txt"
    try:
        scene_ids = [line.strip() for line in split_path.read_text().splitlines() if line.strip()]
    except OSError:
        raise DatasetError(f"{split_path}: split file not found (is {root} a dataset root?)") from None
    if not scene_ids:
        raise DatasetError(f"{split_path}: the {split!r} split lists no scene")
    return scene_ids


class GroundingDataset:
    """One split of a dataset root.

    Args:
        root: dataset root.
        split: split name ("train", "val", "test", ...): reads ``splits/<split>.txt`` and
            ``annotations/<split>.json``.
        load_frames: whether ``scene()`` reads the posed frames (False: point cloud and objects only).
        cache_size: scenes kept in memory by ``scene()``.

    Attributes:
        scene_ids: the split's scenes, in file order.
        expressions: every expression of the split, in file order.
    """

    def __init__(self, root: str | Path, split: str, load_frames: bool = True, cache_size: int = 8) -> None:
        self.root = Path(root)
        self.split = split
        self.load_frames = load_frames
        split_path = self.root / "splits" / f"{split}.txt"
        self.scene_ids = check_split(self.root, split)
        annotations = self.root / "annotations" / f"{split}.json"
        self.expressions: list[Expression] = load_expressions(annotations)
        self._objects = {sid: load_objects(self.scene_dir(sid)) for sid in self.scene_ids}
        self._by_scene: dict[str, list[Expression]] = defaultdict(list)
        for index, expr in enumerate(self.expressions):
            if expr.scene_id not in self._objects:
                raise DatasetError(
                    f"{annotations}: record {index} names scene {expr.scene_id!r}, not in {split_path}"
                )
            if expr.object_id not in self._objects[expr.scene_id]:
                raise DatasetError(
                    f"{annotations}: record {index} names object {expr.object_id} missing from "
                    f"{self.scene_dir(expr.scene_id) / 'objects.json'}"
                )
            self._by_scene[expr.scene_id].append(expr)
        self._load = lru_cache(maxsize=cache_size)(self._load_scene)

    def scene_dir(self, scene_id: str) -> Path:
        path = self.root / "scans" / scene_id
        if not path.is_dir():
            raise DatasetError(f"{path}: scene folder not found")
        return path

    def _check(self, scene_id: str) -> None:
        if scene_id not in self._objects:
            raise DatasetError(f"unknown scene id {scene_id!r} for split {self.split!r} of {self.root}")

    def scene(self, scene_id: str) -> Scene:
        """The scene (LRU-cached); ``DatasetError`` for scene ids outside the split."""
        self._check(scene_id)
        return self._load(scene_id)

    def _load_scene(self, scene_id: str) -> Scene:
        return load_scene(self.scene_dir(scene_id), load_frames=self.load_frames)

    def objects(self, scene_id: str) -> dict[int, SceneObject]:
        """The scene's objects without loading the scene."""
        self._check(scene_id)
        return self._objects[scene_id]

    def expressions_for(self, scene_id: str) -> list[Expression]:
        self._check(scene_id)
        return list(self._by_scene[scene_id])

    def __len__(self) -> int:
        return len(self.expressions)

    def __getitem__(self, index: int) -> Expression:
        return self.expressions[index]
