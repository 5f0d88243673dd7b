"""``liftgs bench gsplat``: the torch backend against gsplat's CUDA kernels, for agreement and speed.

Needs a CUDA GPU on which gsplat's kernels load (the first call JIT-compiles them: minutes). For each scene
of ``liftgs.benchmarks.render.random_scene`` (N Gaussians, square image, D channels, one camera) it renders
with gsplat on the GPU and with the torch backend on the CPU (what CPU-only users run) and on the GPU,
backpropagates the same fixed random linear loss through each, and prints:

- agreement with gsplat: max |difference| of the rendered channels and alphas, the fraction of Gaussians
  whose visibility (radius > 0) agrees, and per differentiable input the relative gradient error
  ``||g - g_gsplat|| / ||g_gsplat||``;
- medians of forward and forward + backward wall time for each backend (GPU timings synchronise).

``--json PATH`` writes the same numbers as JSON.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor

from liftgs.benchmarks.render import (
    DIFFERENTIABLE,
    benchmark_loss,
    loss_weights,
    passes,
    random_scene,
    scene_inputs,
)
from liftgs.benchmarks.timing import synchronize
from liftgs.render import gsplat_cuda_available, rasterize


@dataclass(frozen=True)
class Rendered:
    """One backend's render of a scene and the gradients of the benchmark loss (all on the CPU).

    Attributes:
        colors: [C, H, W, D]; alphas: [C, H, W, 1]; radii: [C, N] (0 = culled).
        grads: d loss / d input for each of ``DIFFERENTIABLE``, shaped like the input.
    """

    colors: Tensor
    alphas: Tensor
    radii: Tensor
    grads: dict[str, Tensor]


@dataclass(frozen=True)
class Agreement:
    """How far one render is from a reference render of the same scene (see the module docstring)."""

    color_max_abs: float
    alpha_max_abs: float
    visibility_agree: float
    grad_rel_err: dict[str, float]


def render_with_grads(scene: dict, backend: str, device: torch.device | str) -> Rendered:
    """Renders ``scene`` with ``backend`` on ``device`` and backpropagates the benchmark loss."""
    inputs = scene_inputs(scene, device)
    colors, alphas, meta = rasterize(**inputs, backend=backend)
    benchmark_loss(colors, alphas, loss_weights(scene, colors.device)).backward()
    grads = {name: inputs[name].grad.detach().cpu() for name in DIFFERENTIABLE}
    return Rendered(colors.detach().cpu(), alphas.detach().cpu(), meta["radii"].detach().cpu(), grads)


def agreement(rendered: Rendered, reference: Rendered) -> Agreement:
    """``rendered`` compared with ``reference`` (same scene)."""

    def relative(name: str) -> float:
        ref = reference.grads[name].double()
        return float((rendered.grads[name].double() - ref).norm() / ref.norm().clamp_min(1e-30))

    visible = (rendered.radii > 0) == (reference.radii > 0)
    return Agreement(
        color_max_abs=float((rendered.colors - reference.colors).abs().max()),
        alpha_max_abs=float((rendered.alphas - reference.alphas).abs().max()),
        visibility_agree=float(visible.float().mean()),
        grad_rel_err={name: relative(name) for name in DIFFERENTIABLE},
    )


def median_ms(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median wall milliseconds of ``fn`` over ``repeats`` runs after one warm-up; on CUDA each run is
    synchronised, so the time includes the kernels and not only their launch."""

    def run() -> None:
        fn()
        synchronize(device)

    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def timings(scene: dict, backend: str, device: torch.device, repeats: int) -> dict[str, float]:
    """Median ms of a forward without autograd and of forward + backward of ``benchmark_loss``."""
    forward, forward_backward = passes(scene, backend, device)
    return {
        "fwd_ms": median_ms(forward, repeats, device),
        "fwd_bwd_ms": median_ms(forward_backward, repeats, device),
    }


@dataclass
class GsplatParity:
    """Compare the torch backend (CPU and GPU) with gsplat's CUDA kernels: agreement and speed."""

    sizes: tuple[int, ...] = (10_000, 100_000)
    """Numbers of Gaussians."""
    resolutions: tuple[int, ...] = (128, 512)
    """Square image sizes in pixels."""
    channels: tuple[int, ...] = (3, 19)
    """Color channels D."""
    repeats: int = 10
    """Timed runs per GPU measurement (after one warm-up); medians are reported."""
    cpu_repeats: int = 3
    """Timed runs per CPU measurement."""
    cpu_max_pairs: int = 10_000 * 128 * 128
    """Time the CPU torch backend only up to this many Gaussian x pixel pairs (agreement: always)."""
    threads: int = 2
    """torch CPU threads (2: the CPU-only machines this project targets)."""
    json: Path | None = None
    """Also write the results here."""
    seed: int = 0

    def main(self) -> None:
        if not gsplat_cuda_available():
            raise SystemExit("liftgs bench gsplat: needs a CUDA GPU on which gsplat's kernels load")
        torch.set_num_threads(self.threads)
        gpu = torch.device("cuda")
        console = Console(width=max(140, Console().width))
        rows = []
        for size in self.resolutions:
            for n in self.sizes:
                for channels in self.channels:
                    rows.append(self._row(n, size, channels, gpu))
                    console.print(f"done: N={n} {size}x{size} D={channels}", style="dim")
        console.print(self._table(rows))
        environment = {
            "gpu": torch.cuda.get_device_name(gpu),
            "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads(),
        }
        console.print(", ".join(f"{k} {v}" for k, v in environment.items()))
        if self.json is not None:
            self.json.write_text(json.dumps({"environment": environment, "rows": rows}, indent=1))

    def _row(self, n: int, size: int, channels: int, gpu: torch.device) -> dict:
        scene = random_scene(n, size, channels, self.seed)
        reference = render_with_grads(scene, "gsplat", gpu)
        row: dict = {"n": n, "size": size, "channels": channels}
        row["torch_cpu_vs_gsplat"] = asdict(agreement(render_with_grads(scene, "torch", "cpu"), reference))
        row["torch_gpu_vs_gsplat"] = asdict(agreement(render_with_grads(scene, "torch", gpu), reference))
        row["gsplat_gpu"] = timings(scene, "gsplat", gpu, self.repeats)
        row["torch_gpu"] = timings(scene, "torch", gpu, self.repeats)
        if n * size * size <= self.cpu_max_pairs:
            row["torch_cpu"] = timings(scene, "torch", torch.device("cpu"), self.cpu_repeats)
        return row

    @staticmethod
    def _table(rows: list[dict]) -> Table:
        table = Table(title="torch backend vs gsplat CUDA kernels, 1 camera (medians, ms)")
        columns = ["N", "image", "D", "max|Δ| color cpu/gpu", "max|Δ| alpha", "visible=", "worst grad err"]
        columns += ["gsplat fwd", "gsplat fwd+bwd", "torch-gpu fwd+bwd", "torch-cpu fwd+bwd"]
        for column in columns:
            table.add_column(column, justify="right")
        for row in rows:
            cpu, gpu = row["torch_cpu_vs_gsplat"], row["torch_gpu_vs_gsplat"]
            worst = max(max(cpu["grad_rel_err"].values()), max(gpu["grad_rel_err"].values()))
            cpu_time = row.get("torch_cpu", {}).get("fwd_bwd_ms")
            table.add_row(
                f"{row['n']}",
                f"{row['size']}²",
                f"{row['channels']}",
                f"{cpu['color_max_abs']:.1e}/{gpu['color_max_abs']:.1e}",
                f"{max(cpu['alpha_max_abs'], gpu['alpha_max_abs']):.1e}",
                f"{min(cpu['visibility_agree'], gpu['visibility_agree']):.4f}",
                f"{worst:.1e}",
                f"{row['gsplat_gpu']['fwd_ms']:.2f}",
                f"{row['gsplat_gpu']['fwd_bwd_ms']:.2f}",
                f"{row['torch_gpu']['fwd_bwd_ms']:.1f}",
                "-" if cpu_time is None else f"{cpu_time:.0f}",
            )
        return table
