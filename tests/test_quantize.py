"""bitsandbytes-quantized frozen linears on CPU: forward and backward against the dequantized weight, QLoRA."""

from __future__ import annotations

import pytest
import torch

from lit_sql.errors import LitSQLError
from lit_sql.lora import LoRAConfig, LoRALinear, inject_lora, merge_lora
from lit_sql.quantize import QUANTIZE_MODES, QuantizedLinear, quantize_model
from tests.test_model import LLAMA3_STYLE, random_model

pytest.importorskip("bitsandbytes")


@pytest.mark.parametrize("mode", QUANTIZE_MODES)
def test_forward_and_backward_use_the_dequantized_weight(mode):
    torch.manual_seed(0)
    weight = torch.randn(48, 64) * 0.05
    layer = QuantizedLinear(weight, mode, compute_dtype=torch.float32)
    dense = layer.dequantize(torch.float32)
    assert dense.shape == weight.shape
    assert (dense - weight).abs().mean() < 0.01 * (1 if "int8" in mode else 1)  # close to the original
    assert layer.weight_bytes < weight.numel() * 4 / (3.5 if "int8" in mode else 6)  # and much smaller
    x = torch.randn(3, 64, requires_grad=True)
    y = layer(x)
    assert torch.allclose(y, x @ dense.t(), atol=1e-5)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.ones(3, 48) @ dense, atol=1e-5)


def test_qlora_trains_and_merges_from_dequantized_weights():
    model = random_model(LLAMA3_STYLE)
    idx = torch.randint(0, 101, (4, 16))
    assert quantize_model(model, "bnb.nf4", torch.bfloat16, torch.device("cpu")) == 7 * LLAMA3_STYLE["n_layer"]
    inject_lora(model, LoRAConfig(r=4, alpha=8, dropout=0.0, targets="all-linear"))
    assert all(isinstance(m.base, QuantizedLinear) for m in model.modules() if isinstance(m, LoRALinear))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    losses = []
    for _ in range(15):
        logits = model(idx[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), idx[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9
    model.eval()
    with torch.no_grad():
        expected = model(idx)
        merge_lora(model)
        # bf16 compute in the quantized path vs float32 after the merge: close, not equal.
        assert (model(idx) - expected).abs().max() < 5e-2


def test_unknown_mode_is_refused():
    with pytest.raises(LitSQLError, match="bnb.nf4"):
        QuantizedLinear(torch.zeros(4, 4), "bnb.nf3")
