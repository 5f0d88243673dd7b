"""The nerfstudio plugin end to end on a tiny generated dataset: ns-train liftgs (its Python entry), resume
with --load-dir, ns-eval's grounding metrics, export-checkpoint, the viewer's camera render, liftgs-3d."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from nerfstudio.configs import method_configs as ns_methods
from nerfstudio.scripts.eval import ComputePSNR
from nerfstudio.scripts.train import main as ns_train
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from liftgs.data.synthetic.generate import DatasetSpec, SceneOptions, ensure_dataset
from liftgs.losses.criterion import LossConfig
from liftgs.losses.targets import Views
from liftgs.model import load_model
from liftgs.model.config import LiftGSConfig
from liftgs.nerfstudio.export import ExportCheckpoint, load_trained_pipeline
from liftgs.pseudo.lift_dataset import lift_dataset
from liftgs.render import viewmat_from_c2w
from liftgs.train.batch import SamplerConfig
from method_configs.liftgs import liftgs, liftgs_3d
from tests.support.dataset import default_dataset_at
from tests.support.training import tiny_trainer


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory) -> Path:
    """10 small scenes (8 train, 1 val, 1 test), served as the default dataset for this module's tests."""
    root = tmp_path_factory.mktemp("data")
    options = SceneOptions(image_width=64, image_height=48, num_views=6, voxel_size=0.08, max_objects=6)
    ensure_dataset(root, spec=DatasetSpec(seed=3, num_scenes=10, options=options), progress=False)
    with default_dataset_at(root):
        yield root


@pytest.fixture(scope="module")
def run(dataset_root, tmp_path_factory) -> Path:
    """3 iterations of ns-train liftgs with no --data (the default dataset root); returns config.yml."""
    config = tiny_trainer("liftgs", tmp_path_factory.mktemp("outputs"), 3)
    assert config.pipeline.datamanager.data is None
    ns_train(config)
    return config.get_base_dir() / "config.yml"


def test_train_writes_checkpoint_config_and_logs(run):
    assert (run.parent / "nerfstudio_models" / "step-000000002.ckpt").is_file()
    events = EventAccumulator(str(run.parent))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"Train Loss Dict/mask_bce", "Train Loss Dict/rgb", "Train Metrics Dict/top1_iou"} <= tags
    assert "Eval Images Metrics Dict (all images)/acc@0.25" in tags  # periodic validation accuracy
    assert "Eval Loss Dict/mask_dice" in tags


def test_resume_with_load_dir(run):
    config = tiny_trainer("liftgs", run.parents[3], 4)  # max_num_iterations is the total: step 3 is left
    config.timestamp = "resumed"
    config.load_dir = run.parent / "nerfstudio_models"
    ns_train(config)
    assert (config.get_checkpoint_dir() / "step-000000003.ckpt").is_file()


def test_ns_eval_reports_grounding_metrics(run, dataset_root, tmp_path, monkeypatch):
    monkeypatch.setitem(ns_methods.all_methods, "liftgs", liftgs.config)  # until the entry point is installed
    output = tmp_path / "eval.json"
    ComputePSNR(load_config=run, output_path=output, render_output_path=tmp_path / "records").main()
    results = json.loads(output.read_text())["results"]
    assert 0.0 <= results["acc@0.25"] <= 1.0 and 0.0 <= results["acc@0.5"] <= results["acc@0.25"]
    assert results["count"] > 0
    relations = {key.split("/")[-1] for key in results if key.startswith("acc@0.25/relation/")}
    written = json.loads((dataset_root / "annotations" / "test.json").read_text())
    assert relations and relations <= {record["relation"] for record in written}  # the generator's kinds
    records = json.loads((tmp_path / "records" / "grounding_records.json").read_text())["records"]
    assert len(records) == results["count"] and {r["scene_id"] for r in records} == {"scan0009"}  # test split


def test_export_checkpoint_matches_the_pipeline(run, tmp_path):
    out = tmp_path / "model.pt"
    ExportCheckpoint(config=run, out=out).main()
    model, extra = load_model(out)
    _, pipeline, step = load_trained_pipeline(run)
    assert extra["step"] == step == 2 and extra["method"] == "liftgs"
    expected = pipeline.model.network.state_dict()
    assert model.state_dict().keys() == expected.keys()
    assert all(torch.equal(value, expected[name]) for name, value in model.state_dict().items())


def test_viewer_renders_the_scene_from_nerfstudio_cameras(run):
    config, pipeline, _ = load_trained_pipeline(run)
    pipeline = config.pipeline.setup(device="cpu", test_mode="val")
    frames = pipeline.datamanager.train_dataset
    outputs = pipeline.model.get_outputs_for_camera(frames.cameras[1:2])
    frame = frames.scene.frames[1]
    assert outputs["rgb"].shape == (frame.height, frame.width, 3)
    assert outputs["mask"].shape == outputs["depth"].shape == (frame.height, frame.width, 1)
    views = Views(
        viewmat_from_c2w(torch.as_tensor(frame.c2w, dtype=torch.float32))[None],
        torch.as_tensor(frame.K, dtype=torch.float32)[None],
        torch.zeros(1, frame.height, frame.width, 3),
        torch.zeros(1, frame.height, frame.width),
    )
    direct = pipeline.model.render_prediction(*pipeline.model._viewer_features(), views)
    assert torch.allclose(outputs["rgb"], direct["rgb"][0], atol=1e-5)
    assert outputs["accumulation"].mean() > 0.3  # the camera looks at the scene


def test_three_d_baseline_trains(dataset_root, tmp_path):
    config = tiny_trainer("liftgs-3d", tmp_path, 2)
    config.steps_per_eval_batch = config.steps_per_eval_image = config.steps_per_eval_all_images = 100
    ns_train(config)
    assert (config.get_checkpoint_dir() / "step-000000001.ckpt").is_file()
    assert config.pipeline.datamanager.supervision == "points"


def test_ns_train_stops_in_one_line_when_the_lifted_features_do_not_fit_the_affinity(dataset_root, tmp_path):
    config = tiny_trainer("liftgs", tmp_path, 1)
    network = config.pipeline.model.network
    network.encoder.extra_channels, network.decoder.lifted_affinity = 32, True
    network.decoder.lifted_projection_seed = 7  # the benchmark's features were projected with seed 0
    for split in ("train", "val"):
        lift_dataset(dataset_root, split=split, source="stand-in", progress=False)
    with pytest.raises(SystemExit, match=r"^ns-train: the scene's lifted features project 384-d embeddings"):
        ns_train(config)
    assert not config.get_checkpoint_dir().exists()


def test_both_supervisions_train_the_same_network_with_the_same_text_losses():
    """``liftgs`` and ``liftgs-3d`` differ only in the mask supervision: both are the configs' defaults (the
    points-only network; anchor slots asked to read the annotated anchors' names, the relation classifier
    to name the annotated relation kind)."""
    render, three_d = liftgs.config.pipeline, liftgs_3d.config.pipeline
    assert render.model.network == three_d.model.network == LiftGSConfig()
    assert render.model.loss == three_d.model.loss == LossConfig()
    assert render.datamanager.sampler == three_d.datamanager.sampler == SamplerConfig()
    assert render.model.network.encoder.extra_channels == 0  # xyz, rgb and the text only
    assert render.model.network.decoder.anchor_slots > 0 and render.model.loss.anchor_words > 0
    assert render.model.loss.relation > 0
    assert (render.datamanager.supervision, three_d.datamanager.supervision) == ("views", "points")
