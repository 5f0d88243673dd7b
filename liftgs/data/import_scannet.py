"""``liftgs import-scannet``: ScanNet scenes and their ScanRefer / ReferIt3D annotations -> a dataset root.

The root is the one ``liftgs.data.dataset.GroundingDataset`` reads (layout in ``liftgs.data.store``):
``scans/<scene_id>/`` per scene (``liftgs.data.scannet.load_scannet_scene`` then ``store.write_scene``),
``annotations/<split>.json`` and ``splits/<split>.txt`` per annotation file.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.progress import track

from liftgs.atomic import atomic_directory, write_text_atomic
from liftgs.data.referit3d import SceneLabels, load_referit3d, load_scanrefer
from liftgs.data.scannet import (
    ScanNetError,
    list_scene_ids,
    load_scannet_scene,
    read_object_labels,
    scans_dir,
)
from liftgs.data.store import DatasetError, load_objects, save_expressions, write_scene
from liftgs.scene import Expression

log = logging.getLogger(__name__)


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
        write_text_atomic(out / "splits" / f"{name}.txt", "".join(f"{s}\n" for s in scene_lists[name]))
    return scene_lists


def _import_scene(scannet_dir: Path, scene_id: str, scans_out: Path, overwrite: bool, options: dict) -> None:
    """Writes one scene folder atomically (a partial folder is renamed into place when complete)."""
    target = scans_out / scene_id
    if target.exists() and not overwrite:
        log.info("%s: already imported in %s, kept", scene_id, target)
        return
    scene = load_scannet_scene(scannet_dir, scene_id, **options)
    with atomic_directory(target) as folder:
        write_scene(scene, folder)


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
    """Resize factor for color images (e.g. 0.5 turns 1296x968 into 648x484)."""
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
