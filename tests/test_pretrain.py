"""``ns-train liftgs-pretrain`` end to end on a tiny generated dataset with stand-in pseudo-labels: real
pretraining steps, the pretrained checkpoint initialising ``liftgs`` fine-tuning on a labelled fraction,
and the errors and counted skips of missing pseudo-labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from nerfstudio.engine.trainer import TrainerConfig

from liftgs.data.dataset import GroundingDataset
from liftgs.data.synthetic.generate import DatasetSpec, SceneOptions, ensure_dataset
from liftgs.model import load_model
from liftgs.model.config import LiftGSConfig
from liftgs.model.text import MiniLMTextEncoder
from liftgs.nerfstudio.export import ExportCheckpoint
from liftgs.pseudo.command import label_dataset
from liftgs.pseudo.noise import NoiseConfig
from liftgs.pseudo.segments import pseudo_dir
from liftgs.pseudo.synthetic import SyntheticLabeller, benchmark_vocabulary
from liftgs.train.pseudo import CARRIERS, SKIP_NO_PSEUDO_SCENE
from liftgs.train.subset import labelled_subset
from method_configs.liftgs_pretrain import as_pretraining, liftgs_pretrain
from tests.support.training import tiny_trainer

UNLABELLED = "scan0001"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """10 small scenes; the train split pseudo-labelled by the stand-in (noise 0.5) except ``UNLABELLED``."""
    root = tmp_path_factory.mktemp("data")
    options = SceneOptions(image_width=64, image_height=48, num_views=4, voxel_size=0.08, max_objects=6)
    ensure_dataset(root, spec=DatasetSpec(seed=3, num_scenes=10, options=options), progress=False)
    labeller = SyntheticLabeller(MiniLMTextEncoder(), NoiseConfig().scaled(0.5))
    label_dataset(root, labeller, split="train", progress=False)
    shutil.rmtree(pseudo_dir(root / "scans" / UNLABELLED))
    return root


def tiny_pretrainer(root: Path, output_dir: Path, iterations: int) -> TrainerConfig:
    config = tiny_trainer("liftgs", output_dir, iterations)
    config.pipeline.model.network.gaussians.feature_dim = 8  # the distillation target
    config = as_pretraining(config)
    config.pipeline.datamanager.data = root
    config.steps_per_eval_batch = config.steps_per_eval_image = config.steps_per_eval_all_images = 100
    config.pipeline.datamanager.sampler.expressions_per_scene = 3
    return config


@pytest.fixture(scope="module")
def pretrained(data_root, tmp_path_factory):
    """3 pretraining steps; returns (trainer config, weights before, trainer)."""
    config = tiny_pretrainer(data_root, tmp_path_factory.mktemp("outputs"), 3)
    config.save_config()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    before = {name: value.clone() for name, value in trainer.pipeline.model.network.state_dict().items()}
    trainer.train()
    return config, before, trainer


def test_pretraining_needs_gaussian_features(tmp_path):
    config = tiny_trainer("liftgs", tmp_path, 1)
    config.pipeline.model.network.gaussians.feature_dim = 0  # a network that renders no features
    with pytest.raises(ValueError, match="feature_dim"):
        as_pretraining(config)


def test_method_is_liftgs_with_pseudo_batches_and_distillation():
    config = liftgs_pretrain.config
    assert config.method_name == "liftgs-pretrain"
    assert config.pipeline.datamanager.train_source == "pseudo"
    assert config.pipeline.model.loss.feature > 0
    assert config.pipeline.model.network == LiftGSConfig()  # pretrained weights load for fine-tuning
    assert config.pipeline.model.network.gaussians.feature_dim > 0


def test_pretraining_steps_train_every_loss(pretrained):
    config, before, trainer = pretrained
    pipeline = trainer.pipeline
    batch = pipeline.datamanager.next_train(0)
    assert all(scene.views.features is not None for scene in batch)
    # the stand-in records its vocabulary, so the queries are captions: a carrier around a name
    vocabulary = benchmark_vocabulary()
    for scene in batch:
        assert scene.segment_embeddings is None
        for text, (name,) in zip(scene.texts, scene.targets.names, strict=True):
            assert name in vocabulary and text in [carrier.format(name) for carrier in CARRIERS]
    _, losses, _ = pipeline.get_train_loss_dict(0)
    assert {"mask_bce", "mask_dice", "token", "score", "rgb", "depth", "feature"} <= losses.keys()
    assert all(torch.isfinite(value) for value in losses.values())
    after = pipeline.model.network.state_dict()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert any("decoder" in name for name in changed) and any("gaussian" in name for name in changed)
    assert pipeline.datamanager.train_sampler_.skipped[SKIP_NO_PSEUDO_SCENE] == 1
    assert UNLABELLED not in pipeline.datamanager.train_sampler_.scene_ids


def test_pretrained_checkpoint_initialises_finetuning(data_root, pretrained, tmp_path):
    config, _, _ = pretrained
    checkpoint = tmp_path / "pretrained.pt"
    ExportCheckpoint(config=config.get_base_dir() / "config.yml", out=checkpoint).main()
    pretrained_model, extra = load_model(checkpoint)
    assert extra["method"] == "liftgs-pretrain"

    finetune = tiny_trainer("liftgs", tmp_path / "finetune", 1)
    finetune.pipeline.datamanager.data = data_root
    finetune.pipeline.datamanager.labelled_fraction = 0.3
    finetune.pipeline.model.network = config.pipeline.model.network
    finetune.pipeline.model.init_checkpoint = checkpoint
    finetune.steps_per_eval_batch = finetune.steps_per_eval_image = finetune.steps_per_eval_all_images = 100
    trainer = finetune.setup(local_rank=0, world_size=1)
    trainer.setup()
    start = trainer.pipeline.model.network.state_dict()
    assert all(torch.equal(value, start[name]) for name, value in pretrained_model.state_dict().items())
    sampler = trainer.pipeline.datamanager.train_sampler_
    train = GroundingDataset(data_root, "train")
    kept = labelled_subset(train.expressions, 0.3)
    assert sum(map(len, sampler.by_scene.values())) == len(kept) < len(train.expressions)
    assert set(sampler.by_scene) == set(train.scene_ids)  # scenes fixed
    assert len(trainer.pipeline.datamanager.eval_sampler_.by_scene["scan0008"]) == len(
        GroundingDataset(data_root, "val").expressions
    )  # validation untouched
    trainer.train()
    assert (finetune.get_checkpoint_dir() / "step-000000000.ckpt").is_file()


def test_no_pseudo_labels_anywhere_is_a_clear_error(data_root, tmp_path):
    config = tiny_pretrainer(data_root, tmp_path, 1)
    config.pipeline.datamanager.pseudo.folder = "never-labelled"
    with pytest.raises(ValueError, match=r"liftgs pseudo-label --data .* --folder never-labelled"):
        config.setup(local_rank=0, world_size=1).setup()
