"""Merge and export: transformers and peft load what lit_sql writes and compute the same logits."""

from __future__ import annotations

import pytest
import torch

from lit_sql.checkpoint import load_model
from lit_sql.errors import LitSQLError
from lit_sql.export import export_hf, export_peft, merge
from lit_sql.generation import load_for_inference
from lit_sql.data.prompt import PromptRecipe
from lit_sql.lora import ADAPTER_FILE, LoRAConfig, inject_lora, lora_state_dict
from lit_sql.run import base_run, load_run, run_record, save_record
from tests.conftest import make_tiny_checkpoint

transformers = pytest.importorskip("transformers")


def fake_run(tmp_path, checkpoint, quantize=None, targets="all-linear,head"):
    """An adapter folder as finetune/lora.py leaves it, with non-zero B so the update shows."""
    lora = LoRAConfig(r=4, alpha=8, dropout=0.0, targets=targets)
    model = load_model(checkpoint, lora=lora)
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.05)
    run = tmp_path / f"run-{quantize}"
    run.mkdir()
    torch.save(lora_state_dict(model), run / ADAPTER_FILE)
    save_record(run, run_record(checkpoint, PromptRecipe(), lora, quantize=quantize))
    return run


@pytest.fixture
def setup(tmp_path):
    checkpoint = make_tiny_checkpoint(tmp_path / "base", tie_embeddings=False)
    return checkpoint, fake_run(tmp_path, checkpoint), torch.randint(0, 400, (2, 16))


def test_hf_export_loads_in_transformers(setup, tmp_path):
    checkpoint, run, idx = setup
    ours = load_for_inference(checkpoint, lora_path=run)
    folder = export_hf(load_run(run), tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    assert tokenizer.eos_token == "<|im_end|>"
    with torch.no_grad():
        assert (hf(idx).logits - ours(idx)).abs().max() < 1e-4


def test_peft_export_loads_onto_the_hf_base(setup, tmp_path):
    peft = pytest.importorskip("peft")
    checkpoint, run, idx = setup
    ours = load_for_inference(checkpoint, lora_path=run)
    base = transformers.AutoModelForCausalLM.from_pretrained(export_hf(base_run(checkpoint), tmp_path / "hf-base"))
    model = peft.PeftModel.from_pretrained(base, export_peft(load_run(run), tmp_path / "peft")).eval()
    with torch.no_grad():
        assert (model(idx).logits - ours(idx)).abs().max() < 1e-4


def test_merge_writes_a_standalone_checkpoint(setup, tmp_path):
    checkpoint, run, idx = setup
    merged = merge(load_run(run), tmp_path / "merged")
    with torch.no_grad():
        assert (load_model(merged)(idx) - load_for_inference(checkpoint, lora_path=run)(idx)).abs().max() < 1e-5
    with pytest.raises(LitSQLError, match="not empty"):
        merge(load_run(run), tmp_path / "merged")


def test_merge_of_a_qlora_adapter_uses_the_dequantized_base(tmp_path):
    pytest.importorskip("bitsandbytes")
    checkpoint = make_tiny_checkpoint(tmp_path / "base")
    run = fake_run(tmp_path, checkpoint, quantize="bnb.nf4", targets="all-linear")
    idx = torch.randint(0, 400, (2, 16))
    quantized = load_for_inference(checkpoint, lora_path=run)  # 4-bit base + unmerged adapter
    merged = load_model(merge(load_run(run), tmp_path / "merged"))
    plain = load_model(checkpoint)
    with torch.no_grad():
        target = quantized(idx)
        # The merge reproduces the quantized model (bf16 compute aside), not the original float base + update.
        assert (merged(idx) - target).abs().max() < 3e-2
        assert (merged(idx) - plain(idx)).abs().max() > (merged(idx) - target).abs().max()
