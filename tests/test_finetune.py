"""finetune/lora.py end to end on a tiny model: learning, QLoRA, the execution check, exact resume after SIGKILL,
NaN, bad input, DDP."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lit_sql.data.prepare import IGNORE_INDEX
from tests.conftest import REPO_ROOT, make_tiny_checkpoint, write_prepared_data

FAST = ["--train.micro_batch_size", "4", "--train.global_batch_size", "8", "--train.warmup_steps", "2",
        "--train.learning_rate", "3e-3", "--lora_dropout", "0.1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    checkpoint = make_tiny_checkpoint(root / "checkpoint")
    data = write_prepared_data(root / "data", checkpoint)
    return root, checkpoint, data


def finetune(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    # The timeout only catches a hang: on a 2-core machine shared with other jobs a few-second run can take minutes.
    return subprocess.run([sys.executable, "finetune/lora.py", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=timeout)


def common(checkpoint: Path, data: Path, out: Path) -> list[str]:
    return ["--checkpoint_dir", str(checkpoint), "--data_dir", str(data), "--out_dir", str(out), *FAST]


# QLoRA: the frozen base in 4-bit NF4, LoRA and AdamW in float32, matmuls in bfloat16 (fewer steps: on a CPU under
# load every 4-bit dequantization in bitsandbytes costs milliseconds).
@pytest.mark.parametrize("quantize, steps", [(None, 30), ("bnb.nf4", 12)])
def test_training_lowers_the_validation_loss(tiny_run, quantize, steps):
    root, checkpoint, data = tiny_run
    out = root / f"run-{quantize}"
    extra = ["--quantize", quantize, "--precision", "bf16-mixed"] if quantize else []
    result = finetune(*common(checkpoint, data, out), "--train.max_steps", str(steps), "--train.eval_interval",
                      str(steps // 2), *extra)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "train_summary.json").read_text())
    val = list(summary["val_loss"].values())
    assert val[-1] < val[0] and summary["final_train_loss"] < summary["first_train_loss"]
    adapter = torch.load(out / "adapter.pth")
    assert adapter and all("lora_" in k and v.dtype == torch.float32 for k, v in adapter.items())
    assert (out / "hyperparameters.yaml").is_file() and (out / "loss.png").stat().st_size > 1000
    assert list((out / "logs").rglob("metrics.csv"))
    # The execution check ran at the end (on the 4-bit base too): k of the 8 test questions (the default
    # --train.exec_eval_examples) right, and a right answer is one that runs.
    assert list(summary["val_exec_acc"]) == list(summary["val_executes"]) == [str(steps)]
    right, runs = 8 * summary["val_exec_acc"][str(steps)], 8 * summary["val_executes"][str(steps)]
    assert right == int(right) and runs == int(runs) and 0 <= right <= runs <= 8


def write_one_answer_data(data_dir: Path, checkpoint: Path, db: Path, n_train: int = 32, n_test: int = 8) -> Path:
    """Questions worded many ways that all have the same answer, on a real SQLite file: a tiny model learns to
    write that query within a few dozen steps."""
    from lit_sql.prompts import load_prompt_style
    from lit_sql.tokenizer import Tokenizer

    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE singer (name TEXT, age INTEGER)")
        con.executemany("INSERT INTO singer VALUES (?, ?)", [(f"s{i}", 20 + i) for i in range(7)])
    tokenizer, style = Tokenizer(checkpoint), load_prompt_style(checkpoint)
    sql = "SELECT count(*) FROM singer"
    records = []
    for i in range(n_train + n_test):
        question = random.Random(i).choice(["How many singers are there?", "Count the singers.",
                                            "What is the number of singers?", "How many singers do we have?"])
        prompt = style.apply(f"{question} ({i})", system="Answer with only the SQL query.")
        prompt_ids, answer_ids = tokenizer.encode(prompt), tokenizer.encode(sql, bos=False, eos=True)
        records.append({"input_ids": torch.tensor(prompt_ids + answer_ids),
                        "labels": torch.tensor([IGNORE_INDEX] * len(prompt_ids) + answer_ids), "prompt": prompt,
                        "question": question, "sql": sql, "schema": "CREATE TABLE singer (name TEXT, age INTEGER)",
                        "db_path": str(db)})
    data_dir.mkdir(parents=True, exist_ok=True)
    torch.save(records[:n_train], data_dir / "train.pt")
    torch.save(records[n_train:], data_dir / "test.pt")
    (data_dir / "meta.json").write_text(json.dumps({"tokenizer": tokenizer.name, "prompt_style": style.name}))
    return data_dir


def test_execution_accuracy_is_checked_during_training(tiny_run, tmp_path):
    """Every --train.exec_eval_interval steps the model being trained writes SQL for a few test questions, which
    is run against the database: the untrained model fails, the trained one gets them right."""
    _, checkpoint, _ = tiny_run
    data = write_one_answer_data(tmp_path / "data", checkpoint, tmp_path / "singers.sqlite")
    out = tmp_path / "run"
    result = finetune(*common(checkpoint, data, out), "--train.max_steps", "24", "--train.learning_rate", "1e-2",
                      "--train.global_batch_size", "4", "--train.exec_eval_interval", "8",
                      "--train.exec_eval_examples", "4", "--train.eval_interval", "100")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(open(next((out / "logs").rglob("metrics.csv")))))
    checks = {int(r["step"]): float(r["val_exec_acc"]) for r in rows if r.get("val_exec_acc")}
    assert sorted(checks) == [8, 16, 24]
    assert checks[24] == 1.0 and checks[8] < 1.0, checks
    assert "val_exec_acc 1.0000" in result.stdout
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["val_exec_acc"] == {str(k): v for k, v in checks.items()}
    assert summary["val_executes"]["24"] == 1.0
    width = int.from_bytes((out / "loss.png").read_bytes()[16:20], "big")
    assert width > 1200  # a second panel for the execution accuracy beside the loss


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


# Steps 1 to 6, a checkpoint after each but the last, no execution check (what these tests look at is the files).
SIX_STEPS = ["--train.max_steps", "6", "--train.save_interval", "1", "--train.eval_interval", "100",
             "--train.exec_eval_interval", "0"]


def test_resume_auto_skips_damaged_checkpoints_and_only_the_newest_are_kept(tiny_run):
    root, checkpoint, data = tiny_run
    out, steps = root / "damaged", root / "damaged" / "checkpoints"
    assert finetune(*common(checkpoint, data, out), *SIX_STEPS, "--train.keep_checkpoints", "3").returncode == 0
    assert sorted(p.name for p in steps.iterdir()) == ["step-000003.pth", "step-000004.pth", "step-000005.pth"]
    finished = torch.load(out / "adapter.pth")
    (out / "adapter.pth").unlink()  # as if the run had stopped after step 5, whose checkpoint was then cut short
    (steps / "step-000005.pth").write_bytes((steps / "step-000005.pth").read_bytes()[:1000])
    (steps / "step-000004.pth").write_bytes(b"")
    resumed = finetune(*common(checkpoint, data, out), *SIX_STEPS, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"note: --resume auto: skipping {steps / 'step-000005.pth'}: it does not load (" in resumed.stderr
    assert f"note: --resume auto: skipping {steps / 'step-000004.pth'}: the file is empty\n" in resumed.stderr
    assert f"note: --resume auto: resuming from {steps / 'step-000003.pth'}, the newest" in resumed.stderr
    again = torch.load(out / "adapter.pth")
    assert all(torch.allclose(finished[k], again[k], atol=1e-6) for k in finished)  # as if never interrupted


# Runs finetune/lora.py with the third checkpoint's write failing half-way for want of space.
DISK_FULL_AT_THE_THIRD_SAVE = """
import errno, runpy, sys
import lightning.fabric
save, calls = lightning.fabric.Fabric.save, []
def save_until_the_disk_is_full(self, path, state, filter=None):
    calls.append(path)
    if len(calls) < 3:
        return save(self, path, state, filter=filter)
    open(path, "wb").write(b"PK half a checkpoint")
    raise OSError(errno.ENOSPC, "No space left on device")
lightning.fabric.Fabric.save = save_until_the_disk_is_full
sys.argv = ["finetune/lora.py", *sys.argv[1:]]
runpy.run_path("finetune/lora.py", run_name="__main__")
"""


def test_a_full_disk_while_saving_is_one_error_line_and_the_checkpoints_before_stay(tiny_run):
    from lit_sql.training import checkpoint_problem

    root, checkpoint, data = tiny_run
    out, steps = root / "disk-full", root / "disk-full" / "checkpoints"
    result = subprocess.run([sys.executable, "-c", DISK_FULL_AT_THE_THIRD_SAVE, *common(checkpoint, data, out),
                             *SIX_STEPS], capture_output=True, text=True, cwd=REPO_ROOT, timeout=900)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert [line for line in result.stderr.splitlines() if "error" in line] == [
        f"error: could not write step-000003.pth in {steps}: the disk is full. The checkpoints saved before are "
        f"intact: free some space, then continue with --resume auto"]
    assert sorted(p.name for p in steps.iterdir()) == ["step-000001.pth", "step-000002.pth"]  # no .tmp left
    assert checkpoint_problem(steps / "step-000002.pth") is None and not (out / "adapter.pth").exists()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_run):
    root, checkpoint, data = tiny_run
    out = root / "nan"
    result = finetune(*common(checkpoint, data, out), "--train.max_steps", "30", "--train.save_interval", "1",
                      "--train.learning_rate", "1e30", "--train.max_norm", "0", "--precision", "32-true")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # Step 1 moves every adapter weight by about the learning rate (5e29 in warm-up): finite, but step 2's
    # A @ B overflows float32 and the loss is nan. Step 1's checkpoint is the last good one.
    last = out / "checkpoints" / "step-000001.pth"
    assert f"error: the training loss became nan at step 2. The last good checkpoint is {last};" in result.stderr, \
        result.stderr[-800:]
    assert sorted((out / "checkpoints").glob("step-*.pth")) == [last]
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
        "--train.optimizer=sgd": "--train.optimizer 'sgd'",
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
    # Both ranks took part in the final execution check and logged the same summed figure.
    exec_single = json.loads((single / "train_summary.json").read_text())["val_exec_acc"]
    exec_ddp = json.loads((ddp / "train_summary.json").read_text())["val_exec_acc"]
    assert list(exec_ddp) == ["4"] and exec_ddp == exec_single
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert any(a[k].abs().sum() > 0 for k in a if "lora_B" in k)  # training did move the adapter
