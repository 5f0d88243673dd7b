"""``liftgs bench train``: median training-step time of the default ``ns-train liftgs`` setup (CPU or GPU).

Builds the method's pipeline (same network, sampler, render resolution and optimiser as ``ns-train``) on
the synthetic benchmark (or ``--data``), runs ``warmup`` steps, then times ``steps`` full steps (batch
sampling, forward, rendering, losses, backward, AdamW). Prints median wall and CPU time per step and the
throughput in scenes/s and expressions/s. On a shared machine, CPU time / threads estimates the
uncontended wall time. On a GPU (``--device cuda``) each step waits for its kernels before its timer
stops, and rendering uses gsplat's kernels when they load (``liftgs.render.rasterize``'s ``auto``).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from nerfstudio.engine.optimizers import Optimizers
from rich.console import Console
from rich.table import Table

from liftgs.benchmarks.timing import device_label, synchronize
from liftgs.model.config import LiftGSConfig


@dataclass
class BenchTrain:
    """Times training steps of `ns-train liftgs` (or liftgs-3d)."""

    method: Literal["liftgs", "liftgs-3d"] = "liftgs"
    data: Path | None = None
    """Dataset root; default: the embedded synthetic benchmark."""
    steps: int = 8
    warmup: int = 2
    threads: int = 2
    network: LiftGSConfig = field(default_factory=LiftGSConfig)
    """The network to time (default: the method's)."""
    expressions_per_scene: int | None = None
    views_per_scene: int | None = None
    render_height: int | None = None
    render_width: int | None = None
    device: str = "cpu"
    """cpu, cuda, cuda:1, ..."""

    def main(self) -> None:
        from method_configs.liftgs import trainer_config

        torch.set_num_threads(self.threads)
        config = trainer_config(self.method, "views" if self.method == "liftgs" else "points")
        pipeline_config = config.pipeline
        pipeline_config.model.network = self.network
        datamanager = pipeline_config.datamanager
        datamanager.data = self.data
        for name in ("expressions_per_scene", "views_per_scene"):
            if getattr(self, name) is not None:
                setattr(datamanager.sampler, name, getattr(self, name))
        for name in ("render_height", "render_width"):
            if getattr(self, name) is not None:
                setattr(datamanager, name, getattr(self, name))
        device = torch.device(self.device)
        pipeline = pipeline_config.setup(device=self.device, test_mode="val")
        optimizers = Optimizers(config.optimizers, pipeline.get_param_groups())
        walls, cpus = [], []
        for step in range(self.warmup + self.steps):
            wall, cpu = time.perf_counter(), time.process_time()
            optimizers.zero_grad_all()
            _, losses, _ = pipeline.get_train_loss_dict(step)
            sum(losses.values()).backward()
            optimizers.optimizer_step_all()
            synchronize(device)
            if step >= self.warmup:
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
        self._report(datamanager, pipeline, statistics.median(walls), statistics.median(cpus), device)

    def _report(self, datamanager, pipeline, wall: float, cpu: float, device: torch.device) -> None:
        sampler = datamanager.sampler
        params = sum(p.numel() for p in pipeline.model.network.parameters()) / 1e6
        title = (
            f"{self.method} training step on {device_label(device)}, {params:.2f}M params: "
            f"{sampler.scenes_per_batch} scene(s) x {sampler.expressions_per_scene} expressions x "
            f"{sampler.views_per_scene} views at {datamanager.render_height}x{datamanager.render_width}"
        )
        table = Table(title=title)
        for column in ("measure", "wall median", f"CPU median / {self.threads}"):
            table.add_column(column)
        uncontended = cpu / self.threads
        table.add_row("step", f"{wall:.3f} s", f"{uncontended:.3f} s")
        table.add_row(
            "scenes/s",
            f"{sampler.scenes_per_batch / wall:.2f}",
            f"{sampler.scenes_per_batch / uncontended:.2f}",
        )
        expressions = sampler.scenes_per_batch * sampler.expressions_per_scene
        table.add_row("expressions/s", f"{expressions / wall:.2f}", f"{expressions / uncontended:.2f}")
        Console().print(table)
