"""Small 2D geometry on the floor plane (metres): oriented footprints, overlaps, distances, polygons.

Footprints are convex polygons given by their corners [4, 2] in counter-clockwise order. Room outlines
are simple polygons [V, 2], counter-clockwise (interior on the left of each edge).
"""

from __future__ import annotations

import numpy as np


def rotation_2d(yaw: float) -> np.ndarray:
    """[2, 2] counter-clockwise rotation by ``yaw`` radians."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s], [s, c]])


def footprint_corners(center: np.ndarray, half_extents: np.ndarray, yaw: float) -> np.ndarray:
    """[4, 2] counter-clockwise corners of a rectangle of ``half_extents`` (x, y) turned by ``yaw``."""
    local = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]) * np.asarray(half_extents)
    return local @ rotation_2d(yaw).T + np.asarray(center)[:2]


def _edge_normals(polygon: np.ndarray) -> np.ndarray:
    edges = np.roll(polygon, -1, axis=0) - polygon
    return np.stack([edges[:, 1], -edges[:, 0]], axis=1)


def convex_overlap(a: np.ndarray, b: np.ndarray, clearance: float = 0.0) -> bool:
    """Whether two convex polygons [Na, 2], [Nb, 2] come closer than ``clearance`` (separating axes).

    With ``clearance`` 0 this is plain overlap; a positive clearance also rejects near misses (measured
    along the separating axes, which is exact for rectangles whose sides are parallel and conservative
    otherwise).
    """
    for normal in np.concatenate([_edge_normals(a), _edge_normals(b)]):
        normal = normal / np.linalg.norm(normal)
        pa, pb = a @ normal, b @ normal
        if pa.max() + clearance <= pb.min() or pb.max() + clearance <= pa.min():
            return False
    return True


def point_segment_distance(
    points: np.ndarray,  # [N, 2]
    starts: np.ndarray,  # [S, 2]
    ends: np.ndarray,  # [S, 2]
) -> np.ndarray:
    """[N, S] Euclidean distance from each point to each segment."""
    d = ends - starts  # [S, 2]
    length2 = np.maximum((d * d).sum(axis=1), 1e-12)
    rel = points[:, None, :] - starts[None]  # [N, S, 2]
    t = np.clip((rel * d[None]).sum(axis=2) / length2, 0.0, 1.0)
    closest = starts[None] + t[..., None] * d[None]
    return np.linalg.norm(points[:, None, :] - closest, axis=2)


def polygon_edges(polygon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment starts and ends [V, 2] of a closed polygon."""
    return polygon, np.roll(polygon, -1, axis=0)


def convex_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between two convex polygons (0 when they overlap)."""
    if convex_overlap(a, b):
        return 0.0
    return float(
        min(
            point_segment_distance(a, *polygon_edges(b)).min(),
            point_segment_distance(b, *polygon_edges(a)).min(),
        )
    )


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """[N] bool: each point [N, 2] strictly inside the simple polygon [V, 2] (crossing number)."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = polygon[:, 0][None], polygon[:, 1][None]
    x1, y1 = np.roll(polygon[:, 0], -1)[None], np.roll(polygon[:, 1], -1)[None]
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return ((crosses & (x < x_cross)).sum(axis=1) % 2) == 1


def perimeter_samples(polygon: np.ndarray, spacing: float) -> np.ndarray:
    """[M, 2] points every ``spacing`` metres (at most) along a closed polygon's outline."""
    starts, ends = polygon_edges(polygon)
    samples = []
    for start, end in zip(starts, ends, strict=True):
        count = max(1, int(np.ceil(np.linalg.norm(end - start) / spacing)))
        t = np.arange(count)[:, None] / count
        samples.append(start + t * (end - start))
    return np.concatenate(samples)


def polygon_area(polygon: np.ndarray) -> float:
    """Signed area (positive for counter-clockwise)."""
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))
