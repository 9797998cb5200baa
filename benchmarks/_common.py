"""What every benchmark records about where it ran (imported as `_common`: the scripts run from this folder)."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_name() -> str:
    """The CPU model, core count and vector instructions (torch's name: AVX2, AVX512, AVX512_BF16, AMX), for
    the results' "device" field: machines of one model name here differ in them, and speeds with them."""
    import torch

    name = "CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
            break
    return f"{name}, {os.cpu_count()} cores, {torch.backends.cpu.get_cpu_capability()}"
