"""What the benchmarks share about devices: waiting for queued GPU work and naming where a timing ran."""

from __future__ import annotations

import torch


def synchronize(device: torch.device) -> None:
    """Waits until ``device`` has run every queued kernel (a no-op on the CPU), so that a timer read right
    after includes the work and not only its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_label(device: torch.device) -> str:
    """``"CPU, 2 threads"`` or the GPU's name, for table titles."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"
