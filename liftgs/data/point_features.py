"""The on-disk file of a scene's lifted per-point features (numpy only; lifting itself is ``liftgs.pseudo``).

Beside the scene's point cloud::

    <scene_dir>/lifted_features.npz
        features  [P, C] float16  one row per point of <scene_id>_points.ply, in file order
        meta      JSON string     {"format": 1, "source": ..., "embedding_dim": D, "dim": C,
                                   "projection_seed": s, ...}

The features are ``D``-d embeddings narrowed to ``C`` by the fixed random projection
``liftgs.model.projection.feature_projection(D, C, s)``. Only ``liftgs lift-features`` makes the file;
reading the dataset never does.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from liftgs.atomic import write_bytes_atomic
from liftgs.scene import PointFeatureSpace

LIFTED_FILE = "lifted_features.npz"
"""File name of a scene's lifted per-point features (in the scene folder)."""
FORMAT_VERSION = 1

_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)
"""What ``np.load`` of a truncated, empty or foreign ``.npz`` raises."""


class LiftedFeaturesError(ValueError):
    """Lifted features are missing, malformed or of the wrong width; the message is one line."""


def lifted_path(scene_dir: str | Path) -> Path:
    """Where the lifted features of the scene in ``scene_dir`` live."""
    return Path(scene_dir) / LIFTED_FILE


def save_lifted_features(scene_dir: str | Path, features: np.ndarray, meta: dict) -> Path:
    """Writes ``features`` [P, C] (float16) and ``meta`` atomically to ``<scene_dir>/lifted_features.npz``."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        features=np.asarray(features, dtype=np.float16),
        meta=np.array(json.dumps({"format": FORMAT_VERSION, **meta}, allow_nan=False)),
    )
    path = lifted_path(scene_dir)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def _read(path: Path) -> tuple[np.ndarray, dict]:
    """(features [P, C] float32, meta) of a lifted-features file; ``LiftedFeaturesError`` when unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            features = np.asarray(data["features"], dtype=np.float32)
            meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
    except _READ_ERRORS as error:
        raise LiftedFeaturesError(
            f"{path}: unreadable lifted features ({type(error).__name__}: {error}); "
            "run `liftgs lift-features` again to redo it"
        ) from None
    if not isinstance(meta, dict):
        raise LiftedFeaturesError(f"{path}: meta is not a JSON object; run `liftgs lift-features` again")
    if features.ndim != 2 or not np.isfinite(features).all():
        raise LiftedFeaturesError(
            f"{path}: features of shape {list(features.shape)} are not a finite [P, C] array; "
            "run `liftgs lift-features` again to redo it"
        )
    return features, meta


def load_lifted_features(scene_dir: str | Path, num_points: int) -> np.ndarray | None:
    """[P, C] float32 lifted features of the scene, or None when it has none.

    Raises:
        LiftedFeaturesError: the file is unreadable, not finite, or has another number of rows than the
            cloud's ``num_points``.
    """
    path = lifted_path(scene_dir)
    if not path.is_file():
        return None
    features, _ = _read(path)
    if features.shape[0] != num_points:
        raise LiftedFeaturesError(
            f"{path}: features of shape {list(features.shape)} for a cloud of {num_points} points; "
            "run `liftgs lift-features` again to redo it"
        )
    return features


def load_lifted_space(scene_dir: str | Path) -> PointFeatureSpace | None:
    """What the scene's lifted features are projections of (their meta's ``embedding_dim`` and
    ``projection_seed``), or None when the scene has no lifted features or their meta does not say.

    Raises:
        LiftedFeaturesError: the file or its meta is unreadable.
    """
    path = lifted_path(scene_dir)
    if not path.is_file():
        return None
    _, meta = _read(path)
    if "embedding_dim" not in meta or "projection_seed" not in meta:
        return None
    return PointFeatureSpace(int(meta["embedding_dim"]), int(meta["projection_seed"]))
