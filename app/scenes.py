"""Where the viewer's scenes come from: a dataset root on disk, or the embedded synthetic benchmark.

Both sources offer ``scene_ids`` and ``load(scene_id) -> Scene`` (with frames, for the camera frustums).
The embedded benchmark lists all its scenes and generates each one the first time it is opened.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from liftgs.atomic import is_temporary
from liftgs.data.store import load_scene
from liftgs.scene import Scene


class SceneSource(Protocol):
    @property
    def scene_ids(self) -> list[str]: ...

    def load(self, scene_id: str) -> Scene: ...


@dataclass
class DatasetDirectory:
    """Every scene folder under ``root/scans`` (any dataset in the project's format); hidden folders, among
    them the temporary ``.<scene>.*.tmp`` ones an interrupted write leaves (``liftgs.atomic``), are no
    scenes."""

    root: Path

    @property
    def scene_ids(self) -> list[str]:
        scans = self.root / "scans"
        if not scans.is_dir():
            return []
        return sorted(path.name for path in scans.iterdir() if path.is_dir() and is_scene_folder(path))

    def load(self, scene_id: str) -> Scene:
        return load_scene(self.root / "scans" / scene_id, load_frames=True)


@dataclass
class EmbeddedBenchmark:
    """The default synthetic benchmark (``liftgs.data.default_dataset_root``): scenes generated on demand."""

    root: Path
    num_scenes: int
    _generate_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls) -> EmbeddedBenchmark:
        from liftgs.data import default_dataset_path
        from liftgs.data.synthetic.generate import DatasetSpec

        root = default_dataset_path()
        spec = DatasetSpec.read(root) or DatasetSpec()
        return cls(root, spec.num_scenes)

    @property
    def scene_ids(self) -> list[str]:
        from liftgs.data.synthetic.generate import scene_id

        return [scene_id(index) for index in range(self.num_scenes)]

    def load(self, scene_id: str) -> Scene:
        """The scene, generated first if missing (a few seconds, with a progress bar on the console)."""
        from liftgs.data import default_dataset_root

        with self._generate_lock:
            root = default_dataset_root(generate_if_missing=True, scene_ids=[scene_id])
        return load_scene(root / "scans" / scene_id, load_frames=True)


def is_scene_folder(path: Path) -> bool:
    """Whether a folder under ``scans/`` may be a scene: not hidden and not a temporary write."""
    return not path.name.startswith(".") and not is_temporary(path)


def describe_ids(scene_ids: list[str], limit: int = 12) -> str:
    """``"a, b, c"``, or for long lists ``"a, b, c, d, e, ..., y, z (N scenes)"``."""
    if len(scene_ids) <= limit:
        return ", ".join(scene_ids) or "none"
    return f"{', '.join(scene_ids[:5])}, ..., {', '.join(scene_ids[-2:])} ({len(scene_ids)} scenes)"
