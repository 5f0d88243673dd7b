"""Scenes people bring: 3DGS PLY files, colored point clouds and meshes, nerfstudio splatfacto runs.

``load_scene_file(path, up=, scale=)`` reads any of them (chosen by content) into a ``UserScene``: the
splats in the file's own frame (``SplatSet``), the ``SceneTransform`` to the network frame (z up, metres)
and the network's subsampled input with the map back to every splat. ``write_scored_scene`` and
``write_selected_splats`` write an answer back in the file's own format. Rows with non-finite values are
dropped with one counted warning; every other bad input is a one-line ``SceneFileError``. Numpy only
(torch is imported only to read a nerfstudio checkpoint).

Modules: ``ply`` (PLY layouts), ``splatfacto`` (run folders), ``frame`` (up and scale), ``subsample``
(network input), ``export``, ``rotation`` (quaternions, SH), ``splats`` (the shared data model).
"""

from liftgs.scene_files.export import write_scored_scene, write_selected_splats
from liftgs.scene_files.frame import SceneTransform, estimate_scene_transform
from liftgs.scene_files.load import UserScene, load_scene_file, read_scene_splats
from liftgs.scene_files.splats import OPACITY_FLOOR, SceneFileError, SplatSet
from liftgs.scene_files.subsample import NetworkPoints

__all__ = [
    "OPACITY_FLOOR",
    "NetworkPoints",
    "SceneFileError",
    "SceneTransform",
    "SplatSet",
    "UserScene",
    "estimate_scene_transform",
    "load_scene_file",
    "read_scene_splats",
    "write_scored_scene",
    "write_selected_splats",
]
