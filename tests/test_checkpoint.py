"""Conversion from Hugging Face folders, loading, and the errors a user sees for bad checkpoints."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from lit_sql.checkpoint import convert_hf_checkpoint, hf_config_dict, load_model, to_hf_state_dict
from lit_sql.config import Config
from lit_sql.errors import LitSQLError
from tests.conftest import REPO_ROOT, make_tiny_checkpoint, tiny_config
from tests.test_model import LLAMA3_STYLE, hf_twin, random_model

transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("shards", ["safetensors", "sharded-safetensors", "bin"])
def test_convert_hf_folder_gives_identical_logits(tmp_path, shards):
    model = random_model(LLAMA3_STYLE)
    hf = hf_twin(model)
    folder = tmp_path / "Llama-3.2-1B-Instruct"  # a known name: the prompt style comes from the named config
    hf.save_pretrained(folder, safe_serialization=shards != "bin",
                       max_shard_size="20KB" if shards == "sharded-safetensors" else "10GB")
    if shards == "sharded-safetensors":
        assert len(list(folder.glob("*.safetensors"))) > 1
    shutil.copy(make_tiny_checkpoint(tmp_path / "tok") / "tokenizer.json", folder)

    config = convert_hf_checkpoint(folder)
    assert config.prompt_style == "llama3"
    assert config.rope_scaling == LLAMA3_STYLE["rope_scaling"]
    converted = load_model(folder).eval()
    idx = torch.randint(0, LLAMA3_STYLE["vocab_size"], (1, 20))
    with torch.no_grad():
        assert torch.equal(converted(idx), model(idx))


def test_hf_config_roundtrip():
    for name in ("Llama-2-7b-chat-hf", "Llama-3.1-8B-Instruct", "SmolLM2-135M-Instruct", "CodeLlama-7b-hf"):
        config = Config.from_name(name)
        back = Config.from_hf_config(hf_config_dict(config), name=name)
        assert back == config


def test_named_configs_have_the_published_sizes():
    def n_params(name: str) -> float:
        with torch.device("meta"):
            from lit_sql.model import GPT

            model = GPT(Config.from_name(name))
        return sum(p.numel() for p in model.parameters()) / 1e9

    assert n_params("Llama-2-7b-hf") == pytest.approx(6.74, abs=0.01)
    assert n_params("Llama-3-8B") == pytest.approx(8.03, abs=0.01)
    assert n_params("Llama-3.2-1B") == pytest.approx(1.24, abs=0.01)
    assert n_params("TinyLlama-1.1B-Chat-v1.0") == pytest.approx(1.10, abs=0.01)
    assert n_params("SmolLM2-135M-Instruct") == pytest.approx(0.1345, abs=0.001)


def test_unknown_config_name_suggests_close_names():
    with pytest.raises(LitSQLError, match="Did you mean 'Llama-2-7b-chat-hf'"):
        Config.from_name("llama-2-7b-chat")


def test_missing_incomplete_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(LitSQLError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LitSQLError, match="model_config.yaml is missing"):
        load_model(tmp_path / "empty")

    folder = make_tiny_checkpoint(tmp_path / "ck")
    weights = folder / "lit_model.pth"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # a download cut in half
    with pytest.raises(LitSQLError, match="corrupt or incomplete"):
        load_model(folder)
    weights.unlink()
    with pytest.raises(LitSQLError, match="lit_model.pth missing"):
        load_model(folder)

    other = make_tiny_checkpoint(tmp_path / "other", n_layer=3)
    shutil.copy(other / "lit_model.pth", weights)  # weights of a deeper model than the config says
    with pytest.raises(LitSQLError, match="tensors the model does not know"):
        load_model(folder)
    weights.write_bytes(data)
    tiny_config(n_embd=48).save(folder)  # a config edited by hand
    with pytest.raises(LitSQLError, match="config and the weights disagree"):
        load_model(folder)


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)


def test_cli_errors_are_one_clear_line(tmp_path):
    result = run_script("generate/base.py", "--checkpoint_dir", str(tmp_path / "missing"), "--prompt", "hi")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "does not exist" in result.stderr and "scripts/download.py" in result.stderr

    folder = make_tiny_checkpoint(tmp_path / "ck")
    (folder / "lit_model.pth").write_bytes(b"not a checkpoint")
    result = run_script("generate/base.py", "--checkpoint_dir", str(folder), "--prompt", "hi")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "lit_model.pth could not be read" in result.stderr

    folder = make_tiny_checkpoint(tmp_path / "ck2")
    result = run_script("generate/base.py", "--checkpoint_dir", str(folder), "--prompt", "word " * 200)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "context of 128 tokens" in result.stderr and "--max_new_tokens" in result.stderr

    result = run_script("scripts/convert_hf_checkpoint.py", "--checkpoint_dir", str(tmp_path))
    assert result.returncode == 2 and "config.json not found" in result.stderr

    result = run_script("generate/base.py", "--checkpoint_dir", str(folder), "--prompt", "hi", "--prompt_style", "chatlm")
    assert result.returncode == 2 and "Did you mean 'chatml'" in result.stderr


def test_convert_refuses_non_llama(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(LitSQLError, match="Llama models only"):
        convert_hf_checkpoint(tmp_path)
