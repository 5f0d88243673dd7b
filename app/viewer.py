"""``liftgs-viewer``: ground language queries live in a browser (viser), on the model's predicted Gaussians.

Start-up order, so that every mistake is reported before anything slow happens: the checkpoint must
exist, then the dataset (the embedded benchmark is generated on first use, only the scene asked for),
then the scene id; the model then encodes the first scene once and the server starts. Each browser tab
gets its own ``ClientSession`` (its own camera, scene, query and history).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import tyro
import viser

from app.connections import release_closed_connections, return_freed_memory
from app.engine import SceneError, UnknownSceneError, ViewerEngine
from app.file_scene import FileViewerEngine
from app.scenes import DatasetDirectory, EmbeddedBenchmark, SceneSource, describe_ids
from app.session import ClientSession
from liftgs.data.store import DatasetError


@dataclass
class ViewerConfig:
    """Ground language queries in a scene, live in the browser."""

    scene: str = "scan0000"
    """Scene to open first (others can be picked in the GUI)."""
    data: Path | None = None
    """Dataset root in the project's format (``scans/<scene_id>/...``). Default: the embedded synthetic
    benchmark in ``$LIFTGS_DATA`` or ``~/.cache/liftgs/synthetic-v2``, generated on first use."""
    checkpoint: Path | None = None
    """A LIFT-GS ``.pt`` checkpoint or an ``ns-train`` run's ``config.yml``. Default: the shipped
    ``assets/liftgs_synthetic.pt``."""
    host: str = "127.0.0.1"
    """Interface to serve on (``0.0.0.0`` to allow other machines)."""
    port: int = 8080
    """Port to serve on; when it is busy the next free one is used (and printed)."""
    device: str = "auto"
    """Torch device for the model: ``auto`` (CUDA if available), ``cpu``, ``cuda:0``, ..."""
    export_dir: Path = Path("outputs/viewer")
    """Where "Export selection" writes its .ply and .json files."""
    top_k: int = 5
    """Candidates listed per query."""
    verbose: bool = False
    """Also print the traceback of internal errors (errors are always reported in one line)."""
    ply: Path | None = None
    """Show and ground this 3DGS or colored point-cloud PLY (its own splats) instead of a dataset scene."""
    load_config: Path | None = None
    """Show and ground this nerfstudio splatfacto run (its ``config.yml`` or folder) instead."""
    up: str = "auto"
    """With --ply or --load-config: the file axis pointing up (auto, x, y, z, -x, -y, -z)."""
    scale: str = "auto"
    """With --ply or --load-config: metres per file unit (auto, or a number such as 0.001)."""

    @property
    def scene_file(self) -> Path | None:
        """The scene file or run asked for (``--ply`` or ``--load-config``), None for a dataset scene."""
        return self.ply if self.ply is not None else self.load_config

    def main(self) -> None:
        app = start_viewer(self)
        try:
            while True:
                time.sleep(3600.0)
        except KeyboardInterrupt:
            print("\nliftgs-viewer: stopping")
        finally:
            app.stop()


class ViewerError(Exception):
    """A start-up problem, reported as one line (missing checkpoint, unknown scene, bad dataset)."""


class ViewerApp:
    """A running viewer: the viser server, the shared engine and one session per connected client."""

    def __init__(self, server: viser.ViserServer, engine: ViewerEngine, config: ViewerConfig) -> None:
        self.server = server
        self.engine = engine
        self.config = config
        self.sessions: dict[int, ClientSession] = {}
        self._closed_sessions: list[ClientSession] = []  # their workers may still finish a job
        self._lock = threading.Lock()
        server.on_client_connect(self._connect)
        server.on_client_disconnect(self._disconnect)
        release_closed_connections(server)

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.server.get_port()}"

    def _connect(self, client: viser.ClientHandle) -> None:
        return_freed_memory()  # what tabs closed since the last connection freed
        session = ClientSession(
            client, self.engine, self.config.scene, self.config.export_dir, verbose=self.config.verbose
        )
        with self._lock:
            self.sessions[client.client_id] = session
        session.start()

    def _disconnect(self, client: viser.ClientHandle) -> None:
        with self._lock:
            session = self.sessions.pop(client.client_id, None)
            if session is not None:
                self._closed_sessions = [s for s in self._closed_sessions if not s.join(0)] + [session]
        if session is not None:
            session.close()

    def stop(self, timeout: float = 30.0) -> None:
        """Closes every session, lets running jobs finish (up to ``timeout`` s each), stops the server."""
        with self._lock:
            sessions = list(self.sessions.values()) + self._closed_sessions
            self.sessions.clear()
            self._closed_sessions = []
        for session in sessions:
            session.close()
        for session in sessions:
            session.join(timeout)
        self.server.stop()


def load_engine(config: ViewerConfig) -> ViewerEngine:
    """The model and the scenes, checked in start-up order; ``ViewerError`` with one line on failure."""
    from liftgs.model.loading import ModelLoadError, load_liftgs, resolve_checkpoint

    try:
        checkpoint = resolve_checkpoint(config.checkpoint)
    except ModelLoadError as error:
        raise ViewerError(str(error)) from None
    if config.ply is not None or config.load_config is not None:
        return load_file_engine(config, checkpoint)
    source = open_scenes(config.data)
    if config.scene not in source.scene_ids:
        raise ViewerError(f"unknown scene {config.scene!r}; available: {describe_ids(source.scene_ids)}")
    try:
        model, _ = load_liftgs(checkpoint, config.device)
    except ModelLoadError as error:
        raise ViewerError(str(error)) from None
    return ViewerEngine(model, source.scene_ids, source.load, top_k=config.top_k)


def load_file_engine(config: ViewerConfig, checkpoint: Path) -> ViewerEngine:
    """The model and the scene file of ``--ply`` / ``--load-config`` (``app.file_scene``); ``ViewerError``
    with one line on failure."""
    from liftgs.ground_file import check_points_only, open_user_scene
    from liftgs.model.loading import ModelLoadError, load_liftgs
    from liftgs.scene_files import SceneFileError
    from liftgs.scene_files.frame import parse_scale, parse_up

    if config.ply is not None and config.load_config is not None:
        raise ViewerError("give one of --ply and --load-config")
    if config.data is not None:
        raise ViewerError("--data shows dataset scenes; --ply and --load-config show a scene file instead")
    try:
        up, scale = parse_up(config.up), parse_scale(config.scale)
        model, _ = load_liftgs(checkpoint, config.device)
        check_points_only(model)
        print(f"liftgs-viewer: reading {config.scene_file} ...", flush=True)
        user = open_user_scene(config.scene_file, model, up, "auto" if scale is None else scale)
    except (ValueError, ModelLoadError, SceneFileError, OSError) as error:
        raise ViewerError(" ".join(str(error).split())) from None
    print(f"liftgs-viewer: {config.scene_file}: {user.transform.describe()}", flush=True)
    return FileViewerEngine(model, user, top_k=config.top_k)


def open_scenes(data: Path | None) -> SceneSource:
    """``--data DIR`` as a dataset directory, or the embedded benchmark when None."""
    if data is None:
        return EmbeddedBenchmark.open()
    root = Path(data).expanduser()
    if not (root / "scans").is_dir():
        raise ViewerError(f"--data {root}: no scans/ folder (expected ROOT/scans/<scene_id>/...)")
    return DatasetDirectory(root)


def start_viewer(config: ViewerConfig, engine: ViewerEngine | None = None) -> ViewerApp:
    """Loads everything (unless ``engine`` is given), encodes the first scene and starts serving."""
    engine = engine or load_engine(config)
    if isinstance(engine, FileViewerEngine):
        config = dataclasses.replace(config, scene=engine.scene_ids[0])
    engine.check_scene(config.scene)
    start = time.perf_counter()
    print(f"liftgs-viewer: loading and encoding {config.scene} ...", flush=True)
    engine.load(config.scene)
    engine.warm_up()
    print(f"liftgs-viewer: {config.scene} ready in {time.perf_counter() - start:.1f} s", flush=True)
    server = viser.ViserServer(host=config.host, port=config.port, label="LIFT-GS", verbose=False)
    app = ViewerApp(server, engine, config)
    if server.get_port() != config.port:
        print(f"liftgs-viewer: port {config.port} is busy; using {server.get_port()}", flush=True)
    print(f"liftgs-viewer: open {app.url}", flush=True)
    return app


def entrypoint() -> None:
    """The ``liftgs-viewer`` console script."""
    config = tyro.cli(ViewerConfig)
    try:
        config.main()
    except (ViewerError, UnknownSceneError, SceneError, DatasetError) as error:
        print(f"liftgs-viewer: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    entrypoint()
