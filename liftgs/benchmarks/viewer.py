"""``liftgs bench viewer``: latency of the live viewer as a browser tab sees it.

A headless websocket client (``liftgs.benchmarks.viser_client``) connects to a real viewer server and measures

- query -> colours: from sending a new query text to receiving the re-coloured splats (grounding on the
  cached scene encoding, highlight, splat message, transport);
- threshold -> colours: the same for a threshold change (no model call);
- scene switch -> splats: from picking another scene to receiving its splats, cold (encode on first use)
  and warm (encoding cached).

Prints medians (and 90th percentiles). Bars for a 20k-Gaussian scene on 2 cores: query -> colours
<= 200 ms median (goal <= 80 ms); warm splat upload for a new scene <= 1 s.
"""

from __future__ import annotations

import socket
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

QUERIES = (
    "the chair",
    "a desk by the wall",
    "the trash can",
    "the plant",
    "the monitor on the desk",
    "the stool",
    "the largest table",
    "the lamp in the corner",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class BenchViewer:
    """Times the viewer end to end: query -> new splat colours at the client, scene switch -> splats."""

    checkpoint: Path | None = None
    """Checkpoint to serve; default: the shipped one if present, else a random default-config LiftGS."""
    data: Path | None = None
    """Dataset root; default: the embedded benchmark (generated on first use)."""
    scene: str = "scan0000"
    other_scene: str = "scan0001"
    """Scene switched to (and back) to time splat uploads."""
    repeats: int = 16
    max_points: int | None = None
    """Override the model's voxel cap (with ``voxel_size``: time a denser scene than it was trained on)."""
    voxel_size: float | None = None
    """Override the model's voxel edge in metres (0.05 gives ~20k Gaussians on the embedded scenes)."""
    threads: int = 2
    """torch CPU threads (the bars are for 2 cores)."""

    def main(self) -> None:
        from app.engine import ViewerEngine
        from app.viewer import ViewerConfig, open_scenes, start_viewer
        from liftgs.benchmarks.viser_client import ViserTestClient
        from liftgs.eval.loading import DEFAULT_CHECKPOINT, load_liftgs
        from liftgs.model import LiftGS, LiftGSConfig

        torch.set_num_threads(self.threads)
        checkpoint = self.checkpoint or (DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else None)
        model = load_liftgs(checkpoint, "cpu")[0] if checkpoint else LiftGS(LiftGSConfig()).eval()
        if self.max_points is not None:
            model.config.max_points = self.max_points
        if self.voxel_size is not None:
            model.config.voxel_size = self.voxel_size
        source = open_scenes(self.data)
        engine = ViewerEngine(model, source.scene_ids, source.load)
        app = start_viewer(ViewerConfig(scene=self.scene, port=_free_port()), engine)
        client = ViserTestClient(app.url)
        try:
            client.send_camera()
            client.wait_until(
                lambda: any("Type a query" in p.get("markdown", "") for p in client.gui.values())
            )
            session = next(iter(app.sessions.values()))
            query, slider, dropdown = (client.gui_id(label) for label in ("Query", "Threshold", "Scene"))
            queries, grounding = [], []
            for index in range(self.repeats + 1):  # the first one warms up
                run = self._measure(client, session, [(query, f"{QUERIES[index % len(QUERIES)]} {index}")])
                session.worker.wait_idle(timeout=600.0)
                if index:
                    queries += run
                    grounding.append(session.state.result.seconds)
            thresholds = self._measure(
                client, session, [(slider, 0.3 + 0.05 * (i % 8)) for i in range(self.repeats)]
            )
            cold = self._measure(client, session, [(dropdown, self.other_scene)])
            warm = self._measure(client, session, [(dropdown, s) for s in [self.scene, self.other_scene] * 2])
            loaded = engine.load(self.scene)
        finally:
            client.close()
            app.stop()
        rows = [
            ("query -> colours", queries, "<= 200 ms (goal <= 80 ms)"),
            ("threshold -> colours", thresholds, "(no model call)"),
            ("scene switch -> splats, cold", cold, "(encode + upload)"),
            ("scene switch -> splats, warm", warm, "<= 1 s"),
        ]
        source_name = f"checkpoint {checkpoint}" if checkpoint else "random weights"
        table = Table(
            title=f"liftgs-viewer latency: {len(loaded.splats)} Gaussians ({self.scene}), "
            f"{self.threads} threads, {source_name}"
        )
        for column in ("measure", "wall median", "wall p90", f"CPU median / {self.threads}", "runs", "bar"):
            table.add_column(column)
        for name, runs, bar in rows:
            walls = sorted(wall for wall, _ in runs)
            cpu = statistics.median(cpu for _, cpu in runs) / self.threads
            p90 = walls[min(len(walls) - 1, int(0.9 * len(walls)))]
            table.add_row(name, _ms(statistics.median(walls)), _ms(p90), _ms(cpu), str(len(runs)), bar)
        Console().print(table)
        print(f"server-side ViewerEngine.ground per query: median {_ms(statistics.median(grounding))}")

    @staticmethod
    def _measure(client, session, actions: list[tuple[str, object]]) -> list[tuple[float, float]]:
        """(wall, process CPU) seconds from setting each GUI value to receiving the next splats; the
        session is idle (and its last messages delivered) before each action."""
        runs = []
        for gui_id, value in actions:
            session.worker.wait_idle(timeout=600.0)
            time.sleep(0.3)
            sent, cpu = time.perf_counter(), time.process_time()
            client.set_value(gui_id, value)
            received = client.wait_for(lambda r: r.type == "GaussianSplatsMessage", after=sent, timeout=600.0)
            runs.append((received.time - sent, time.process_time() - cpu))
        return runs


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms"
