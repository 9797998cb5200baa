"""What every benchmark records about where it ran (imported as `_common`: the scripts run from this folder)."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_name() -> str:
    """The CPU model and core count, for the results' "device" field."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return f"CPU, {os.cpu_count()} cores"
