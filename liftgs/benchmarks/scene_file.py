"""``liftgs bench scene-file``: how fast a large 3DGS PLY loads into the network's input, and how much memory.

For each size it writes a synthetic room (``synthetic_room``: floor, two walls, two boxes, 5% faint
floaters) as a standard degree-3 3DGS PLY into a temporary folder, then, in the same process, times reading
the file (``read_scene_splats``: memory-mapped PLY, activation, non-finite check), placing it
(``estimate_scene_transform``, auto up and scale) and subsampling the network input (``network_points``),
and reports the peak of memory allocated by numpy during the load (``tracemalloc``; the memory-mapped file
itself is page cache, not counted) and the file size.

With a network (the default), the load uses the network's voxel size and point budget, and the table adds
the encode time (``LiftGS.encode`` of the network points) and the first answer's time (``answer_on_features``:
the text, the decoder and the map back to every splat, with the text encoder already loaded), as
``liftgs ground --ply`` spends them. A checkpoint whose encoder reads lifted point features
(``config.encoder.extra_channels > 0``), which a scene file cannot have, cannot ground a scene file: a
randomly initialised points-only network of the same configuration is timed instead, and the output says
so.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement
from rich.console import Console
from rich.table import Table

from liftgs.export_ply import SH_C0, gaussian_property_names
from liftgs.scene_files import UserScene, estimate_scene_transform, read_scene_splats
from liftgs.scene_files.subsample import DEFAULT_MAX_POINTS, DEFAULT_VOXEL_SIZE, network_points

FLOATER_FRACTION = 0.05
"""Share of the synthetic splats that are faint floaters (opacity 0.02, scattered above the room)."""


def synthetic_room(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """[count, 3] points (metres, z up, floor at z = 0) and [count, 3] RGB in [0, 1] of a 6 x 5 x 2.6 m room:
    half of the points on the floor, 15% on each of the walls x = 0 and y = 0, 20% on two boxes."""
    rng = np.random.default_rng(seed)
    parts = np.array([0.5, 0.15, 0.15, 0.1, 0.1])
    sizes = np.floor(parts * count).astype(int)
    sizes[0] += count - sizes.sum()
    uniform = [rng.random((size, 3)) for size in sizes]
    floor = uniform[0] * [6.0, 5.0, 0.0] + [0.0, 0.0, 0.0]
    wall_x = uniform[1] * [0.0, 5.0, 2.6]
    wall_y = uniform[2] * [6.0, 0.0, 2.6]
    table = _box_surface(uniform[3], low=[2.0, 1.5, 0.0], high=[3.2, 2.3, 0.75])
    shelf = _box_surface(uniform[4], low=[4.5, 0.2, 0.0], high=[5.5, 0.6, 1.8])
    points = np.concatenate([floor, wall_x, wall_y, table, shelf])
    points += rng.normal(scale=0.004, size=points.shape)
    palette = np.array(
        [[0.55, 0.45, 0.35], [0.85, 0.85, 0.8], [0.8, 0.82, 0.85], [0.75, 0.15, 0.1], [0.15, 0.25, 0.7]]
    )
    colors = np.repeat(palette, sizes, axis=0) + rng.normal(scale=0.03, size=points.shape)
    return points, np.clip(colors, 0.0, 1.0)


def _box_surface(uniform: np.ndarray, low: list[float], high: list[float]) -> np.ndarray:
    """Points on the top and four sides of a box, from [M, 3] uniform samples."""
    low_, high_ = np.asarray(low), np.asarray(high)
    points = low_ + uniform * (high_ - low_)
    face = (uniform[:, 0] * 5).astype(int)  # 0: top, 1-4: sides
    points[face == 0, 2] = high_[2]
    for axis, side in ((0, 1), (1, 3)):
        points[face == side, axis] = low_[axis]
        points[face == side + 1, axis] = high_[axis]
    return points


def gaussian_vertices(
    means: np.ndarray,  # [N, 3]
    colors: np.ndarray,  # [N, 3] in [0, 1]
    opacity_logits: np.ndarray,  # [N]
    log_scales: np.ndarray,  # [N, 3]
    quats: np.ndarray,  # [N, 4] wxyz
    sh_rest: np.ndarray | None = None,  # [N, 45] INRIA channel-major order
) -> np.ndarray:
    """A structured float32 3DGS vertex array (``liftgs.export_ply`` property order; no f_rest when None)."""
    names = gaussian_property_names(include_sh_rest=sh_rest is not None)
    columns = [means, np.zeros_like(means), (colors - 0.5) / SH_C0]
    if sh_rest is not None:
        columns.append(sh_rest)
    columns += [opacity_logits[:, None], log_scales, quats]
    values = np.concatenate(columns, axis=1).astype(np.float32)
    vertices = np.empty(values.shape[0], dtype=[(name, "<f4") for name in names])
    for index, name in enumerate(names):
        vertices[name] = values[:, index]
    return vertices


def write_synthetic_splats(path: Path, count: int, seed: int = 0) -> None:
    """A degree-3 3DGS PLY of ``count`` splats: ``synthetic_room`` plus ``FLOATER_FRACTION`` floaters."""
    rng = np.random.default_rng(seed)
    floaters = int(count * FLOATER_FRACTION)
    means, colors = synthetic_room(count - floaters, seed)
    means = np.concatenate([means, rng.random((floaters, 3)) * [6.0, 5.0, 4.0]])
    colors = np.concatenate([colors, rng.random((floaters, 3))])
    logits = np.where(np.arange(count) < count - floaters, 3.0, np.log(0.02 / 0.98))
    vertices = gaussian_vertices(
        means,
        colors,
        logits,
        np.log(rng.uniform(0.005, 0.03, (count, 3))),
        rng.normal(size=(count, 4)),
        rng.normal(scale=0.05, size=(count, 45)),
    )
    PlyData([PlyElement.describe(vertices, "vertex")], byte_order="<").write(str(path))


@dataclass
class BenchSceneFile:
    """Time loading synthetic 3DGS PLY files (read, place, subsample; peak memory), then encoding them and
    the first answer."""

    sizes: list[int] = field(default_factory=lambda: [100_000, 1_000_000])
    """Splats per synthetic file."""
    voxel_size: float | None = None
    """Network voxel edge (metres). Default: the network's (``DEFAULT_VOXEL_SIZE`` with --no-network)."""
    max_points: int | None = None
    """Network point budget. Default: the network's (``DEFAULT_MAX_POINTS`` with --no-network)."""
    network: bool = True
    """Also time encoding and the first answer."""
    checkpoint: Path | None = None
    """The network timed (default: the shipped ``assets/liftgs_synthetic.pt``)."""
    device: str = "auto"
    """auto (CUDA if available), cpu, cuda, ..."""
    query: str = "the red table"
    """The query answered (the synthetic room's table is red)."""

    def main(self) -> None:
        model = self._load_network() if self.network else None
        voxel_size = self.voxel_size or (model.config.voxel_size if model else DEFAULT_VOXEL_SIZE)
        max_points = self.max_points or (model.config.max_points if model else DEFAULT_MAX_POINTS)
        columns = ["splats", "file MiB", "read s", "place s", "subsample s", "load s", "peak MiB", "points"]
        if model is not None:
            columns += ["encode s", "answer s", "file -> answer s", "selected"]
        table = Table(
            title=f"scene-file load{'' if model is None else ' and first answer'} ({self._device()})"
        )
        for column in [*columns, "placed"]:
            table.add_column(column, justify="right")
        with tempfile.TemporaryDirectory() as folder:
            for count in self.sizes:
                path = Path(folder) / f"splats-{count}.ply"
                write_synthetic_splats(path, count)
                row, user = measure_load(path, voxel_size, max_points)
                cells = [
                    f"{count:,}",
                    f"{path.stat().st_size / 2**20:.0f}",
                    *(f"{row[key]:.2f}" for key in ("read_s", "place_s", "subsample_s", "total_s")),
                    f"{row['peak_mib']:.0f}",
                    f"{row['points']:,}",
                ]
                if model is not None:
                    timing = measure_answer(model, user, self.query)
                    end_to_end = row["total_s"] + timing["encode_s"] + timing["answer_s"]
                    cells += [
                        f"{timing['encode_s']:.2f}",
                        f"{timing['answer_s']:.2f}",
                        f"{end_to_end:.2f}",
                        f"{timing['selected']:,}",
                    ]
                table.add_row(*cells, str(row["placed"]))
                del user
                path.unlink()
        Console(width=180).print(table)

    def _device(self) -> str:
        from liftgs.model.loading import resolve_device

        return str(resolve_device(self.device))

    def _load_network(self):
        """The network to time (eval mode, text encoder loaded); see the module docstring."""
        import torch

        from liftgs.model import LiftGS
        from liftgs.model.loading import ModelLoadError, load_liftgs

        try:
            model, info = load_liftgs(self.checkpoint, self.device)
        except ModelLoadError as error:
            raise SystemExit(f"liftgs bench scene-file: {error}") from None
        if model.reads_point_features:
            config = model.config
            print(
                f"liftgs bench scene-file: {info['checkpoint']} reads {config.encoder.extra_channels} lifted "
                "feature channels per point, which a scene file cannot have, so it cannot ground one; timing "
                "a randomly initialised points-only network of the same configuration instead",
                flush=True,
            )
            config = dataclasses.replace(
                config,
                encoder=dataclasses.replace(config.encoder, extra_channels=0),
                decoder=dataclasses.replace(config.decoder, lifted_affinity=False),
            )
            torch.manual_seed(0)
            model = LiftGS(config).to(model.device).eval()
        start = time.perf_counter()
        model.encode_text(["warm up"])
        print(
            f"liftgs bench scene-file: text encoder loaded in {time.perf_counter() - start:.2f} s", flush=True
        )
        return model


def measure_load(
    path: Path, voxel_size: float, max_points: int
) -> tuple[dict[str, float | int | str], UserScene]:
    """Seconds of each load stage, peak traced memory (MiB), the network point count and the placement
    (``SceneTransform.describe``) for the 3DGS PLY at ``path``; and the loaded scene."""
    tracemalloc.start()
    start = time.perf_counter()
    splats = read_scene_splats(path)
    read = time.perf_counter()
    transform = estimate_scene_transform(splats.means[splats.network_mask])
    placed = time.perf_counter()
    network = network_points(
        transform.to_network(splats.means), splats.colors, splats.network_mask, voxel_size, max_points
    )
    done = time.perf_counter()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    row = {
        "read_s": read - start,
        "place_s": placed - read,
        "subsample_s": done - placed,
        "total_s": done - start,
        "peak_mib": peak / 2**20,
        "points": int(network.points.shape[0]),
        "placed": transform.describe(),
    }
    return row, UserScene(splats, transform, network)


def measure_answer(model, user: UserScene, query: str) -> dict[str, float | int]:
    """Seconds to encode ``user``'s network points and to answer ``query`` on every splat (first query on
    this scene), and how many splats were selected."""
    import torch

    from liftgs.ground_file import answer_on_features, network_scene

    def synchronize() -> None:
        if model.device.type == "cuda":
            torch.cuda.synchronize(model.device)

    with torch.inference_mode():
        synchronize()
        start = time.perf_counter()
        features = model.encode(network_scene(user, "bench"))
        synchronize()
        encoded = time.perf_counter()
        answer = answer_on_features(model, user, features, query)
        done = time.perf_counter()
    return {"encode_s": encoded - start, "answer_s": done - encoded, "selected": int(answer.mask.sum())}
