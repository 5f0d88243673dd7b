"""A headless stand-in for a browser tab: speaks viser 0.2.7's websocket protocol from Python.

The viewer's server-level tests and ``liftgs bench viewer`` use it to see exactly what the server sends a
client (splat buffers, boxes, GUI updates, file downloads) without a browser. Protocol, as implemented by
viser's own web client: the client sends one msgpack map per message (``{"type": <class name>, ...}``);
the server sends msgpack arrays of such maps (a "window" of messages). A client counts as connected once
it has sent its first ``ViewerCameraMessage``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


@dataclass
class Received:
    """One message the server sent, decoded to a plain dict, with its arrival time (``time.perf_counter``)."""

    time: float
    message: dict[str, Any]

    @property
    def type(self) -> str:
        return self.message["type"]


@dataclass
class Download:
    """One file the server sent (``send_file_download``): its name, announced size and the bytes so far."""

    filename: str
    size: int
    content: bytearray

    @property
    def complete(self) -> bool:
        return len(self.content) == self.size


class ViserTestClient:
    """Connects to a viser server, mirrors its GUI and scene state, and sends GUI events like a tab would.

    ``gui`` maps GUI ids to their merged properties (add message + later updates); ``nodes`` maps scene
    node names to their latest add message; ``received`` keeps every message in arrival order;
    ``transfers`` every file download in the order they started, and ``downloads`` the content of the
    latest download of each file name.
    """

    def __init__(self, url: str, timeout: float = 10.0, nudge_every: float | None = None) -> None:
        """``nudge_every``: while ``wait_until`` waits, resend the last camera pose every so many seconds,
        as a browser tab that is looked at does: viser can hold a message to a client back until the next
        exchange with it. None (benchmarks): never."""
        self.nudge_every = nudge_every
        self._last_camera: dict[str, Any] | None = None
        self._exit_stack = contextlib.ExitStack()
        self._socket = self._exit_stack.enter_context(
            connect(url.replace("http://", "ws://"), max_size=None, open_timeout=timeout)
        )
        self._lock = threading.Condition()
        self.received: list[Received] = []
        self.gui: dict[str, dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.downloads: dict[str, bytearray] = {}
        self.transfers: list[Download] = []
        self._transfer_by_uuid: dict[str, Download] = {}
        self._thread = threading.Thread(target=self._receive_loop, daemon=True)
        self._thread.start()

    # -- sending -------------------------------------------------------------------------------------

    def send(self, message_type: str, **fields: Any) -> None:
        self._socket.send(msgspec.msgpack.encode({"type": message_type, **fields}))

    def send_camera(
        self,
        position: tuple[float, float, float] = (3.0, -3.0, 3.0),
        look_at: tuple[float, float, float] = (0.0, 0.0, 0.0),
        fov: float = 1.0,
        aspect: float = 4.0 / 3.0,
    ) -> None:
        """Sends the camera pose (OpenCV axes, looking from ``position`` at ``look_at``, world z up)."""
        forward = np.subtract(look_at, position, dtype=np.float64)
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, (0.0, 0.0, 1.0))
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rotation = np.stack([right, down, forward], axis=1)  # columns: camera x, y, z in world
        self._last_camera = dict(
            wxyz=tuple(float(v) for v in _matrix_to_wxyz(rotation)),
            position=tuple(float(v) for v in position),
            fov=float(fov),
            aspect=float(aspect),
            look_at=tuple(float(v) for v in look_at),
            up_direction=(0.0, 0.0, 1.0),
        )
        self.send("ViewerCameraMessage", **self._last_camera)

    def set_value(self, gui_id: str, value: Any) -> None:
        """What the browser sends when an input changes (text typed, slider moved, dropdown picked)."""
        self.send("GuiUpdateMessage", id=gui_id, updates={"value": value})

    def click(self, gui_id: str) -> None:
        self.set_value(gui_id, True)

    # -- reading -------------------------------------------------------------------------------------

    def gui_id(self, label: str) -> str:
        """Id of the (latest, still present) GUI element with this label; KeyError when none."""
        with self._lock:
            matches = [gid for gid, props in self.gui.items() if props.get("label") == label]
        if not matches:
            raise KeyError(f"no GUI element labelled {label!r}")
        return matches[-1]

    def gui_ids_under(self, container_label: str) -> list[str]:
        """Ids of the elements inside the folder labelled ``container_label``, in send order."""
        container = self.gui_id(container_label)
        with self._lock:
            return [gid for gid, props in self.gui.items() if props.get("container_id") == container]

    def wait_for(
        self, predicate: Callable[[Received], bool], after: float = 0.0, timeout: float = 20.0
    ) -> Received:
        """First received message at or after ``after`` (perf_counter) satisfying ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for item in self.received:
                    if item.time >= after and predicate(item):
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("the server did not send the expected message in time")
                self._lock.wait(remaining)

    def wait_until(self, condition: Callable[[], bool], timeout: float = 20.0) -> None:
        """Blocks until ``condition()`` (evaluated under the state lock after each message) holds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("condition not reached in time")
                if self.nudge_every is None or self._last_camera is None:
                    self._lock.wait(remaining)
                elif not self._lock.wait(min(remaining, self.nudge_every)):
                    self.send("ViewerCameraMessage", **self._last_camera)

    def forget(self) -> None:
        """Drops the messages received so far (``received`` and ``transfers``; ``gui`` and ``nodes`` stay),
        so that a long-running client holds only the current state."""
        with self._lock:
            self.received.clear()
            self.transfers.clear()
            self.downloads.clear()
            self._transfer_by_uuid.clear()

    def completed_downloads(self) -> list[Download]:
        """The downloads received whole so far, in the order they started."""
        with self._lock:
            return [download for download in self.transfers if download.complete]

    def close(self) -> None:
        self._exit_stack.close()
        self._thread.join(timeout=5.0)

    # -- internals -----------------------------------------------------------------------------------

    def _receive_loop(self) -> None:
        try:
            while True:
                raw = self._socket.recv()
                stamp = time.perf_counter()
                window = msgspec.msgpack.decode(raw)
                with self._lock:
                    for message in window:
                        self._apply(message)
                        self.received.append(Received(stamp, message))
                    self._lock.notify_all()
        except ConnectionClosed:
            return

    def _apply(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind.startswith("GuiAdd"):
            self.gui[message["id"]] = dict(message)
        elif kind == "GuiUpdateMessage" and message["id"] in self.gui:
            self.gui[message["id"]].update(message["updates"])
        elif kind == "GuiRemoveMessage":
            self.gui.pop(message["id"], None)
        elif kind == "RemoveSceneNodeMessage":
            prefix = message["name"].rstrip("/") + "/"
            for name in [n for n in self.nodes if n == message["name"] or n.startswith(prefix)]:
                del self.nodes[name]
        elif kind == "SetSceneNodeVisibilityMessage" and message["name"] in self.nodes:
            self.nodes[message["name"]]["visible"] = message["visible"]
        elif kind == "FileTransferStart":
            download = Download(message["filename"], message["size_bytes"], bytearray())
            self._transfer_by_uuid[message["transfer_uuid"]] = download
            self.transfers.append(download)
            self.downloads[download.filename] = download.content
        elif kind == "FileTransferPart" and message["transfer_uuid"] in self._transfer_by_uuid:
            self._transfer_by_uuid[message["transfer_uuid"]].content += message["content"]
        elif "name" in message and kind.endswith("Message") and not kind.startswith("Set"):
            self.nodes[message["name"]] = {**message, "visible": True}


def splat_rgba(message: dict[str, Any]) -> np.ndarray:
    """[G, 4] uint8 colors and opacities carried by a ``GaussianSplatsMessage`` (viser's 32-byte layout:
    centre xyz float32, 4 reserved bytes, 6 float16 covariance terms, then RGBA)."""
    raw = np.frombuffer(message["buffer"], dtype=np.uint8).reshape(-1, 32)
    return raw[:, 28:32]


def splat_centers(message: dict[str, Any]) -> np.ndarray:
    """[G, 3] float32 centres carried by a ``GaussianSplatsMessage``."""
    raw = np.frombuffer(message["buffer"], dtype=np.uint8).reshape(-1, 32)
    return raw[:, :12].copy().view(np.float32)


def _matrix_to_wxyz(rotation: np.ndarray) -> np.ndarray:
    """[3, 3] rotation matrix -> [4] unit quaternion wxyz."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(rotation).as_quat()
    return np.array([w, x, y, z])
