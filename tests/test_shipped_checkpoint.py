"""The checkpoint shipped in assets/ loads with the default loader, reads points only, and grounds a query in
a scene file a person brings."""

from __future__ import annotations

import json

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from liftgs import cli
from liftgs.data.synthetic.generate import SceneOptions, generate_scene
from liftgs.eval.metrics import box_iou_3d
from liftgs.model import LiftGS, LiftGSConfig
from liftgs.model.loading import DEFAULT_CHECKPOINT, load_liftgs


def test_shipped_checkpoint_loads_and_predicts() -> None:
    assert DEFAULT_CHECKPOINT.is_file(), f"{DEFAULT_CHECKPOINT} is not in the repository"
    assert DEFAULT_CHECKPOINT.stat().st_size <= 25 * 1024 * 1024

    model, info = load_liftgs(None, device="cpu")
    assert isinstance(model, LiftGS)
    assert not model.training

    rng = np.random.default_rng(0)
    points = torch.from_numpy(rng.uniform([0, 0, 0], [4, 3, 2], size=(3000, 3)).astype(np.float32))
    colors = torch.from_numpy(rng.uniform(0, 1, size=(3000, 3)).astype(np.float32))
    assert model.config == LiftGSConfig()  # the defaults are the shipped network
    assert not model.reads_point_features  # xyz, rgb and the text only
    with torch.no_grad():
        scene = model.encode_scene(points, colors)
        (prediction,) = model.predict(scene, ["the red chair next to the table"])

    assert prediction.point_probs.shape == (scene.points.shape[0],)
    assert torch.all((prediction.point_probs >= 0) & (prediction.point_probs <= 1))
    box = torch.as_tensor(prediction.box)
    assert box.shape == (6,) and torch.isfinite(box).all()
    assert torch.all(box[3:] >= box[:3])
    assert 0.0 <= prediction.score <= 1.0


Y_UP_MILLIMETRES = 1000.0 * np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""Network frame (z up, metres) -> a y-up millimetre file's frame."""
RGB = ("red", "green", "blue")


def test_the_shipped_checkpoint_grounds_the_one_bed_of_an_unseen_room_brought_as_a_file(tmp_path) -> None:
    """A room the network never saw (benchmark seed 7, scene 4) written as a y-up millimetre point cloud:
    ``liftgs ground --ply`` finds the frame and the unit, and boxes the room's one bed in the file's frame
    (found by the Acc@0.25 criterion; a box in the wrong frame or unit would overlap nothing)."""
    scene = generate_scene(7, 4, SceneOptions()).scene
    (bed,) = [obj for obj in scene.objects.values() if obj.name == "bed"]
    vertices = np.empty(scene.num_points, dtype=[(a, "<f4") for a in "xyz"] + [(c, "u1") for c in RGB])
    for axis, column in zip("xyz", (scene.points @ Y_UP_MILLIMETRES.T).T, strict=True):
        vertices[axis] = column
    for channel, column in zip(RGB, np.round(scene.colors * 255).T, strict=True):
        vertices[channel] = column
    PlyData([PlyElement.describe(vertices, "vertex")]).write(str(tmp_path / "room.ply"))

    out = tmp_path / "out"
    cli.main(
        [
            "ground",
            "--ply",
            str(tmp_path / "room.ply"),
            "--query",
            "the bed",
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    record = json.loads((out / "grounding.json").read_text())
    assert (record["transform"]["up"], record["transform"]["scale_source"]) == ("+y", "millimetres")
    corners = np.array([[bed.box[i], bed.box[j], bed.box[k]] for i in (0, 3) for j in (1, 4) for k in (2, 5)])
    in_file = corners @ Y_UP_MILLIMETRES.T
    assert box_iou_3d(np.asarray(record["box"]), np.r_[in_file.min(0), in_file.max(0)]) >= 0.25
