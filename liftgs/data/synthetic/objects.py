"""Object categories of the synthetic benchmark, built as composites of trimesh primitives.

Every model lives in its own local frame: z up, the floor contact at z = 0, the footprint centred on the
origin with width along x and depth along y; the front faces -y and the back (chair backs, headboards,
shelf backs) lies at +y, which is the side placed against a wall. Sizes are metres.

Each category draws its sizes from ranges (so same-category objects differ in size) and colors its main
parts with the object's named color; small details keep fixed colors (a monitor's black screen, a
plant's green leaves and a lamp's gray pole; a plant's color is its pot's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import trimesh

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.12, 0.12),
    "green": (0.15, 0.60, 0.20),
    "blue": (0.15, 0.30, 0.85),
    "yellow": (0.95, 0.85, 0.15),
    "white": (0.95, 0.95, 0.95),
    "black": (0.08, 0.08, 0.08),
    "brown": (0.50, 0.30, 0.12),
    "gray": (0.50, 0.50, 0.52),
    "orange": (0.98, 0.50, 0.08),
    "purple": (0.55, 0.20, 0.70),
}
"""The named colors objects are painted with (linear RGB albedo in [0, 1])."""

_LEAF_GREEN = (0.20, 0.55, 0.18)
_METAL = (0.60, 0.60, 0.62)
_SCREEN = (0.05, 0.05, 0.07)
_PILLOW = (0.97, 0.97, 0.95)


@dataclass
class Part:
    """One primitive of a model: a triangle mesh and its albedo."""

    vertices: np.ndarray  # [V, 3] local metres
    faces: np.ndarray  # [F, 3] int
    rgb: tuple[float, float, float]


@dataclass
class ObjectModel:
    """A built object in its local frame.

    Attributes:
        parts: primitives making up the object.
        top: (half width, half depth, height) of the flat top that can carry other objects, or None.
        half_extents: [2] footprint half width (x) and half depth (y), from the geometry (footprints are
            centred on the origin, so this is the largest |x| and |y| of any vertex).
        height: highest vertex above the base.
    """

    parts: list[Part]
    top: tuple[float, float, float] | None = None
    half_extents: np.ndarray = field(init=False)
    height: float = field(init=False)

    def __post_init__(self) -> None:
        vertices = np.concatenate([p.vertices for p in self.parts])
        self.half_extents = np.abs(vertices[:, :2]).max(axis=0)
        self.height = float(vertices[:, 2].max())

    @property
    def volume(self) -> float:
        """Volume of the model's bounding box, the "size" that size superlatives compare."""
        return float(4.0 * self.half_extents[0] * self.half_extents[1] * self.height)


# --------------------------------------------------------------------------------------------- primitives


def _part(mesh: trimesh.Trimesh, rgb) -> Part:
    return Part(np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces), tuple(rgb))


def box(extents, center, rgb) -> Part:
    """An axis-aligned box of ``extents`` (x, y, z) centred at ``center``."""
    return _part(
        trimesh.creation.box(extents=extents, transform=trimesh.transformations.translation_matrix(center)),
        rgb,
    )


def cylinder(radius: float, z0: float, z1: float, xy, rgb, sections: int = 16) -> Part:
    """A vertical cylinder from height ``z0`` to ``z1`` around ``xy``."""
    transform = trimesh.transformations.translation_matrix([xy[0], xy[1], (z0 + z1) / 2])
    return _part(
        trimesh.creation.cylinder(radius=radius, height=z1 - z0, sections=sections, transform=transform), rgb
    )


def cone(radius: float, z0: float, z1: float, xy, rgb, sections: int = 16) -> Part:
    """A vertical cone with its base disc at ``z0`` and apex at ``z1``."""
    transform = trimesh.transformations.translation_matrix([xy[0], xy[1], z0])
    return _part(
        trimesh.creation.cone(radius=radius, height=z1 - z0, sections=sections, transform=transform), rgb
    )


def sphere(radius: float, center, rgb, subdivisions: int = 2) -> Part:
    return _part(
        trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius).apply_translation(center), rgb
    )


def _shade(rgb, factor: float) -> tuple[float, float, float]:
    return tuple(float(c) * factor for c in rgb)


def _legs(half_w: float, half_d: float, inset: float, thickness: float, z1: float, rgb) -> list[Part]:
    """Four square legs from the floor to ``z1`` at the corners of a (half_w, half_d) rectangle."""
    return [
        box([thickness, thickness, z1], [sx * (half_w - inset), sy * (half_d - inset), z1 / 2], rgb)
        for sx in (-1, 1)
        for sy in (-1, 1)
    ]


# ------------------------------------------------------------------------------------------------ builders
# Each builder: (rng, rgb, on_top) -> ObjectModel. ``on_top`` asks for the small variant that stands on
# another object's top (only used by categories that can).

Builder = Callable[[np.random.Generator, tuple, bool], ObjectModel]


def chair(rng, rgb, on_top) -> ObjectModel:
    w, d = rng.uniform(0.40, 0.55), rng.uniform(0.40, 0.52)
    seat, back = rng.uniform(0.42, 0.50), rng.uniform(0.35, 0.55)
    parts = _legs(w / 2, d / 2, 0.03, 0.04, seat - 0.04, _shade(rgb, 0.8))
    parts += [
        box([w, d, 0.05], [0, 0, seat - 0.025], rgb),
        box([w, 0.05, back], [0, d / 2 - 0.025, seat + back / 2], rgb),
    ]
    return ObjectModel(parts)


def stool(rng, rgb, on_top) -> ObjectModel:
    radius, height = rng.uniform(0.15, 0.22), rng.uniform(0.45, 0.75)
    legs = [
        box(
            [0.035, 0.035, height - 0.04],
            [0.7 * radius * np.cos(a), 0.7 * radius * np.sin(a), (height - 0.04) / 2],
            _shade(rgb, 0.8),
        )
        for a in np.pi / 4 + np.arange(4) * np.pi / 2
    ]
    return ObjectModel(legs + [cylinder(radius, height - 0.04, height, (0, 0), rgb)])


def table(rng, rgb, on_top) -> ObjectModel:
    w, d, h = rng.uniform(1.0, 2.0), rng.uniform(0.6, 1.0), rng.uniform(0.70, 0.78)
    parts = _legs(w / 2, d / 2, 0.06, 0.06, h - 0.05, _shade(rgb, 0.8)) + [
        box([w, d, 0.05], [0, 0, h - 0.025], rgb)
    ]
    return ObjectModel(parts, top=(w / 2, d / 2, h))


def desk(rng, rgb, on_top) -> ObjectModel:
    w, d, h = rng.uniform(1.0, 1.6), rng.uniform(0.55, 0.75), rng.uniform(0.72, 0.78)
    side = _shade(rgb, 0.8)
    parts = [
        box([w, d, 0.04], [0, 0, h - 0.02], rgb),
        box([0.04, d, h - 0.04], [-w / 2 + 0.02, 0, (h - 0.04) / 2], side),
        box([0.38, d - 0.04, h - 0.04], [w / 2 - 0.19, 0, (h - 0.04) / 2], side),  # drawer block
        box([w - 0.1, 0.02, 0.35], [0, d / 2 - 0.03, h - 0.04 - 0.175], side),  # modesty panel
    ]
    return ObjectModel(parts, top=(w / 2, d / 2, h))


def sofa(rng, rgb, on_top) -> ObjectModel:
    w, d = rng.uniform(1.5, 2.4), rng.uniform(0.80, 0.95)
    seat, back, arm = rng.uniform(0.40, 0.46), rng.uniform(0.75, 0.90), rng.uniform(0.15, 0.22)
    parts = [
        box([w, d, seat], [0, 0, seat / 2], rgb),
        box([w, 0.2, back], [0, d / 2 - 0.1, back / 2], _shade(rgb, 0.9)),
        box([arm, d, 0.62], [-w / 2 + arm / 2, 0, 0.31], _shade(rgb, 0.9)),
        box([arm, d, 0.62], [w / 2 - arm / 2, 0, 0.31], _shade(rgb, 0.9)),
    ]
    return ObjectModel(parts)


def bed(rng, rgb, on_top) -> ObjectModel:
    w, d = rng.uniform(1.0, 1.9), rng.uniform(1.9, 2.1)
    frame, mattress, head = rng.uniform(0.25, 0.32), 0.2, rng.uniform(0.9, 1.1)
    pillows = 1 if w < 1.4 else 2
    pillow_w = (w - 0.2) / pillows - 0.1
    parts = [
        box([w, d, frame], [0, 0, frame / 2], _shade(rgb, 0.75)),
        box([w - 0.04, d - 0.1, mattress], [0, -0.03, frame + mattress / 2], rgb),
        box([w, 0.08, head], [0, d / 2 - 0.04, head / 2], _shade(rgb, 0.75)),
    ]
    parts += [
        box(
            [pillow_w, 0.35, 0.12],
            [-w / 2 + 0.1 + (i + 0.5) * (w - 0.2) / pillows, d / 2 - 0.3, frame + mattress + 0.06],
            _PILLOW,
        )
        for i in range(pillows)
    ]
    return ObjectModel(parts)


def lamp(rng, rgb, on_top) -> ObjectModel:
    if on_top:
        base, height, shade_r, shade_h = 0.08, rng.uniform(0.35, 0.55), rng.uniform(0.10, 0.14), 0.16
    else:
        base, height, shade_r, shade_h = 0.15, rng.uniform(1.4, 1.8), rng.uniform(0.18, 0.25), 0.28
    parts = [
        cylinder(base, 0.0, 0.03, (0, 0), _METAL),
        cylinder(0.015, 0.03, height - shade_h, (0, 0), _METAL, sections=8),
        cone(shade_r, height - shade_h, height + 0.4 * shade_h, (0, 0), rgb),
    ]
    return ObjectModel(parts)


def cabinet(rng, rgb, on_top) -> ObjectModel:
    w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.40, 0.55), rng.uniform(0.7, 1.2)
    door = _shade(rgb, 0.85)
    parts = [box([w, d - 0.02, h], [0, 0.01, h / 2], rgb)]
    parts += [box([w / 2 - 0.03, 0.02, h - 0.08], [sx * w / 4, -d / 2 + 0.01, h / 2], door) for sx in (-1, 1)]
    parts += [box([0.02, 0.03, 0.12], [sx * 0.05, -d / 2 - 0.015, h * 0.6], _METAL) for sx in (-1, 1)]
    return ObjectModel(parts, top=(w / 2, d / 2, h))


def nightstand(rng, rgb, on_top) -> ObjectModel:
    w, d, h = rng.uniform(0.40, 0.55), rng.uniform(0.35, 0.45), rng.uniform(0.45, 0.60)
    parts = [
        box([w, d - 0.02, h], [0, 0.01, h / 2], rgb),
        box([w - 0.06, 0.02, h * 0.35], [0, -d / 2 + 0.01, h * 0.75], _shade(rgb, 0.85)),
        box([0.1, 0.03, 0.02], [0, -d / 2 - 0.015, h * 0.75], _METAL),
    ]
    return ObjectModel(parts, top=(w / 2, d / 2, h))


def shelf(rng, rgb, on_top) -> ObjectModel:
    w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.28, 0.38), rng.uniform(1.2, 2.0)
    boards = int(rng.integers(3, 6))
    parts = [box([0.03, d, h], [sx * (w / 2 - 0.015), 0, h / 2], rgb) for sx in (-1, 1)]
    parts.append(box([w, 0.02, h], [0, d / 2 - 0.01, h / 2], _shade(rgb, 0.8)))
    parts += [box([w - 0.06, d, 0.03], [0, 0, z], rgb) for z in np.linspace(0.08, h - 0.015, boards)]
    return ObjectModel(parts)


def box_object(rng, rgb, on_top) -> ObjectModel:
    low, high = (0.15, 0.35) if on_top else (0.25, 0.6)
    w, d, h = rng.uniform(low, high, size=3)
    parts = [
        box([w, d, h - 0.03], [0, 0, (h - 0.03) / 2], rgb),
        box([w + 0.02, d + 0.02, 0.03], [0, 0, h - 0.015], _shade(rgb, 0.85)),
    ]
    return ObjectModel(parts)


def ball(rng, rgb, on_top) -> ObjectModel:
    radius = rng.uniform(0.06, 0.12) if on_top else rng.uniform(0.10, 0.20)
    return ObjectModel([sphere(radius, [0, 0, radius], rgb, subdivisions=3)])


def plant(rng, rgb, on_top) -> ObjectModel:
    scale = rng.uniform(0.3, 0.45) if on_top else rng.uniform(0.8, 1.3)
    pot_r, pot_h, foliage = 0.2 * scale, 0.32 * scale, 0.3 * scale
    parts = [
        cylinder(pot_r, 0.0, pot_h, (0, 0), rgb),
        cylinder(0.02 * scale, pot_h, pot_h + 0.3 * scale, (0, 0), _LEAF_GREEN, sections=6),
    ]
    offsets = rng.uniform(-0.5, 0.5, size=(4, 3)) * foliage
    parts += [
        sphere(
            foliage * rng.uniform(0.55, 0.8),
            [o[0], o[1], pot_h + 0.3 * scale + foliage * 0.6 + o[2] * 0.5],
            _LEAF_GREEN,
        )
        for o in offsets
    ]
    return ObjectModel(parts)


def monitor(rng, rgb, on_top) -> ObjectModel:
    w, h, lift = rng.uniform(0.45, 0.75), rng.uniform(0.28, 0.45), rng.uniform(0.08, 0.15)
    parts = [
        box([0.22, 0.16, 0.02], [0, 0, 0.01], rgb),
        box([0.05, 0.03, lift + 0.05], [0, 0.03, (lift + 0.05) / 2], rgb),
        box([w, 0.035, h], [0, 0, lift + h / 2], rgb),
        box([w - 0.03, 0.005, h - 0.03], [0, -0.02, lift + h / 2], _SCREEN),
    ]
    return ObjectModel(parts)


def trash_can(rng, rgb, on_top) -> ObjectModel:
    radius, height = rng.uniform(0.13, 0.22), rng.uniform(0.30, 0.60)
    parts = [
        cylinder(radius * 0.92, 0.0, height - 0.03, (0, 0), rgb),
        cylinder(radius, height - 0.03, height, (0, 0), _shade(rgb, 0.8)),
    ]
    return ObjectModel(parts)


def door(rng, rgb, on_top) -> ObjectModel:
    """A door slab flush with the back of its footprint (the wall side), its knob at the front."""
    w, h = rng.uniform(0.80, 0.95), rng.uniform(1.95, 2.10)
    parts = [
        box([w, 0.05, h], [0, 0.035, h / 2], rgb),
        box([w + 0.1, 0.05, 0.06], [0, 0.035, h + 0.03], _shade(rgb, 0.8)),
        sphere(0.03, [w / 2 - 0.1, -0.015, 1.0], _METAL, subdivisions=1),
    ]
    return ObjectModel(parts)


@dataclass(frozen=True)
class Category:
    """How a category is built and where it may stand.

    Attributes:
        name: the category word(s) used in expressions and ``objects.json``.
        plural: plural form for expressions ("boxes").
        build: the model builder.
        floor: may stand on the floor.
        on_top: may stand on a supporter's top (table, desk, cabinet, nightstand).
        against_wall: stands with its back against a wall when on the floor.
        supports: has a top that carries other objects.
        front_clearance: metres in front of it that must stay free (a door's swing).
    """

    name: str
    plural: str
    build: Builder
    floor: bool = True
    on_top: bool = False
    against_wall: bool = False
    supports: bool = False
    front_clearance: float = 0.0


CATEGORIES: dict[str, Category] = {
    c.name: c
    for c in [
        Category("chair", "chairs", chair),
        Category("stool", "stools", stool),
        Category("table", "tables", table, supports=True),
        Category("desk", "desks", desk, against_wall=True, supports=True),
        Category("sofa", "sofas", sofa, against_wall=True),
        Category("bed", "beds", bed, against_wall=True),
        Category("lamp", "lamps", lamp, on_top=True),
        Category("cabinet", "cabinets", cabinet, against_wall=True, supports=True),
        Category("nightstand", "nightstands", nightstand, against_wall=True, supports=True),
        Category("shelf", "shelves", shelf, against_wall=True),
        Category("box", "boxes", box_object, on_top=True),
        Category("ball", "balls", ball, on_top=True),
        Category("plant", "plants", plant, on_top=True),
        Category("monitor", "monitors", monitor, floor=False, on_top=True),
        Category("trash can", "trash cans", trash_can),
        Category("door", "doors", door, against_wall=True, front_clearance=0.8),
    ]
}
"""The 16 categories of the benchmark, by name."""
