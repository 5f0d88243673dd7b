"""Scene files people bring, written small: a room with one red cube among grey ones, as a 3DGS PLY (in any
frame and unit), a colored point-cloud PLY or a nerfstudio splatfacto run folder; and a color oracle
standing in for ``LiftGS.predict`` that grounds "the red cube"."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from liftgs.benchmarks.scene_file import gaussian_vertices
from liftgs.model.types import GroundingOutput, Prediction
from liftgs.scene_files.rotation import quaternion_from_matrix

Z_UP = np.eye(3)
"""The identity frame: a file with z up."""
Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""z-up -> y-up file axes (``p_file = Y_UP @ p``)."""
RED = np.array([0.85, 0.1, 0.1])
CUBE = 0.4
"""Edge of every cube (metres)."""
CUBE_CORNERS = ((0.5, 0.5), (2.0, 0.6), (0.6, 2.0), (1.9, 1.8))
"""Low x, y corners of the cubes; the last one is red."""
FLOATERS = 20
"""Faint splats above the room at the end of every 3DGS file (opacity 0.02: never read, never selected)."""


@dataclass
class CubeRoom:
    """A 3 x 3 m room (floor, walls x = 0 and y = 0 up to 2.5 m) with four cubes, one of them red.

    Attributes:
        points: [N, 3] metres, z up, floor at z = 0.
        colors: [N, 3] RGB in [0, 1].
        red: [N] bool, the red cube's points.
        red_box: [6] the red cube's box (metres, z up).
    """

    points: np.ndarray
    colors: np.ndarray
    red: np.ndarray
    red_box: np.ndarray


def cube_room(count: int = 6000, seed: int = 0) -> CubeRoom:
    """``count`` points: half on the floor, 15% on each wall, 5% in each (solid) cube."""
    rng = np.random.default_rng(seed)
    sizes = (np.array([0.5, 0.15, 0.15, 0.05, 0.05, 0.05, 0.05]) * count).astype(int)
    sizes[0] += count - sizes.sum()
    parts = [rng.random((sizes[0], 3)) * [3.0, 3.0, 0.0]]
    parts.append(rng.random((sizes[1], 3)) * [0.0, 3.0, 2.5])
    parts.append(rng.random((sizes[2], 3)) * [3.0, 0.0, 2.5])
    for (x, y), size in zip(CUBE_CORNERS, sizes[3:], strict=True):
        parts.append(np.array([x, y, 0.0]) + rng.random((size, 3)) * CUBE)  # solid: every voxel filled
    palette = [[0.5, 0.5, 0.5], [0.8, 0.8, 0.8], [0.8, 0.8, 0.8], [0.4] * 3, [0.45] * 3, [0.35] * 3, RED]
    colors = np.repeat(np.array(palette), sizes, axis=0)
    red = np.repeat(np.arange(7) == 6, sizes)
    x, y = CUBE_CORNERS[-1]
    box = np.array([x, y, 0.0, x + CUBE, y + CUBE, CUBE])
    return CubeRoom(np.concatenate(parts), colors, red, box)


def to_file(points: np.ndarray, frame: np.ndarray = Z_UP, unit: float = 1.0) -> np.ndarray:
    """[N, 3] metres, z up -> a file's frame: axes ``frame @ p``, ``unit`` file units per metre, shifted."""
    return unit * (points @ frame.T + [0.7, -1.2, 0.3])


def write_3dgs(path: Path, room: CubeRoom, frame: np.ndarray = Z_UP, unit: float = 1.0) -> Path:
    """The room as a standard 3DGS PLY (no f_rest) in a file frame (``to_file``), ``FLOATERS`` appended."""
    rng = np.random.default_rng(1)
    floaters = rng.random((FLOATERS, 3)) * [3.0, 3.0, 1.0] + [0.0, 0.0, 3.0]
    means = to_file(np.concatenate([room.points, floaters]), frame, unit)
    count = means.shape[0]
    colors = np.concatenate([room.colors, np.full((FLOATERS, 3), 0.5)])
    logits = np.r_[np.full(room.points.shape[0], 3.0), np.full(FLOATERS, np.log(0.02 / 0.98))]
    quats = np.tile(quaternion_from_matrix(frame), (count, 1))
    vertices = gaussian_vertices(means, colors, logits, np.full((count, 3), np.log(0.01 * unit)), quats)
    PlyData([PlyElement.describe(vertices, "vertex")], byte_order="<").write(str(path))
    return path


def write_point_cloud(path: Path, room: CubeRoom) -> Path:
    """The room as a colored point cloud (``x y z`` float, ``red green blue`` uchar), ``to_file``'s frame."""
    vertices = np.empty(room.points.shape[0], dtype=[(a, "<f4") for a in "xyz"] + [(c, "u1") for c in "rgb"])
    for axis, column in zip("xyz", to_file(room.points).T, strict=True):
        vertices[axis] = column
    for name, column in zip("rgb", np.round(room.colors * 255).T, strict=True):
        vertices[name] = column
    vertices.dtype.names = ("x", "y", "z", "red", "green", "blue")
    PlyData([PlyElement.describe(vertices, "vertex")], byte_order="<").write(str(path))
    return path


def write_splatfacto_run(folder: Path, room: CubeRoom) -> Path:
    """A splatfacto run folder (``config.yml``, ``dataparser_transforms.json``, one checkpoint, SH degree 0)
    whose capture frame is ``to_file``'s; returns its ``config.yml``."""
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # normalised <- capture
    shift, scale = [0.1, 0.2, -0.3], 0.4
    folder.mkdir(parents=True)
    (folder / "config.yml").write_text(
        "method_name: splatfacto\nrelative_model_dir: !!python/object/apply:pathlib.PosixPath\n"
        "- nerfstudio_models\n"
    )
    transform = np.concatenate([rotation, np.array(shift)[:, None]], axis=1)
    (folder / "dataparser_transforms.json").write_text(
        f'{{"transform": {transform.tolist()}, "scale": {scale}}}'
    )
    count = room.points.shape[0]
    colors = np.clip(room.colors, 0.01, 0.99)
    gauss = {
        "means": scale * (to_file(room.points) @ rotation.T + shift),
        "features_dc": np.log(colors / (1.0 - colors)),  # SH degree 0: color logits
        "features_rest": np.zeros((count, 0, 3)),
        "opacities": np.full((count, 1), 3.0),
        "scales": np.full((count, 3), np.log(0.01 * scale)),
        "quats": np.tile(quaternion_from_matrix(rotation), (count, 1)),
    }
    pipeline = {f"_model.gauss_params.{k}": torch.tensor(v, dtype=torch.float32) for k, v in gauss.items()}
    (folder / "nerfstudio_models").mkdir()
    torch.save({"step": 10, "pipeline": pipeline}, folder / "nerfstudio_models" / "step-000000010.ckpt")
    return folder / "config.yml"


def is_red(colors: torch.Tensor) -> torch.Tensor:
    """[..., 3] -> [...] bool: clearly red colors."""
    return (colors[..., 0] - colors[..., 1]) > 0.4


def red_oracle(self, features, texts, threshold: float = 0.5) -> list[Prediction]:
    """A drop-in for ``LiftGS.predict``: every text grounds the red voxels (probability 0.9, others 0.02)."""
    red = is_red(features.colors.cpu())
    probs = torch.where(red, 0.9, 0.02)
    return [
        Prediction(probs, probs >= threshold, 0.8, torch.zeros(6), torch.ones(2), ["[CLS]", "[SEP]"], 0)
        for _ in texts
    ]


def is_wall(colors: torch.Tensor) -> torch.Tensor:
    """[..., 3] -> [...] bool: the walls' light grey."""
    return (colors.min(dim=-1).values > 0.7) & ~is_red(colors)


def color_ground_oracle(features, text, all_layers: bool = True) -> GroundingOutput:
    """A drop-in for ``LiftGS.ground``: decoder query 0 is the red voxels (mask logit 3), scored high when
    the text has the word "red"; query 1 the walls' voxels, scored high for "wall"."""
    colors = features.colors.cpu().float()
    batch, num_tokens = text.mask.shape
    masks = torch.stack([is_red(colors), is_wall(colors)])  # [2, Pv]
    mask_logits = torch.where(masks, 3.0, -6.0)[None].expand(batch, -1, -1).clone()
    scores = torch.full((batch, 2), -6.0)
    for b, tokens in enumerate(text.token_strings):
        for q, word in enumerate(("red", "wall")):
            if word in tokens:
                scores[b, q] = 3.0
    token_logits = torch.zeros(batch, 2, num_tokens)
    return GroundingOutput(mask_logits, token_logits, scores, torch.zeros(batch, 2, 6))
