"""A nerfstudio splatfacto run (``outputs/<name>/splatfacto/<time>/``) read as a 3DGS scene.

The run folder holds ``config.yml``, ``dataparser_transforms.json`` and ``nerfstudio_models/step-*.ckpt``.
The newest readable checkpoint is read on the CPU (``liftgs.nerfstudio.run_files.newest_checkpoint``,
``weights_only=True``; torch is imported only for that). Its Gaussians live in nerfstudio's normalised
frame ``p_norm = scale * (transform @ [p; 1])``
(``transform`` 3x4 with a rotation block, from ``dataparser_transforms.json``); they are carried back to the
capture frame: means inverted, log scales minus ``log(scale)``, quaternions and higher-order SH rotated by
the inverse rotation. The result is a standard 3DGS vertex element (``liftgs.export_ply`` layout, f_rest in
the INRIA channel-major order) read like any 3DGS PLY.

``config.yml`` is parsed with a ``yaml.SafeLoader`` that builds every Python tag as plain data (nothing is
imported or called); only ``method_name`` and ``relative_model_dir`` are read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from plyfile import PlyData

from liftgs.export_ply import SH_C0
from liftgs.scene_files.ply import gaussians_from_ply, vertex_element
from liftgs.scene_files.rotation import quaternion_from_matrix, quaternion_multiply, rotate_sh_rest
from liftgs.scene_files.splats import OPACITY_FLOOR, SceneFileError, SplatSet

CONFIG_NAME = "config.yml"
TRANSFORMS_NAME = "dataparser_transforms.json"
SPLATFACTO_METHODS = ("splatfacto",)
"""``method_name`` values of runs whose checkpoints hold splatfacto Gaussians (``splatfacto-big`` too)."""
GAUSSIAN_PARAMETERS = ("means", "features_dc", "features_rest", "opacities", "scales", "quats")
_PYTHON_TAG = "tag:yaml.org,2002:python/"


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader that reads nerfstudio's ``!!python/...`` tags as the plain mapping, list or string under
    them (no object is built, no module imported)."""


def _plain(loader: _PlainLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_PlainLoader.add_multi_constructor(_PYTHON_TAG, _plain)


def is_run_config(path: Path) -> bool:
    """Whether ``path`` is a text file that looks like an ``ns-train`` ``config.yml``."""
    try:
        with open(path, encoding="utf-8") as file:
            head = file.read(65536)
    except (OSError, UnicodeDecodeError):
        return False
    return "method_name:" in head


def read_run_config(config_path: Path) -> dict[str, Any]:
    """``config.yml`` as plain data.

    Raises:
        SceneFileError: unreadable, not YAML, or not a splatfacto run.
    """
    try:
        config = yaml.load(config_path.read_text(encoding="utf-8"), Loader=_PlainLoader)  # noqa: S506
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise SceneFileError(
            f"{config_path}: not a readable config.yml: {' '.join(str(error).split())}"
        ) from None
    method = config.get("method_name") if isinstance(config, dict) else None
    if method not in SPLATFACTO_METHODS:
        raise SceneFileError(
            f"{config_path}: method_name is {method!r}, not splatfacto: only splatfacto runs hold Gaussians "
            "to ground in"
        )
    return config


def read_dataparser_transform(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """``(rotation [3, 3], translation [3], scale)`` of a run's ``dataparser_transforms.json``.

    Raises:
        SceneFileError: missing, malformed, a ``transform`` whose 3x3 block is not a rotation, or a
            non-positive ``scale``.
    """
    if not path.is_file():
        raise SceneFileError(f"{path}: missing (the run's normalisation cannot be undone without it)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        transform = np.asarray(record["transform"], dtype=np.float64).reshape(3, 4)
        scale = float(record["scale"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SceneFileError(
            f"{path}: not a dataparser transform ({type(error).__name__}: {error})"
        ) from None
    rotation = transform[:, :3]
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4) or np.linalg.det(rotation) <= 0:
        raise SceneFileError(f"{path}: transform's 3x3 block is not a rotation")
    if not (np.isfinite(scale) and scale > 0) or not np.isfinite(transform).all():
        raise SceneFileError(f"{path}: scale must be finite and > 0, got {scale}")
    return rotation, transform[:, 3], scale


def _gaussian_parameters(checkpoint: Path, pipeline: dict) -> dict[str, np.ndarray]:
    """The splatfacto parameters of a checkpoint's ``pipeline`` state as float32 numpy arrays."""
    import torch

    parameters = {}
    for name in GAUSSIAN_PARAMETERS:
        keys = [key for key in pipeline if key.endswith(f"gauss_params.{name}")] or [
            key for key in pipeline if key == f"_model.{name}"
        ]
        if len(keys) != 1:
            raise SceneFileError(
                f"{checkpoint}: no splatfacto parameter gauss_params.{name} in the pipeline state"
            )
        parameters[name] = pipeline[keys[0]].detach().to(torch.float32).numpy()
    return parameters


def _vertices(parameters: dict[str, np.ndarray], rotation: np.ndarray, translation: np.ndarray, scale: float):
    """Structured 3DGS vertex array of normalised-frame parameters, carried to the capture frame."""
    means = parameters["means"].reshape(-1, 3).astype(np.float64)
    count = means.shape[0]
    rest = parameters["features_rest"].reshape(count, -1, 3)
    dc = parameters["features_dc"].reshape(count, 3)
    if rest.shape[1] == 0:  # sh_degree 0: splatfacto stores color logits
        dc = (1.0 / (1.0 + np.exp(-dc)) - 0.5) / SH_C0
    inverse = rotation.T  # normalised -> capture axes
    try:
        rest = rotate_sh_rest(rest, inverse)
    except ValueError as error:
        raise SceneFileError(f"features_rest: {error}") from None
    columns = {
        **dict(zip("xyz", ((means / scale - translation) @ rotation).T, strict=True)),
        **{f"n{axis}": np.zeros(count) for axis in "xyz"},
        **{f"f_dc_{k}": dc[:, k] for k in range(3)},
        **{f"f_rest_{k}": column for k, column in enumerate(rest.transpose(0, 2, 1).reshape(count, -1).T)},
        "opacity": parameters["opacities"].reshape(count),
        **{f"scale_{k}": parameters["scales"].reshape(count, 3)[:, k] - np.log(scale) for k in range(3)},
    }
    quats = quaternion_multiply(quaternion_from_matrix(inverse), parameters["quats"].reshape(count, 4))
    columns.update({f"rot_{k}": quats[:, k] for k in range(4)})
    vertices = np.empty(count, dtype=[(name, "<f4") for name in columns])
    for name, column in columns.items():
        vertices[name] = column
    return vertices


def splats_from_run(config_path: Path, opacity_floor: float = OPACITY_FLOOR) -> SplatSet:
    """The trained Gaussians of the splatfacto run whose ``config.yml`` is ``config_path``, capture frame.

    Raises:
        SceneFileError: not a splatfacto config, no checkpoint, missing or bad dataparser transforms, a
            checkpoint without splatfacto parameters, zero Gaussians.
    """
    config = read_run_config(config_path)
    run = config_path.parent
    rotation, translation, scale = read_dataparser_transform(run / TRANSFORMS_NAME)
    model_dir = config.get("relative_model_dir") or ["nerfstudio_models"]
    model_dir = Path(*model_dir) if isinstance(model_dir, list) else Path(str(model_dir))
    from liftgs.model.loading import ModelLoadError
    from liftgs.nerfstudio.run_files import newest_checkpoint

    try:  # the newest readable one: unreadable newer checkpoints are skipped with a warning
        _, checkpoint, state = newest_checkpoint(run / model_dir)
    except ModelLoadError as error:
        raise SceneFileError(str(error)) from None
    parameters = _gaussian_parameters(checkpoint, state["pipeline"])
    if parameters["means"].size == 0:
        raise SceneFileError(f"{checkpoint}: the run has zero Gaussians")
    try:
        vertices = _vertices(parameters, rotation, translation, scale)
    except (SceneFileError, ValueError) as error:
        raise SceneFileError(f"{checkpoint}: {error}") from None
    ply = PlyData([vertex_element(vertices)], byte_order="<")
    return gaussians_from_ply(run, ply, "splatfacto", opacity_floor)
