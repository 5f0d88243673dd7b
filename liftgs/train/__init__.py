"""Cross-scene training without nerfstudio: per-scene tensor cache, batch sampling, the training step.

- ``cache``: ``SceneTensors`` (a scene at render resolution; no 3D labels unless asked), ``SceneTensorCache``.
- ``batch``: ``SceneBatch`` / ``TrainBatch``, ``SamplerConfig``, ``TrainBatchSampler``, ``build_scene_batch``.
- ``step``: ``forward_scene`` and ``batch_losses`` (what one optimisation step computes).
"""
