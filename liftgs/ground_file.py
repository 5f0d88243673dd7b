"""``liftgs ground --ply FILE`` / ``--load-config RUN/config.yml``: ground a query in a scene people bring.

The file (a 3DGS PLY, a colored point-cloud or mesh PLY, or a nerfstudio splatfacto run) is read with
``liftgs.scene_files.load_scene_file``: placed in the network frame (z up, metres; ``--up``, ``--scale``)
and subsampled to the network's input at the model's own voxel size and point budget. The network reads
those network points (floaters below ``OPACITY_FLOOR`` left out); its answer, per network point, maps back
to every splat of the file (``NetworkPoints.to_splats``: a splat takes its network point's probability and
grounded flag; floaters get probability 0 and are never selected).

Writes into ``--out DIR`` (each file atomically, only after the whole answer is computed):

- ``grounding.json`` (``FILE_RECORD_KEYS``): ``box`` ``[xmin, ymin, zmin, xmax, ymax, zmax]`` and
  ``centre`` of the selected splats' means IN THE FILE'S FRAME (its own axes and units), ``box_network``
  (the grounded network points' box, network frame), ``score``, ``query``, ``splat_indices`` (rows of the
  file's vertex element; for a run, of its Gaussians in checkpoint order), ``transform``
  (``SceneTransform.to_json``: file -> network), ``num_splats``, ``num_network_points``, ``num_selected``.
- ``scored.ply``: the whole file with ``liftgs_score`` and ``liftgs_mask`` per vertex
  (``write_scored_scene``).
- ``selected.ply``: the selected splats only, every original property (``write_selected_splats``): a
  standard 3DGS PLY for a 3DGS file or run, a point cloud for a point cloud.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from liftgs.atomic import write_json_atomic
from liftgs.eval.evaluate import predicted_point_mask
from liftgs.eval.metrics import points_box
from liftgs.model.grounded_mask import EMPTY_FALLBACK
from liftgs.model.loading import ModelLoadError, load_liftgs
from liftgs.scene import NO_INSTANCE, Scene
from liftgs.scene_files import (
    SceneFileError,
    UserScene,
    load_scene_file,
    write_scored_scene,
    write_selected_splats,
)
from liftgs.scene_files.frame import parse_scale, parse_up
from liftgs.scene_files.ply import is_ply
from liftgs.validate import check_output_dir, check_probability

if TYPE_CHECKING:
    from liftgs.ground import GroundCommand
    from liftgs.model import LiftGS
    from liftgs.model.types import SceneFeatures

JSON_NAME = "grounding.json"
SCORED_NAME = "scored.ply"
SELECTED_NAME = "selected.ply"
FILE_RECORD_KEYS = (
    "file", "layout", "query", "truncated", "score", "query_index", "threshold", "below_threshold",
    "tokens", "box", "centre", "box_network", "num_splats", "num_network_points", "num_selected",
    "splat_indices", "transform", "checkpoint", "scored_ply", "selected_ply",
)  # fmt: skip
"""Keys of ``grounding.json`` (module docstring)."""


def check_points_only(model: LiftGS) -> None:
    """Raises ``ValueError`` when the model's encoder reads lifted point features, which a scene file does
    not have (``config.encoder.extra_channels > 0``)."""
    if model.reads_point_features:
        raise ValueError(
            f"this checkpoint's encoder reads {model.config.encoder.extra_channels} lifted feature channels "
            "per point, which a scene file does not have: use a points-only checkpoint (encoder "
            "extra_channels 0, the network ns-train liftgs trains by default)"
        )


def open_user_scene(path: Path, model: LiftGS, up: str = "auto", scale: str | float = "auto") -> UserScene:
    """The scene file at ``path`` placed and subsampled for ``model`` (its ``voxel_size`` and ``max_points``,
    so that the model's own voxelisation keeps one network point per voxel).

    Raises:
        SceneFileError, ValueError: as ``load_scene_file`` (one line).
    """
    return load_scene_file(
        path, up, scale, voxel_size=model.config.voxel_size, max_points=model.config.max_points
    )


def network_scene(user: UserScene, scene_id: str) -> Scene:
    """The network points of ``user`` as a ``Scene`` (network frame, no frames, no annotated objects)."""
    points = user.network_points
    return Scene(
        scene_id=scene_id,
        points=points,
        colors=user.network_colors,
        point_instance=np.full(points.shape[0], NO_INSTANCE, dtype=np.int64),
    )


@dataclass
class FileAnswer:
    """One query's answer on a scene file.

    Attributes:
        record: ``grounding.json``'s content (module docstring), without ``checkpoint`` and the file names.
        scores: [N] float32 mask probability per splat (0 for splats the network does not read).
        mask: [N] bool, the selected splats.
    """

    record: dict
    scores: np.ndarray
    mask: np.ndarray


def splat_answer(
    user: UserScene,
    point_probs: np.ndarray,  # [V] mask probability per network point
    point_mask: np.ndarray,  # [V] bool, the grounded network points
    fields: dict,
) -> FileAnswer:
    """The answer on every splat of ``user`` from one on its network points: ``fields`` (what the query
    was and how it scored) followed by the geometry of the module docstring's record."""
    scores = user.network.to_splats(np.asarray(point_probs, dtype=np.float32), fill=0.0)
    mask = user.network.to_splats(np.asarray(point_mask, dtype=bool), fill=False)
    splats = user.splats
    box = points_box(splats.means, mask)
    network_box = points_box(user.network_points, point_mask)
    record = {
        "file": str(splats.path),
        "layout": splats.layout,
        **fields,
        "box": None if box is None else box.tolist(),
        "centre": None if box is None else ((box[:3] + box[3:]) / 2.0).tolist(),
        "box_network": None if network_box is None else network_box.tolist(),
        "num_splats": len(splats),
        "num_network_points": int(user.network_points.shape[0]),
        "num_selected": int(mask.sum()),
        "splat_indices": splats.file_rows[mask].tolist(),
        "transform": user.transform.to_json(),
    }
    return FileAnswer(record, scores.astype(np.float32), mask.astype(bool))


@torch.no_grad()
def ground_user_scene(model: LiftGS, user: UserScene, query: str, threshold: float = 0.5) -> FileAnswer:
    """Grounds ``query`` on the network points of ``user`` and maps the answer to every splat.

    Warnings raised while grounding (the text encoder's truncation notice) are printed to stderr.

    Raises:
        ValueError: a model that reads lifted features, or a scene the model cannot encode.
    """
    check_points_only(model)
    return answer_on_features(
        model, user, model.encode(network_scene(user, user.splats.path.stem)), query, threshold
    )


@torch.no_grad()
def answer_on_features(
    model: LiftGS, user: UserScene, features: SceneFeatures, query: str, threshold: float = 0.5
) -> FileAnswer:
    """``ground_user_scene`` on an encoding of ``user``'s network scene that is already computed."""
    from liftgs.ground import predict_query, token_records

    prediction, truncated = predict_query(model, features, query, threshold)
    fields = {
        "query": query,
        "truncated": truncated,
        "score": float(prediction.score),
        "query_index": int(prediction.query_index),
        "threshold": threshold,
        "below_threshold": bool(prediction.below_threshold),
        "tokens": token_records(prediction),
    }
    source_to_voxel = features.source_to_voxel
    return splat_answer(
        user,
        prediction.point_probs.detach().float()[source_to_voxel].cpu().numpy(),
        predicted_point_mask(prediction.mask, source_to_voxel),
        fields,
    )


def write_file_answer(
    user: UserScene, answer: FileAnswer, json_path: Path, scored_path: Path, selected_path: Path
) -> dict:
    """Writes the scored scene, the selected splats and the JSON record (last), each atomically; returns
    the record as written (with the two PLY file names).

    Raises:
        ValueError: an empty selection (nothing is written then).
        OSError: a file cannot be written.
    """
    if not answer.mask.any():
        raise ValueError("the selection is empty: nothing to write")
    record = {**answer.record, "scored_ply": scored_path.name, "selected_ply": selected_path.name}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    write_scored_scene(user.splats, scored_path, answer.scores, answer.mask)
    write_selected_splats(user.splats, selected_path, answer.mask)
    write_json_atomic(json_path, record, indent=1)
    return record


def is_file_mode(command: GroundCommand) -> bool:
    """Whether ``liftgs ground`` was asked to ground in a scene file rather than a dataset scene."""
    return (
        command.scene is None
        or command.load_config is not None
        or command.out is not None
        or (command.up, str(command.scale)) != ("auto", "auto")
    )


def _scene_path(command: GroundCommand) -> Path:
    """The one scene file or run the command names (``--ply`` or ``--load-config``), checked.

    Raises:
        ValueError: both or neither given, ``--scene`` or ``--data`` or ``--json`` with them, no ``--out``,
            or a ``--ply`` that is not a PLY file.
    """
    if command.scene is not None:
        raise ValueError(
            "give exactly one of --scene (a dataset scene), --ply (a scene file) or --load-config (a "
            "splatfacto run); --out, --up and --scale belong to --ply and --load-config"
        )
    if (command.ply is None) == (command.load_config is None):
        raise ValueError("give exactly one of --scene, --ply FILE or --load-config RUN/config.yml")
    if command.data is not None or command.json is not None or command.out_ply is not None:
        raise ValueError(
            "--data, --json and --out-ply belong to --scene; a scene file's answer goes into --out DIR"
        )
    if command.out is None:
        raise ValueError("--out DIR is required with --ply and --load-config (the answer's files go there)")
    if command.ply is not None:
        path = Path(command.ply).expanduser()
        if path.is_file() and not is_ply(path):
            raise ValueError(f"--ply {path}: not a PLY file (for a nerfstudio run use --load-config)")
        return path
    return Path(command.load_config).expanduser()


def ground_file_command(command: GroundCommand) -> None:
    """``liftgs ground`` in file mode (``is_file_mode``): checks everything, grounds, then writes the three
    files into ``--out`` and prints the record without the splat indices. Every bad input is one line and
    writes nothing."""
    from liftgs.ground import validate_query

    try:
        query = validate_query(command.query)
        check_probability(command.threshold, "--threshold")
        path = _scene_path(command)
        out = check_output_dir(command.out, "--out")
        up, scale = parse_up(command.up), parse_scale(command.scale)
        model, info = load_liftgs(command.checkpoint, command.device)
        check_points_only(model)
        user = open_user_scene(path, model, up, "auto" if scale is None else scale)
        print(f"liftgs ground: {path}: {user.transform.describe()}", file=sys.stderr)
        answer = ground_user_scene(model, user, query, command.threshold)
        answer.record["checkpoint"] = info["checkpoint"]
        record = write_file_answer(user, answer, out / JSON_NAME, out / SCORED_NAME, out / SELECTED_NAME)
    except (ValueError, ModelLoadError, SceneFileError, OSError) as error:
        raise SystemExit(f"liftgs ground: {' '.join(str(error).split())}") from None
    if record["below_threshold"]:
        print(
            f"liftgs ground: no point reached --threshold {command.threshold}; grounded at "
            f"{EMPTY_FALLBACK} x the largest probability instead (below_threshold)",
            file=sys.stderr,
        )
    print(json.dumps({k: v for k, v in record.items() if k != "splat_indices"}, indent=2))
    print(
        f"liftgs ground: wrote {out / JSON_NAME}, {out / SCORED_NAME} ({record['num_splats']} splats scored) "
        f"and {out / SELECTED_NAME} ({record['num_selected']} selected)",
        file=sys.stderr,
    )
