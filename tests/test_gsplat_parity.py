"""Tests of ``liftgs bench gsplat``'s comparison code, on the CPU (the dense backend stands in for gsplat)."""

from __future__ import annotations

import pytest
import torch

from liftgs.benchmarks import gsplat_parity
from liftgs.benchmarks.gsplat_parity import (
    GsplatParity,
    agreement,
    median_ms,
    render_with_grads,
)
from liftgs.benchmarks.render import DIFFERENTIABLE, random_scene


def test_agreement_of_two_backends_is_tight_and_detects_a_changed_scene():
    scene = random_scene(60, 24, 4, seed=3)
    reference = render_with_grads(scene, "dense", "cpu")
    same = agreement(render_with_grads(scene, "torch", "cpu"), reference)
    assert same.color_max_abs < 1e-4 and same.alpha_max_abs < 1e-4
    assert same.visibility_agree == 1.0
    assert set(same.grad_rel_err) == set(DIFFERENTIABLE)
    assert max(same.grad_rel_err.values()) < 1e-3

    moved = dict(scene, means=scene["means"] + torch.tensor([0.05, 0.0, 0.0]))
    different = agreement(render_with_grads(moved, "torch", "cpu"), reference)
    assert different.color_max_abs > 1e-2
    assert different.grad_rel_err["means"] > 1e-2


def test_render_with_grads_returns_cpu_tensors_shaped_like_the_inputs():
    scene = random_scene(30, 16, 3, seed=0)
    rendered = render_with_grads(scene, "torch", "cpu")
    assert rendered.colors.shape == (1, 16, 16, 3) and rendered.alphas.shape == (1, 16, 16, 1)
    assert rendered.radii.shape == (1, 30)
    for name in DIFFERENTIABLE:
        assert rendered.grads[name].shape == scene[name].shape
        assert rendered.grads[name].abs().sum() > 0


def test_median_ms_runs_once_to_warm_up_then_repeats():
    calls = []
    assert median_ms(lambda: calls.append(1), repeats=4, device=torch.device("cpu")) >= 0.0
    assert len(calls) == 5


def test_bench_without_gsplat_kernels_exits_with_one_line(monkeypatch):
    monkeypatch.setattr(gsplat_parity, "gsplat_cuda_available", lambda: False)
    with pytest.raises(SystemExit, match="needs a CUDA GPU on which gsplat's kernels load"):
        GsplatParity().main()
