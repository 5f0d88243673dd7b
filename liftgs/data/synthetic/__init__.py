"""The embedded synthetic indoor-scene grounding benchmark.

Modules, in pipeline order: ``objects`` (categories as primitive composites), ``layout`` (rooms and
placement: the scene graph), ``camera_path`` (sensor-like trajectories), ``raycast`` (Embree RGB-D and
instance rendering), ``expressions`` (unambiguous referring expressions), ``generate`` (scenes, dataset
roots, the ``liftgs generate`` command). ``geometry`` holds the 2D helpers they share.
"""

from liftgs.data.synthetic.generate import (
    DatasetSpec,
    GenerateCommand,
    SceneOptions,
    ensure_dataset,
    generate_scene,
)

__all__ = ["DatasetSpec", "GenerateCommand", "SceneOptions", "ensure_dataset", "generate_scene"]
