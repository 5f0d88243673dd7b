"""One browser tab's viewer: its panel, its scene nodes, its state and its worker threads.

Viser runs GUI callbacks on its own thread pool; they only update ``ClientState`` (under a lock) and ask
the client's ``LatestWinsWorker`` for a refresh. A refresh brings the view up to date with the state:
it loads (encodes) the scene if it changed, grounds the query if the result is not current, then draws.
Because every refresh reads the newest state, dropping all but the latest pending refresh loses nothing.
The 2D mask view renders on a second worker so that camera motion never delays a query.

GUI values are checked before they reach the state (``app.state.check_query``, ``check_threshold``,
``parse_negatives``, the scene list); a refused value, a scene that cannot be encoded or a failing job is
shown in the status line and logged in one line (``app.messages``), and the viewer goes on.

Scene nodes (per client): ``/scene/splats`` (the model's Gaussians, as ``/scene/splats/v<n>``, see
``app.splats.SplatLayer``), ``/scene/points`` (input cloud),
``/scene/cameras/<i>`` (frames' frustums), ``/grounding/box``, ``/grounding/label`` and, for a model with
the relational geometry term, ``/grounding/anchors/<k>/{sphere,label}`` (where the query found the other
objects its text names).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import trimesh
import viser

from app.engine import GroundingResult, LoadedScene, LocatedAnchor, ViewerEngine
from app.export import export_selection
from app.file_export import export_file_selection
from app.file_scene import FileLoadedScene
from app.highlight import HIGHLIGHT_RGB, highlight, selected
from app.messages import log_error
from app.panel import EMPTY_QUERY_TEXT, THRESHOLD_RANGE, Panel, build_panel, set_buttons
from app.render2d import camera_to_world, pinhole, render_view
from app.splats import SplatLayer
from app.state import ClientState, check_query, check_threshold, parse_negatives, push_history
from app.worker import LatestWinsWorker

SPLATS = "/scene/splats"
POINTS = "/scene/points"
CAMERAS = "/scene/cameras"
BOX = "/grounding/box"
LABEL = "/grounding/label"
ANCHORS = "/grounding/anchors"
ANCHOR_RGB = (20, 200, 230)
"""Color of the anchor markers (cyan, apart from the orange selection)."""
ANCHOR_RADIUS = 0.08
"""Radius of an anchor's marker sphere (metres)."""
MAX_FRUSTUMS = 60
"""At most this many frames (evenly spaced) get a camera frustum."""
HISTORY_DELAY = 1.0
"""Seconds a typed query must stay unchanged before it enters the history (Ground enters it at once)."""


class ClientSession:
    """The viewer for one connected client.

    Args:
        client: the viser client handle.
        engine: the shared model and scene cache.
        scene_id: the scene to open.
        export_dir: where "Export selection" writes files.
        view_height: pixel height of the 2D mask view's renders.
        verbose: print internal errors' tracebacks (every error is logged and shown in one line).
    """

    def __init__(
        self,
        client: viser.ClientHandle,
        engine: ViewerEngine,
        scene_id: str,
        export_dir: Path,
        view_height: int = 180,
        verbose: bool = False,
    ) -> None:
        self.client = client
        self.engine = engine
        self.export_dir = Path(export_dir)
        self.view_height = view_height
        self.verbose = verbose
        self.name = f"client {client.client_id}"
        self.state = ClientState(scene_id=scene_id)
        self._lock = threading.RLock()
        self._closed = False
        self._loaded: LoadedScene | None = None
        self._drawn_result: GroundingResult | None = None
        self._shown: tuple[np.ndarray, np.ndarray] | None = None  # colors [G, 3], opacities [G] on screen
        self._candidate_buttons: list[viser.GuiButtonHandle] = []
        self._history_buttons: list[viser.GuiButtonHandle] = []
        self._history_timer: threading.Timer | None = None
        self._nodes: dict[str, viser.SceneNodeHandle] = {}
        self._splats = SplatLayer(client.scene, SPLATS)
        self.worker = LatestWinsWorker(f"viewer-{client.client_id}", on_error=self._report)
        self.render_worker = LatestWinsWorker(f"viewer-2d-{client.client_id}", on_error=self._report)
        self.panel: Panel = build_panel(client.gui, engine.scene_ids, scene_id, self.state.threshold)
        self._wire()
        client.scene.set_up_direction("+z")

    # -- public --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Shows the scene (the first refresh)."""
        self.refresh()

    def refresh(self) -> None:
        """Asks the worker to bring the view up to date (latest request wins)."""
        self.worker.submit(self._refresh)

    def close(self) -> None:
        """Stops this session's workers after their running job (called when the client disconnects)."""
        with self._lock:
            self._closed = True
            if self._history_timer is not None:
                self._history_timer.cancel()
        self.worker.close()
        self.render_worker.close()

    def join(self, timeout: float) -> bool:
        """Waits (after ``close``) until the workers' threads have ended; returns whether they did."""
        return self.worker.join(timeout) and self.render_worker.join(timeout)

    # -- GUI callbacks (viser's threads) -------------------------------------------------------------

    def _wire(self) -> None:
        panel = self.panel
        handlers: list[tuple[Callable[[Callable], object], Callable[[], None]]] = [
            (panel.scene.on_update, self._on_scene_picked),
            (panel.query.on_update, self._on_query_typed),
            (panel.negatives.on_update, self._on_negatives_typed),
            (panel.ground.on_click, self._on_ground),
            (panel.threshold.on_update, self._on_threshold),
            (panel.export.on_click, self._export),
            (panel.show_points.on_update, lambda: self._set_visible(POINTS, panel.show_points.value)),
            (panel.show_cameras.on_update, lambda: self._set_visible(CAMERAS, panel.show_cameras.value)),
            (panel.show_box.on_update, lambda: self._show_box_nodes(panel.show_box.value)),
            (panel.show_anchors.on_update, lambda: self._show_anchor_nodes(panel.show_anchors.value)),
            (panel.show_splats.on_update, self._update_splat_visibility),
            (panel.view_2d.on_update, self._on_view_2d),
            (self.client.camera.on_update, self._request_render),
        ]
        for register, handler in handlers:
            register(lambda _, handler=handler: self._guarded(handler))

    def _guarded(self, handler: Callable[[], None]) -> None:
        """Runs a GUI callback; an error is shown in the status line and logged in one line (viser would
        print its traceback)."""
        try:
            handler()
        except Exception as error:
            self._report(error)

    def _show(self, line: viser.GuiMarkdownHandle, text: str) -> None:
        """Sets a status line's markdown inside viser's atomic block. Viser sends a message it cannot send
        at once (another thread is sending to this client) later from a worker thread, so a line's older
        text could arrive after its newer one; inside the block every update is queued and they leave in
        order."""
        with self.client.atomic():
            line.content = text

    def _report(self, error: Exception) -> None:
        """Logs ``error`` in one line and shows that line in the status."""
        message = log_error(self.name, error, self.verbose)
        if not self._closed:
            self._show(self.panel.status, f"**Error:** {message}")

    def _on_scene_picked(self) -> None:
        scene_id = self.panel.scene.value
        if scene_id not in self.engine.scene_ids:  # only a crafted message sends another value
            with self._lock:
                current = self.state.scene_id
            self.panel.scene.value = current  # the dropdown shows the scene in use
            self.engine.check_scene(scene_id)  # raises, listing the available scenes
        self._set(scene_id=scene_id)

    def _on_negatives_typed(self) -> None:
        self._set(negatives=tuple(parse_negatives(self.panel.negatives.value)))

    def _on_threshold(self) -> None:
        try:
            threshold = check_threshold(self.panel.threshold.value, *THRESHOLD_RANGE)
        except ValueError:
            with self._lock:
                current = self.state.threshold
            self.panel.threshold.value = current  # the slider shows the threshold in use
            raise
        self._set(threshold=threshold)

    def _set(self, **changes) -> None:
        """Updates the state and asks for a refresh if anything changed; a new scene or set of negatives
        shows its best candidate."""
        with self._lock:
            changes = {name: value for name, value in changes.items() if getattr(self.state, name) != value}
            for name, value in changes.items():
                setattr(self.state, name, value)
            if "scene_id" in changes or "negatives" in changes:
                self.state.candidate = 0
        if changes:
            self.refresh()

    def _on_query_typed(self) -> None:
        query = check_query(self.panel.query.value)
        self._set(query=query, candidate=0)
        with self._lock:
            if self._history_timer is not None:
                self._history_timer.cancel()
            if query and not self._closed:
                self._history_timer = threading.Timer(HISTORY_DELAY, self._commit_history, args=(query,))
                self._history_timer.daemon = True
                self._history_timer.start()

    def _on_ground(self) -> None:
        query = check_query(self.panel.query.value)
        self._set(query=query)
        self.refresh()  # grounds again after an error too
        self._commit_history(query)

    def _commit_history(self, query: str) -> None:
        """Adds ``query`` to the history (if still the current query) and redraws the history buttons."""
        with self._lock:
            if self._closed or not query or query != self.state.query:
                return
            self.state.history = push_history(self.state.history, query)
            entries = list(self.state.history)
            self._history_buttons = set_buttons(
                self.client.gui, self.panel.history, self._history_buttons, entries, self._rerun_history
            )

    def _rerun_history(self, index: int) -> None:
        with self._lock:
            query = self.state.history[index]
        self.panel.query.value = query  # shows it in the box; its on_update grounds it
        self._set(query=query, candidate=0)
        self._commit_history(query)

    def _choose_candidate(self, index: int) -> None:
        self._set(candidate=index)

    def _splats_visible(self) -> bool:
        return bool(self.panel.show_splats.value and not self.panel.view_2d.value)

    def _update_splat_visibility(self) -> None:
        self._splats.visible = self._splats_visible()

    def _set_visible(self, name: str, visible: bool) -> None:
        with self._lock:
            node = self._nodes.get(name)
        if node is not None:
            node.visible = visible

    def _show_box_nodes(self, visible: bool) -> None:
        self._set_visible(BOX, visible)
        self._set_visible(LABEL, visible)

    def _show_anchor_nodes(self, visible: bool) -> None:
        for name in self._anchor_names():
            self._set_visible(name, visible)

    # -- the refresh job (worker thread) -------------------------------------------------------------

    def _refresh(self) -> None:
        if self._closed:
            return
        try:
            self._update_scene()
            self._update_result()
            if not self.worker.has_pending():  # a newer request will draw the newest state
                self._draw()
        except Exception as error:  # shown to the user; the viewer keeps running
            self._report(error)

    def _update_scene(self) -> None:
        with self._lock:
            scene_id = self.state.scene_id
        if self._loaded is not None and self._loaded.scene.scene_id == scene_id:
            return
        self._show(self.panel.status, f"Loading scene **{scene_id}** ...")
        loaded = self.engine.load(scene_id)
        with self._lock:
            self._loaded = loaded
            self._shown = None
        self._add_scene_nodes(loaded)

    def _update_result(self) -> None:
        with self._lock:
            if not self.state.query or self.state.result_is_current():
                return
            loaded, query, negatives = self._loaded, self.state.query, self.state.negatives
        assert loaded is not None
        result = self.engine.ground(loaded, query, negatives)
        with self._lock:
            self.state.result = result

    def _draw(self) -> None:
        with self._lock:
            loaded = self._loaded
            current = self.state.result_is_current()
            result = self.state.result if current else None
            candidate_index = min(self.state.candidate, len(result.candidates) - 1) if result else 0
            threshold = self.state.threshold
        assert loaded is not None
        splats = loaded.splats
        if result is None:
            colors, opacities = splats.colors, splats.opacities
        else:
            candidate = result.candidates[candidate_index]
            grounded = loaded.grounded(candidate.point_probs, threshold)
            probs = loaded.gaussian_values(np.where(grounded, candidate.point_probs, 0.0))
            colors, opacities = highlight(splats.colors, splats.opacities, probs, threshold)
        self._splats.show(splats, colors, opacities)
        with self._lock:
            self._shown = (colors, opacities)
        if result is None:
            self._remove_box()
            self._remove_anchors()
            self._show_result_lists(None)
            note = f"  \n{loaded.display_note}" if loaded.display_note else ""
            self._show(self.panel.status, EMPTY_QUERY_TEXT + note)
        else:
            box = loaded.box(grounded)
            self._draw_box(box, f"{result.text} · {candidate.score:.2f}")
            self._draw_anchors(candidate.anchors)
            self._show_result_lists(result)
            count = int(selected(probs, threshold).sum())
            relation = result.relation
            self._show(
                self.panel.status,
                f"**{candidate.label}** (candidate {candidate_index + 1}) · score {candidate.score:.2f}  \n"
                + ("" if relation is None else f"read as *{relation.kind}* ({relation.probability:.2f})  \n")
                + f"{count} of {len(splats)} Gaussians ≥ {threshold:.2f} · {result.seconds * 1000:.0f} ms"
                + ("" if box is not None else "  \nNothing reaches the threshold: lower it.")
                + (f"  \n{loaded.display_note}" if loaded.display_note else ""),
            )
            self._show_tokens(result, candidate_index)
        self._request_render()

    def _show_result_lists(self, result: GroundingResult | None) -> None:
        """Rebuilds the candidate buttons when the result changed."""
        if result is self._drawn_result:
            return
        self._drawn_result = result
        labels = (
            []
            if result is None
            else [f"{i + 1}. {c.label} · {c.score:.2f}" for i, c in enumerate(result.candidates)]
        )
        self._candidate_buttons = set_buttons(
            self.client.gui, self.panel.candidates, self._candidate_buttons, labels, self._choose_candidate
        )
        if result is None:
            self.panel.tokens.content = ""

    def _show_tokens(self, result: GroundingResult, candidate_index: int) -> None:
        scores = result.candidates[candidate_index].token_scores
        rows = [
            f"| `{token}` | {score:.2f} | {_bar(score)} |"
            for token, score in zip(result.token_strings, scores, strict=False)
        ]
        self.panel.tokens.content = "| token | score | |\n|---|---|---|\n" + "\n".join(rows)

    def _draw_box(self, box: np.ndarray | None, text: str) -> None:
        if box is None:
            self._remove_box()
            return
        size = np.maximum(box[3:] - box[:3], 1e-3)
        center = (box[:3] + box[3:]) / 2.0
        mesh = trimesh.creation.box(extents=size)
        visible = bool(self.panel.show_box.value)
        self._nodes[BOX] = self.client.scene.add_mesh_simple(
            BOX,
            vertices=mesh.vertices,
            faces=mesh.faces,
            color=tuple(int(v * 255) for v in HIGHLIGHT_RGB),
            wireframe=True,
            position=center,
            visible=visible,
        )
        top = np.array([center[0], center[1], box[5] + 0.05])
        self._nodes[LABEL] = self.client.scene.add_label(LABEL, text, position=top, visible=visible)

    def _remove_box(self) -> None:
        self._remove_nodes((BOX, LABEL))

    def _draw_anchors(self, anchors: tuple[LocatedAnchor, ...]) -> None:
        """A sphere and a "word · weight" label at each anchor's centre (replacing the previous ones)."""
        self._remove_anchors()
        visible = bool(self.panel.show_anchors.value)
        scene = self.client.scene
        for k, anchor in enumerate(anchors):
            sphere, label = f"{ANCHORS}/{k}/sphere", f"{ANCHORS}/{k}/label"
            self._nodes[sphere] = scene.add_icosphere(
                sphere, ANCHOR_RADIUS, ANCHOR_RGB, subdivisions=2, position=anchor.centre, visible=visible
            )
            top = anchor.centre + np.array([0.0, 0.0, 2 * ANCHOR_RADIUS], dtype=np.float32)
            text = f"{anchor.word} · {anchor.weight:.2f}"
            self._nodes[label] = scene.add_label(label, text, position=top, visible=visible)

    def _anchor_names(self) -> list[str]:
        with self._lock:
            return [name for name in self._nodes if name.startswith(ANCHORS + "/")]

    def _remove_anchors(self) -> None:
        self._remove_nodes(self._anchor_names())

    def _remove_nodes(self, names: Iterable[str]) -> None:
        for name in names:
            node = self._nodes.pop(name, None)
            if node is not None:
                node.remove()

    def _add_scene_nodes(self, loaded: LoadedScene) -> None:
        """The new scene's splats, input cloud and camera frustums; the camera framed on the scene."""
        scene = self.client.scene
        self._remove_box()
        self._remove_anchors()
        self._splats.reset(visible=self._splats_visible())
        self._splats.show(loaded.splats)
        self._nodes[POINTS] = scene.add_point_cloud(
            POINTS,
            points=loaded.scene.points,
            colors=loaded.scene.colors,
            point_size=loaded.features.voxel_size * 0.5,
            visible=bool(self.panel.show_points.value),
        )
        self._nodes[CAMERAS] = scene.add_frame(
            CAMERAS, show_axes=False, visible=bool(self.panel.show_cameras.value)
        )
        frames = loaded.scene.frames
        for index in np.unique(np.linspace(0, len(frames) - 1, min(len(frames), MAX_FRUSTUMS)).astype(int)):
            frame = frames[index]
            fov = 2.0 * np.arctan(0.5 * frame.height / frame.K[1, 1])
            scene.add_camera_frustum(
                f"{CAMERAS}/{index}",
                fov=float(fov),
                aspect=frame.width / frame.height,
                scale=0.15,
                color=(60, 60, 200),
                wxyz=viser.transforms.SO3.from_matrix(frame.c2w[:3, :3]).wxyz,
                position=frame.c2w[:3, 3],
            )
        self._frame_camera(loaded.scene.points)

    def _frame_camera(self, points: np.ndarray) -> None:
        """Looks at the scene from above one corner, the whole cloud in view and left of the panel."""
        low, high = points.min(axis=0), points.max(axis=0)
        center = (low + high) / 2.0
        extent = float(np.linalg.norm(high - low))
        offset = extent * np.array([-0.35, -0.6, 0.55])
        right = np.cross(-offset, (0.0, 0.0, 1.0))
        target = center + 0.2 * extent * right / np.linalg.norm(right)  # the panel covers the right
        camera = self.client.camera
        camera.up_direction = (0.0, 0.0, 1.0)
        camera.position = target + offset
        camera.look_at = target

    # -- 2D mask view (second worker) ----------------------------------------------------------------

    def _on_view_2d(self) -> None:
        self._update_splat_visibility()
        if self.panel.view_2d.value:
            self._request_render()
        else:  # viser cannot remove a background image: a 1-pixel white one hides the last render
            self.client.scene.set_background_image(np.full((1, 1, 3), 255, dtype=np.uint8), format="png")

    def _request_render(self) -> None:
        if self.panel.view_2d.value and not self._closed:
            self.render_worker.submit(self._render_2d)

    def _render_2d(self) -> None:
        with self._lock:
            loaded, shown = self._loaded, self._shown
        if loaded is None or shown is None or not self.panel.view_2d.value:
            return
        camera = self.client.camera
        K, width = pinhole(camera.fov, camera.aspect, self.view_height)
        c2w = camera_to_world(camera.wxyz, camera.position)
        image = render_view(loaded.view_gaussians, shown[0], shown[1], c2w, K, width, self.view_height)
        if not self.render_worker.has_pending() and self.panel.view_2d.value:
            self.client.scene.set_background_image(image, format="jpeg", jpeg_quality=85)

    # -- export (viser's thread) ---------------------------------------------------------------------

    def _export(self) -> None:
        with self._lock:
            loaded, threshold = self._loaded, self.state.threshold
            result = self.state.result if self.state.result_is_current() else None
            candidate_index = self.state.candidate
        if loaded is None or result is None:
            self._show(self.panel.export_info, "Nothing to export yet: ground a query first.")
            return
        candidate = result.candidates[min(candidate_index, len(result.candidates) - 1)]
        export = export_file_selection if isinstance(loaded, FileLoadedScene) else export_selection
        try:
            exported = export(self.export_dir, loaded, result, candidate, threshold)
        except (ValueError, OSError) as error:
            self._show(self.panel.export_info, f"**Not exported:** {log_error(self.name, error)}")
            return
        names = [path.name for path in exported.paths]
        sent = []
        # In viser's atomic block, for the reason ``_show`` gives: a file's parts must not overtake its
        # start. The block also holds off another export's downloads to this client until these are queued.
        with self.client.atomic():
            for name, data in exported.files():  # this export's own bytes, whatever happens to the files
                self.client.send_file_download(name, data)
                sent.append(name)
        self._show(
            self.panel.export_info,
            f"Wrote {', '.join(f'`{name}`' for name in names)} in `{self.export_dir}`"
            + (" (also sent as downloads)." if sent == names else f"; sent as downloads: {', '.join(sent)}."),
        )


def _bar(score: float, width: int = 10) -> str:
    """A text bar of ``score`` in [0, 1]: ``"██████░░░░"``."""
    filled = int(round(float(np.clip(score, 0.0, 1.0)) * width))
    return "█" * filled + "░" * (width - filled)
