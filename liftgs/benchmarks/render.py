"""``liftgs bench render``: speed and memory of ``liftgs.render.rasterize`` on CPU.

For each N (Gaussians) x resolution x D (channels) it renders one camera with the ``torch`` backend and
prints median wall-clock and CPU time of the forward pass (no autograd) and of forward + backward, the
peak resident-memory increase during forward + backward, and, where the all-pairs ``dense`` reference
(chunked, so its memory is bounded too) stays under ``--dense-max-pairs`` Gaussian x pixel pairs, its
forward + backward time and the speed ratio, measured in the same run.

The scene: N Gaussians spread uniformly over the camera's frustum (slightly wider than the image) at
depths 2-6 m, random rotations, anisotropic scales whose projected standard deviation is 0.5-4 px at
128 x 128 (the same world scene at 256 x 256 has them twice as large in pixels), opacities U(0.2, 1),
colors U(0, 1). Every pixel is covered (alpha ~ 1), most many times over.

Bar: 10k Gaussians, 128^2, D = 19, forward + backward <= 250 ms median on 2 cores and >= 5x the
dense reference; goal <= 60 ms. On a shared machine wall time is inflated by other processes: CPU time
divided by the thread count estimates the uncontended wall time.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from liftgs.benchmarks.timing import memory_kib
from liftgs.render import rasterize

_CLEAR_REFS = Path("/proc/self/clear_refs")


def random_scene(n: int, size: int, channels: int, seed: int = 0) -> dict:
    """``rasterize`` keyword arguments for the benchmark scene (see the module docstring), one camera."""
    g = torch.Generator().manual_seed(seed)
    focal = 0.8 * size
    depth = 2.0 + 4.0 * torch.rand(n, generator=g)
    ndc = torch.rand(n, 2, generator=g) * 2.2 - 1.1
    means = torch.cat([ndc * (size / 2) / focal * depth[:, None], depth[:, None]], dim=1)
    sigma_px = 0.5 * 8.0 ** torch.rand(n, generator=g) * (size / 128)
    scales = (sigma_px * depth / focal)[:, None] * (0.5 + torch.rand(n, 3, generator=g))
    return {
        "means": means,
        "quats": torch.randn(n, 4, generator=g),
        "scales": scales,
        "opacities": 0.2 + 0.8 * torch.rand(n, generator=g),
        "colors": torch.rand(n, channels, generator=g),
        "viewmats": torch.eye(4)[None],
        "Ks": torch.tensor([[[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]]]),
        "width": size,
        "height": size,
    }


def _peak_memory_child(n: int, size: int, channels: int, seed: int, threads: int | None) -> float | None:
    """In a fresh process: peak resident-memory increase (MiB) over one forward + backward, after a tiny
    render that initialises torch's lazily created state."""
    if threads is not None:
        torch.set_num_threads(threads)
    passes(random_scene(10, 16, channels, seed), "torch")[1]()
    forward_backward = passes(random_scene(n, size, channels, seed), "torch")[1]
    try:
        _CLEAR_REFS.write_text("5")  # reset the kernel's high-water mark (VmHWM)
    except OSError:
        return None
    before = memory_kib("VmRSS")
    forward_backward()
    peak = memory_kib("VmHWM")
    return None if before is None or peak is None else max(0, peak - before) / 1024


def peak_memory_mib(n: int, size: int, channels: int, seed: int, threads: int | None) -> float | None:
    """Peak resident-memory increase (MiB) of a forward + backward, measured in a fresh process (memory
    freed by earlier runs stays resident in this one), cached buffers included. None without /proc."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_peak_memory_child, n, size, channels, seed, threads).result()


def _time(fn: Callable[[], object], repeats: int, warm_up: bool = True) -> tuple[float, float]:
    """Median wall and median CPU seconds of ``fn`` over ``repeats`` runs (after one warm-up run)."""
    if warm_up:
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


DIFFERENTIABLE = ("means", "quats", "scales", "opacities", "colors")
"""The ``rasterize`` inputs the benchmarks differentiate."""


def scene_inputs(scene: dict, device: torch.device | str = "cpu") -> dict:
    """``rasterize`` keyword arguments of ``scene`` on ``device`` (float32), ``DIFFERENTIABLE`` ones as fresh
    leaves that require gradients (the scene's own tensors are left as they are)."""
    inputs = {k: v.to(device, torch.float32) if isinstance(v, torch.Tensor) else v for k, v in scene.items()}
    for name in DIFFERENTIABLE:
        inputs[name] = inputs[name].detach().requires_grad_()
    return inputs


def loss_weights(scene: dict, device: torch.device | str = "cpu") -> torch.Tensor:
    """[1, H, W, D] fixed random weights ~ N(0, 1) (seeded) of the benchmark loss on ``device``."""
    shape = (1, scene["height"], scene["width"], scene["colors"].shape[-1])
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1)).to(device)


def benchmark_loss(colors: torch.Tensor, alphas: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The fixed random linear loss ``sum(colors * weights) + sum(alphas)``."""
    return (colors * weights).sum() + alphas.sum()


def passes(
    scene: dict, backend: str, device: torch.device | str = "cpu"
) -> tuple[Callable[[], object], Callable[[], object]]:
    """(forward without autograd, forward + backward of ``benchmark_loss``) on ``device``."""
    inputs, weights = scene_inputs(scene, device), loss_weights(scene, device)

    def forward() -> object:
        with torch.no_grad():
            return rasterize(**inputs, backend=backend)

    def forward_backward() -> object:
        colors, alphas, _ = rasterize(**inputs, backend=backend)
        benchmark_loss(colors, alphas, weights).backward()
        return None

    return forward, forward_backward


@dataclass
class RenderBenchmark:
    """Time ``liftgs.render.rasterize`` (torch backend) against the dense all-pairs reference."""

    sizes: tuple[int, ...] = (1000, 10000, 50000)
    """Numbers of Gaussians."""
    resolutions: tuple[int, ...] = (128, 256)
    """Square image sizes in pixels."""
    channels: tuple[int, ...] = (3, 19)
    """Color channels D."""
    repeats: int = 5
    """Timed runs per measurement (after one warm-up); medians are reported."""
    dense_repeats: int = 1
    """Timed runs of the dense reference (no warm-up: one run of 10k Gaussians at 128^2 takes ~40 s)."""
    dense_max_pairs: int = 200_000_000
    """Skip the dense reference above this many Gaussian x pixel pairs (its time grows with their number)."""
    memory: bool = True
    """Measure peak memory (one fresh process per row, a few seconds each)."""
    threads: int | None = None
    """torch intra-op threads (default: torch's choice)."""
    seed: int = 0

    def main(self) -> None:
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        console = Console(width=max(120, Console().width))
        table = Table(title="liftgs.render.rasterize, torch backend, 1 camera (medians)")
        columns = ["N", "image", "D", "isects", "fwd ms", "fwd+bwd ms", "fwd+bwd CPU ms", "peak MiB"]
        columns += ["dense fwd+bwd ms", "speed-up"]
        for column in columns:
            table.add_column(column, justify="right")
        for size in self.resolutions:
            for n in self.sizes:
                for channels in self.channels:
                    table.add_row(*self._row(n, size, channels))
                    console.print(f"done: N={n} {size}x{size} D={channels}", style="dim")
        console.print(table)
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        console.print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
            f"load average {load}. Peak MiB: resident-memory high-water mark above the pre-run level "
            f"during one forward+backward in a fresh process (Linux VmHWM). Dense: all-pairs "
            f"reference, pixel-chunked with checkpointing; '-' = skipped above {self.dense_max_pairs:.0e} "
            f"pairs (time, not memory, is what limits it)."
        )

    def _row(self, n: int, size: int, channels: int) -> list[str]:
        scene = random_scene(n, size, channels, self.seed)
        forward, forward_backward = passes(scene, "torch")
        isects = forward()[2]["n_isects"]
        fwd_wall, _ = _time(forward, self.repeats)
        fb_wall, fb_cpu = _time(forward_backward, self.repeats)
        peak = peak_memory_mib(n, size, channels, self.seed, self.threads) if self.memory else None
        dense, ratio = "-", "-"
        if n * size * size <= self.dense_max_pairs:
            dense_wall, _ = _time(passes(scene, "dense")[1], self.dense_repeats, warm_up=False)
            dense, ratio = f"{dense_wall * 1e3:.0f}", f"{dense_wall / fb_wall:.1f}x"
        return [
            f"{n}",
            f"{size}x{size}",
            f"{channels}",
            f"{isects}",
            f"{fwd_wall * 1e3:.1f}",
            f"{fb_wall * 1e3:.1f}",
            f"{fb_cpu * 1e3:.1f}",
            "-" if peak is None else f"{peak:.0f}",
            dense,
            ratio,
        ]
