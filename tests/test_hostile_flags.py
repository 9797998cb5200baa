"""Flags a user can get wrong: each is refused before any work with one `error:` line that names it, exit code 2
and no traceback or page of usage (`lit_sql.cli.run_cli`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lit_sql.cli import run_cli
from lit_sql.cli.finetune import setup, setup_full
from tests.conftest import REPO_ROOT

# A checkpoint folder that does not exist: should a flag slip through its check, the run fails on this instead of
# training, and the test sees the wrong message.
NOWHERE = ["--checkpoint_dir", "/nonexistent/checkpoint", "--data_dir", "/nonexistent/data"]

FINETUNE_FLAGS = [
    (["--train.save_interval", "0"], "--train.save_interval must be >= 1, got 0"),
    (["--train.eval_interval", "0"], "--train.eval_interval must be >= 1, got 0"),
    (["--train.log_interval", "0"], "--train.log_interval must be >= 1, got 0"),
    (["--train.max_steps", "-5"], "--train.max_steps must be >= 1 (or null: --train.epochs decides), got -5"),
    (["--train.max_steps", "abc"], "--train.max_steps: 'abc' is not an integer"),
    (["--train.epochs", "0"], "--train.epochs must be >= 1, got 0"),
    (["--train.keep_checkpoints", "0"], "--train.keep_checkpoints must be >= 1, got 0"),
    (["--train.keep_checkpoints", "-2"], "--train.keep_checkpoints must be >= 1, got -2"),
    (["--train.eval_batches", "0"], "--train.eval_batches must be >= 1, got 0"),
    (["--train.warmup_steps", "-1"], "--train.warmup_steps must be >= 0, got -1"),
    (["--train.max_norm", "-1"], "--train.max_norm must be >= 0, got -1.0"),
    (["--train.weight_decay", "-0.1"], "--train.weight_decay must be >= 0, got -0.1"),
    (["--train.min_lr_ratio", "2"], "--train.min_lr_ratio must be <= 1 (the floor is a share of the learning rate), "
                                    "got 2.0"),
    (["--train.learning_rate", "0"], "--train.learning_rate must be > 0, got 0.0"),
    (["--train.optimizer", "sgd"], "--train.optimizer 'sgd' is not one of adamw, adamw8bit, paged_adamw"),
    (["--train.activation_checkpointing", "maybe"], "--train.activation_checkpointing: 'maybe' is not true or false"),
    (["--quantize", "bnb.nf5"], "--quantize: 'bnb.nf5' is not one of bnb.nf4, bnb.nf4-dq, bnb.fp4, bnb.fp4-dq, "
                                "bnb.int8-training"),
    (["--strategy", "horovod"], "--strategy: 'horovod' is not one of auto, ddp, fsdp, deepspeed"),
    (["--accelerator", "tpu"], "--accelerator: 'tpu' is not one of auto, cpu, cuda, gpu, mps"),
    (["--logger", "wandb"], "--logger: 'wandb' is not one of csv, tensorboard"),
    (["--precision", "fp8"], "--precision 'fp8' is not one of"),
    (["--devices", "0"], "--devices (0) and --num_nodes (1) must be >= 1"),
    (["--devices", "1.5"], "--devices: '1.5' is not an integer"),
    (["--devices", "3", "--train.global_batch_size", "16", "--train.micro_batch_size", "4"],
     "--train.global_batch_size 16 over 3 devices is not a multiple of --train.micro_batch_size 4"),
    (["--lora_r", "0"], "--lora_r must be >= 1, got 0"),
    (["--lora_alpha", "0"], "--lora_alpha must be > 0, got 0"),
    (["--lora_dropout", "1"], "--lora_dropout must be in [0, 1), got 1.0"),
    (["--resume", "/nonexistent/step-000002.pth"], "--resume /nonexistent/step-000002.pth: no such checkpoint"),
    (["--no_such_flag", "1"], "unrecognized arguments: --no_such_flag 1"),
]


def refused(fn, args: list[str], capsys) -> str:
    """What `fn` run from the command line with `args` printed on stderr; it must exit with code 2."""
    with pytest.raises(SystemExit) as exit_:
        run_cli(fn, [*NOWHERE, *args])
    assert exit_.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("args, message", FINETUNE_FLAGS, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_bad_finetune_flag_is_one_error_line(args, message, capsys):
    err = refused(setup, args, capsys)
    assert err.startswith(f"error: {message}") and len(err.splitlines()) == 1, err


def test_full_finetuning_checks_the_same_flags(capsys):
    err = refused(setup_full, ["--train.save_interval", "0"], capsys)
    assert err == "error: --train.save_interval must be >= 1, got 0\n"


@pytest.mark.parametrize("script, args, message", [
    ("finetune/lora.py", ["--train.save_interval", "0"], "--train.save_interval must be >= 1, got 0"),
    ("finetune/lora.py", ["--quantize", "bnb.nf5"], "--quantize: 'bnb.nf5' is not one of"),
    ("finetune/full.py", ["--train.max_steps", "-5"], "--train.max_steps must be >= 1"),
])
def test_the_scripts_exit_2_with_one_line(script, args, message):
    result = subprocess.run(["timeout", "300", sys.executable, script, *NOWHERE, *args], capture_output=True,
                            text=True, cwd=REPO_ROOT)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "usage:" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.stderr


@pytest.mark.parametrize("command, args, message", [
    ("eval", ["--limit", "abc"], "--limit: 'abc' is not an integer"),
    ("prepare", ["--dataset", "foo"], "--dataset: 'foo' is not one of generated, spider, bird, sql-create-context, "
                                      "synthetic-text-to-sql, json"),
    ("prepare", ["--files", "x"], "--files: 'x' is not a list, e.g. [a, b]"),
    ("generate-lora", ["--prompt", "q", "--temperature", "hot"], "--temperature: 'hot' is not a number"),
    ("generate-lora", ["--prompt", "q", "--config", "/nonexistent.yaml"], "--config: File does not exist"),
    ("generate-lora", [], "the following arguments are required: prompt"),
])
def test_a_flag_value_every_command_rejects_is_one_error_line(command, args, message, capsys):
    from lit_sql.cli import _commands

    with pytest.raises(SystemExit) as exit_:
        run_cli(_commands()[command], args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(f"error: {message}") and len(err.splitlines()) == 1, err
