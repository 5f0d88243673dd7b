"""The viewer server without a browser: a Python websocket client (``app.wsclient``) plays the browser tab.

The model is a tiny LiftGS whose ``ground`` is replaced by a keyword oracle (decoder query ``q`` is the
scene's object ``q``; it scores high when the object's name is in the text and its mask is exactly that
object's voxels), so that every assertion can name the Gaussians, box and tokens a query must produce.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time

import numpy as np
import pytest
import torch
from plyfile import PlyData

from app.viewer import ViewerConfig, start_viewer
from liftgs.benchmarks.viser_client import ViserTestClient, splat_centers, splat_rgba
from liftgs.data.store import write_scene
from liftgs.eval.metrics import points_box
from liftgs.export_ply import gaussian_property_names
from liftgs.model import LiftGS
from liftgs.scene import Scene
from tests.support.network import save_tiny_checkpoint, tiny_config
from tests.support.viewer import (
    connect,
    expected_colors,
    last_splats,
    make_app,
    markdowns,
    object_voxels,
    run_entrypoint,
    viewer_scenes,
)


@pytest.fixture(scope="module")
def scenes():
    return viewer_scenes()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LiftGS(tiny_config())


@pytest.fixture(scope="module")
def viewer(model, scenes, tmp_path_factory):
    """One running viewer for the tests that need no special oracle (each test opens its own tabs)."""
    app_, oracle = make_app(model, scenes, tmp_path_factory.mktemp("viewer"))
    yield app_, oracle
    app_.stop()


def labels(client: ViserTestClient, folder: str) -> list[str]:
    return [client.gui[i]["label"] for i in client.gui_ids_under(folder)]


def type_query(client: ViserTestClient, text: str, expect: str, field: str = "Query") -> float:
    """Types ``text`` and waits until the status mentions ``expect``; returns when it was sent."""
    sent = time.perf_counter()
    client.set_value(client.gui_id(field), text)
    client.wait_until(lambda: expect in markdowns(client))
    return sent


def object_box(scene: Scene, object_id: int) -> np.ndarray:
    return points_box(scene.points, scene.point_instance == object_id)


# ------------------------------------------------------------------------------------------------ tests


def test_query_highlights_the_named_object_and_draws_its_box(viewer, scenes):
    app_, _ = viewer
    client = connect(app_)
    plain = splat_rgba(last_splats(client)).copy()
    type_query(client, "the table", "query 2 at (")
    splats = last_splats(client)
    rgba = splat_rgba(splats)
    np.testing.assert_array_equal(rgba[:, :3], expected_colors(app_, "toy0000", 2))
    assert (rgba != plain).any()
    np.testing.assert_allclose(splat_centers(splats), app_.engine.load("toy0000").splats.centers)
    box = object_box(scenes["toy0000"], 2)
    mesh = client.nodes["/grounding/box"]
    vertices = np.frombuffer(mesh["vertices"], dtype=np.float32).reshape(-1, 3)
    np.testing.assert_allclose(vertices.max(0) - vertices.min(0), box[3:] - box[:3], atol=1e-5)
    client_session = next(iter(app_.sessions.values()))
    np.testing.assert_allclose(
        client_session._nodes["/grounding/box"].position, (box[:3] + box[3:]) / 2, atol=1e-5
    )
    assert client.nodes["/grounding/label"]["text"] == "the table · 0.88"
    assert "| `table` | 0.98 |" in markdowns(client)
    assert re.fullmatch(r"1\. query 2 at \([-\d., ]+\) · 0\.88", labels(client, "Candidates")[0])
    client.close()


def test_anchors_and_the_read_relation_show_how_the_query_was_read(viewer, scenes):
    app_, _ = viewer
    client = connect(app_)
    type_query(client, "the chair closest to the table", "query 0 at (")
    client.wait_until(lambda: "/grounding/anchors/0/label" in client.nodes)
    assert "read as *closest* (0.92)" in markdowns(client)  # softmax of 5 against 13 zeros
    assert client.nodes["/grounding/anchors/0/label"]["text"] == "table · 1.00"
    client_session = next(iter(app_.sessions.values()))
    table = app_.engine.load("toy0000")
    table_centre = table.voxel_points[object_voxels(table.scene, torch.as_tensor(table.voxel_points))[2]]
    np.testing.assert_allclose(
        client_session._nodes["/grounding/anchors/0/sphere"].position, table_centre.mean(0), atol=1e-5
    )
    client.set_value(client.gui_id("Anchors"), False)
    client.wait_until(lambda: not client.nodes["/grounding/anchors/0/sphere"]["visible"])
    client.set_value(client.gui_id("Anchors"), True)
    type_query(client, "the table", "query 2 at (")  # names nothing else: its anchor reads [CLS], not shown
    client.wait_until(lambda: not any(name.startswith("/grounding/anchors/") for name in client.nodes))
    assert "read as *category*" in markdowns(client)
    client.close()


def test_threshold_candidates_and_history(viewer, scenes):
    app_, _ = viewer
    client = connect(app_)
    type_query(client, "a chair", "query 0 at (")
    first, second = labels(client, "Candidates")[:2]
    assert re.fullmatch(r"1\. query 0 at \([-\d., ]+\) · 0\.95", first)
    assert re.fullmatch(r"2\. query 1 at \([-\d., ]+\) · 0\.92", second)
    client.click(client.gui_ids_under("Candidates")[1])
    client.wait_until(lambda: "(candidate 2)" in markdowns(client))
    np.testing.assert_array_equal(splat_rgba(last_splats(client))[:, :3], expected_colors(app_, "toy0000", 1))
    client.set_value(client.gui_id("Threshold"), 0.9)  # above the oracle's 0.88: nothing selected
    client.wait_until(lambda: "Nothing reaches the threshold" in markdowns(client))
    assert "/grounding/box" not in client.nodes
    client.set_value(client.gui_id("Threshold"), 0.5)
    client.wait_until(lambda: "/grounding/box" in client.nodes)
    client.click(client.gui_id("Ground"))
    client.wait_until(lambda: labels(client, "History") == ["a chair"])
    type_query(client, "the table", "query 2 at (")
    client.click(client.gui_id("Ground"))
    client.wait_until(lambda: labels(client, "History") == ["the table", "a chair"])
    client.click(client.gui_ids_under("History")[1])  # rerun "a chair"
    client.wait_until(
        lambda: "query 0 at (" in markdowns(client) and labels(client, "History")[0] == "a chair"
    )
    assert client.gui[client.gui_id("Query")]["value"] == "a chair"
    client.close()


def test_negatives_subtract_masks(viewer, scenes):
    app_, _ = viewer
    loaded = app_.engine.load("toy0000")
    plain = app_.engine.ground(loaded, "chair")
    minus = app_.engine.ground(loaded, "chair", ["the chair"])
    best = plain.candidates[0].point_probs
    np.testing.assert_allclose(minus.candidates[0].point_probs, best * (1.0 - best), rtol=1e-5)
    keep = 1.0 - best  # the negative's best query is chair 0's
    np.testing.assert_allclose(
        minus.candidates[1].point_probs, plain.candidates[1].point_probs * keep, rtol=1e-5
    )
    assert minus.negatives == ("the chair",)

    client = connect(app_)
    type_query(client, "chair", "query 0 at (")
    client.set_value(client.gui_id("Not"), "not the chair")  # chair 0's mask subtracted from itself
    client.wait_until(lambda: "Nothing reaches the threshold" in markdowns(client))
    client.set_value(client.gui_id("Not"), "not the table")  # disjoint: chair 0 is back
    client.wait_until(lambda: "/grounding/box" in client.nodes and "query 0 at (" in markdowns(client))
    client.close()


def test_scene_switch_regrounds_the_query(viewer, scenes):
    app_, _ = viewer
    client = connect(app_)
    type_query(client, "the chair", "query 0 at (")
    before = len(splat_rgba(last_splats(client)))
    client.set_value(client.gui_id("Scene"), "toy0001")
    client.wait_until(lambda: "query 1 at (" in markdowns(client))  # toy0001's chair is object 1
    rgba = splat_rgba(last_splats(client))
    assert len(rgba) == len(app_.engine.load("toy0001").splats) != before
    np.testing.assert_array_equal(rgba[:, :3], expected_colors(app_, "toy0001", 1))
    frustums = [name for name in client.nodes if name.startswith("/scene/cameras/")]
    assert len(frustums) == 3
    client.close()


def test_export_writes_3dgs_ply_and_json_and_offers_download(viewer, scenes):
    app_, _ = viewer
    export_dir = app_.config.export_dir
    client = connect(app_)
    client.click(client.gui_id("Export selection"))
    client.wait_until(lambda: "Nothing to export yet" in markdowns(client))
    type_query(client, "the table", "query 2 at (")
    client.click(client.gui_id("Export selection"))
    client.wait_until(lambda: len(client.completed_downloads()) == 2)
    (json_path,) = export_dir.glob("toy0000_the-table_*.json")
    ply_path = json_path.with_suffix(".ply")
    record = json.loads(json_path.read_text())
    assert bytes(client.downloads[ply_path.name]) == ply_path.read_bytes()
    assert bytes(client.downloads[json_path.name]) == json_path.read_bytes()
    vertex = PlyData.read(str(ply_path))["vertex"]
    assert [p.name for p in vertex.properties] == gaussian_property_names()
    loaded = app_.engine.load("toy0000")
    table_voxels = object_voxels(loaded.scene, torch.as_tensor(loaded.voxel_points))[2].numpy()
    expected_gaussians = np.flatnonzero(table_voxels[loaded.splats.point_index])
    assert record["gaussian_indices"] == expected_gaussians.tolist()
    assert vertex.count == len(expected_gaussians)
    np.testing.assert_allclose(
        np.stack([vertex["x"], vertex["y"], vertex["z"]], 1), loaded.splats.centers[expected_gaussians]
    )
    scene = scenes["toy0000"]
    assert record["point_indices"] == np.flatnonzero(scene.point_instance == 2).tolist()
    np.testing.assert_allclose(record["box"], object_box(scene, 2), atol=1e-6)
    assert (record["query"], record["candidate"], record["threshold"]) == (
        "the table",
        record["candidate"],
        0.5,
    )
    assert record["candidate"].startswith("query 2 at (")
    assert record["score"] == pytest.approx(1.0 / (1.0 + np.exp(-2.0)))
    client.close()


def test_two_clients_keep_their_own_state(viewer, scenes):
    app_, _ = viewer
    first, second = connect(app_), connect(app_)
    type_query(first, "the table", "query 2 at (")
    type_query(second, "the chair", "query 0 at (")
    assert "query 2 at (" in markdowns(first) and "query 0 at (" not in markdowns(first)
    np.testing.assert_array_equal(splat_rgba(last_splats(first))[:, :3], expected_colors(app_, "toy0000", 2))
    np.testing.assert_array_equal(splat_rgba(last_splats(second))[:, :3], expected_colors(app_, "toy0000", 0))
    second.set_value(second.gui_id("Scene"), "toy0001")
    second.wait_until(lambda: "query 1 at (" in markdowns(second))
    assert len(app_.sessions) == 2
    assert {s.state.scene_id for s in app_.sessions.values()} == {"toy0000", "toy0001"}
    first.close()
    second.close()


def test_empty_query_shows_a_hint(viewer):
    app_, oracle = viewer
    client = connect(app_)
    type_query(client, "the table", "query 2 at (")
    calls = len(oracle.calls)
    client.set_value(client.gui_id("Query"), "   ")
    client.wait_until(lambda: "Type a query" in markdowns(client) and "/grounding/box" not in client.nodes)
    client.click(client.gui_id("Ground"))
    time.sleep(0.3)
    assert "Type a query" in markdowns(client) and len(oracle.calls) == calls
    assert labels(client, "Candidates") == []
    client.close()


def test_queries_while_one_runs_latest_wins(model, scenes, tmp_path):
    app_, oracle = make_app(model, scenes, tmp_path, delay=0.4)
    try:
        client = connect(app_)
        for text in ("chair", "the chair", "lamp", "the table"):
            client.set_value(client.gui_id("Query"), text)
            time.sleep(0.05)
        client.wait_until(lambda: "query 2 at (" in markdowns(client))
        client_session = next(iter(app_.sessions.values()))
        assert client_session.worker.dropped >= 1  # queued queries replaced by newer ones, never run
        assert len(oracle.calls) < 4 and "table" in oracle.calls[-1]
        assert client_session.state.query == "the table"
        client.close()
    finally:
        app_.stop()


def test_client_disconnecting_mid_query(model, scenes, tmp_path, capfd):
    app_, oracle = make_app(model, scenes, tmp_path, delay=0.5)
    try:
        client = connect(app_)
        client.set_value(client.gui_id("Query"), "the table")
        deadline = time.monotonic() + 5
        while not oracle.calls and time.monotonic() < deadline:
            time.sleep(0.02)
        client.close()  # while the oracle sleeps
        deadline = time.monotonic() + 5
        while app_.sessions and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not app_.sessions
        time.sleep(0.8)  # the orphaned query finishes against the closed connection
        assert "Traceback" not in capfd.readouterr().err
        other = connect(app_)
        type_query(other, "the table", "query 2 at (")
        other.close()
    finally:
        app_.stop()


def test_2d_view_renders_the_mask_from_the_client_camera(viewer):
    app_, _ = viewer
    client = connect(app_)
    type_query(client, "the table", "query 2 at (")
    sent = time.perf_counter()
    client.set_value(client.gui_id("2D mask view"), True)
    image = client.wait_for(lambda r: r.type == "BackgroundImageMessage", after=sent)
    assert image.message["media_type"] == "image/jpeg" and len(image.message["rgb_bytes"]) > 100
    assert client.nodes["/scene/splats"]["visible"] is False  # the server render replaces the splats
    moved = time.perf_counter()
    client.send_camera(position=(1.0, -2.0, 1.5), look_at=(1.0, 0.4, 0.4))
    client.wait_for(lambda r: r.type == "BackgroundImageMessage", after=moved)
    client.set_value(client.gui_id("2D mask view"), False)
    client.wait_until(lambda: client.nodes["/scene/splats"]["visible"] is True)
    client.close()


def test_display_toggles(viewer):
    app_, _ = viewer
    client = connect(app_)
    client_session = next(iter(app_.sessions.values()))
    assert client_session._nodes["/scene/points"].visible is False
    assert client_session._nodes["/scene/cameras"].visible is False
    client.set_value(client.gui_id("Input point cloud"), True)
    client.set_value(client.gui_id("Cameras"), True)
    client.wait_until(
        lambda: client.nodes["/scene/points"]["visible"] and client.nodes["/scene/cameras"]["visible"]
    )
    client.close()


# ---------------------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("viewer-data")
    for scene in viewer_scenes().values():
        write_scene(scene, root / "scans" / scene.scene_id)
    return root, save_tiny_checkpoint(root / "tiny.pt")


def test_missing_checkpoint_is_a_clear_message(monkeypatch, capsys, toy_dataset, tmp_path):
    root, _ = toy_dataset
    code = run_entrypoint(monkeypatch, "--data", str(root), "--checkpoint", str(tmp_path / "nope.pt"))
    err = capsys.readouterr().err.strip()
    assert code != 0 and err == f"liftgs-viewer: checkpoint not found: {tmp_path / 'nope.pt'}"


def test_unknown_scene_lists_the_available_ones(monkeypatch, capsys, toy_dataset):
    root, checkpoint = toy_dataset
    code = run_entrypoint(
        monkeypatch, "--data", str(root), "--checkpoint", str(checkpoint), "--scene", "nope"
    )
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err
    assert err.startswith("liftgs-viewer: unknown scene 'nope'")
    assert err.endswith("available: toy0000, toy0001")


def test_busy_port_falls_back_to_the_next_one(monkeypatch, capsys, toy_dataset, tmp_path):
    root, checkpoint = toy_dataset
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = ViewerConfig(
            scene="toy0001", data=root, checkpoint=checkpoint, port=port, device="cpu", export_dir=tmp_path
        )
        running = start_viewer(config)
        try:
            out = capsys.readouterr().out
            assert running.server.get_port() != port
            assert f"port {port} is busy; using {running.server.get_port()}" in out
            assert f"open {running.url}" in out
            client = connect(running)  # the real (random) tiny model: every stage runs
            type_query(client, "the lamp", "Gaussians ≥ 0.50")
            client.close()
        finally:
            running.stop()


def test_a_clients_threads_end_with_it(viewer):
    app_, _ = viewer
    client = connect(app_)
    client_session = next(iter(app_.sessions.values()))
    client.close()
    client_session.worker._thread.join(timeout=5)
    assert not client_session.worker._thread.is_alive()
    assert all(t.name != f"viewer-{client_session.client.client_id}" for t in threading.enumerate())
