"""``liftgs pseudo-label``: pseudo-labels every frame of a dataset and stores them beside the frames.

Frames are the color images ``ROOT/scans/<scene_id>/color/<frame>.png|.jpg``; labels go to
``ROOT/scans/<scene_id>/<folder>/<frame>.npz`` (format: ``liftgs.pseudo.segments``). The run is

- resumable: a frame whose ``.npz`` exists and reads whole is skipped (writes are atomic, so an interrupted
  frame has none; a damaged file is named in a warning and redone); a folder made by another labeller or
  other settings is refused, or with ``--overwrite``
  emptied and relabelled (rerunning the same command resumes an interrupted overwrite);
- sharded by scene: ``--shard i/n`` takes the scenes whose index in the sorted scene list is ``i`` mod
  ``n``, so ``n`` machines can split a dataset;
- counted: one summary line at the end (frames labelled, of which empty, skipped as already done, and
  unreadable ones, which are left for the next run).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from liftgs.atomic import is_temporary
from liftgs.data.rgbd_io import FrameSkipped
from liftgs.data.store import (
    DatasetError,
    list_frame_names,
    load_objects,
    read_frame,
    read_frame_image,
    read_scene_intrinsics,
)
from liftgs.pseudo.clip import ClipSettings
from liftgs.pseudo.labeller import FrameInput, Labeller, WeightsNotFoundError
from liftgs.pseudo.noise import NoiseConfig
from liftgs.pseudo.sam import SamSettings
from liftgs.pseudo.segments import (
    DEFAULT_FOLDER,
    PseudoLabelError,
    pseudo_dir,
    pseudo_path,
    read_labeller_info,
    read_pseudo_labels,
    save_pseudo_labels,
    write_labeller_info,
)

logger = logging.getLogger(__name__)

Outcome = Literal["labelled", "empty", "skipped", "unreadable"]
"""What happened to one frame."""


@dataclass
class LabellingSummary:
    """Frame counts of one run."""

    labelled: int = 0
    """Frames labelled and written in this run (``empty`` of them without any segment)."""
    empty: int = 0
    skipped: int = 0
    """Frames whose labels already existed and read whole."""
    unreadable: int = 0
    """Frames whose image (or instance mask) could not be read: nothing written, retried next run."""
    scenes: int = 0

    def add(self, outcome: Outcome) -> None:
        """Counts one frame's outcome (an empty frame is labelled too)."""
        self.empty += outcome == "empty"
        counter = "labelled" if outcome == "empty" else outcome
        setattr(self, counter, getattr(self, counter) + 1)

    def line(self) -> str:
        return (
            f"pseudo-label: {self.labelled} frames labelled ({self.empty} empty), {self.skipped} skipped "
            f"(already done), {self.unreadable} unreadable, in {self.scenes} scenes"
        )


def parse_shard(shard: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise ValueError(f"--shard {shard!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {shard!r}: need 0 <= i < n")
    return index, count


def list_scenes(root: Path, split: str | None = None) -> list[str]:
    """Sorted scene ids under ``root/scans`` (only those listed in ``root/splits/<split>.txt`` if given)."""
    scans = root / "scans"
    if not scans.is_dir():
        raise DatasetError(f"{scans}: no scans folder (expected ROOT/scans/<scene_id>/color/...)")
    scene_ids = sorted(p.name for p in scans.iterdir() if (p / "color").is_dir() and not is_temporary(p))
    if split is not None:
        split_path = root / "splits" / f"{split}.txt"
        if not split_path.is_file():
            raise DatasetError(f"{split_path}: split file not found")
        wanted = set(split_path.read_text().split())
        scene_ids = [s for s in scene_ids if s in wanted]
    return scene_ids


def read_frame_input(
    scene_dir: Path,
    name: str,
    object_names: dict[int, str] | None,
    intrinsics: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> FrameInput | None:
    """The frame's image, or None if unreadable; with ``object_names`` the whole frame (instance mask,
    depth, pose; ``intrinsics`` = ``read_scene_intrinsics(scene_dir)``, read here when None)."""
    try:
        if object_names is None:
            return FrameInput(scene_dir.name, name, read_frame_image(scene_dir, name))
        frame = read_frame(scene_dir, name, intrinsics)
    except FrameSkipped:
        return None
    return FrameInput.from_frame(scene_dir.name, frame, object_names)


def _check_folder(scene_dir: Path, folder: str, info: dict, overwrite: bool) -> None:
    """Keeps one labeller's labels per folder: refuses another's, or (``overwrite``) deletes the old ones
    before recording ``info``, so even an interrupted overwrite never leaves a mixed folder."""
    existing = read_labeller_info(scene_dir, folder)
    if existing is None or existing == info:
        if existing is None:
            write_labeller_info(scene_dir, info, folder)
        return
    if not overwrite:
        changed = sorted(k for k in existing.keys() | info.keys() if existing.get(k) != info.get(k))
        raise PseudoLabelError(
            f"{scene_dir / folder}: made by another labeller or settings (differs in {', '.join(changed)}); "
            "pass --overwrite to redo it or --folder NAME to keep both"
        )
    for old in pseudo_dir(scene_dir, folder).glob("*.npz"):
        old.unlink()
    write_labeller_info(scene_dir, info, folder)


def _label_frame(
    scene_dir: Path,
    name: str,
    labeller: Labeller,
    object_names: dict[int, str] | None,
    folder: str,
    intrinsics: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> Outcome:
    """Labels one frame unless it is done; returns what happened."""
    path = pseudo_path(scene_dir, name, folder)
    if path.exists():
        try:
            read_pseudo_labels(path)
            return "skipped"
        except PseudoLabelError as error:
            logger.warning("%s; labelling it again", error)
    frame = read_frame_input(scene_dir, name, object_names, intrinsics)
    if frame is None:
        logger.warning("%s: frame %s unreadable, left unlabelled", scene_dir, name)
        return "unreadable"
    labels = labeller.label(frame)
    labels.validate(f"labeller output for {scene_dir.name}/{name}", labeller.embedding_dim)
    save_pseudo_labels(path, labels)
    return "labelled" if labels.num_segments else "empty"


def label_dataset(
    root: str | Path,
    labeller: Labeller,
    shard: tuple[int, int] = (0, 1),
    folder: str = DEFAULT_FOLDER,
    overwrite: bool = False,
    split: str | None = None,
    progress: bool = True,
) -> LabellingSummary:
    """Labels the frames of this shard's scenes (see the module docstring); returns the counts.

    Raises:
        DatasetError: no ``scans`` folder, a missing split, or a scene without its ``objects.json`` /
            ``instance`` folder / intrinsics when the labeller needs instance masks (and the geometry).
        PseudoLabelError: the folder was made differently (without ``overwrite``) or the labeller returned
            labels of the wrong shape or embedding width.
    """
    root = Path(root)
    index, count = shard
    scene_ids = list_scenes(root, split)[index::count]
    frames = {scene_id: list_frame_names(root / "scans" / scene_id, ["color"]) for scene_id in scene_ids}
    info = labeller.info()
    summary = LabellingSummary(scenes=len(scene_ids))
    bar = tqdm(total=sum(map(len, frames.values())), desc="pseudo-label", unit="frame", disable=not progress)
    for scene_id, names in frames.items():
        scene_dir = root / "scans" / scene_id
        _check_folder(scene_dir, folder, info, overwrite)
        object_names, intrinsics = None, None
        if labeller.needs_instances:
            if not (scene_dir / "instance").is_dir():
                raise DatasetError(f"{scene_dir / 'instance'}: this labeller needs 2D instance masks")
            object_names = {i: obj.name for i, obj in load_objects(scene_dir).items()}
            intrinsics = read_scene_intrinsics(scene_dir)
        for name in names:
            summary.add(_label_frame(scene_dir, name, labeller, object_names, folder, intrinsics))
            bar.update()
    bar.close()
    return summary


SYNTHETIC_GENERATOR = "liftgs.data.synthetic"
"""The ``generator`` that ``ROOT/meta.json`` of the embedded synthetic benchmark names."""


def is_synthetic_dataset(root: Path) -> bool:
    """True when ``root`` was written by the embedded benchmark's generator (``liftgs generate``)."""
    try:
        return json.loads((root / "meta.json").read_text()).get("generator") == SYNTHETIC_GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


def _resolve_device(device: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


@dataclass
class PseudoLabelCommand:
    """Pseudo-label a dataset's frames: 2D segments + one embedding each, stored beside the frames."""

    data: Path
    """Dataset root (holds scans/<scene_id>/color/<frame>.png)."""
    labeller: Literal["auto", "synthetic", "sam"] = "auto"
    """sam: SAM masks + CLIP embeddings (needs --sam and --clip); synthetic: the dataset's instance masks +
    text embeddings of object names + noise (needs instance masks); auto: sam when --sam is given,
    synthetic on the embedded benchmark (ROOT/meta.json from `liftgs generate`), else an error."""
    sam: str | None = None
    """SAM weights: a save_pretrained folder or a hub name in the local HF cache (facebook/sam-vit-huge)."""
    clip: str | None = None
    """CLIP weights MODEL:PRETRAINED: a cached open_clip tag (ViT-H-14:laion2b_s32b_b79k) or a local file."""
    text_encoder: str = "minilm"
    """Text encoder spec of the synthetic labeller (see liftgs.model.text.build_text_encoder)."""
    noise: float = 0.0
    """Synthetic labeller noise level: scales every probability of --noise-model (0 = clean labels)."""
    noise_model: NoiseConfig = field(default_factory=NoiseConfig)
    seed: int = 0
    """Seed of the synthetic labeller's noise (per frame: seed, scene id, frame name)."""
    shard: str = "0/1"
    """i/n: label only the scenes whose sorted index is i mod n."""
    split: str | None = None
    """Only the scenes of ROOT/splits/<split>.txt."""
    folder: str = DEFAULT_FOLDER
    """Folder under each scene for the labels (several labellings can live side by side)."""
    overwrite: bool = False
    """Replace labels made by another labeller or settings (their files are deleted first)."""
    device: str = "auto"
    """Device of SAM and CLIP: auto (cuda when available), cpu, cuda, cuda:1, ..."""
    min_area: int = 100
    """SAM: segments with fewer visible pixels are dropped."""
    sam_settings: SamSettings = field(default_factory=SamSettings)
    clip_settings: ClipSettings = field(default_factory=ClipSettings)
    progress: bool = True

    def build_labeller(self) -> Labeller:
        kind = self.labeller
        if kind == "auto" and self.sam is None and not is_synthetic_dataset(Path(self.data)):
            raise ValueError(
                f"--labeller auto: {self.data} is not the synthetic benchmark; give --sam and --clip for "
                "SAM + CLIP, or --labeller synthetic to use its 2D instance masks as segments"
            )
        if kind == "auto":
            kind = "sam" if self.sam is not None else "synthetic"
        if kind == "sam":
            from liftgs.pseudo.clip import ClipSegmentEmbedder
            from liftgs.pseudo.foundation import FoundationLabeller
            from liftgs.pseudo.sam import SamMaskGenerator

            if self.sam is None or self.clip is None:
                raise ValueError("--labeller sam needs --sam PATH_OR_NAME and --clip MODEL:PRETRAINED")
            device = _resolve_device(self.device)
            return FoundationLabeller(
                SamMaskGenerator.load(self.sam, self.sam_settings, device),
                ClipSegmentEmbedder.load(self.clip, self.clip_settings, device),
                self.min_area,
                sources={"sam": self.sam, "clip": self.clip},
            )
        from liftgs.model.text import build_text_encoder
        from liftgs.pseudo.synthetic import SyntheticLabeller

        return SyntheticLabeller(
            build_text_encoder(self.text_encoder), self.noise_model.scaled(self.noise), self.seed,
            self.text_encoder,
        )  # fmt: skip

    def main(self) -> None:
        try:
            shard = parse_shard(self.shard)
            labeller = self.build_labeller()
            summary = label_dataset(
                self.data, labeller, shard, self.folder, self.overwrite, self.split, self.progress
            )
        except (WeightsNotFoundError, PseudoLabelError, DatasetError, ValueError) as error:
            raise SystemExit(f"liftgs pseudo-label: {error}") from None
        print(summary.line())
