"""The viewer under concurrent use and bad input: exports that never overwrite one another, closed tabs
that release their session, one-line errors, validated GUI values, temporary scene folders kept out of
the scene list.

A Python websocket client (``liftgs.benchmarks.viser_client``) plays each browser tab; the model is the
keyword oracle of ``tests.support.viewer`` (query ``q`` grounds object ``q``).
"""

from __future__ import annotations

import dataclasses
import gc
import io
import json
import sys
import threading
import time
import weakref

import numpy as np
import pytest
import torch
from plyfile import PlyData

from app.connections import broadcast_producers
from app.messages import log_error, one_line
from app.scenes import DatasetDirectory
from app.state import MAX_NEGATIVES, MAX_QUERY_LENGTH
from app.viewer import entrypoint
from liftgs.benchmarks.viser_client import ViserTestClient
from liftgs.data.store import write_scene
from liftgs.model import LiftGS
from liftgs.scene import Scene
from tests.support.network import save_tiny_checkpoint, tiny_config
from tests.support.viewer import connect, make_app, markdowns, viewer_scenes

CLICKS_PER_CLIENT = 12
QUERIES = ("the table!", "The table?", "стол table", "椅子", "桌子")
"""Five tabs' queries: the first two and the last two give the same file-name slug."""


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LiftGS(tiny_config())


def five_point_scene() -> Scene:
    """A scene of five points (and toy0000's frames): fewer voxels than the model needs to encode."""
    scene = viewer_scenes()["toy0000"]
    keep = np.linspace(0, scene.num_points - 1, 5).astype(int)
    return dataclasses.replace(
        scene,
        scene_id="tiny0000",
        points=scene.points[keep],
        colors=scene.colors[keep],
        point_instance=scene.point_instance[keep],
    )


@pytest.fixture
def viewer(model, tmp_path):
    scenes = {**viewer_scenes(), "tiny0000": five_point_scene()}
    app_, oracle = make_app(model, scenes, tmp_path)
    yield app_, oracle
    app_.stop()


def ground(client: ViserTestClient, query: str) -> None:
    client.set_value(client.gui_id("Query"), query)
    client.wait_until(lambda: "(candidate 1)" in markdowns(client))


def logged_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("liftgs-viewer: client")]


# --------------------------------------------------------------------------------------------- exports


def wait_for_downloads(client: ViserTestClient, count: int, timeout: float = 60.0) -> None:
    """Waits until ``count`` downloads reached ``client`` whole (the tab nudges the server meanwhile, see
    ``connect``). Parts were lost when two threads sent files to one client at once; ``ClientSession``
    sends one export at a time."""
    client.wait_until(lambda: len(client.completed_downloads()) == count, timeout)


def test_concurrent_exports_each_download_is_its_own_complete_file(viewer):
    app_, _ = viewer
    clients = [connect(app_) for _ in QUERIES]
    for client, query in zip(clients, QUERIES, strict=True):
        ground(client, query)

    def click(client: ViserTestClient) -> None:
        button = client.gui_id("Export selection")
        for _ in range(CLICKS_PER_CLIENT):
            client.click(button)

    threads = [threading.Thread(target=click, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        wait_for_downloads(client, 2 * CLICKS_PER_CLIENT)

    export_dir = app_.config.export_dir
    files = sorted(export_dir.iterdir())
    assert len(files) == 2 * CLICKS_PER_CLIENT * len(QUERIES)  # 60 .ply and 60 .json, no leftovers
    assert all(not path.name.startswith(".") for path in files)
    names = set()
    for client, query in zip(clients, QUERIES, strict=True):
        downloads = {d.filename: bytes(d.content) for d in client.transfers}
        assert len(downloads) == 2 * CLICKS_PER_CLIENT  # every click its own pair of names
        names |= downloads.keys()
        for name, content in downloads.items():
            assert (export_dir / name).read_bytes() == content  # nothing overwrote it
            if name.endswith(".json"):
                record = json.loads(content)
                assert record["query"] == query and record["ply"] == name.replace(".json", ".ply")
                ply = PlyData.read(io.BytesIO(downloads[record["ply"]]))
                assert ply["vertex"].count == record["num_gaussians"] > 0
    assert len(names) == len(files)
    for client in clients:
        client.close()


# ------------------------------------------------------------------------------------- closed sessions


def test_closed_tabs_release_their_sessions(viewer):
    app_, _ = viewer
    websock_server = app_.server._websock_server
    buffer = websock_server._broadcast_buffer
    sessions, client_ids = [], []
    for index in range(5):
        client = connect(app_)
        ground(client, ("the table", "a chair")[index % 2])
        (session,) = app_.sessions.values()
        sessions.append(weakref.ref(session))
        client_ids.append(session.client.client_id)
        del session
        client.close()
        deadline = time.monotonic() + 10
        while app_.sessions and time.monotonic() < deadline:
            time.sleep(0.02)
    deadline = time.monotonic() + 10
    while broadcast_producers(buffer.event_loop, buffer) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not broadcast_producers(buffer.event_loop, buffer)  # no task left for a closed tab
    gc.collect()
    kept = {id(session) for session in app_._closed_sessions}  # joined when the viewer stops
    alive = [ref() for ref in sessions if ref() is not None]
    assert all(id(session) in kept for session in alive) and len(alive) <= 2
    del alive


# ------------------------------------------------------------------------------------------------ errors


def test_a_scene_too_small_to_encode_is_one_line_in_the_gui(viewer, capfd):
    app_, oracle = viewer
    client = connect(app_)
    client.set_value(client.gui_id("Scene"), "tiny0000")
    client.wait_until(lambda: "**Error:** scene 'tiny0000' cannot be shown" in markdowns(client))
    err = capfd.readouterr().err
    assert "Traceback" not in err
    (line,) = logged_lines(err)
    assert "scene 'tiny0000' cannot be shown: scene has 5 voxel(s)" in line
    client.set_value(client.gui_id("Scene"), "toy0001")  # the viewer goes on
    ground(client, "the lamp")
    client.close()


@pytest.mark.parametrize(
    ("label", "value", "message", "restored"),
    [
        ("Threshold", 5.0, "threshold must be between 0.05 and 0.95, got 5", 0.5),
        ("Threshold", float("nan"), "threshold must be between 0.05 and 0.95, got nan", 0.5),
        ("Query", "x" * (MAX_QUERY_LENGTH + 1), f"query too long: {MAX_QUERY_LENGTH + 1} characters", None),
        ("Not", "; ".join(["the lamp"] * (MAX_NEGATIVES + 1)), "too many negative queries", None),
        ("Scene", "nope", "unknown scene 'nope'; available: toy0000, toy0001, tiny0000", "toy0000"),
    ],
)
def test_bad_gui_values_are_refused_in_one_line(viewer, capfd, label, value, message, restored):
    app_, oracle = viewer
    client = connect(app_)
    ground(client, "the table")
    calls = len(oracle.calls)
    (session,) = app_.sessions.values()
    state = session.state
    before = (state.scene_id, state.query, state.negatives, state.threshold, state.result)
    client.set_value(client.gui_id(label), value)
    client.wait_until(lambda: f"**Error:** {message}" in markdowns(client))
    if restored is not None:  # the control shows the value in use again
        client.wait_until(lambda: client.gui[client.gui_id(label)]["value"] == restored)
    time.sleep(0.2)
    assert f"**Error:** {message}" in markdowns(client)  # not drawn over by a refresh
    assert (state.scene_id, state.query, state.negatives, state.threshold, state.result) == before
    assert len(oracle.calls) == calls
    err = capfd.readouterr().err
    assert "Traceback" not in err and len(logged_lines(err)) == 1
    client.close()


def test_error_lines_and_tracebacks(capsys):
    assert one_line(ValueError("bad input\nsecond line")) == "bad input"
    assert one_line(KeyError("x")) == "KeyError: 'x'"
    assert one_line(ValueError("y" * 1000)).endswith("...")
    for error, verbose, traceback_printed in (
        (ValueError("bad query"), True, False),
        (KeyError("bug"), False, False),
        (KeyError("bug"), True, True),
    ):
        try:
            raise error
        except Exception as raised:
            log_error("client 1", raised, verbose)
        err = capsys.readouterr().err
        assert err.splitlines()[0] == f"liftgs-viewer: client 1: {one_line(error)}"
        assert ("Traceback" in err) == traceback_printed


def test_a_start_scene_too_small_to_encode_is_one_line(monkeypatch, capsys, tmp_path):
    write_scene(five_point_scene(), tmp_path / "scans" / "tiny0000")
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt")
    argv = ["liftgs-viewer", "--data", str(tmp_path), "--checkpoint", str(checkpoint), "--scene", "tiny0000"]
    monkeypatch.setattr(sys, "argv", [*argv, "--device", "cpu"])
    with pytest.raises(SystemExit) as raised:
        entrypoint()
    err = capsys.readouterr().err.strip()
    assert raised.value.code != 0 and "\n" not in err
    assert err.startswith("liftgs-viewer: scene 'tiny0000' cannot be shown: scene has 5 voxel(s)")


# ---------------------------------------------------------------------------------------------- scenes


def test_hidden_and_temporary_scene_folders_are_not_scenes(tmp_path):
    for name in ("scan0000", "scan0002", ".scan0003.1234.tmp", ".scan0004.old.99.tmp", ".hidden"):
        (tmp_path / "scans" / name).mkdir(parents=True)
    (tmp_path / "scans" / "notes.txt").write_text("not a scene")
    assert DatasetDirectory(tmp_path).scene_ids == ["scan0000", "scan0002"]
