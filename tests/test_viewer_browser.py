"""The viewer in a real browser: Debian's Chromium, headless, driven by Playwright (no `playwright install`).

The page must load viser's client, show the panel, and a query typed into the "Query" box must reach the
server, come back as new splat colors and a box over the websocket, and change what is on screen.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from liftgs.benchmarks.viser_client import splat_rgba
from liftgs.model import LiftGS
from tests.support.browser import type_query_in_browser
from tests.support.network import tiny_config
from tests.support.viewer import expected_colors, make_app, viewer_scenes


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    torch.manual_seed(0)
    app_, _ = make_app(LiftGS(tiny_config()), viewer_scenes(), tmp_path_factory.mktemp("browser"))
    yield app_
    app_.stop()


@pytest.mark.browser
def test_query_typed_in_the_browser_highlights_and_changes_the_view(running, tmp_path):
    seen = type_query_in_browser(
        running.url, "the table", re.compile(r"query 2 at \(.*\) · 0\.88"), tmp_path / "chromium-profile"
    )
    sent = [message for stamp, message in seen.received if stamp >= seen.typed]
    splats = [m for m in sent if m["type"] == "GaussianSplatsMessage"]
    assert splats, "no new splat colors reached the browser"
    np.testing.assert_array_equal(splat_rgba(splats[-1])[:, :3], expected_colors(running, "toy0000", 2))
    assert any(m["type"] == "MeshMessage" and m["name"] == "/grounding/box" for m in sent)
    assert any(m["type"] == "LabelMessage" and m["text"] == "the table · 0.88" for m in sent)
    assert seen.view_change() > 0.01, f"only {seen.view_change():.2%} of the 3D view changed"
