"""finetune/full.py: every weight trains on the same loop as LoRA, and the run's folder is a model of its own that
every consumer loads through the run record (`load_run`), prompting exactly as training did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lit_sql.checkpoint import load_state_dict
from lit_sql.errors import LitSQLError
from lit_sql.run import load_run
from tests.conftest import REPO_ROOT, make_tiny_checkpoint

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "data"
SYSTEM = "Write one SQLite query for the question."


def train_full(checkpoint: Path, data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "finetune/full.py", "--checkpoint_dir", str(checkpoint), "--data_dir", str(data),
         "--out_dir", str(out), "--train.micro_batch_size", "2", "--train.global_batch_size", "2",
         "--train.max_steps", "2", "--train.save_interval", "1", "--train.eval_interval", "2",
         "--train.exec_eval_interval", "0", "--train.learning_rate", "1e-3", "--precision", "32-true", *extra],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=900)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny base, Spider-layout data prepared with compact schemas and a custom system prompt, a 2-step run."""
    from lit_sql.data.prepare import prepare

    root = tmp_path_factory.mktemp("full")
    checkpoint = make_tiny_checkpoint(root / "models" / "tiny-base", block_size=2048)
    data = prepare(out_dir=root / "compact", schema_format="compact", dataset="spider", data_path=FIXTURES / "spider",
                   checkpoint_dir=checkpoint, max_seq_length=2048, system_prompt=SYSTEM, test_split_fraction=0.3,
                   split_by="database")
    out = root / "run"
    result = train_full(checkpoint, data, out)
    assert result.returncode == 0, result.stderr[-3000:]
    return checkpoint, data, out


def test_every_weight_trains_and_the_folder_is_a_model(trained):
    checkpoint, _, out = trained
    base, tuned = load_state_dict(checkpoint / "lit_model.pth"), load_state_dict(out / "lit_model.pth")
    assert set(tuned) == set(base)  # the base's layout: no LoRA tensors
    changed = [k for k in base if not torch.equal(base[k], tuned[k])]
    # Not only some adapter-like subset: embeddings, attention, MLP and norms all moved.
    for part in ("wte.weight", "attn.q_proj.weight", "mlp.down_proj.weight", "norm.weight"):
        assert any(part in k for k in changed), part
    assert all(tuned[k].dtype == base[k].dtype for k in base)
    record = yaml.safe_load((out / "hyperparameters.yaml").read_text())
    assert record["lora"] is None and record["precision"] == "32-true"
    assert record["base"]["checkpoint_dir"] == str(checkpoint.resolve())
    # A step checkpoint holds every weight (to resume), not a LoRA subset.
    step = torch.load(out / "checkpoints" / "step-000001.pth", weights_only=False)
    assert set(base) <= set(step["model"]) and not any("lora_" in k for k in step["model"])


def test_load_run_prompts_as_training_did_and_loads_the_tuned_weights(trained):
    _, data, out = trained
    run = load_run(out)
    assert run.checkpoint_dir == out and run.lora_path is None
    examples = torch.load(data / "test.pt", weights_only=False)
    for ex in examples:
        ids = run.tokenizer.encode(run.prompt(ex["question"], db=ex["db_path"]))
        assert ids == ex["input_ids"][:ex["prompt_length"]].tolist()
    model = run.load_model(fast_decoding=False)
    tuned = load_state_dict(out / "lit_model.pth")
    assert torch.equal(model.state_dict()["wte.weight"], tuned["wte.weight"])


def test_generate_with_only_the_run_folder(trained):
    _, data, out = trained
    ex = torch.load(data / "test.pt", weights_only=False)[0]
    result = subprocess.run([sys.executable, "generate/lora.py", "--lora_path", str(out), "--db", ex["db_path"],
                             "--prompt", ex["question"], "--max_new_tokens", "4", "--show_prompt", "true"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert ex["prompt"] in result.stderr


def test_mixing_up_runs_is_a_clear_error(trained, tmp_path):
    checkpoint, data, out = trained
    with pytest.raises(LitSQLError, match="full fine-tune"):
        load_run(out, checkpoint_dir=checkpoint)
    again = train_full(checkpoint, data, out)  # a finished run is never overwritten
    assert again.returncode != 0 and "already holds a finished run (lit_model.pth)" in again.stderr
    resumed = subprocess.run(
        [sys.executable, "finetune/lora.py", "--checkpoint_dir", str(checkpoint), "--data_dir", str(data),
         "--out_dir", str(out), "--resume", "auto", "--train.max_steps", "3"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert resumed.returncode != 0 and "resume it with the same script" in resumed.stderr
