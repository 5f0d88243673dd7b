"""The viewer in a real browser: Debian's Chromium, headless, driven by Playwright (no `playwright install`).

The page must load viser's client, show the panel, and a query typed into the "Query" box must reach the
server, come back as new splat colors and a box over the websocket, and change what is on screen.
"""

from __future__ import annotations

import io
import re
import time

import msgspec
import numpy as np
import pytest
import torch
from PIL import Image
from playwright.sync_api import sync_playwright

from liftgs.benchmarks.viser_client import splat_rgba
from liftgs.model import LiftGS
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, READY_TEXT, labelled_input
from tests.support.network import tiny_config
from tests.support.viewer import expected_colors, make_app, viewer_scenes

VIEWPORT = {"width": 1000, "height": 700}
PANEL_LEFT = 640
"""The control panel sits right of this x (pixels); the 3D canvas is left of it."""


def canvas_pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[:, :PANEL_LEFT].astype(np.int16)


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    torch.manual_seed(0)
    app_, _ = make_app(LiftGS(tiny_config()), viewer_scenes(), tmp_path_factory.mktemp("browser"))
    yield app_
    app_.stop()


@pytest.mark.browser
def test_query_typed_in_the_browser_highlights_and_changes_the_view(running, tmp_path):
    received: list[tuple[float, dict]] = []

    def on_websocket(socket) -> None:
        def on_frame(payload) -> None:
            if isinstance(payload, bytes):
                stamp = time.perf_counter()
                received.extend((stamp, message) for message in msgspec.msgpack.decode(payload))

        socket.on("framereceived", on_frame)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        try:
            page = browser.new_page()
            page.on("websocket", on_websocket)
            page.goto(running.url)
            page.get_by_text(READY_TEXT).wait_for(timeout=60_000)
            labelled_input(page, "Query").wait_for(timeout=30_000)
            time.sleep(2.0)  # let the splats sort and draw
            before = page.screenshot()

            typed = time.perf_counter()
            labelled_input(page, "Query").fill("the table")
            page.get_by_text(re.compile(r"query 2 at \(.*\) · 0\.88")).wait_for(
                timeout=30_000
            )  # the candidate button
            time.sleep(2.0)
            after = page.screenshot()
        finally:
            browser.close()

    sent = [message for stamp, message in received if stamp >= typed]
    splats = [m for m in sent if m["type"] == "GaussianSplatsMessage"]
    assert splats, "no new splat colors reached the browser"
    np.testing.assert_array_equal(splat_rgba(splats[-1])[:, :3], expected_colors(running, "toy0000", 2))
    assert any(m["type"] == "MeshMessage" and m["name"] == "/grounding/box" for m in sent)
    assert any(m["type"] == "LabelMessage" and m["text"] == "the table · 0.88" for m in sent)

    changed = np.abs(canvas_pixels(after) - canvas_pixels(before)).max(axis=-1) > 24
    assert changed.mean() > 0.01, f"only {changed.mean():.2%} of the 3D view changed"
