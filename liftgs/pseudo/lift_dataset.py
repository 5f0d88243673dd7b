"""Lifted per-point features for a whole dataset: ``liftgs lift-features`` and the embedded benchmark's.

``lift_dataset`` lifts the pseudo-labels stored in ``ROOT/scans/<scene>/<folder>/`` (``liftgs pseudo-label``)
onto every scene's points (``liftgs.pseudo.lift``). It is resumable: a scene that already has
``lifted_features.npz`` is skipped unless ``overwrite``; a scene whose frames have no stored labels is
counted and left without features (a model that reads them then refuses the scene with a one-line error).

``ensure_lifted_features`` gives the embedded synthetic benchmark its features without storing
pseudo-labels: the stand-in labeller (instance masks + name embeddings + noise at ``DEFAULT_NOISE``) labels
each frame in memory. ``liftgs.data.default_dataset_root`` calls it, so the default dataset always has them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from liftgs.data.store import DatasetError, load_scene
from liftgs.pseudo.labeller import FrameInput
from liftgs.pseudo.lift import (
    DEFAULT_DEPTH_TOLERANCE,
    DEFAULT_DIM,
    LIFTED_FILE,
    LiftedFeaturesError,
    lift_scene,
    save_lifted_features,
)
from liftgs.pseudo.noise import NoiseConfig
from liftgs.pseudo.segments import DEFAULT_FOLDER, PseudoLabelError, load_pseudo_labels, pseudo_path
from liftgs.scene import Frame, Scene

logger = logging.getLogger(__name__)

DEFAULT_NOISE = 0.5
"""Noise level of the stand-in labels the embedded benchmark's lifted features come from."""


@dataclass
class LiftingSummary:
    """Scene counts of one run."""

    lifted: int = 0
    skipped: int = 0
    """Scenes that already had lifted features."""
    unlabelled: int = 0
    """Scenes with no stored pseudo-labels for any frame (left without features)."""

    def line(self) -> str:
        return (
            f"lift-features: {self.lifted} scenes lifted, {self.skipped} skipped (already done), "
            f"{self.unlabelled} without pseudo-labels"
        )


def _scene_ids(root: Path, split: str | None) -> list[str]:
    scans = root / "scans"
    if not scans.is_dir():
        raise DatasetError(f"{scans}: not found (is {root} a dataset root?)")
    if split is None:
        return sorted(path.name for path in scans.iterdir() if path.is_dir())
    split_path = root / "splits" / f"{split}.txt"
    if not split_path.is_file():
        raise DatasetError(f"{split_path}: split file not found")
    return split_path.read_text().split()


def lift_dataset(
    root: str | Path,
    folder: str = DEFAULT_FOLDER,
    dim: int = DEFAULT_DIM,
    split: str | None = None,
    overwrite: bool = False,
    depth_tolerance: float = DEFAULT_DEPTH_TOLERANCE,
    progress: bool = True,
) -> LiftingSummary:
    """Lifts the stored pseudo-labels of ``folder`` onto each scene's points (see the module docstring)."""
    root = Path(root)
    summary = LiftingSummary()
    for scene_id in tqdm(_scene_ids(root, split), desc="lift-features", unit="scene", disable=not progress):
        scene_dir = root / "scans" / scene_id
        if (scene_dir / LIFTED_FILE).exists() and not overwrite:
            summary.skipped += 1
            continue

        def stored(frame: Frame, scene_dir: Path = scene_dir):
            if not pseudo_path(scene_dir, frame.name, folder).is_file():
                return None
            try:
                return load_pseudo_labels(scene_dir, frame.name, folder)
            except PseudoLabelError as error:
                logger.warning("%s", error)
                return None

        scene = load_scene(scene_dir, load_point_features=False)
        try:
            features, meta = lift_scene(scene, stored, dim, depth_tolerance=depth_tolerance)
        except LiftedFeaturesError:
            summary.unlabelled += 1
            continue
        save_lifted_features(scene_dir, features, {"source": f"pseudo-labels in {folder}/", **meta})
        summary.lifted += 1
    return summary


def _stand_in_labels(scene: Scene, labeller):
    """Frame -> the stand-in labeller's labels of that frame of ``scene`` (None without an instance map)."""
    names = {object_id: obj.name for object_id, obj in scene.objects.items()}

    def label(frame: Frame):
        if frame.instance is None:
            return None
        return labeller.label(FrameInput(scene.scene_id, frame.name, frame.image, frame.instance, names))

    return label


def ensure_lifted_features(
    root: str | Path,
    scene_ids: Sequence[str],
    noise: float = DEFAULT_NOISE,
    dim: int = DEFAULT_DIM,
    text_encoder: str = "minilm",
    progress: bool = True,
) -> int:
    """Gives the synthetic benchmark's scenes without lifted features the stand-in labeller's; returns how
    many scenes were lifted."""
    root = Path(root)
    todo = [s for s in scene_ids if not (root / "scans" / s / LIFTED_FILE).exists()]
    if not todo:
        return 0
    from liftgs.model.text import build_text_encoder
    from liftgs.pseudo.synthetic import SyntheticLabeller

    labeller = SyntheticLabeller(
        build_text_encoder(text_encoder), NoiseConfig().scaled(noise), 0, text_encoder
    )
    source = f"synthetic stand-in labeller, noise {noise:g}"
    for scene_id in tqdm(todo, desc="lifting stand-in features", unit="scene", disable=not progress):
        scene_dir = root / "scans" / scene_id
        scene = load_scene(scene_dir, load_point_features=False)
        features, meta = lift_scene(scene, _stand_in_labels(scene, labeller), dim)
        save_lifted_features(scene_dir, features, {"source": source, **meta})
    return len(todo)


@dataclass
class LiftFeaturesCommand:
    """Lift stored 2D pseudo-labels (`liftgs pseudo-label`) onto every scene's points as encoder inputs."""

    data: Path
    """Dataset root (ROOT/scans/<scene_id>/...)."""
    folder: str = DEFAULT_FOLDER
    """Pseudo-label folder under each scene to lift."""
    dim: int = DEFAULT_DIM
    """Width of the stored features (a fixed random projection of the embeddings): the encoder's
    extra_channels."""
    split: str | None = None
    """Only the scenes of ROOT/splits/<split>.txt."""
    overwrite: bool = False
    """Relift scenes that already have lifted_features.npz."""
    depth_tolerance: float = DEFAULT_DEPTH_TOLERANCE
    """Metres between a point's depth and the frame's depth for the point to count as seen."""
    progress: bool = True

    def main(self) -> None:
        if self.dim < 1:
            raise SystemExit("liftgs lift-features: --dim must be >= 1")
        try:
            summary = lift_dataset(
                self.data,
                self.folder,
                self.dim,
                self.split,
                self.overwrite,
                self.depth_tolerance,
                self.progress,
            )
        except (DatasetError, LiftedFeaturesError) as error:
            raise SystemExit(f"liftgs lift-features: {error}") from None
        print(summary.line())
