"""``liftgs bench model``: encoder time per scene and query latency of the LIFT-GS network (CPU or GPU).

Scenes are synthetic rooms (floor, two walls, a few boxes) sampled densely enough to fill exactly the
requested number of voxels (with random lifted point features when the model reads them). Prints the
median over ``repeats`` runs after one warm-up; on a GPU each run waits for its kernels.
Bars: query (text encode + decoder + mask) <= 150 ms and encoder <= 2 s for a 20k-voxel scene on 2 cores;
goal: query <= 50 ms.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from liftgs.benchmarks.timing import device_label, synchronize
from liftgs.model import LiftGS, LiftGSConfig, load_model


def synthetic_room(num_voxels: int, voxel_size: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points [P, 3] and colors [P, 3] of a room corner whose voxelisation has >= ``num_voxels`` cells."""
    g = torch.Generator().manual_seed(seed)
    side = (num_voxels / 3.0) ** 0.5 * voxel_size * 1.2  # floor + two walls of side x side cells
    n = num_voxels * 4
    uv = torch.rand(n, 2, generator=g) * side
    which = torch.randint(0, 3, (n,), generator=g)
    zeros = torch.zeros(n)
    floor = torch.stack([uv[:, 0], uv[:, 1], zeros], 1)
    wall_x = torch.stack([zeros, uv[:, 0], uv[:, 1]], 1)
    wall_y = torch.stack([uv[:, 0], zeros, uv[:, 1]], 1)
    points = torch.where((which == 0)[:, None], floor, torch.where((which == 1)[:, None], wall_x, wall_y))
    colors = torch.rand(n, 3, generator=g) * 0.2 + (which[:, None] == torch.arange(3)).float() * 0.6
    return points, colors


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> tuple[float, float]:
    """Median wall-clock and median process CPU seconds of ``fn()`` over ``repeats`` runs after a warm-up.

    On a shared machine the CPU time (divided by the thread count) is the better estimate of the
    uncontended wall time. Each run waits for ``device``'s queued kernels before its timer stops.
    """
    fn()
    synchronize(device)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        synchronize(device)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


@dataclass
class BenchModel:
    """Times LiftGS.encode_scene per scene size and the query path (text + decoder + mask)."""

    threads: int = 2
    """torch CPU threads (the bars are for 2)."""
    repeats: int = 5
    scene_voxels: int = 20000
    train_voxels: int = 4000
    checkpoint: Path | None = None
    """Time a trained checkpoint instead of a freshly initialised default config."""
    device: str = "cpu"
    """Where the network and its text encoder run: cpu, cuda, cuda:1, ..."""

    def main(self) -> None:
        torch.set_num_threads(self.threads)
        device = torch.device(self.device)
        model = load_model(self.checkpoint)[0] if self.checkpoint else LiftGS(LiftGSConfig()).eval()
        model.to(device)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        table = Table(title=f"LIFT-GS model on {device_label(device)}, {params:.2f}M params")
        for column in ("measure", "wall median", f"CPU median / {self.threads}", "bar"):
            table.add_column(column)

        def row(name: str, fn: Callable[[], object], bar: str) -> None:
            wall, cpu = median_seconds(fn, self.repeats, device)
            table.add_row(name, f"{wall * 1e3:.0f} ms", f"{cpu / self.threads * 1e3:.0f} ms", bar)

        queries = ["the red chair next to the table", "a lamp", "the box on the left of the door"]
        with torch.no_grad():
            for voxels, bar in ((self.train_voxels, "~50-100 ms"), (self.scene_voxels, "<= 2 s")):
                points, colors = synthetic_room(voxels, model.config.voxel_size)
                width = model.config.encoder.extra_channels
                extra = torch.randn(points.shape[0], width) if model.reads_point_features else None
                model.config.max_points = voxels
                row(
                    f"encode_scene, {voxels} voxels",
                    lambda p=points, c=colors, e=extra: model.encode_scene(p, c, e),
                    bar,
                )
            scene = model.encode_scene(points, colors, extra)  # the scene_voxels one
            model.encode_text(queries)  # loads the text encoder
            counter = iter(range(10**9))

            def query() -> None:
                i = next(counter)
                model.predict(scene, [f"{queries[i % len(queries)]} {i}"])  # a new text: not cached

            row(f"query (text + decoder + mask), {scene.num_points} voxels", query, "<= 150 ms (goal 50)")
            text = model.encode_text(queries[:1])
            row("  of which decoder (ground)", lambda: model.ground(scene, text), "")
        Console().print(table)
