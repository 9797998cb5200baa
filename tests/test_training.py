"""The shared loop's time budget: --train.max_minutes stops the run on time and the schedule follows the clock."""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys

import pytest
import torch

from lit_sql.errors import LitSQLError
from lit_sql.training import TrainArgs, format_duration, lr_at, time_left
from tests.conftest import REPO_ROOT, make_tiny_checkpoint, write_prepared_data


def test_the_schedule_follows_the_time_budget():
    args = TrainArgs(learning_rate=1e-3, min_lr_ratio=0.1, warmup_steps=2, max_minutes=1.0)
    assert lr_at(0, args, 10**9, time_used=0.0) == pytest.approx(5e-4)  # warmup still counts steps
    assert lr_at(5, args, 10**9, time_used=0.0) == pytest.approx(1e-3)
    assert lr_at(5, args, 10**9, time_used=0.5) == pytest.approx(1e-4 + 9e-4 * 0.5)
    assert lr_at(5, args, 10**9, time_used=1.7) == pytest.approx(1e-4)  # past the budget: the floor
    # steps and a time budget: the schedule follows whichever is closer to running out
    assert lr_at(6, args, 10, time_used=0.1) == pytest.approx(1e-4 + 9e-4 * 0.5)
    assert lr_at(3, args, 10, time_used=0.5) == pytest.approx(1e-4 + 9e-4 * 0.5)


@pytest.mark.parametrize("bad, message", [(dict(clock="gpu"), "--train.clock 'gpu' is not one of wall, cpu"),
                                          (dict(max_minutes=0), "--train.max_minutes must be > 0, got 0")])
def test_bad_budget_flags_are_refused(bad, message):
    with pytest.raises(LitSQLError, match=f"^{re.escape(message)}$"):
        TrainArgs(**bad)


def test_a_cpu_time_budget_ends_the_run(tmp_path):
    checkpoint = make_tiny_checkpoint(tmp_path / "checkpoint")
    data = write_prepared_data(tmp_path / "data", checkpoint)
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "finetune/lora.py", "--checkpoint_dir", str(checkpoint), "--data_dir", str(data),
         "--out_dir", str(out), "--train.micro_batch_size", "2", "--train.global_batch_size", "2",
         "--train.warmup_steps", "1", "--train.max_minutes", "0.15", "--train.clock", "cpu",
         "--train.eval_interval", "100000", "--train.save_interval", "100000"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "train_summary.json").read_text())
    # No step limit was given: only the budget can have ended it, after more than one epoch of the tiny set.
    assert summary["steps"] > 5
    assert (out / "adapter.pth").is_file() and summary["val_loss"]  # the final validation and save still ran
    # the CPU time it counted: the budget's 9 s, passed by at most the step that crossed it
    assert summary["clock"] == "cpu" and 9.0 <= summary["clock_seconds"] < 30.0
    assert re.search(r"left=\d+s", result.stderr)  # the progress bar's estimate of the time left
    rows = list(csv.DictReader(open(next((out / "logs").rglob("metrics.csv")))))
    lrs = [float(r["lr"]) for r in rows if r.get("lr")]
    assert lrs[-1] < 0.5 * max(lrs)  # the cosine reached its second half by the end of the budget


def test_time_left_is_whichever_of_steps_and_budget_runs_out_first():
    # 10 steps in 100 s of wall time, during which the budget's clock counted 50 s (a busy machine's CPU time)
    assert time_left(10, 30, 100.0, budget_left=None, clock_seconds=50.0) == pytest.approx(300.0)  # steps alone
    assert time_left(10, math.inf, 100.0, budget_left=60.0, clock_seconds=50.0) == pytest.approx(120.0)  # budget
    assert time_left(10, 30, 100.0, budget_left=60.0, clock_seconds=50.0) == pytest.approx(120.0)  # budget first
    assert time_left(10, 5, 100.0, budget_left=60.0, clock_seconds=50.0) == pytest.approx(50.0)  # steps first
    assert time_left(10, 5, 100.0, budget_left=-3.0, clock_seconds=50.0) == 0.0  # over budget: ending now
    assert time_left(0, 30, 0.0, budget_left=60.0, clock_seconds=0.0) is None  # no pace before the first step
    assert [format_duration(s) for s in (0.4, 45, 425, 3720)] == ["0s", "45s", "7m05s", "1h02m"]


def test_default_precision_follows_the_hardware(monkeypatch):
    from lit_sql.training import default_precision

    assert default_precision(use_cuda=True) == "bf16-mixed"
    for has_amx, expected in ((True, "bf16-true"), (False, "32-true")):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda a=has_amx: a)
        assert default_precision(use_cuda=False) == expected


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_cross_entropy_matches_the_float32_reference(dtype):
    from lit_sql.training import cross_entropy_sum

    torch.manual_seed(0)
    logits = (torch.randn(37, 1000) * 4).to(dtype).requires_grad_()  # 37 rows: the last block is partial
    targets = torch.randint(0, 1000, (37,))
    loss = cross_entropy_sum(logits, targets)
    (grad,) = torch.autograd.grad(loss * 0.5, logits)
    reference = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
    (reference_grad,) = torch.autograd.grad(reference * 0.5, logits)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, reference, rtol=1e-6, atol=1e-4)
    assert grad.dtype == dtype
    # Same float32 arithmetic, one rounding: at most one unit in the last place apart.
    ulp = torch.finfo(dtype).eps * reference_grad.float().abs().clamp(min=torch.finfo(dtype).tiny)
    assert ((grad.float() - reference_grad.float()).abs() <= ulp).all()


def test_a_full_disk_mid_write_is_one_error_naming_the_folder_and_leaves_the_old_file(tmp_path):
    import errno

    from lit_sql.checkpoint import write_atomically

    path = tmp_path / "step-000002.pth"
    path.write_bytes(b"the checkpoint saved before")

    def half_then_disk_full(tmp):
        tmp.write_bytes(b"PK\x03\x04 half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(LitSQLError, match=f"^could not write step-000002.pth in {re.escape(str(tmp_path))}: the disk "
                                          f"is full. Resume later$"):
        write_atomically(path, half_then_disk_full, "Resume later")
    assert path.read_bytes() == b"the checkpoint saved before" and sorted(tmp_path.iterdir()) == [path]
    write_atomically(path, lambda tmp: tmp.write_bytes(b"new"), "")
    assert path.read_bytes() == b"new" and sorted(tmp_path.iterdir()) == [path]


def test_resume_auto_takes_the_newest_checkpoint_that_loads(tmp_path, capsys):
    from lit_sql.training import checkpoint_problem, resumable_checkpoint

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for step in (2, 4, 6, 8, 10):
        torch.save({"step": step, "model": {"w": torch.ones(64)}}, folder / f"step-{step:06d}.pth")
    good = (folder / "step-000004.pth").read_bytes()
    (folder / "step-000006.pth").write_bytes(b"")  # empty
    (folder / "step-000008.pth").write_bytes(good[:len(good) // 2])  # truncated
    (folder / "step-000010.pth").write_bytes(bytes(range(256)) * 4)  # garbled
    assert resumable_checkpoint(tmp_path) == folder / "step-000004.pth"
    notes = capsys.readouterr().err.splitlines()
    assert len(notes) == 4
    assert notes[0].startswith(f"note: --resume auto: skipping {folder}/step-000010.pth: it does not load (")
    assert notes[1].startswith(f"note: --resume auto: skipping {folder}/step-000008.pth: it does not load (")
    assert notes[2] == f"note: --resume auto: skipping {folder}/step-000006.pth: the file is empty"
    assert notes[3] == f"note: --resume auto: resuming from {folder}/step-000004.pth, the newest checkpoint that loads"
    assert checkpoint_problem(folder / "step-000002.pth") is None
    torch.save({"weights": 1}, folder / "step-000012.pth")
    assert checkpoint_problem(folder / "step-000012.pth") == "it is not a training checkpoint (it holds no step and model)"
    for step in (2, 4):
        (folder / f"step-{step:06d}.pth").write_bytes(b"x")
    with pytest.raises(LitSQLError, match="^--resume auto: none of the 6 checkpoints in .* loads; move them away"):
        resumable_checkpoint(tmp_path)


@pytest.mark.skipif(not __import__("os").path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_torch_save_onto_a_full_disk_is_the_same_one_error(tmp_path, monkeypatch):
    """What a full disk does to torch.save itself (writes to /dev/full fail with ENOSPC), for the final adapter."""
    import lit_sql.checkpoint
    from lit_sql.checkpoint import atomic_torch_save

    path = tmp_path / "adapter.pth"
    monkeypatch.setattr(lit_sql.checkpoint, "open", lambda *_: open("/dev/full", "wb"), raising=False)
    with pytest.raises(LitSQLError, match=f"^could not write adapter.pth in {re.escape(str(tmp_path))}: the disk is "
                                          f"full. Nothing was overwritten"):
        atomic_torch_save({"w": torch.ones(4096)}, path)
    assert not list(tmp_path.iterdir())
