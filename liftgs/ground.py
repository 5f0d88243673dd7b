"""``liftgs ground``: ground one referring expression in one scene, headless.

Prints (and optionally writes) a JSON record::

    {"scene": id, "query": text, "truncated": bool, "score": float, "query_index": int,
     "box": [xmin, ymin, zmin, xmax, ymax, zmax] | null,   # axis-aligned box of the grounded points
     "num_points": n, "point_indices": [...],              # indices into the scene's point cloud
     "tokens": [{"token": str, "score": float}, ...],      # the winning query's token alignment
     "anchor_centres": [[x, y, z], ...] | null,            # where it located the objects the query
                                                           # relates the target to (relational models)
     "threshold": float,
     "below_threshold": bool,                              # no point reached the threshold: the grounded
                                                           # points are those at 0.1 x the largest
                                                           # probability (``answer_voxels``)
     "checkpoint": path}

and, with ``--out-ply``, the grounded Gaussians as a standard 3DGS ``.ply`` (``liftgs.export_ply``). Bad input
(empty query, a threshold outside (0, 1), an output path that names a folder, unknown scene, too few points,
unreadable checkpoint, a checkpoint that reads lifted features the scene lacks) ends with a one-line error;
flags and output paths are checked before the scene and the model are loaded. Files are written atomically.

Without ``--scene``, ``--ply FILE`` or ``--load-config RUN/config.yml`` names a scene file people bring and
the answer goes into ``--out DIR`` (``liftgs.ground_file``).
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from liftgs.atomic import is_temporary, write_json_atomic
from liftgs.data import default_dataset_path
from liftgs.data.store import DatasetError, load_scene
from liftgs.eval.evaluate import predicted_point_mask
from liftgs.eval.metrics import points_box
from liftgs.export_ply import write_gaussians_ply
from liftgs.model.grounded_mask import EMPTY_FALLBACK
from liftgs.model.loading import ModelLoadError, load_liftgs
from liftgs.model.types import Gaussians, Prediction
from liftgs.scene import Scene
from liftgs.validate import check_output_file, check_probability


def validate_query(query: str) -> str:
    """The query with surrounding whitespace stripped; ``ValueError`` if nothing is left."""
    text = " ".join(query.split())
    if not text:
        raise ValueError("--query is empty: give a referring expression such as 'the red chair by the table'")
    return text


def load_ground_scene(scene_id: str, data: Path | None) -> Scene:
    """The point cloud and objects of ``scene_id`` (no frames) from ``data`` or the default benchmark."""
    if data is None:
        from liftgs.data import default_dataset_root

        data = default_dataset_root(generate_if_missing=True, scene_ids=[scene_id])
    scans = Path(data).expanduser() / "scans"
    if not (scans / scene_id).is_dir():
        known = (
            sorted(p.name for p in scans.iterdir() if p.is_dir() and not is_temporary(p))
            if scans.is_dir()
            else []
        )
        hint = f" (known: {', '.join(known[:5])}{', ...' if len(known) > 5 else ''})" if known else ""
        raise DatasetError(f"unknown scene id {scene_id!r} in {scans}{hint}")
    return load_scene(scans / scene_id, load_frames=False)


def missing_features_message(scene_id: str, data: Path | None) -> str:
    """The one-line refusal for a checkpoint that reads lifted point features the scene lacks, with the
    ``liftgs lift-features`` command that makes them (``--split`` the split file that lists the scene)."""
    root = Path(data).expanduser() if data is not None else default_dataset_path()
    splits = sorted(root.glob("splits/*.txt"))
    split = next((path.stem for path in splits if scene_id in path.read_text().split()), None)
    command = f"liftgs lift-features --data {root}" + ("" if split is None else f" --split {split}")
    return f"this checkpoint reads lifted point features and scene {scene_id} has none; run `{command}`"


@torch.no_grad()
def predict_query(model, features, query: str, threshold: float) -> tuple[Prediction, bool]:
    """``model.predict`` of one query on a scene encoding, and whether the query filled the text encoder's
    ``max_length`` tokens (it was cut there). Warnings raised while grounding (the text encoder's truncation
    notice) are printed to stderr as ``liftgs ground: warning: ...``; as the encoder warns only on a text's
    first encoding (it caches texts), a truncation is also reported when it stayed silent."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (prediction,) = model.predict(features, [query], threshold)
    for warning in caught:
        print(f"liftgs ground: warning: {warning.message}", file=sys.stderr)
    max_length = model.text_encoder.max_length
    truncated = len(prediction.token_strings) >= max_length
    if truncated and not caught:
        print(f"liftgs ground: warning: query truncated to {max_length} tokens", file=sys.stderr)
    return prediction, truncated


def token_records(prediction: Prediction) -> list[dict]:
    """The winning query's alignment with each token: ``[{"token": str, "score": float}, ...]``."""
    return [
        {"token": token, "score": float(score)}
        for token, score in zip(prediction.token_strings, prediction.token_scores.tolist(), strict=True)
    ]


def ground(model, scene: Scene, query: str, threshold: float = 0.5) -> tuple[dict, Gaussians, np.ndarray]:
    """Ground ``query`` in ``scene``.

    Warnings raised while grounding (the text encoder's truncation notice for overlong queries) are
    printed to stderr; ``record["truncated"]`` is True when the query filled the text encoder's
    ``max_length`` tokens (it was cut there).

    Returns:
        ``(record, gaussians, gaussian_mask)``: the JSON record of the module docstring (without the
        checkpoint), the scene's predicted Gaussians and [G] bool, which of them belong to the grounded
        object.

    Raises:
        ValueError: an empty query or a scene the model cannot encode (e.g. too few points).
    """
    query = validate_query(query)
    features = model.encode(scene)
    prediction, truncated = predict_query(model, features, query, threshold)
    point_mask = predicted_point_mask(prediction.mask, features.source_to_voxel)
    box = points_box(scene.points, point_mask)
    gaussian_mask = features.gaussians.take(prediction.mask).cpu().numpy()
    centres = prediction.anchor_centres
    record = {
        "scene": scene.scene_id,
        "query": query,
        "truncated": truncated,
        "score": float(prediction.score),
        "query_index": int(prediction.query_index),
        "box": None if box is None else box.tolist(),
        "num_points": int(point_mask.sum()),
        "point_indices": np.flatnonzero(point_mask).tolist(),
        "tokens": token_records(prediction),
        "anchor_centres": None if centres is None else centres.detach().cpu().tolist(),
        "threshold": threshold,
        "below_threshold": prediction.below_threshold,
    }
    return record, features.gaussians, gaussian_mask


@dataclass
class GroundCommand:
    """Ground a referring expression in a scene; print JSON, optionally write it and a 3DGS .ply."""

    query: str
    """The referring expression."""
    scene: str | None = None
    """Scene id, e.g. scan0000 (a folder under DATA/scans). Without it, --ply or --load-config names the
    scene."""
    data: Path | None = None
    """Dataset root (default: the embedded synthetic benchmark, generated on first use)."""
    checkpoint: Path | None = None
    """A .pt checkpoint or a nerfstudio config.yml (default: assets/liftgs_synthetic.pt)."""
    out_ply: Path | None = None
    """With --scene: write the grounded Gaussians here (standard 3DGS layout; missing folders are created)."""
    ply: Path | None = None
    """Instead of --scene: the 3DGS or colored point-cloud PLY to ground in (answer files go into --out)."""
    json: Path | None = None
    """Write the JSON record here (stdout then gets a summary without the point indices; missing folders
    are created)."""
    threshold: float = 0.5
    """Mask probability above which a point/Gaussian is grounded (strictly between 0 and 1)."""
    device: str = "auto"
    """auto (CUDA if available), cpu, cuda, cuda:1, ..."""
    load_config: Path | None = None
    """A nerfstudio splatfacto run's config.yml (or its folder) to ground in, instead of --scene."""
    out: Path | None = None
    """With --ply FILE or --load-config: folder for grounding.json, scored.ply and selected.ply."""
    up: str = "auto"
    """With --ply or --load-config: the file axis pointing up (auto, x, y, z, -x, -y, -z)."""
    scale: str = "auto"
    """With --ply or --load-config: metres per file unit (auto, or a number such as 0.001)."""

    def main(self) -> None:
        from liftgs.ground_file import ground_file_command, is_file_mode

        if is_file_mode(self):
            ground_file_command(self)
            return
        try:
            query = validate_query(self.query)
            check_probability(self.threshold, "--threshold")
            json_path = None if self.json is None else check_output_file(self.json, "--json")
            ply_path = None if self.out_ply is None else check_output_file(self.out_ply, "--out-ply")
            scene = load_ground_scene(self.scene, self.data)
            model, info = load_liftgs(self.checkpoint, self.device)
            if model.reads_point_features and scene.point_features is None:
                raise ValueError(missing_features_message(scene.scene_id, self.data))
            record, gaussians, gaussian_mask = ground(model, scene, query, self.threshold)
        except (ValueError, ModelLoadError, DatasetError) as error:
            raise SystemExit(f"liftgs ground: {error}") from None
        record["checkpoint"] = info["checkpoint"]
        if record["below_threshold"]:
            print(
                f"liftgs ground: no point reached --threshold {self.threshold}; grounded at "
                f"{EMPTY_FALLBACK} x the largest probability instead (below_threshold)",
                file=sys.stderr,
            )
        if json_path is not None:
            try:
                json_path.parent.mkdir(parents=True, exist_ok=True)
                write_json_atomic(json_path, record, indent=2)
            except ValueError as error:  # strict JSON: a NaN score is a broken model, not a result
                raise SystemExit(f"liftgs ground: {json_path} not written: {error}") from None
            print(json.dumps({k: v for k, v in record.items() if k != "point_indices"}, indent=2))
        else:
            print(json.dumps(record, indent=2))
        if ply_path is not None:
            count = write_gaussians_ply(ply_path, gaussians, mask=gaussian_mask)
            print(f"wrote {count} Gaussians to {ply_path}", file=sys.stderr)
