"""Fabric's DDP and FSDP strategies on one GPU: finetune/lora.py end to end, as a smoke test.

Deselected by default; `pytest -m cuda tests/test_cuda_strategies.py` on a GPU machine (benchmarks/gpu.sh). DeepSpeed
is not tested: PyPI has no wheel of a current DeepSpeed to bring to an offline GPU machine.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures("needs_cuda")]
ACCELERATOR = "cuda"


def finetune(root, checkpoint, data, name: str, *extra: str) -> dict[str, torch.Tensor]:
    out = root / name
    result = subprocess.run(
        [sys.executable, "finetune/lora.py", "--checkpoint_dir", str(checkpoint), "--data_dir", str(data),
         "--out_dir", str(out), "--accelerator", ACCELERATOR, "--devices", "1", "--precision", "bf16-mixed",
         "--lora_dropout", "0", "--train.micro_batch_size", "4", "--train.global_batch_size", "8",
         "--train.max_steps", "6", "--train.warmup_steps", "2", "--train.learning_rate", "3e-3",
         "--train.eval_interval", "6", "--train.save_interval", "3", *extra],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    val = list(summary["val_loss"].values())
    assert val[-1] < val[0], summary
    assert list((out / "checkpoints").glob("step-*.pth"))  # the sharded strategies save checkpoints too
    return torch.load(out / "adapter.pth")


@pytest.fixture(scope="module")
def single(tiny_training_run) -> dict[str, torch.Tensor]:
    return finetune(*tiny_training_run, "single")


def test_ddp_on_one_gpu_computes_what_a_single_device_does(tiny_training_run, single):
    ddp = finetune(*tiny_training_run, "ddp", "--strategy", "ddp")
    assert ddp.keys() == single.keys()
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], atol=1e-4, rtol=1e-3)  # one rank: the same computation


def test_fsdp_on_one_gpu_trains(tiny_training_run, single):
    fsdp = finetune(*tiny_training_run, "fsdp", "--strategy", "fsdp")  # (Fabric runs FSDP on GPUs only)
    assert fsdp.keys() == single.keys()
    assert all(fsdp[k].shape == single[k].shape and torch.isfinite(fsdp[k]).all() for k in single)
