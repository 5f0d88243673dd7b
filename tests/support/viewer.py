"""Viewer toys: two toy scenes with frames, a keyword oracle standing in for the decoder, and a running
viewer over them."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from app.engine import ViewerEngine
from app.highlight import highlight
from app.viewer import ViewerConfig, start_viewer
from liftgs.benchmarks.viser_client import ViserTestClient
from liftgs.model import LiftGS
from liftgs.model.config import SYNTHETIC_RELATION_KINDS as RELATION_KINDS
from liftgs.model.types import GroundingOutput
from liftgs.scene import Scene
from tests.support.scenes import toy_scene

MASK_LOGIT = 2.0
"""Oracle mask logit on the named object's voxels: probability 0.88 (below a 0.9 threshold)."""


# ----------------------------------------------------------------------------------------------- toys


def viewer_scenes() -> dict[str, Scene]:
    """Two toy scenes (``tests.support.scenes.toy_scene``) with three posed 24 x 32 frames each."""
    return {
        "toy0000": toy_scene(
            "toy0000", ["chair", "chair", "table"], seed=0, num_frames=3, height=24, width=32
        ),
        "toy0001": toy_scene("toy0001", ["lamp", "chair"], seed=1, num_frames=3, height=24, width=32),
    }


def object_voxels(scene: Scene, xyz: torch.Tensor) -> torch.Tensor:
    """[O, Pv] bool: which voxel centres lie in each object's box (objects in id order)."""
    boxes = torch.tensor(np.stack([scene.objects[i].box for i in sorted(scene.objects)]), dtype=xyz.dtype)
    return ((xyz[None] >= boxes[:, None, :3]) & (xyz[None] <= boxes[:, None, 3:])).all(-1)


def keyword_oracle(scenes: dict[str, Scene], delay: float = 0.0):
    """A drop-in for ``LiftGS.ground``: query q <-> object q, scored 3 - q/2 when its name is in the text.
    Each query has one anchor: it reads the first other object name in the text and sits at that object's
    voxel centre, or reads ``[CLS]`` (token 0) when the text names no other object. Its relation classifier
    reads "closest" (probability about 0.9) in a text with the word "closest", "category" otherwise."""
    by_size = {scene.num_points: scene for scene in scenes.values()}
    calls: list[list[str]] = []

    def ground(features, text, all_layers: bool = True) -> GroundingOutput:
        calls.append(list(text.token_strings[0]))
        time.sleep(delay)
        scene = by_size[int(features.source_to_voxel.shape[0])]
        inside = object_voxels(scene, features.points)
        batch, num_tokens = text.mask.shape
        queries, voxels = 4, features.points.shape[0]
        mask_logits = torch.full((batch, queries, voxels), -8.0)
        scores = torch.full((batch, queries), -6.0)
        token_logits = torch.full((batch, queries, num_tokens), -4.0)
        anchor_weights = torch.zeros(batch, queries, 1, num_tokens)
        anchor_weights[..., 0] = 1.0
        anchor_centres = torch.zeros(batch, queries, 1, 3)
        names = [scene.objects[i].name for i in sorted(scene.objects)]
        for b, tokens in enumerate(text.token_strings):
            for q, name in enumerate(names[:queries]):
                mask_logits[b, q, inside[q]] = MASK_LOGIT
                if name in tokens:
                    scores[b, q] = 3.0 - 0.5 * q
                    token_logits[b, q, tokens.index(name)] = 4.0
                other = next((i for i, n in enumerate(names) if n != name and n in tokens), None)
                if other is not None:
                    anchor_weights[b, q, 0] = torch.eye(num_tokens)[tokens.index(names[other])]
                    anchor_centres[b, q, 0] = features.points[inside[other]].mean(0)
        boxes = torch.zeros(batch, queries, 6)
        relation_logits = torch.zeros(batch, len(RELATION_KINDS))
        for b, tokens in enumerate(text.token_strings):
            read = "closest" if "closest" in tokens else "category"
            relation_logits[b, RELATION_KINDS.index(read)] = 5.0
        return GroundingOutput(
            mask_logits, token_logits, scores, boxes, anchor_centres, anchor_weights, relation_logits
        )

    ground.calls = calls
    return ground


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_app(model, scenes, tmp_path: Path, delay: float = 0.0, scene: str = "toy0000"):
    """A running viewer on a free port over the toy scenes with the keyword oracle; returns (app, oracle)."""
    oracle = keyword_oracle(scenes, delay)
    own = LiftGS(model.config, text_encoder=model.text_encoder)  # shares the loaded MiniLM
    own.load_state_dict(model.state_dict())
    own.ground = oracle  # instance attribute: the engine calls model.ground
    engine = ViewerEngine(own, list(scenes), scenes.__getitem__, top_k=4)
    config = ViewerConfig(scene=scene, port=free_port(), export_dir=tmp_path / "export")
    return start_viewer(config, engine), oracle


def expected_colors(app_, scene_id: str, object_id: int, threshold: float = 0.5) -> np.ndarray:
    """[G, 3] uint8 colors the splats must show when object ``object_id`` is grounded."""
    loaded = app_.engine.load(scene_id)
    inside = object_voxels(loaded.scene, torch.as_tensor(loaded.voxel_points))[object_id].numpy()
    point_probs = np.where(inside, 1.0 / (1.0 + np.exp(-MASK_LOGIT)), 1.0 / (1.0 + np.exp(8.0)))
    colors, _ = highlight(
        loaded.splats.colors, loaded.splats.opacities, loaded.gaussian_values(point_probs), threshold
    )
    return np.clip(colors * 255.0, 0, 255).astype(np.uint8)


def markdowns(client: ViserTestClient) -> str:
    """Every markdown the tab shows, joined."""
    return "\n".join(
        p.get("markdown", "") for p in client.gui.values() if p["type"] == "GuiAddMarkdownMessage"
    )


def connect(app_) -> ViserTestClient:
    """A connected tab whose scene is on screen (the status shows the empty-query hint); while it waits for
    the server it resends its camera every 2 s, as a tab being looked at does."""
    client = ViserTestClient(app_.url, nudge_every=2.0)
    client.send_camera()
    client.wait_until(lambda: "Type a query" in markdowns(client) and "/scene/points" in client.nodes)
    return client


def last_splats(client: ViserTestClient) -> dict:
    """The newest splat message the tab received."""
    with client._lock:
        return next(r.message for r in reversed(client.received) if r.type == "GaussianSplatsMessage")


def run_entrypoint(monkeypatch, *args: str) -> int:
    """Runs ``liftgs-viewer ARGS`` (``app.viewer.entrypoint``) until it exits; returns its exit code."""
    from app.viewer import entrypoint

    monkeypatch.setattr(sys, "argv", ["liftgs-viewer", *args])
    with pytest.raises(SystemExit) as raised:
        entrypoint()
    return raised.value.code
