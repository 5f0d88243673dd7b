"""The training step under torch.distributed (gloo, 2 CPU processes): DDP all-reduces equal gradients on
both ranks, and they equal the single-process step on the union of the two ranks' batches."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from nerfstudio.data.scene_box import SceneBox
from torch.nn.parallel import DistributedDataParallel as DDP

from liftgs.nerfstudio.model import LiftGSModel, LiftGSModelConfig
from liftgs.train.batch import TrainBatch, build_scene_batch, expression_targets
from liftgs.train.cache import SceneTensors
from tests.support.network import tiny_config
from tests.support.scenes import poisoned, toy_expressions, toy_scene


def rank_batches() -> list[TrainBatch]:
    """Rank r's batch: one scene, two expressions, two views (3D labels poisoned: never read)."""
    tensors = SceneTensors.from_scene(poisoned(toy_scene(num_frames=4)), 16, 24)
    expressions = toy_expressions()
    return [
        [build_scene_batch(tensors, expression_targets("toy0000", expressions[:2]), [0, 2], "views")],
        [build_scene_batch(tensors, expression_targets("toy0000", expressions[2:]), [1, 3], "views")],
    ]


def new_model() -> LiftGSModel:
    torch.manual_seed(0)
    config = LiftGSModelConfig(network=tiny_config())
    return config.setup(scene_box=SceneBox(torch.tensor([[-2.0, -2, 0], [2, 2, 2]])), num_train_data=1)


def gradients(model: LiftGSModel) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    model = new_model()
    ddp = DDP(model, device_ids=None, find_unused_parameters=True)
    outputs = ddp(rank_batches()[rank])
    sum(outputs["losses"].values()).backward()
    torch.save(gradients(model), f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.multiprocess
def test_ddp_gradients_agree_and_equal_the_union_step(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    model = new_model()
    batches = rank_batches()
    outputs = model(batches[0] + batches[1])
    sum(outputs["losses"].values()).backward()
    union = gradients(model)
    assert union and set(ranks[0]) == set(ranks[1])
    assert {name for name, g in union.items() if g.abs().sum() > 0} <= set(ranks[0])
    for name, grad in union.items():
        for rank_grads in ranks:
            synced = rank_grads.get(name, torch.zeros_like(grad))
            assert torch.allclose(synced, ranks[0].get(name, torch.zeros_like(grad)), rtol=0, atol=1e-7), name
            assert torch.allclose(synced, grad, rtol=1e-3, atol=1e-6), name
