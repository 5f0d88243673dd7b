"""``liftgs bench viewer``: latency of the live viewer as a browser tab sees it, alone or under load.

Headless websocket clients (``liftgs.benchmarks.viser_client``) connect over loopback to a real viewer
server in this process. ``--mode latency`` (the default) uses one tab and measures

- query -> colors: from sending a new query text to receiving the re-colored splats (grounding on the
  cached scene encoding, highlight, splat message, transport);
- threshold -> colors: the same for a threshold change (no model call);
- scene switch -> splats: from picking another scene to receiving its splats, cold (encode on first use)
  and warm (encoding cached).

Prints medians (and 90th percentiles). Bars for a 20k-Gaussian scene on 2 cores: query -> colors
<= 200 ms median (goal <= 80 ms); warm splat upload for a new scene <= 1 s.

``--mode load`` connects ``--clients`` tabs at once; each sends a new query as soon as its previous one
came back as colors, until ``--queries`` queries in all were answered or ``--time-limit`` seconds passed.
It prints the query -> colors latency (p50, p95, max), the answered queries per second, and the
process's resident memory (RSS) when the server is ready, after the load, and after ``--cycles`` tabs
more connected, grounded one query and closed one after the other, with its growth per tab over the
second half of them (close to zero: closed tabs release their sessions). The clients run in this
process too, keeping only the messages they need, so the RSS includes them.
"""

from __future__ import annotations

import gc
import socket
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from rich.console import Console
from rich.table import Table

from liftgs.benchmarks.timing import memory_kib
from liftgs.benchmarks.viser_client import ViserTestClient

if TYPE_CHECKING:
    from app.engine import ViewerEngine
    from app.viewer import ViewerApp

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
    """Times the viewer end to end: query -> new splat colors at the client, scene switch -> splats; or
    several clients querying at once."""

    mode: Literal["latency", "load"] = "latency"
    """``latency``: one tab, every kind of update timed alone; ``load``: ``clients`` tabs at once."""
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
    clients: int = 4
    """Load mode: tabs connected and querying at once."""
    queries: int = 48
    """Load mode: queries answered in all (shared by the tabs)."""
    time_limit: float = 120.0
    """Load mode: seconds after which no tab sends another query."""
    cycles: int = 20
    """Load mode: tabs that connect, ground one query and close, one after the other, after the load."""

    def main(self) -> None:
        if self.mode == "load" and min(self.clients, self.queries, self.cycles) < 1:
            raise SystemExit("liftgs bench viewer: --clients, --queries and --cycles must be at least 1")
        if self.mode == "load" and self.time_limit <= 0:
            raise SystemExit("liftgs bench viewer: --time-limit must be positive")
        app, engine, source_name = self._start()
        try:
            if self.mode == "load":
                self._load(app, engine, source_name)
            else:
                self._latency(app, engine, source_name)
        finally:
            app.stop()

    def _start(self) -> tuple[ViewerApp, ViewerEngine, str]:
        """The running viewer (first scene encoded), its engine and a name for the weights."""
        from app.engine import ViewerEngine
        from app.viewer import ViewerConfig, open_scenes, start_viewer
        from liftgs.model import LiftGS, LiftGSConfig
        from liftgs.model.loading import DEFAULT_CHECKPOINT, load_liftgs

        torch.set_num_threads(self.threads)
        checkpoint = self.checkpoint or (DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else None)
        model = load_liftgs(checkpoint, "cpu")[0] if checkpoint else LiftGS(LiftGSConfig()).eval()
        if self.max_points is not None:
            model.config.max_points = self.max_points
        if self.voxel_size is not None:
            model.config.voxel_size = self.voxel_size
        source = open_scenes(self.data)
        engine = ViewerEngine(model, source.scene_ids, source.load)
        app = start_viewer(ViewerConfig(scene=self.scene, host="127.0.0.1", port=_free_port()), engine)
        return app, engine, f"checkpoint {checkpoint}" if checkpoint else "random weights"

    def _latency(self, app: ViewerApp, engine: ViewerEngine, source_name: str) -> None:
        """One tab: queries, threshold moves and scene switches, each timed alone."""
        client = _connect(app.url)
        try:
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
        rows = [
            ("query -> colors", queries, "<= 200 ms (goal <= 80 ms)"),
            ("threshold -> colors", thresholds, "(no model call)"),
            ("scene switch -> splats, cold", cold, "(encode + upload)"),
            ("scene switch -> splats, warm", warm, "<= 1 s"),
        ]
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

    def _load(self, app: ViewerApp, engine: ViewerEngine, source_name: str) -> None:
        """Several tabs querying at once, then tabs connecting and closing one after the other."""
        rss_ready = _rss_mib()
        clients = [_connect(app.url) for _ in range(self.clients)]
        latencies: list[float] = []
        counter = iter(range(self.queries))
        lock = threading.Lock()
        deadline = time.monotonic() + self.time_limit
        start = time.perf_counter()

        def run(client) -> None:
            query_id = client.gui_id("Query")
            while time.monotonic() < deadline:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                sent = time.perf_counter()
                client.set_value(query_id, f"{QUERIES[index % len(QUERIES)]} {index}")
                remaining = max(0.0, deadline - time.monotonic())
                try:
                    received = client.wait_for(
                        lambda r: r.type == "GaussianSplatsMessage", after=sent, timeout=remaining
                    )
                except TimeoutError:
                    return
                with lock:
                    latencies.append(received.time - sent)
                client.forget()

        threads = [threading.Thread(target=run, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        for client in clients:
            client.close()
        del clients
        gc.collect()
        rss_loaded = _rss_mib()
        rss_cycles = []  # after each tab came and went
        for index in range(self.cycles):
            client = _connect(app.url)
            sent = time.perf_counter()
            client.set_value(client.gui_id("Query"), QUERIES[index % len(QUERIES)])
            client.wait_for(lambda r: r.type == "GaussianSplatsMessage", after=sent, timeout=600.0)
            client.close()
            _wait_until(lambda: not app.sessions, timeout=30.0)
            rss_cycles.append(_rss_mib())

        loaded = engine.load(self.scene)
        table = Table(
            title=f"liftgs-viewer under load: {self.clients} tabs, {len(loaded.splats)} Gaussians "
            f"({self.scene}), {self.threads} threads, {source_name}"
        )
        for column in ("measure", "value"):
            table.add_column(column)
        answered = sorted(latencies)
        table.add_row("queries answered", f"{len(answered)} of {self.queries} in {elapsed:.1f} s")
        if answered:
            table.add_row("query -> colors p50", _ms(_percentile(answered, 0.50)))
            table.add_row("query -> colors p95", _ms(_percentile(answered, 0.95)))
            table.add_row("query -> colors max", _ms(answered[-1]))
            table.add_row("queries per second", f"{len(answered) / elapsed:.2f}")
        table.add_row("RSS, server ready", _mib(rss_ready))
        table.add_row("RSS, after the load", _mib(rss_loaded))
        table.add_row(f"RSS, after {self.cycles} more tabs came and went", _mib(rss_cycles[-1]))
        half = self.cycles // 2
        if rss_cycles[-1] is not None and half >= 1:  # the first tabs still allocate lasting caches
            growth = (rss_cycles[-1] - rss_cycles[half - 1]) / (self.cycles - half) * 1024
            table.add_row(f"RSS growth per tab, last {self.cycles - half} tabs", f"{growth:+.0f} KiB")
        Console().print(table)

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


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} MiB"


def _rss_mib() -> float | None:
    """This process's resident memory in MiB (None where /proc is missing)."""
    kib = memory_kib("VmRSS")
    return None if kib is None else kib / 1024


def _percentile(ordered: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of the sorted values lie (nearest rank)."""
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _connect(url: str) -> ViserTestClient:
    """A tab whose first scene is on screen."""
    client = ViserTestClient(url)
    client.send_camera()
    client.wait_until(
        lambda: any("Type a query" in p.get("markdown", "") for p in client.gui.values()), 600.0
    )
    return client


def _wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
