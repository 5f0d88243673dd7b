"""``liftgs-viewer --ply FILE``: the file's own splats are sent, a query highlights the right ones and boxes
them, the display cap, export of the same files as ``liftgs ground --ply``, one-line start-up errors.

The model is a tiny LiftGS whose ``ground`` is a color oracle (``tests.support.scene_files``): "red" grounds
the red cube's voxels, "wall" the walls' voxels.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time

import numpy as np
import pytest
from plyfile import PlyData

from app.file_scene import POINT_SIGMA_FRACTION, FileViewerEngine, point_spacing
from app.render2d import pinhole, render_view
from app.viewer import ViewerConfig, start_viewer
from liftgs.benchmarks.viser_client import ViserTestClient, splat_centers, splat_rgba
from liftgs.ground_file import open_user_scene
from liftgs.model import LiftGS
from tests.support.browser import type_query_in_browser
from tests.support.network import save_tiny_checkpoint, tiny_config
from tests.support.scene_files import (
    FLOATERS,
    Y_UP,
    color_ground_oracle,
    cube_room,
    to_file,
    write_3dgs,
    write_point_cloud,
    write_splatfacto_run,
)
from tests.support.viewer import connect, free_port, last_splats, markdowns, run_entrypoint

UNIT = 1000.0  # the file is y-up millimetres


@pytest.fixture(scope="module")
def room():
    return cube_room()


@pytest.fixture(scope="module")
def model():
    network = LiftGS(dataclasses.replace(tiny_config(), max_points=4000))
    network.ground = color_ground_oracle  # instance attribute: the engine calls model.ground
    return network


@pytest.fixture(scope="module")
def scene_path(room, tmp_path_factory):
    return write_3dgs(tmp_path_factory.mktemp("file") / "room.ply", room, Y_UP, UNIT)


def make_viewer(model, scene_path, tmp_path, max_shown: int = 100_000):
    engine = FileViewerEngine(model, open_user_scene(scene_path, model), top_k=2, max_shown=max_shown)
    config = ViewerConfig(ply=scene_path, port=free_port(), export_dir=tmp_path / "export")
    return start_viewer(config, engine)


@pytest.fixture(scope="module")
def viewer(model, scene_path, tmp_path_factory):
    app_ = make_viewer(model, scene_path, tmp_path_factory.mktemp("viewer"))
    yield app_
    app_.stop()


def type_query(client: ViserTestClient, text: str, expect: str) -> dict:
    """Types ``text``, waits for the status to show ``expect``; returns the splats sent for it."""
    sent = time.perf_counter()
    client.set_value(client.gui_id("Query"), text)
    client.wait_until(lambda: expect in markdowns(client))
    return client.wait_for(lambda r: r.type == "GaussianSplatsMessage", after=sent).message


def lit(plain: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """[G] bool, the highlighted splats: those whose opacity was not dimmed."""
    return np.abs(shown[:, 3].astype(int) - plain[:, 3].astype(int)) <= 1


def test_the_files_own_splats_are_shown_and_a_query_highlights_and_boxes_the_object(viewer, room):
    client = connect(viewer)
    user = viewer.engine.user
    plain = last_splats(client)
    count = room.points.shape[0] + FLOATERS
    centers = splat_centers(plain)
    assert centers.shape == (count, 3)  # every splat of the file, not the network's Gaussians
    np.testing.assert_allclose(centers, user.transform.to_network(user.splats.means), atol=1e-4)
    plain_rgba = splat_rgba(plain).copy()

    red = lit(plain_rgba, splat_rgba(type_query(client, "the red cube", "**query 0 at (")))
    assert room.red[red[: room.points.shape[0]]].mean() > 0.8 and red[np.flatnonzero(room.red)].mean() > 0.8
    assert not red[-FLOATERS:].any()
    session = next(iter(viewer.sessions.values()))
    cube = to_file(room.points[room.red], Y_UP, UNIT)
    centre = user.transform.to_network((cube.min(0) + cube.max(0)) / 2)
    np.testing.assert_allclose(session._nodes["/grounding/box"].position, centre, atol=0.1)

    wall = lit(plain_rgba, splat_rgba(type_query(client, "the wall", "**query 1 at (")))
    assert not wall[np.flatnonzero(room.red)].any() and wall.sum() > 0.2 * count
    client.close()


def test_export_writes_the_files_liftgs_ground_writes_and_sends_them(viewer, room):
    client = connect(viewer)
    type_query(client, "the red cube", "**query 0 at (")
    client.click(client.gui_id("Export selection"))
    client.wait_until(lambda: len(client.completed_downloads()) == 3)
    export_dir = viewer.config.export_dir
    (json_path,) = export_dir.glob("room_the-red-cube_*.json")
    stem = json_path.name.removesuffix(".json")
    scored, selected = export_dir / f"{stem}.scored.ply", export_dir / f"{stem}.selected.ply"
    for path in (json_path, scored, selected):
        assert bytes(client.downloads[path.name]) == path.read_bytes()
    record = json.loads(json_path.read_text())
    cube = to_file(room.points[room.red], Y_UP, UNIT)
    box = np.array(record["box"])  # the file's frame: y up, millimetres
    assert (box[:3] >= cube.min(0) - 100).all() and (box[3:] <= cube.max(0) + 100).all()
    assert record["transform"]["up"] == "+y"
    assert PlyData.read(str(scored))["vertex"].count == room.points.shape[0] + FLOATERS
    assert PlyData.read(str(selected))["vertex"].count == record["num_selected"] > 0.8 * room.red.sum()
    client.close()


def test_display_cap_shows_the_most_opaque_splats_and_says_so(model, scene_path, room, tmp_path):
    app_ = make_viewer(model, scene_path, tmp_path, max_shown=1000)
    try:
        client = connect(app_)
        assert splat_centers(last_splats(client)).shape == (1000, 3)
        count = room.points.shape[0]
        assert f"Showing 1,000 of {count + FLOATERS:,} splats (the most opaque" in markdowns(client)
        assert (app_.engine.load("room").shown < count).all()  # no floater among the most opaque
        client.close()
    finally:
        app_.stop()


def test_a_point_cloud_shows_as_round_splats_that_the_2d_view_renders(model, room, tmp_path):
    cloud = write_point_cloud(tmp_path / "cloud.ply", room)
    engine = FileViewerEngine(model, open_user_scene(cloud, model))
    loaded = engine.load("cloud")
    splats, gaussians = loaded.splats, loaded.view_gaussians
    assert len(splats) == len(gaussians) == room.points.shape[0]
    spacing = point_spacing(gaussians.means.numpy())
    np.testing.assert_allclose(gaussians.scales.numpy(), POINT_SIGMA_FRACTION * spacing, rtol=1e-5)
    np.testing.assert_allclose(
        splats.covariances[:, [0, 1, 2], [0, 1, 2]], (POINT_SIGMA_FRACTION * spacing) ** 2
    )
    assert loaded.display_note == ""
    c2w = np.eye(4)
    c2w[:3, :3] = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]  # OpenCV axes looking along +y
    c2w[:3, 3] = [0.0, -6.0, 1.0]
    K, width = pinhole(np.pi / 3, 1.0, 32)
    image = render_view(gaussians, splats.colors, splats.opacities, c2w, K, width, 32)
    assert (image < 200).any()  # the room, drawn over the white background


def test_load_config_starts_a_viewer_on_a_splatfacto_runs_gaussians(room, tmp_path):
    config_path = write_splatfacto_run(tmp_path / "outputs/room/splatfacto/2026", room)
    config = ViewerConfig(
        load_config=config_path,
        checkpoint=save_tiny_checkpoint(tmp_path / "tiny.pt"),
        device="cpu",
        up="z",
        scale="1",
        port=free_port(),
        export_dir=tmp_path / "export",
    )
    app_ = start_viewer(config)
    try:
        assert isinstance(app_.engine, FileViewerEngine) and app_.engine.scene_ids == ["2026"]
        loaded = app_.engine.load("2026")
        assert len(loaded.splats) == room.points.shape[0]
        assert app_.engine.user.transform.describe() == "up +z, scale 1 m per file unit (given)"
        client = connect(app_)
        assert splat_centers(last_splats(client)).shape == (room.points.shape[0], 3)
        client.close()
    finally:
        app_.stop()


def test_start_up_errors_are_one_line(monkeypatch, capsys, scene_path, tmp_path):
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt")
    (tmp_path / "notes.ply").write_text("ply\nformat nonsense\n")
    cases = {
        "missing": ("--ply", str(tmp_path / "missing.ply")),
        "unreadable": ("--ply", str(tmp_path / "notes.ply")),
        "bad up": ("--ply", str(scene_path), "--up", "w"),
        "both": ("--ply", str(scene_path), "--load-config", str(scene_path)),
    }
    for name, args in cases.items():
        code = run_entrypoint(monkeypatch, "--checkpoint", str(checkpoint), "--device", "cpu", *args)
        err = capsys.readouterr().err.strip()
        assert code != 0 and err.startswith("liftgs-viewer: ") and "\n" not in err, name


@pytest.mark.browser
def test_query_typed_in_the_browser_highlights_the_files_splats(viewer, room, tmp_path):
    seen = type_query_in_browser(
        viewer.url,
        "the red cube",
        re.compile(r"1\. query 0 at \(.*\) · 0\.95"),
        tmp_path / "chromium-profile",
    )
    first = next(m for _, m in seen.received if m["type"] == "GaussianSplatsMessage")
    splats = [m for stamp, m in seen.received if stamp >= seen.typed and m["type"] == "GaussianSplatsMessage"]
    assert splats, "no new splat colors reached the browser"
    red = lit(splat_rgba(first), splat_rgba(splats[-1]))
    assert red.shape == (room.points.shape[0] + FLOATERS,)  # the file's own splats
    assert red[np.flatnonzero(room.red)].mean() > 0.8 and room.red[red[: room.points.shape[0]]].mean() > 0.8
    assert seen.view_change() > 0.01, f"only {seen.view_change():.2%} of the 3D view changed"
