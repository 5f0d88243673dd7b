"""Scene sources and the on-disk dataset format.

- ``lifting``: posed RGB-D frames -> voxelised, instance-labelled point cloud.
- ``rgbd_io``: the frame readers every source shares (images, depth, poses, intrinsics) and skip counting.
- ``store``: one scene folder per scene (ScanNet-export-like), expression files, ``DatasetError``.
- ``point_features``: the file of a scene's lifted per-point features (made by ``liftgs lift-features``).
- ``dataset``: ``GroundingDataset(root, split)`` over a dataset root.
- ``synthetic``: the embedded default benchmark generator (``liftgs generate``).
- ``scannet`` + ``referit3d`` (+ ``import_scannet``: ``liftgs import-scannet``), ``nerfstudio_data``: real
  captures and their annotations.

Numpy only: nothing here imports torch, the model or the pseudo-labellers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from liftgs.data.dataset import GroundingDataset, generation_unfinished
from liftgs.data.store import DatasetError

DEFAULT_DATASET_NAME = "synthetic-v2"
"""Folder name of the default benchmark under ``~/.cache/liftgs`` (bumped with the generator's format)."""


def default_dataset_path() -> Path:
    """Where the default benchmark lives: ``$LIFTGS_DATA`` if set, else ``~/.cache/liftgs/synthetic-v2``."""
    configured = os.environ.get("LIFTGS_DATA")
    return (
        Path(configured).expanduser() if configured else Path.home() / ".cache/liftgs" / DEFAULT_DATASET_NAME
    )


def default_dataset_root(generate_if_missing: bool = True, scene_ids: Sequence[str] | None = None) -> Path:
    """The root of the embedded synthetic benchmark, generated on first use.

    Args:
        generate_if_missing: generate the missing scenes (deterministic from the dataset's seed and each
            scene's index) and refresh the split/annotation files (also when a killed run left the root
            marked as being generated); if False, raise ``DatasetError`` when anything asked for is missing.
        scene_ids: only these scenes must exist (e.g. ``["scan0000"]`` for the viewer, seconds); None means
            the whole default set (a few minutes the first time).

    Only scenes are made here: lifted point features are made by ``liftgs lift-features`` alone.
    """
    from liftgs.data.synthetic.generate import ensure_dataset, missing_scenes

    root = default_dataset_path()
    missing = missing_scenes(root, scene_ids)
    if missing and not generate_if_missing:
        raise DatasetError(
            f"{root}: {len(missing)} scene(s) missing (e.g. {missing[0]}); run `liftgs generate --out {root}`"
        )
    if missing or (generate_if_missing and generation_unfinished(root)):
        ensure_dataset(root, scene_ids, workers=min(8, os.cpu_count() or 1))
    return root


__all__ = ["DatasetError", "GroundingDataset", "default_dataset_path", "default_dataset_root"]
