"""Rooms and object placement: the scene graph every other synthetic stage reads.

A room is a rectilinear outline on the floor (z = 0, world z up, metres) with walls along its edges.
Objects stand on the floor (free, or with their back against a wall) or on the top of a supporter
(table, desk, cabinet, nightstand). Footprints never overlap and stay inside the room; a door keeps the
space in front of it free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from liftgs.data.synthetic.geometry import (
    convex_distance,
    convex_overlap,
    footprint_corners,
    perimeter_samples,
    point_segment_distance,
    points_in_polygon,
    polygon_area,
    polygon_edges,
    rotation_2d,
)
from liftgs.data.synthetic.objects import CATEGORIES, COLORS, ObjectModel, Part, box

ROOM_SHAPES = ("rectangle", "L", "T")
"""Room outlines: a rectangle, an L (one corner notched out) and a T (two corners of one side notched)."""

HELD_OUT_ROOM_SHAPES = ("T",)
"""Shapes that only the test split uses (unseen layouts)."""

THEMES: dict[str, dict[str, float]] = {
    "bedroom": {"bed": 3, "nightstand": 3, "lamp": 2, "cabinet": 2, "shelf": 1.5, "chair": 1.5, "plant": 1,
                "box": 1.5, "door": 1, "trash can": 1, "ball": 1, "desk": 1},
    "living room": {"sofa": 3, "table": 3, "chair": 3, "stool": 1.5, "lamp": 2, "plant": 2, "shelf": 1.5,
                    "cabinet": 1.5, "trash can": 1, "ball": 1, "door": 1, "box": 1},
    "office": {"desk": 3, "chair": 3, "cabinet": 2, "shelf": 2, "trash can": 2, "lamp": 1, "plant": 1.5,
               "box": 1.5, "door": 1, "stool": 1, "table": 1},
}  # fmt: skip
"""Floor categories per room theme and their sampling weights."""

TOP_WEIGHTS = {"box": 2.0, "ball": 1.0, "plant": 1.5, "lamp": 1.5, "monitor": 2.0}
"""Categories that can stand on supporters, with their weights."""

MAX_PER_CATEGORY = {"bed": 2, "sofa": 2, "door": 2, "desk": 3, "table": 3}
_REPEAT_PROBABILITY = 0.4
"""Chance that a floor draw repeats an already drawn category: same-category distractors are frequent."""

_WALL_THICKNESS = 0.1
_WALL_GAP = 0.025  # metres between a wall-backed object and its wall
_ROOM_MARGIN = 0.02  # footprints stay this far inside the outline
_CLEARANCE = 0.08  # free floor between two floor objects
_TOP_CLEARANCE = 0.03  # between two objects on one top
_PLACEMENT_TRIES = 60

FLOOR_RGB = [(0.72, 0.60, 0.45), (0.62, 0.62, 0.60), (0.80, 0.74, 0.62), (0.55, 0.42, 0.30)]
WALL_RGB = [(0.90, 0.88, 0.84), (0.82, 0.86, 0.88), (0.88, 0.84, 0.76), (0.80, 0.80, 0.80)]


@dataclass
class Room:
    """A room outline with walls.

    Attributes:
        shape: one of ``ROOM_SHAPES``.
        polygon: [V, 2] counter-clockwise rectilinear outline (metres, min corner at the origin).
        wall_height: metres.
        floor_rgb, wall_rgb: albedos.
    """

    shape: str
    polygon: np.ndarray
    wall_height: float
    floor_rgb: tuple[float, float, float]
    wall_rgb: tuple[float, float, float]

    def wall_distance(self, points: np.ndarray) -> np.ndarray:
        """[N] distance from floor points [N, 2] to the nearest wall."""
        return point_segment_distance(points, *polygon_edges(self.polygon)).min(axis=1)

    def inward_normals(self) -> np.ndarray:
        """[V, 2] unit normal of each edge pointing into the room (left of a counter-clockwise edge)."""
        starts, ends = polygon_edges(self.polygon)
        d = ends - starts
        return np.stack([-d[:, 1], d[:, 0]], axis=1) / np.linalg.norm(d, axis=1, keepdims=True)

    def convex_corners(self) -> np.ndarray:
        """[C, 2] corners with a 90 degree interior angle (the room's "corners")."""
        d_in = self.polygon - np.roll(self.polygon, 1, axis=0)
        d_out = np.roll(self.polygon, -1, axis=0) - self.polygon
        return self.polygon[d_in[:, 0] * d_out[:, 1] - d_in[:, 1] * d_out[:, 0] > 0]

    def contains(self, footprint: np.ndarray, margin: float = _ROOM_MARGIN) -> bool:
        """Whether a footprint [4, 2] lies inside the outline, at least ``margin`` from every wall."""
        # Outline vertices poking into the footprint between two samples come within ``spacing / 2``.
        samples = perimeter_samples(footprint, spacing=max(2 * margin, 0.01))
        return bool(
            points_in_polygon(samples, self.polygon).all() and self.wall_distance(samples).min() >= margin
        )

    def parts(self) -> list[Part]:
        """Floor (top at z = 0, covering the outline's bounding box) and one wall box per edge.

        Each wall lies outside its edge and is lengthened by its thickness at convex corners so the
        corners close; the floor outside an L or T is hidden behind walls.
        """
        low, high = self.polygon.min(axis=0) - _WALL_THICKNESS, self.polygon.max(axis=0) + _WALL_THICKNESS
        size = high - low
        parts = [box([size[0], size[1], 0.05], [*(low + size / 2), -0.025], self.floor_rgb)]
        corners = {tuple(c) for c in self.convex_corners()}
        starts, ends = polygon_edges(self.polygon)
        for start, end, inward in zip(starts, ends, self.inward_normals(), strict=True):
            direction = (end - start) / np.linalg.norm(end - start)
            a = start - direction * _WALL_THICKNESS * (tuple(start) in corners)
            b = end + direction * _WALL_THICKNESS * (tuple(end) in corners)
            center = (a + b) / 2 - inward * _WALL_THICKNESS / 2
            length = np.linalg.norm(b - a)
            extents = [length, _WALL_THICKNESS] if abs(direction[0]) > 0.5 else [_WALL_THICKNESS, length]
            parts.append(box([*extents, self.wall_height], [*center, self.wall_height / 2], self.wall_rgb))
        return parts


def _notched_rectangle(width: float, depth: float, notches: dict[int, tuple[float, float]]) -> np.ndarray:
    """A counter-clockwise rectangle with corners notched out.

    ``notches[k] = (a, b)`` cuts corner ``k`` (0: (0,0), 1: (w,0), 2: (w,d), 3: (0,d)) by a rectangle that
    reaches ``a`` metres back along the incoming edge and ``b`` metres along the outgoing edge.
    """
    rect = np.array([[0.0, 0.0], [width, 0.0], [width, depth], [0.0, depth]])
    outline = []
    for k, corner in enumerate(rect):
        if k not in notches:
            outline.append(corner)
            continue
        a, b = notches[k]
        back = (rect[k - 1] - corner) / np.linalg.norm(rect[k - 1] - corner) * a
        ahead = (rect[(k + 1) % 4] - corner) / np.linalg.norm(rect[(k + 1) % 4] - corner) * b
        outline += [corner + back, corner + back + ahead, corner + ahead]
    return np.array(outline)


def sample_room(rng: np.random.Generator, shapes: tuple[str, ...]) -> Room:
    """A room of a shape drawn from ``shapes``, 3.5-8 m across, walls 2.4-2.8 m high."""
    shape = str(rng.choice(shapes))
    if shape == "rectangle":
        width, depth = rng.uniform(3.5, 7.0), rng.uniform(3.5, 6.0)
        polygon = _notched_rectangle(width, depth, {})
    elif shape == "L":
        width, depth = rng.uniform(4.5, 8.0), rng.uniform(4.0, 7.0)
        k = int(rng.integers(4))
        edge_in, edge_out = (width, depth) if k % 2 else (depth, width)
        polygon = _notched_rectangle(
            width, depth, {k: (rng.uniform(0.35, 0.5) * edge_in, rng.uniform(0.35, 0.5) * edge_out)}
        )
    elif shape == "T":
        width, depth = rng.uniform(5.0, 8.0), rng.uniform(4.5, 7.0)
        k = int(rng.integers(4))  # corners k and k+1 share the edge that loses its two ends
        along = width if k % 2 == 0 else depth
        across = depth if k % 2 == 0 else width
        cut = rng.uniform(0.3, 0.45) * across
        polygon = _notched_rectangle(
            width,
            depth,
            {k: (cut, rng.uniform(0.25, 0.35) * along), (k + 1) % 4: (rng.uniform(0.25, 0.35) * along, cut)},
        )
    else:
        raise ValueError(f"unknown room shape {shape!r}; choose from {ROOM_SHAPES}")
    assert polygon_area(polygon) > 0
    return Room(
        shape=shape,
        polygon=polygon,
        wall_height=float(rng.uniform(2.4, 2.8)),
        floor_rgb=FLOOR_RGB[int(rng.integers(len(FLOOR_RGB)))],
        wall_rgb=WALL_RGB[int(rng.integers(len(WALL_RGB)))],
    )


@dataclass
class PlacedObject:
    """An object instance in the room.

    Attributes:
        object_id: id in masks, point clouds and annotations.
        category: key of ``CATEGORIES``.
        color: key of ``COLORS``.
        model: the built model (local frame, see ``objects``).
        position: [3] world position of the model's origin (footprint centre at its base).
        yaw: rotation about world z (radians).
        support_id: id of the object it stands on, or None when on the floor.

    The pose is fixed once placed (footprint and box are cached).
    """

    object_id: int
    category: str
    color: str
    model: ObjectModel
    position: np.ndarray
    yaw: float
    support_id: int | None = None

    def footprint(self, grow: float = 0.0) -> np.ndarray:
        """[4, 2] world footprint corners (optionally grown by ``grow`` metres on every side)."""
        if grow == 0.0:
            return self._footprint
        return footprint_corners(self.position[:2], self.model.half_extents + grow, self.yaw)

    @cached_property
    def _footprint(self) -> np.ndarray:
        return footprint_corners(self.position[:2], self.model.half_extents, self.yaw)

    def keep_out(self) -> np.ndarray:
        """[4, 2] footprint plus the free space its category needs in front (a door's swing)."""
        clearance = CATEGORIES[self.category].front_clearance
        half = self.model.half_extents + np.array([0.0, clearance / 2])
        center = self.position[:2] + rotation_2d(self.yaw) @ np.array([0.0, -clearance / 2])
        return footprint_corners(center, half, self.yaw)

    def world_parts(self) -> list[Part]:
        rotation = np.eye(3)
        rotation[:2, :2] = rotation_2d(self.yaw)
        return [Part(p.vertices @ rotation.T + self.position, p.faces, p.rgb) for p in self.model.parts]

    @cached_property
    def box(self) -> np.ndarray:
        """[6] world axis-aligned box (xmin, ymin, zmin, xmax, ymax, zmax) of the object's geometry."""
        vertices = np.concatenate([p.vertices for p in self.world_parts()])
        return np.concatenate([vertices.min(axis=0), vertices.max(axis=0)])

    @property
    def center_xy(self) -> np.ndarray:
        """[2] footprint centre on the floor."""
        return self.position[:2]

    @property
    def top_height(self) -> float:
        return float(self.position[2] + self.model.height)


@dataclass
class Layout:
    """A room and the objects in it; ``objects`` is ordered by ``object_id`` (0..n-1).

    The cached measures (``gaps``, ``wall_distances``, ``corner_distances``) assume the layout is final.
    """

    room: Room
    objects: list[PlacedObject] = field(default_factory=list)
    theme: str = ""

    def by_id(self, object_id: int) -> PlacedObject:
        return self.objects[object_id]

    def same_category(self, obj: PlacedObject) -> list[PlacedObject]:
        """All objects of ``obj``'s category, ``obj`` included."""
        return [o for o in self.objects if o.category == obj.category]

    @cached_property
    def gaps(self) -> np.ndarray:
        """[n, n] footprint-to-footprint distances between objects (0 where footprints overlap)."""
        n = len(self.objects)
        gaps = np.zeros((n, n))
        for i in range(n):
            for j in range(i + 1, n):
                gaps[i, j] = gaps[j, i] = convex_distance(
                    self.objects[i].footprint(), self.objects[j].footprint()
                )
        return gaps

    @cached_property
    def wall_distances(self) -> np.ndarray:
        """[n] distance from each object's footprint to the nearest wall."""
        return np.array(
            [self.room.wall_distance(perimeter_samples(o.footprint(), 0.05)).min() for o in self.objects]
        )

    @cached_property
    def corner_distances(self) -> np.ndarray:
        """[n] distance from each object's footprint to the nearest convex room corner."""
        corners = self.room.convex_corners()
        distances = []
        for obj in self.objects:
            footprint = obj.footprint()
            inside = points_in_polygon(corners, footprint).any()
            distances.append(
                0.0 if inside else point_segment_distance(corners, *polygon_edges(footprint)).min()
            )
        return np.array(distances)

    def parts(self) -> list[tuple[Part, int]]:
        """Every primitive of the scene with its object id (-1 for the room)."""
        return [(p, -1) for p in self.room.parts()] + [
            (p, o.object_id) for o in self.objects for p in o.world_parts()
        ]


# ------------------------------------------------------------------------------------------------ placing


def _draw_categories(rng: np.random.Generator, weights: dict[str, float], count: int) -> list[str]:
    names = list(weights)
    p = np.array([weights[n] for n in names])
    drawn: list[str] = []
    while len(drawn) < count:
        repeat = drawn and rng.random() < _REPEAT_PROBABILITY
        name = str(rng.choice(drawn)) if repeat else str(rng.choice(names, p=p / p.sum()))
        if drawn.count(name) < MAX_PER_CATEGORY.get(name, 4):
            drawn.append(name)
    return drawn


def _wall_pose(rng: np.random.Generator, room: Room, model: ObjectModel) -> tuple[np.ndarray, float] | None:
    """A position and yaw with the model's back (+y) against a random wall long enough for it."""
    starts, ends = polygon_edges(room.polygon)
    lengths = np.linalg.norm(ends - starts, axis=1)
    fits = lengths >= 2 * model.half_extents[0] + 0.2
    if not fits.any():
        return None
    edge = int(rng.choice(np.flatnonzero(fits), p=lengths[fits] / lengths[fits].sum()))
    inward = room.inward_normals()[edge]
    half_w = model.half_extents[0] + 0.05
    t = rng.uniform(half_w, lengths[edge] - half_w)
    along = (ends[edge] - starts[edge]) / lengths[edge]
    center = starts[edge] + along * t + inward * (model.half_extents[1] + _WALL_GAP)
    return center, float(np.arctan2(inward[0], -inward[1]))


def _free_pose(rng: np.random.Generator, room: Room) -> tuple[np.ndarray, float]:
    low, high = room.polygon.min(axis=0), room.polygon.max(axis=0)
    return rng.uniform(low, high), float(rng.uniform(0, 2 * np.pi))


def _pose_at(rng: np.random.Generator, host: PlacedObject, model: ObjectModel) -> tuple[np.ndarray, float]:
    """A pose beside one side of a table/desk, facing it (chairs and stools pulled up to it)."""
    side = int(rng.integers(4)) if host.category == "table" else 0  # a desk is used from its front (-y)
    angle = host.yaw + side * np.pi / 2
    outward = rotation_2d(angle) @ np.array([0.0, -1.0])
    reach = host.model.half_extents[1] if side % 2 == 0 else host.model.half_extents[0]
    slide = rng.uniform(-0.3, 0.3) * (
        host.model.half_extents[0] if side % 2 == 0 else host.model.half_extents[1]
    )
    tangent = np.array([-outward[1], outward[0]])
    center = (
        host.position[:2] + outward * (reach + model.half_extents[1] + _CLEARANCE + 0.04) + tangent * slide
    )
    return center, float(angle + np.pi + rng.normal(0, 0.15))  # turned so its front (-y) faces the host


def _place_on_floor(
    rng: np.random.Generator, room: Room, placed: list[PlacedObject], category: str, model: ObjectModel
) -> tuple[np.ndarray, float] | None:
    spec = CATEGORIES[category]
    hosts = [o for o in placed if o.category in ("table", "desk")]
    for _ in range(_PLACEMENT_TRIES):
        if spec.against_wall:
            pose = _wall_pose(rng, room, model)
        elif category in ("chair", "stool") and hosts and rng.random() < 0.6:
            pose = _pose_at(rng, hosts[int(rng.integers(len(hosts)))], model)
        else:
            pose = _free_pose(rng, room)
        if pose is None:
            return None
        probe = PlacedObject(-1, category, "", model, np.array([*pose[0], 0.0]), pose[1])
        if not room.contains(probe.footprint()):
            continue
        if any(
            convex_overlap(probe.keep_out(), o.keep_out(), _CLEARANCE) for o in placed if o.support_id is None
        ):
            continue
        return pose
    return None


def _place_on_top(
    rng: np.random.Generator, host: PlacedObject, placed: list[PlacedObject], model: ObjectModel
) -> tuple[np.ndarray, float] | None:
    half_w, half_d, _ = host.model.top
    radius = float(np.linalg.norm(model.half_extents))
    if radius > min(half_w, half_d) - 0.02:
        return None
    neighbours = [o.footprint() for o in placed if o.support_id == host.object_id]
    for _ in range(_PLACEMENT_TRIES // 4):
        local = rng.uniform([-half_w + radius, -half_d + radius], [half_w - radius, half_d - radius])
        center = host.position[:2] + rotation_2d(host.yaw) @ local
        yaw = host.yaw + rng.normal(0, 0.3)  # roughly aligned with the host (monitors face its front)
        footprint = footprint_corners(center, model.half_extents, yaw)
        if not any(convex_overlap(footprint, n, _TOP_CLEARANCE) for n in neighbours):
            return center, float(yaw)
    return None


def sample_layout(
    rng: np.random.Generator,
    shapes: tuple[str, ...] = ("rectangle", "L"),
    num_objects: tuple[int, int] = (5, 12),
) -> Layout:
    """A furnished room with ``num_objects`` (inclusive range) objects.

    Floor objects are drawn from a random theme (with frequent repeats), placed largest first; then small
    objects are put on supporters. Object ids are shuffled so they carry no category information.
    """
    low, high = num_objects
    for _ in range(100):
        room = sample_room(rng, shapes)
        theme = str(rng.choice(list(THEMES)))
        total = int(rng.integers(low, high + 1))
        num_top = int(rng.integers(0, min(4, total - low + 2)))
        floor = _draw_categories(rng, THEMES[theme], total - num_top)
        tops = _draw_categories(rng, TOP_WEIGHTS, num_top)
        colors = [str(rng.choice(list(COLORS))) for _ in floor]
        models = [
            (c, color, CATEGORIES[c].build(rng, COLORS[color], False))
            for c, color in zip(floor, colors, strict=True)
        ]
        models.sort(key=lambda item: -item[2].volume)
        placed: list[PlacedObject] = []
        for category, color, model in models:
            pose = _place_on_floor(rng, room, placed, category, model)
            if pose is not None:
                placed.append(
                    PlacedObject(len(placed), category, color, model, np.array([*pose[0], 0.0]), pose[1])
                )
        for category in tops:
            hosts = [o for o in placed if CATEGORIES[o.category].supports]
            if category == "monitor":
                hosts = [o for o in hosts if o.category in ("desk", "table")]
            if not hosts:
                continue
            host = hosts[int(rng.integers(len(hosts)))]
            color = str(rng.choice(list(COLORS)))
            model = CATEGORIES[category].build(rng, COLORS[color], True)
            pose = _place_on_top(rng, host, placed, model)
            if pose is not None:
                position = np.array([*pose[0], host.top_height])
                placed.append(
                    PlacedObject(len(placed), category, color, model, position, pose[1], host.object_id)
                )
        if len(placed) >= low:
            return _shuffle_ids(rng, Layout(room, placed, theme))
    raise RuntimeError("could not place enough objects in 100 rooms")


def _shuffle_ids(rng: np.random.Generator, layout: Layout) -> Layout:
    new_ids = rng.permutation(len(layout.objects))
    for obj in layout.objects:
        obj.object_id = int(new_ids[obj.object_id])
        if obj.support_id is not None:
            obj.support_id = int(new_ids[obj.support_id])
    layout.objects.sort(key=lambda o: o.object_id)
    return layout
