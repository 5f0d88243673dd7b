"""Releasing what a closed browser tab leaves behind in viser 0.2.7's websocket server.

viser serves each connection with three tasks gathered together: a producer for the client's own message
buffer, a producer for the server-wide broadcast buffer and a consumer of incoming messages. When the tab
closes, the consumer raises and the client's own buffer is marked done, but the broadcast producer keeps
waiting for the next broadcast message. The viewer broadcasts nothing (every tab has its own scene and
GUI), so that task waits for ever, and through the connection's exception and frame it keeps the whole
client alive: its GUI and scene handles, their callbacks and so the viewer's ``ClientSession`` with its
grounding results and splat buffers. Every connect/disconnect added them to the process.

``release_closed_connections`` registers a disconnect hook that cancels exactly that task (the broadcast
producer of the client that just disconnected) on the server's event loop.

What a closed tab freed can still stay in the process: glibc's malloc keeps freed memory in the arena of
the (per-tab worker) thread that used it. ``return_freed_memory`` hands it back to the system
(``malloc_trim``); the viewer calls it when a tab connects, so that resident memory stays near one
process's working set however many tabs came and went.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools

import viser


def release_closed_connections(server: viser.ViserServer) -> None:
    """Makes ``server`` end each client's leftover broadcast task when the client disconnects."""
    websock_server = server._websock_server  # viser 0.2.7's infra.WebsockServer
    buffer = websock_server._broadcast_buffer
    loop = buffer.event_loop

    def on_disconnect(connection) -> None:
        loop.call_soon_threadsafe(_cancel_broadcast_producer, loop, buffer, connection.client_id)

    websock_server.on_client_disconnect(on_disconnect)


def broadcast_producers(loop: asyncio.AbstractEventLoop, buffer: object) -> dict[int, asyncio.Task]:
    """The running broadcast producer task of each client id (viser's ``_message_producer`` on ``buffer``)."""
    producers = {}
    for task in asyncio.all_tasks(loop):
        coroutine = task.get_coro()
        frame = getattr(coroutine, "cr_frame", None)
        if getattr(coroutine, "__name__", None) != "_message_producer" or frame is None:
            continue
        if frame.f_locals.get("buffer") is buffer:
            producers[frame.f_locals.get("client_id")] = task
    return producers


def _cancel_broadcast_producer(loop: asyncio.AbstractEventLoop, buffer, client_id: int) -> None:
    """Cancels the broadcast producer of ``client_id`` (whose connection is closed: its consumer raised
    and the disconnect callbacks ran), then pulses the broadcast buffer's flush event, which ends the
    flush wait the cancelled producer's message window left pending."""
    task = broadcast_producers(loop, buffer).get(client_id)
    if task is not None:
        task.cancel()
        buffer.flush()


@functools.cache
def _libc_malloc_trim():
    """glibc's ``malloc_trim``, or None on other C libraries."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


def return_freed_memory() -> None:
    """Returns the memory malloc holds free in every arena to the system (glibc; a no-op elsewhere)."""
    trim = _libc_malloc_trim()
    if trim is not None:
        trim(0)
