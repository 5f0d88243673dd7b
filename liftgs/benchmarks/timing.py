"""What the benchmarks share about devices and memory: waiting for queued GPU work, naming where a timing
ran, reading the process's resident memory."""

from __future__ import annotations

from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")


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


def memory_kib(field: str = "VmRSS") -> int | None:
    """A memory field of /proc/self/status in KiB (``VmRSS`` resident, ``VmHWM`` its peak) on Linux, else
    None."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None
