"""The viewer's small parts on their own: highlight colors, client state rules, the latest-wins worker,
splat covariances, the 2D view's camera maths and rasterised image, export names, located anchors."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from app.engine import ReadRelation, ViewerEngine, located_anchors
from app.export import query_slug
from app.highlight import DIM_OPACITY, DIM_RGB, HIGHLIGHT_RGB, highlight
from app.render2d import camera_to_world, pinhole, render_view
from app.scenes import describe_ids
from app.splats import Splats
from app.state import ClientState, normalize_query, parse_negatives, push_history
from app.worker import LatestWinsWorker
from liftgs.benchmarks.viser_client import _matrix_to_wxyz
from liftgs.model.liftgs import LiftGS
from liftgs.model.types import Gaussians, GroundingOutput
from tests.support.network import HashTextEncoder


def test_highlight_tints_the_selection_by_probability_and_dims_the_rest():
    colors = np.full((4, 3), 0.5, dtype=np.float32)
    opacities = np.array([0.8, 0.8, 0.8, 0.8], dtype=np.float32)
    probs = np.array([0.1, 0.49, 0.6, 1.0], dtype=np.float32)
    out_colors, out_opacities = highlight(colors, opacities, probs, threshold=0.5)
    np.testing.assert_allclose(out_colors[:2], colors[:2] * DIM_RGB)
    np.testing.assert_allclose(out_opacities, [0.8 * DIM_OPACITY, 0.8 * DIM_OPACITY, 0.8, 0.8])
    distance = np.linalg.norm(out_colors[2:] - HIGHLIGHT_RGB, axis=1)
    assert distance[1] < distance[0] and distance[1] == pytest.approx(0.0, abs=1e-6)
    assert out_colors.dtype == np.float32 and out_opacities.dtype == np.float32


@pytest.mark.parametrize("threshold", [0.0, 1.5])
def test_highlight_rejects_bad_thresholds(threshold):
    with pytest.raises(ValueError, match="threshold"):
        highlight(np.zeros((2, 3)), np.ones(2), np.ones(2), threshold)


def test_highlight_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="disagree"):
        highlight(np.zeros((2, 3)), np.ones(3), np.ones(2), 0.5)


def test_query_rules():
    assert normalize_query("  the   red\tchair ") == "the red chair"
    assert parse_negatives("not the table;  the  lamp ;; not  ") == ["the table", "the lamp"]
    assert parse_negatives("") == [] and parse_negatives("nothing") == ["nothing"]
    history = push_history([], "  a chair ")
    history = push_history(history, "the table")
    assert push_history(history, "a chair") == ["a chair", "the table"]
    assert push_history(history, "  ") == history
    assert push_history([str(i) for i in range(10)], "new", limit=3) == ["new", "0", "1"]


def test_result_is_current_compares_scene_query_and_negatives():
    from app.engine import GroundingResult

    state = ClientState(scene_id="s0", query="the chair", negatives=("the table",))
    assert not state.result_is_current()
    state.result = GroundingResult("s0", "the chair", ("the table",), [], [], 0.0)
    assert state.result_is_current()
    state.negatives = ()
    assert not state.result_is_current()


def test_worker_runs_only_the_latest_pending_job_and_survives_errors():
    worker = LatestWinsWorker()
    release, ran = threading.Event(), []
    worker.submit(lambda: (release.wait(5), ran.append("first")))
    time.sleep(0.1)  # "first" is running now
    for name in ("second", "third", "fourth"):
        worker.submit(lambda name=name: ran.append(name))
    assert worker.has_pending()
    release.set()
    assert worker.wait_idle(5)
    assert ran == ["first", "fourth"] and worker.dropped == 2

    worker.submit(lambda: 1 / 0)  # printed, not fatal
    worker.submit(lambda: ran.append("after error"))
    assert worker.wait_idle(5) and ran[-1] == "after error"
    worker.close()
    assert worker.join(5)
    worker.submit(lambda: ran.append("too late"))
    time.sleep(0.05)
    assert ran[-1] == "after error"


def test_splat_covariances_follow_quaternions_and_scales():
    angle = np.pi / 2  # 90 degrees about z: x -> y
    gaussians = Gaussians(
        means=torch.tensor([[1.0, 2.0, 3.0]]),
        quats=torch.tensor([[np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)]]) * 3.0,  # unnormalised
        scales=torch.tensor([[0.3, 0.1, 0.2]]),
        opacities=torch.tensor([0.7]),
        colors=torch.tensor([[0.2, 0.4, 1.2]]),
        features=None,
        point_index=torch.tensor([5]),
    )
    splats = Splats.from_gaussians(gaussians)
    np.testing.assert_allclose(splats.covariances[0], np.diag([0.01, 0.09, 0.04]), atol=1e-7)
    np.testing.assert_allclose(splats.colors[0], [0.2, 0.4, 1.0])  # clamped for the browser
    assert splats.point_index.tolist() == [5] and len(splats) == 1


def test_2d_view_camera_matches_the_client_convention_and_renders_the_highlight():
    position, look_at = np.array([0.0, -3.0, 1.0]), np.array([0.0, 0.0, 1.0])
    forward = (look_at - position) / 3.0
    right = np.cross(forward, (0.0, 0.0, 1.0))
    rotation = np.stack([right, np.cross(forward, right), forward], axis=1)
    c2w = camera_to_world(_matrix_to_wxyz(rotation), position)
    np.testing.assert_allclose(c2w[:3, :3], rotation, atol=1e-9)
    K, width = pinhole(fov=np.pi / 2, aspect=1.5, height=40)
    assert width == 60 and K[1, 1] == pytest.approx(20.0) and tuple(K[:2, 2]) == (30.0, 20.0)

    # red at the look-at point, green 1 m to the camera's right (+x), blue 1 m above it (+z)
    gaussians = Gaussians(
        means=torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 2.0]]),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(3, 1),
        scales=torch.full((3, 3), 0.15),
        opacities=torch.ones(3),
        colors=torch.full((3, 3), 0.5),
        features=None,
        point_index=torch.arange(3),
    )
    shown = np.eye(3)  # the colors to show (e.g. a highlight), not the Gaussians' own
    image = render_view(gaussians, shown, np.ones(3), c2w, K, width, 40).astype(int)
    assert image.shape == (40, 60, 3)
    for (row, col), channel in (((20, 30), 0), ((20, 36), 1), ((13, 30), 2)):
        pixel = image[row, col]  # focal 20 px, 3 m away: 1 m is 6.7 px from the centre (30, 20)
        assert pixel[channel] > 200 and np.delete(pixel, channel).max() < 100, (row, col, pixel)
    assert tuple(image[1, 1]) == (255, 255, 255)  # the white background


def test_export_names_and_scene_lists():
    assert query_slug("The red chair, by the WINDOW!") == "the-red-chair-by-the-window"
    assert query_slug("???") == "query"
    assert len(query_slug("x" * 100)) == 40
    assert describe_ids(["a", "b"]) == "a, b"
    assert describe_ids([f"s{i}" for i in range(20)]) == "s0, s1, s2, s3, s4, ..., s18, s19 (20 scenes)"


def test_located_anchors_keep_one_marker_per_word_and_place_and_skip_special_tokens():
    tokens = ["[CLS]", "the", "chair", "near", "the", "door", "[SEP]"]
    door, elsewhere = torch.tensor([2.0, 1.0, 0.5]), torch.tensor([-1.0, 3.0, 0.5])
    reads = [5, 5, 5, 0]  # door here, door 5 cm away, a second door elsewhere, [CLS]
    weights = torch.nn.functional.one_hot(torch.tensor(reads), len(tokens)).float() * 0.9
    centres = torch.stack([door, door + torch.tensor([0.05, 0.0, 0.0]), elsewhere, door])
    output = GroundingOutput(
        torch.zeros(1, 2, 4),
        torch.zeros(1, 2, 7),
        torch.zeros(1, 2),
        torch.zeros(1, 2, 6),
        centres.expand(1, 2, 4, 3),
        weights.expand(1, 2, 4, 7),
    )
    anchors = located_anchors(output, 1, tokens)
    assert [a.word for a in anchors] == ["door", "door"]
    np.testing.assert_allclose([a.centre for a in anchors], [door.numpy(), elsewhere.numpy()])
    assert anchors[0].weight == pytest.approx(0.9)
    no_anchors = GroundingOutput(
        torch.zeros(1, 2, 4), torch.zeros(1, 2, 7), torch.zeros(1, 2), torch.zeros(1, 2, 6)
    )
    assert located_anchors(no_anchors, 0, tokens) == ()


def test_the_engine_reads_the_relation_classifiers_most_probable_kind(tiny_config):
    model = LiftGS(tiny_config, text_encoder=HashTextEncoder())
    engine = ViewerEngine(model, ["toy0000"], lambda scene_id: None)
    kinds = model.config.decoder.relation_kinds
    logits = torch.zeros(2, len(kinds))
    logits[0, kinds.index("farthest")] = 5.0  # text 0 is the query; the rest are negatives
    logits[1, kinds.index("closest")] = 9.0
    read = engine._read_relation(logits)
    assert read == ReadRelation("farthest", pytest.approx(float(torch.softmax(logits[0], -1).max())))
    assert engine._read_relation(None) is None  # a decoder without the classifier
