"""finetune/lora.py end to end on a tiny model: learning, QLoRA, exact resume after SIGKILL, NaN, bad input."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT, make_tiny_checkpoint, write_prepared_data

FAST = ["--train.micro_batch_size", "4", "--train.global_batch_size", "8", "--train.warmup_steps", "2",
        "--train.learning_rate", "3e-3", "--lora_dropout", "0.1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    checkpoint = make_tiny_checkpoint(root / "checkpoint")
    data = write_prepared_data(root / "data", checkpoint)
    return root, checkpoint, data


def finetune(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "finetune/lora.py", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=timeout)


def common(checkpoint: Path, data: Path, out: Path) -> list[str]:
    return ["--checkpoint_dir", str(checkpoint), "--data_dir", str(data), "--out_dir", str(out), *FAST]


@pytest.mark.parametrize("quantize", [None, "bnb.nf4"])
def test_training_lowers_the_validation_loss(tiny_run, quantize):
    root, checkpoint, data = tiny_run
    out = root / f"run-{quantize}"
    extra = ["--quantize", quantize, "--precision", "bf16-mixed"] if quantize else []
    result = finetune(*common(checkpoint, data, out), "--train.max_steps", "30", "--train.eval_interval", "15", *extra)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "train_summary.json").read_text())
    val = list(summary["val_loss"].values())
    assert val[-1] < val[0] and summary["final_train_loss"] < summary["first_train_loss"]
    adapter = torch.load(out / "adapter.pth")
    assert adapter and all("lora_" in k and v.dtype == torch.float32 for k, v in adapter.items())
    assert (out / "hyperparameters.yaml").is_file() and (out / "loss.png").stat().st_size > 1000
    assert list((out / "logs").rglob("metrics.csv"))


def test_resume_after_sigkill_reaches_the_same_result(tiny_run):
    root, checkpoint, data = tiny_run
    args = ["--train.max_steps", "16", "--train.save_interval", "2", "--train.eval_interval", "100"]
    straight = root / "straight"
    assert finetune(*common(checkpoint, data, straight), *args).returncode == 0

    killed = root / "killed"
    kill_after = random.Random(os.getpid()).choice([4, 6, 8, 10])  # a random step, not at the end
    proc = subprocess.Popen([sys.executable, "finetune/lora.py", *common(checkpoint, data, killed), *args],
                            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = killed / "checkpoints" / f"step-{kill_after:06d}.pth"
    deadline = time.time() + 240
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "adapter.pth").exists(), "the run finished before it could be killed"

    resumed = finetune(*common(checkpoint, data, killed), *args, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resumed from" in resumed.stdout + resumed.stderr
    a, b = torch.load(straight / "adapter.pth"), torch.load(killed / "adapter.pth")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    loss_a = json.loads((straight / "train_summary.json").read_text())["final_train_loss"]
    loss_b = json.loads((killed / "train_summary.json").read_text())["final_train_loss"]
    assert loss_a == pytest.approx(loss_b, rel=1e-5)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_run):
    root, checkpoint, data = tiny_run
    out = root / "nan"
    result = finetune(*common(checkpoint, data, out), "--train.max_steps", "30", "--train.save_interval", "1",
                      "--train.learning_rate", "1e30", "--train.max_norm", "0", "--precision", "32-true")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("loss became nan" in result.stderr or "weights overflowed" in result.stderr), result.stderr[-800:]
    assert "last good checkpoint is" in result.stderr
    last = sorted((out / "checkpoints").glob("step-*.pth"))[-1]
    state = torch.load(last, weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not list((out / "checkpoints").glob("*.tmp"))


def test_bad_input_fails_before_training(tiny_run, tmp_path):
    root, checkpoint, data = tiny_run
    base = common(checkpoint, data, tmp_path / "out")
    other_checkpoint = make_tiny_checkpoint(tmp_path / "other")  # same layout, but a retrained tokenizer file
    (other_checkpoint / "tokenizer.json").write_text((other_checkpoint / "tokenizer.json").read_text().replace(
        '"<|endoftext|>"', '"<|end_of_text|>"', 1))
    cases = {
        "--lora_targets=attention": "not understood",
        "--quantize=bnb.nf3": "bnb.nf3",
        "--train.optimizer=sgd": "--optimizer 'sgd'",
        f"--data_dir={tmp_path / 'nothing'}": "prepare the data first",
        f"--checkpoint_dir={other_checkpoint}": "was prepared with tokenizer",
    }
    for flag, message in cases.items():
        result = finetune(*base, flag)
        assert result.returncode == 2, (flag, result.stderr[-1500:])
        assert message in result.stderr and "Traceback" not in result.stderr, (flag, result.stderr[-1500:])
        assert not (tmp_path / "out" / "checkpoints").exists()


def test_ddp_on_two_cpu_processes_matches_one_process(tiny_run):
    """Two ranks with half the micro-batch each compute the same update as one process (token-weighted loss,
    gradients averaged by DDP)."""
    root, checkpoint, data = tiny_run
    args = ["--train.max_steps", "4", "--train.global_batch_size", "8", "--lora_dropout", "0", "--precision",
            "32-true", "--accelerator", "cpu", "--train.eval_interval", "100"]
    single = root / "single"
    result = finetune(*common(checkpoint, data, single), *args, "--train.micro_batch_size", "4")
    assert result.returncode == 0, result.stderr[-2000:]
    ddp = root / "ddp"
    result = finetune(*common(checkpoint, data, ddp), *args, "--train.micro_batch_size", "2", "--devices", "2",
                      "--strategy", "ddp")
    assert result.returncode == 0, result.stderr[-2000:]
    a, b = torch.load(single / "adapter.pth"), torch.load(ddp / "adapter.pth")
    assert set(a) == set(b)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert any(a[k].abs().sum() > 0 for k in a if "lora_B" in k)  # training did move the adapter
