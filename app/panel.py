"""The viewer's control panel for one client: the GUI handles, laid out once per browser tab.

Only layout lives here; ``app.session`` wires the callbacks and fills the dynamic parts (candidates,
history) through ``set_buttons``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import viser

QUERY_HINT = "Describe an object, e.g. 'the blue chair next to the table'. Grounds as you type."
NEGATIVES_HINT = "Subtract these objects' masks: 'the table; the lamp' (';' between queries)."
EMPTY_QUERY_TEXT = "Type a query above (e.g. *the red chair*) to ground an object."
THRESHOLD_RANGE = (0.05, 0.95)
"""The threshold slider's ends; the session refuses other values."""


@dataclass
class Panel:
    """Handles of one client's GUI."""

    scene: viser.GuiDropdownHandle
    query: viser.GuiInputHandle[str]
    negatives: viser.GuiInputHandle[str]
    ground: viser.GuiButtonHandle
    threshold: viser.GuiInputHandle[float]
    status: viser.GuiMarkdownHandle
    candidates: viser.GuiFolderHandle
    tokens: viser.GuiMarkdownHandle
    history: viser.GuiFolderHandle
    show_splats: viser.GuiInputHandle[bool]
    show_points: viser.GuiInputHandle[bool]
    show_cameras: viser.GuiInputHandle[bool]
    show_box: viser.GuiInputHandle[bool]
    show_anchors: viser.GuiInputHandle[bool]
    view_2d: viser.GuiInputHandle[bool]
    export: viser.GuiButtonHandle
    export_info: viser.GuiMarkdownHandle


def build_panel(gui: viser.GuiApi, scene_ids: Sequence[str], scene_id: str, threshold: float) -> Panel:
    """Adds the controls to ``gui`` (a client's GUI) in display order."""
    scene = gui.add_dropdown("Scene", options=list(scene_ids), initial_value=scene_id)
    query = gui.add_text("Query", initial_value="", hint=QUERY_HINT)
    negatives = gui.add_text("Not", initial_value="", hint=NEGATIVES_HINT)
    ground = gui.add_button("Ground", icon=viser.Icon.SEARCH)
    threshold_slider = gui.add_slider(
        "Threshold",
        min=THRESHOLD_RANGE[0],
        max=THRESHOLD_RANGE[1],
        step=0.05,
        initial_value=threshold,
        marks=((THRESHOLD_RANGE[0], "0.05"), (0.5, "0.5"), (THRESHOLD_RANGE[1], "0.95")),
        hint="Mask probability at which a Gaussian counts as grounded",
    )
    status = gui.add_markdown(f"Loading scene **{scene_id}** ...")
    candidates = gui.add_folder("Candidates")
    with gui.add_folder("Token scores"):
        tokens = gui.add_markdown("")
    history = gui.add_folder("History", expand_by_default=False)
    with gui.add_folder("Display", expand_by_default=False):
        show_splats = gui.add_checkbox("Gaussians", initial_value=True)
        show_points = gui.add_checkbox("Input point cloud", initial_value=False)
        show_cameras = gui.add_checkbox("Cameras", initial_value=False)
        show_box = gui.add_checkbox("Box and label", initial_value=True)
        show_anchors = gui.add_checkbox(
            "Anchors", initial_value=True, hint="Where the query found the other objects its text names"
        )
        view_2d = gui.add_checkbox(
            "2D mask view", initial_value=False, hint="Render the mask with LIFT-GS's own rasterizer"
        )
    with gui.add_folder("Export"):
        export = gui.add_button("Export selection", icon=viser.Icon.DOWNLOAD)
        export_info = gui.add_markdown("Writes the grounded Gaussians (.ply) and a JSON record.")
    return Panel(
        scene=scene,
        query=query,
        negatives=negatives,
        ground=ground,
        threshold=threshold_slider,
        status=status,
        candidates=candidates,
        tokens=tokens,
        history=history,
        show_splats=show_splats,
        show_points=show_points,
        show_cameras=show_cameras,
        show_box=show_box,
        show_anchors=show_anchors,
        view_2d=view_2d,
        export=export,
        export_info=export_info,
    )


def set_buttons(
    gui: viser.GuiApi,
    folder: viser.GuiFolderHandle,
    old: list[viser.GuiButtonHandle],
    labels: Sequence[str],
    on_click: Callable[[int], None],
) -> list[viser.GuiButtonHandle]:
    """Replaces the buttons ``old`` inside ``folder`` by one button per label; ``on_click(i)`` on a click."""
    for button in old:
        button.remove()
    buttons = []
    with folder:
        for index, label in enumerate(labels):
            button = gui.add_button(label)
            button.on_click(lambda _event, index=index: on_click(index))
            buttons.append(button)
    return buttons
