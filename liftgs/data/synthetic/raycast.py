"""RGB-D and instance rendering of a layout by ray casting (trimesh + Embree via ``embreex``).

One ray per pixel through the pixel centre (``u + 0.5``, ``v + 0.5``), OpenCV camera axes. The first hit
gives z-depth (metres along the optical axis), the instance id of the hit primitive's object and a
Lambertian color: ``albedo * (ambient + diffuse * max(0, n.l) + head * max(0, -n.d))`` with a directional
light ``l``, the two-sided face normal ``n`` and the ray direction ``d``. Rays that hit nothing give
black, depth 0 and ``NO_INSTANCE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import trimesh
from trimesh.ray.ray_pyembree import RayMeshIntersector

from liftgs.data.synthetic.objects import Part
from liftgs.scene import NO_INSTANCE

AMBIENT, DIFFUSE, HEAD = 0.35, 0.55, 0.20


@lru_cache(maxsize=4)
def _camera_rays_cached(fx: float, fy: float, cx: float, cy: float, width: int, height: int) -> np.ndarray:
    v, u = np.mgrid[0:height, 0:width]
    cam = np.stack([(u.ravel() + 0.5 - cx) / fx, (v.ravel() + 0.5 - cy) / fy, np.ones(u.size)], axis=1)
    cam /= np.linalg.norm(cam, axis=1, keepdims=True)
    cam.setflags(write=False)
    return cam


def _camera_rays(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """[H * W, 3] unit ray directions in camera axes through the pixel centres (row-major)."""
    return _camera_rays_cached(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), width, height)


@dataclass
class RenderedView:
    image: np.ndarray  # [H, W, 3] uint8
    depth: np.ndarray  # [H, W] float32 metres, 0 = no hit
    instance: np.ndarray  # [H, W] int32 object id, NO_INSTANCE = none


class SceneRaycaster:
    """All primitives of a scene in one mesh with an Embree intersector (built once, reused per view)."""

    def __init__(
        self,
        parts: list[tuple[Part, int]],  # primitives with their object id (NO_INSTANCE for the room)
        light_direction: np.ndarray,  # [3] unit vector pointing towards the light
    ) -> None:
        offsets = np.cumsum([0] + [len(p.vertices) for p, _ in parts])
        vertices = np.concatenate([p.vertices for p, _ in parts])
        faces = np.concatenate([p.faces + offset for (p, _), offset in zip(parts, offsets[:-1], strict=True)])
        counts = [len(p.faces) for p, _ in parts]
        self.face_rgb = np.repeat(np.array([p.rgb for p, _ in parts], dtype=np.float64), counts, axis=0)
        self.face_instance = np.repeat(np.array([i for _, i in parts], dtype=np.int32), counts)
        self.mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
        self.face_normals = np.asarray(self.mesh.face_normals)
        self.face_anchor = vertices[faces[:, 0]]  # [F, 3] one vertex per face, for ray-plane distances
        self.intersector = RayMeshIntersector(self.mesh)
        self.light_direction = np.asarray(light_direction, dtype=np.float64)

    def first_hits(
        self,
        origins: np.ndarray,  # [R, 3]
        directions: np.ndarray,  # [R, 3] unit
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest hit per ray: ``(ray_index[M], triangle[M], distance[M])`` for the rays that hit."""
        triangle = self.intersector.intersects_first(origins, directions)
        ray_index = np.flatnonzero(triangle >= 0)
        triangle = triangle[ray_index]
        normals = self.face_normals[triangle]
        # Ray-plane distance of the hit triangle's plane (cheaper than asking for hit locations).
        distance = ((self.face_anchor[triangle] - origins[ray_index]) * normals).sum(axis=1) / (
            directions[ray_index] * normals
        ).sum(axis=1)
        return ray_index, triangle, distance

    def render(self, K: np.ndarray, c2w: np.ndarray, width: int, height: int) -> RenderedView:
        """Renders one view: ``K`` [3, 3] pixels, ``c2w`` [4, 4] OpenCV camera-to-world."""
        cam = _camera_rays(K, width, height)
        num_rays = len(cam)
        directions = cam @ c2w[:3, :3].T
        origins = np.tile(c2w[:3, 3], (num_rays, 1))
        ray_index, triangle, distance = self.first_hits(origins, directions)

        depth = np.zeros(num_rays, dtype=np.float32)
        depth[ray_index] = distance * cam[ray_index, 2]
        instance = np.full(num_rays, NO_INSTANCE, dtype=np.int32)
        instance[ray_index] = self.face_instance[triangle]

        d = directions[ray_index]
        normals = self.face_normals[triangle]
        facing = (normals * d).sum(axis=1)
        normals = normals * -np.sign(facing + 1e-12)[:, None]  # two-sided: turn towards the camera
        shade = AMBIENT + DIFFUSE * np.clip(normals @ self.light_direction, 0.0, None) + HEAD * np.abs(facing)
        rgb = np.zeros((num_rays, 3))
        rgb[ray_index] = self.face_rgb[triangle] * shade[:, None]
        image = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
        return RenderedView(
            image=image.reshape(height, width, 3),
            depth=depth.reshape(height, width),
            instance=instance.reshape(height, width),
        )
