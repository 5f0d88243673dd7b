"""Linear warm-up then cosine decay of the learning rate, as a nerfstudio scheduler.

nerfstudio's own ``CosineDecayScheduler`` returns numpy floats, which end up in the checkpoint's scheduler
state and make ``torch.load(weights_only=True)`` (torch's default, used by nerfstudio's resume and
``ns-eval``) refuse the file. This one computes in plain Python floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from nerfstudio.engine.schedulers import Scheduler, SchedulerConfig
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


@dataclass
class WarmupCosineSchedulerConfig(SchedulerConfig):
    """lr factor: ``step / warmup_steps`` during warm-up, then cosine from 1 down to ``final_factor`` at
    ``max_steps`` (constant afterwards)."""

    _target: type = field(default_factory=lambda: WarmupCosineScheduler)
    warmup_steps: int = 100
    final_factor: float = 0.05
    max_steps: int = 3000


def warmup_cosine_factor(step: int, warmup_steps: int, max_steps: int, final_factor: float) -> float:
    """The learning-rate multiplier at ``step`` (a Python float)."""
    if step < warmup_steps:
        return float(step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosineScheduler(Scheduler):
    config: WarmupCosineSchedulerConfig

    def get_scheduler(self, optimizer: Optimizer, lr_init: float) -> LambdaLR:
        cfg = self.config
        return LambdaLR(
            optimizer,
            lambda step: warmup_cosine_factor(step, cfg.warmup_steps, cfg.max_steps, cfg.final_factor),
        )
