"""Training toys: a tiny ``ns-train`` config and an ``ns-train liftgs``-like run folder."""

from __future__ import annotations

from pathlib import Path

import torch
from nerfstudio.engine.trainer import TrainerConfig

from liftgs.model import LiftGSConfig
from method_configs.liftgs import trainer_config
from tests.support.network import tiny_config


def tiny_trainer(method: str, output_dir: Path, iterations: int) -> TrainerConfig:
    """``method``'s trainer config on the CPU with the tiny network, 16 x 24 renders, two expressions and two
    views per scene, validation every 2 steps on one scene, and the learning-rate warm-up past at step 1."""
    config = trainer_config(method, "views" if method == "liftgs" else "points")
    config.machine.device_type = "cpu"
    config.output_dir = output_dir
    config.experiment_name = "tiny"
    config.timestamp = "run"
    config.max_num_iterations = iterations
    config.steps_per_eval_batch = config.steps_per_eval_image = config.steps_per_eval_all_images = 2
    config.steps_per_save = 100
    config.optimizers["liftgs"]["scheduler"].warmup_steps = 1  # past warm-up: cosine factors get saved
    pipeline = config.pipeline
    pipeline.eval_max_scenes = 1
    pipeline.model.network = tiny_config()
    pipeline.datamanager.render_height, pipeline.datamanager.render_width = 16, 24
    pipeline.datamanager.sampler.expressions_per_scene = 2
    pipeline.datamanager.sampler.views_per_scene = 2
    return config


def write_toy_nerfstudio_run(run_dir: Path, network: LiftGSConfig, step: int = 7, seed: int = 0) -> Path:
    """An ``ns-train liftgs``-like run folder: ``config.yml`` (nerfstudio's TrainerConfig around our
    LiftGSModelConfig) and ``nerfstudio_models/step-*.ckpt`` holding the pipeline state of a freshly built
    LiftGSModel (an older, empty checkpoint too); returns the config.yml path."""
    import yaml
    from nerfstudio.data.scene_box import SceneBox
    from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig

    from liftgs.nerfstudio.model import LiftGSModelConfig

    model_config = LiftGSModelConfig(network=network)
    config = TrainerConfig(method_name="liftgs", pipeline=VanillaPipelineConfig(model=model_config))
    torch.manual_seed(seed)
    model = model_config.setup(
        scene_box=SceneBox(aabb=torch.tensor([[-1.0] * 3, [1.0] * 3])), num_train_data=1
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yml").write_text(yaml.dump(config))
    pipeline = {f"_model.{name}": value for name, value in model.state_dict().items()}
    checkpoints = run_dir / "nerfstudio_models"
    checkpoints.mkdir(exist_ok=True)
    torch.save({"step": 0, "pipeline": {}}, checkpoints / "step-000000000.ckpt")
    torch.save({"step": step, "pipeline": pipeline, "optimizers": {}}, checkpoints / f"step-{step:09d}.ckpt")
    return run_dir / "config.yml"
