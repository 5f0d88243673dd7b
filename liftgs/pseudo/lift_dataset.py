"""Lifted per-point features for a whole dataset: ``liftgs lift-features``.

``lift_dataset`` lifts 2D segment embeddings onto every scene's points (``liftgs.pseudo.lift``) and writes
``lifted_features.npz`` beside each cloud (``liftgs.data.point_features``). The embeddings come from

- ``stored`` pseudo-labels, ``ROOT/scans/<scene>/<folder>/`` (``liftgs pseudo-label``), or
- the embedded benchmark's ``stand-in`` labeller (instance masks + name embeddings + noise at
  ``DEFAULT_NOISE``), run in memory on each frame without storing labels.

``auto`` takes the stored labels when any scene has the folder, else the stand-in on the embedded benchmark
(``ROOT/meta.json`` from ``liftgs generate``). The stand-in lifts only the ``train`` split unless ``split``
says otherwise: on the benchmark, val and test scenes keep to xyz + rgb, and a score measured with lifted
features on them must say so.

The run is resumable: a scene whose ``lifted_features.npz`` reads whole, one row per point, is skipped
unless ``overwrite``; an unreadable or mis-sized one is redone. A scene whose frames have no stored labels
is counted and left without features; a scene with an unreadable label file is counted, named in one
warning line and left without features (``liftgs pseudo-label`` redoes unreadable files; then rerun this
command).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from liftgs.atomic import is_temporary
from liftgs.data.point_features import LiftedFeaturesError, save_lifted_features
from liftgs.data.store import DatasetError, load_scene
from liftgs.pseudo.command import is_synthetic_dataset
from liftgs.pseudo.labeller import FrameInput, Labeller
from liftgs.pseudo.lift import DEFAULT_DEPTH_TOLERANCE, DEFAULT_DIM, lift_scene
from liftgs.pseudo.noise import NoiseConfig
from liftgs.pseudo.segments import (
    DEFAULT_FOLDER,
    PseudoLabelError,
    PseudoLabels,
    load_pseudo_labels,
    pseudo_dir,
    pseudo_path,
)
from liftgs.scene import Frame, Scene

logger = logging.getLogger(__name__)

DEFAULT_NOISE = 0.5
"""Noise level of the stand-in labels the embedded benchmark's lifted features come from."""
STAND_IN_SPLIT = "train"
"""The split the stand-in lifts when no split is given."""

Source = Literal["auto", "stored", "stand-in"]


@dataclass
class LiftingSummary:
    """Scene counts of one run."""

    lifted: int = 0
    skipped: int = 0
    """Scenes whose lifted features already existed and read whole."""
    unlabelled: int = 0
    """Scenes with no stored pseudo-labels for any frame (left without features)."""
    unreadable: int = 0
    """Scenes with an unreadable pseudo-label file (left without features)."""
    origin: str = ""
    """Where the embeddings came from (the stored folder or the stand-in labeller) and which scenes."""

    def line(self) -> str:
        line = (
            f"lift-features ({self.origin}): {self.lifted} scenes lifted, {self.skipped} skipped "
            f"(already done), {self.unlabelled} without pseudo-labels, {self.unreadable} with unreadable "
            "pseudo-labels"
        )
        if self.unreadable:
            line += " (run `liftgs pseudo-label` with the same options to redo them, then this command)"
        return line


class _UnreadableLabels(Exception):
    """A stored pseudo-label file of the scene cannot be read (the message names it)."""


def _scene_ids(root: Path, split: str | None) -> list[str]:
    scans = root / "scans"
    if not scans.is_dir():
        raise DatasetError(f"{scans}: not found (is {root} a dataset root?)")
    if split is None:
        return sorted(path.name for path in scans.iterdir() if path.is_dir() and not is_temporary(path))
    split_path = root / "splits" / f"{split}.txt"
    if not split_path.is_file():
        raise DatasetError(f"{split_path}: split file not found")
    return split_path.read_text().split()


def _lifted_features_fit(scene_dir: Path) -> bool:
    """Whether the scene has lifted features that read whole and have one row per point of its cloud (what
    a resumable run may skip)."""
    try:
        return load_scene(scene_dir, load_frames=False).point_features is not None
    except DatasetError:
        return False


def resolve_source(root: Path, source: Source, folder: str = DEFAULT_FOLDER) -> Literal["stored", "stand-in"]:
    """``auto``: stored labels when any scene has ``folder``, else the stand-in on the embedded benchmark,
    else stored (which then counts every scene as unlabelled)."""
    if source != "auto":
        return source
    scans = root / "scans"
    if scans.is_dir() and any(pseudo_dir(path, folder).is_dir() for path in scans.iterdir()):
        return "stored"
    return "stand-in" if is_synthetic_dataset(root) else "stored"


def _stored_labels(scene_dir: Path, folder: str) -> Callable[[Frame], PseudoLabels | None]:
    """Frame -> its stored labels (None when the frame has none); ``_UnreadableLabels`` for a bad file."""

    def stored(frame: Frame) -> PseudoLabels | None:
        if not pseudo_path(scene_dir, frame.name, folder).is_file():
            return None
        try:
            return load_pseudo_labels(scene_dir, frame.name, folder)
        except PseudoLabelError as error:
            raise _UnreadableLabels(str(error)) from None

    return stored


def _stand_in_labels(scene: Scene, labeller: Labeller) -> Callable[[Frame], PseudoLabels | None]:
    """Frame -> the stand-in labeller's labels of that frame of ``scene`` (None without an instance map)."""
    names = {object_id: obj.name for object_id, obj in scene.objects.items()}

    def label(frame: Frame) -> PseudoLabels | None:
        if frame.instance is None:
            return None
        return labeller.label(FrameInput.from_frame(scene.scene_id, frame, names))

    return label


def stand_in_labeller(noise: float = DEFAULT_NOISE, text_encoder: str = "minilm") -> Labeller:
    """The embedded benchmark's stand-in labeller at noise level ``noise`` (seed 0)."""
    from liftgs.model.text import build_text_encoder
    from liftgs.pseudo.synthetic import SyntheticLabeller

    return SyntheticLabeller(build_text_encoder(text_encoder), NoiseConfig().scaled(noise), 0, text_encoder)


def lift_dataset(
    root: str | Path,
    folder: str = DEFAULT_FOLDER,
    dim: int = DEFAULT_DIM,
    split: str | None = None,
    overwrite: bool = False,
    depth_tolerance: float = DEFAULT_DEPTH_TOLERANCE,
    progress: bool = True,
    source: Source = "stored",
    noise: float = DEFAULT_NOISE,
    text_encoder: str = "minilm",
) -> LiftingSummary:
    """Lifts the 2D labels of ``source`` onto each scene's points (see the module docstring).

    Args:
        folder: the stored pseudo-label folder (``source`` "stored").
        split: only the scenes of ``ROOT/splits/<split>.txt``; None: every scene for stored labels,
            ``STAND_IN_SPLIT`` for the stand-in.
        noise, text_encoder: the stand-in labeller's noise level and text encoder.

    Raises:
        DatasetError: no ``scans`` folder, a missing split, or an unreadable scene.
    """
    root = Path(root)
    resolved = resolve_source(root, source, folder)
    if resolved == "stand-in" and split is None:
        split = STAND_IN_SPLIT
    scene_ids = _scene_ids(root, split)
    labeller = None  # the stand-in, built when a scene needs it (a resumed run may need none)
    origin = (
        f"pseudo-labels in {folder}/"
        if resolved == "stored"
        else f"synthetic stand-in labeller, noise {noise:g}"
    )
    summary = LiftingSummary(origin=f"{origin}; {'every scene' if split is None else f'split {split}'}")
    for scene_id in tqdm(scene_ids, desc="lift-features", unit="scene", disable=not progress):
        scene_dir = root / "scans" / scene_id
        if not overwrite and _lifted_features_fit(scene_dir):
            summary.skipped += 1
            continue
        scene = load_scene(scene_dir, load_point_features=False)
        if resolved == "stored":
            labels = _stored_labels(scene_dir, folder)
        else:
            labeller = labeller or stand_in_labeller(noise, text_encoder)
            labels = _stand_in_labels(scene, labeller)
        try:
            features, meta = lift_scene(scene, labels, dim, depth_tolerance=depth_tolerance)
        except _UnreadableLabels as error:
            logger.warning("%s: left without lifted features: %s", scene_id, error)
            summary.unreadable += 1
            continue
        except LiftedFeaturesError:
            summary.unlabelled += 1
            continue
        save_lifted_features(scene_dir, features, {"source": origin, **meta})
        summary.lifted += 1
    return summary


@dataclass
class LiftFeaturesCommand:
    """Lift 2D segment embeddings onto every scene's points as encoder inputs (lifted_features.npz).

    Resumable: rerunning the command skips scenes whose features read whole and redoes the rest.
    """

    data: Path | None = None
    """Dataset root (ROOT/scans/<scene_id>/...); default: the embedded benchmark's root."""
    source: Source = "auto"
    """stored: pseudo-labels from `liftgs pseudo-label` in --folder; stand-in: the embedded benchmark's
    stand-in labeller in memory (instance masks + name embeddings + --noise); auto: stored when any scene
    has --folder, else stand-in on the embedded benchmark."""
    folder: str = DEFAULT_FOLDER
    """Pseudo-label folder under each scene to lift (stored)."""
    dim: int = DEFAULT_DIM
    """Width of the stored features (a fixed random projection of the embeddings): the encoder's
    extra_channels."""
    split: str | None = None
    """Only the scenes of ROOT/splits/<split>.txt (default: every scene for stored labels, the train split
    for the stand-in)."""
    overwrite: bool = False
    """Relift scenes that already have lifted_features.npz."""
    depth_tolerance: float = DEFAULT_DEPTH_TOLERANCE
    """Metres between a point's depth and the frame's depth for the point to count as seen."""
    noise: float = DEFAULT_NOISE
    """Noise level of the stand-in labels."""
    text_encoder: str = "minilm"
    """Text encoder of the stand-in labeller (see liftgs.model.text.build_text_encoder)."""
    progress: bool = True

    def main(self) -> None:
        if self.dim < 1:
            raise SystemExit("liftgs lift-features: --dim must be >= 1")
        if not (self.depth_tolerance > 0 and self.noise >= 0):
            raise SystemExit("liftgs lift-features: --depth-tolerance must be > 0 and --noise >= 0")
        if self.data is None:
            from liftgs.data import default_dataset_path

            data = default_dataset_path()
        else:
            data = self.data.expanduser()
        try:
            summary = lift_dataset(
                data,
                self.folder,
                self.dim,
                self.split,
                self.overwrite,
                self.depth_tolerance,
                self.progress,
                self.source,
                self.noise,
                self.text_encoder,
            )
        except (DatasetError, LiftedFeaturesError, PseudoLabelError) as error:
            raise SystemExit(f"liftgs lift-features: {error}") from None
        print(summary.line())
        if self.split is None and resolve_source(data, self.source, self.folder) == "stand-in":
            print(
                f"lift-features: the stand-in lifts the {STAND_IN_SPLIT} split only; other scenes keep to "
                "xyz + rgb (--split val or --split test lifts them; a score measured with them must say so)"
            )
