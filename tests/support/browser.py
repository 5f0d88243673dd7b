"""Headless-browser helpers for the viewer: Chromium settings and locators for the browser test, and a
screenshot command for the README (start the viewer, type a query in headless Chromium, save a PNG)::

    python -m tests.support.browser --query "the desk next to the chair" --out docs/viewer.png

Uses Debian's ``/usr/bin/chromium`` through Playwright (no ``playwright install``): WebGL runs on the
CPU (SwiftShader), so the splats are drawn exactly as in a desktop browser, just slower.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import tyro

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
    "--enable-unsafe-swiftshader",  # WebGL on the CPU, for the splats
]
READY_TEXT = "Type a query above"
"""Shown in the panel once the first scene is on screen."""
VIEWPORT = {"width": 1000, "height": 700}
PANEL_LEFT = 640
"""Pixels left of the GUI panel in a ``VIEWPORT`` screenshot: the 3D view."""


def labelled_input(page, label: str):
    """The text input viser draws beside ``<label>{label}</label>`` (same Mantine flex row)."""
    return page.locator(
        f"xpath=//label[normalize-space()='{label}']/ancestor::div[contains(@class,'mantine-Flex-root')][1]//input"
    )


@dataclass
class TypedQuery:
    """What a headless browser saw around typing one query into the viewer."""

    received: list[tuple[float, dict]]
    """Every websocket message the page received, with its arrival time (``time.perf_counter``)."""
    typed: float
    """When the query was typed (``time.perf_counter``)."""
    before: bytes
    after: bytes
    """Screenshots (PNG) just before typing and once the answer is on screen."""

    def canvas(self, png: bytes, panel_left: int = PANEL_LEFT):
        """[H, W, 3] int16 pixels of a screenshot's 3D view (left of the GUI panel)."""
        import io

        import numpy as np
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[:, :panel_left].astype(np.int16)

    def view_change(self) -> float:
        """Share of the 3D view's pixels that changed by more than 24 levels in some channel."""
        return float((abs(self.canvas(self.after) - self.canvas(self.before)).max(axis=-1) > 24).mean())


def type_query_in_browser(url: str, query: str, answered: re.Pattern, profile: Path) -> TypedQuery:
    """Opens ``url`` in headless Chromium (``VIEWPORT``), waits for the viewer, types ``query`` into
    **Query** and waits until text matching ``answered`` (e.g. the best candidate's button) shows."""
    import msgspec
    from playwright.sync_api import sync_playwright

    received: list[tuple[float, dict]] = []

    def on_websocket(socket) -> None:
        def on_frame(payload) -> None:
            if isinstance(payload, bytes):
                stamp = time.perf_counter()
                received.extend((stamp, message) for message in msgspec.msgpack.decode(payload))

        socket.on("framereceived", on_frame)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT
        )
        try:
            page = browser.new_page()
            page.on("websocket", on_websocket)
            page.goto(url)
            page.get_by_text(READY_TEXT).wait_for(timeout=60_000)
            labelled_input(page, "Query").wait_for(timeout=30_000)
            time.sleep(2.0)  # let the splats sort and draw
            before = page.screenshot()
            typed = time.perf_counter()
            labelled_input(page, "Query").fill(query)
            page.get_by_text(answered).wait_for(timeout=30_000)
            time.sleep(2.0)
            after = page.screenshot()
        finally:
            browser.close()
    return TypedQuery(received, typed, before, after)


@dataclass
class ScreenshotConfig:
    """Start the viewer, type a query in headless Chromium and save a screenshot."""

    query: str = "the desk"
    out: Path = Path("docs/viewer.png")
    scene: str = "scan0000"
    checkpoint: Path | None = None
    """Default: the shipped ``assets/liftgs_synthetic.pt``."""
    data: Path | None = None
    """Default: the embedded benchmark."""
    width: int = 1400
    height: int = 860
    settle: float = 4.0
    """Seconds to let the browser sort and draw the splats before each screenshot."""
    timeout: float = 300.0
    """Seconds to wait for the page and the grounding (CPU WebGL and models are slow)."""

    def main(self) -> None:
        from playwright.sync_api import sync_playwright

        from app.viewer import ViewerConfig, start_viewer

        config = ViewerConfig(scene=self.scene, checkpoint=self.checkpoint, data=self.data, port=8091)
        app = start_viewer(config)
        timeout_ms = self.timeout * 1000
        try:
            with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
                browser = playwright.chromium.launch_persistent_context(
                    profile,
                    executable_path=CHROMIUM,
                    headless=True,
                    args=CHROMIUM_ARGS,
                    viewport={"width": self.width, "height": self.height},
                )
                page = browser.new_page()
                page.goto(app.url)
                page.get_by_text(READY_TEXT).wait_for(timeout=timeout_ms)
                labelled_input(page, "Query").fill(self.query)
                page.get_by_text(READY_TEXT).wait_for(state="detached", timeout=timeout_ms)
                page.get_by_text("(candidate 1)").wait_for(timeout=timeout_ms)
                time.sleep(self.settle)
                self.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(self.out))
                browser.close()
        finally:
            app.stop()
        print(f"wrote {self.out}")


if __name__ == "__main__":
    tyro.cli(ScreenshotConfig).main()
