"""LoRA layers: identity at start, only adapters train, merge equals the unmerged model, settings validated."""

from __future__ import annotations

import pytest
import torch

from lit_sql.errors import LitSQLError
from lit_sql.lora import LoRAConfig, LoRALinear, inject_lora, load_lora_weights, lora_state_dict, merge_lora
from tests.test_model import LLAMA3_STYLE, random_model


def test_targets_expand_and_validate():
    assert LoRAConfig(targets="query,value").module_suffixes() == ("attn.q_proj", "attn.v_proj")
    all_linear = LoRAConfig(targets=["all-linear"]).module_suffixes()
    assert len(all_linear) == 7 and "lm_head" not in all_linear
    assert "lm_head" in LoRAConfig(targets="all-linear,head").module_suffixes()
    with pytest.raises(LitSQLError, match="querry"):
        LoRAConfig(targets="querry")


def test_fresh_adapter_is_identity_and_only_lora_trains():
    model = random_model(LLAMA3_STYLE)
    idx = torch.randint(0, 101, (2, 12))
    with torch.no_grad():
        before = model(idx)
    wrapped = inject_lora(model, LoRAConfig(r=4, alpha=8, dropout=0.0, targets="all-linear,head"))
    assert len(wrapped) == 7 * LLAMA3_STYLE["n_layer"] + 1
    with torch.no_grad():
        assert torch.equal(model(idx), before)  # B starts at zero
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{name}.lora_{ab}" for name in wrapped for ab in "AB"}  # A and B of each, nothing else


def test_merge_matches_unmerged_forward():
    model = random_model(LLAMA3_STYLE)
    inject_lora(model, LoRAConfig(r=4, alpha=8, dropout=0.1, targets="query,value,mlp"))
    model.eval()  # new LoRA modules start in training mode: dropout must be off for the comparison
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.05)
    idx = torch.randint(0, 101, (2, 12))
    with torch.no_grad():
        expected = model(idx)
        merge_lora(model)
        assert not any(isinstance(m, LoRALinear) for m in model.modules())
        assert (model(idx) - expected).abs().max() < 1e-5


def test_adapter_for_another_model_is_refused():
    model = random_model(LLAMA3_STYLE)
    inject_lora(model, LoRAConfig(r=4, targets="query"))
    other = random_model({**LLAMA3_STYLE, "n_embd": 32, "head_size": 8})
    inject_lora(other, LoRAConfig(r=4, targets="query"))
    with pytest.raises(LitSQLError, match="trained on another base model"):
        load_lora_weights(model, lora_state_dict(other), source="adapter.pth")
    third = random_model(LLAMA3_STYLE)
    inject_lora(third, LoRAConfig(r=4, targets="value"))
    with pytest.raises(LitSQLError, match="does not fit this model"):
        load_lora_weights(model, lora_state_dict(third), source="adapter.pth")


def test_lora_dropout_keeps_the_expected_share_and_scale():
    from lit_sql.lora import LoRADropout

    torch.manual_seed(0)
    drop = LoRADropout(0.1)
    x = torch.ones(400, 1000)
    y = drop(x)
    assert abs((y == 0).float().mean().item() - 0.1) < 0.005
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.9))
    assert abs(y.mean().item() - 1.0) < 0.01  # inverted dropout keeps the expectation
    assert not torch.equal(drop(x), y)  # a new mask each call
    assert torch.equal(drop.eval()(x), x)
