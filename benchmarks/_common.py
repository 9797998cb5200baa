"""What every benchmark records about where it ran (imported as `_common`: the scripts run from this folder)."""

from __future__ import annotations

import math
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


def paired(a: list[dict], b: list[dict], names: tuple[str, str] = ("a", "b")) -> dict:
    """Two models' records on the same questions, question by question: how many only the first gets right, only
    the second, both; and the two-sided sign test on the questions they disagree on (the chance of a split at
    least this uneven if neither were better)."""
    only_a = sum(x["match"] and not y["match"] for x, y in zip(a, b))
    only_b = sum(y["match"] and not x["match"] for x, y in zip(a, b))
    both = sum(x["match"] and y["match"] for x, y in zip(a, b))
    n, k = only_a + only_b, min(only_a, only_b)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0
    return {f"only_{names[0]}": only_a, f"only_{names[1]}": only_b, "both": both, "sign_test_p": round(p, 4)}
