"""bitsandbytes-quantized frozen linears on CPU: forward and backward against the dequantized weight, QLoRA."""

from __future__ import annotations

import pytest
import torch

from lit_sql.errors import LitSQLError
from lit_sql.lora import LoRAConfig, LoRALinear, inject_lora, merge_lora
from lit_sql.quantize import QUANTIZE_MODES, QuantizedLinear, quantize_model
from tests.test_model import LLAMA3_STYLE, random_model

pytest.importorskip("bitsandbytes")

# The widest gap between two neighbouring code values (fractions of the block maximum) of the 4-bit formats:
# NF4 (QLoRA paper) between -1 and -0.6961928, bitsandbytes' FP4 (2 exponent bits, 1 mantissa bit) between 2/3
# and 1.
WIDEST_GAP = {"nf4": 1 - 0.6961928009986877, "fp4": 1 - 2 / 3}


@pytest.mark.parametrize("mode", QUANTIZE_MODES)
def test_forward_and_backward_use_the_dequantized_weight(mode):
    torch.manual_seed(0)
    weight = torch.randn(48, 64) * 0.05
    layer = QuantizedLinear(weight, mode, compute_dtype=torch.float32)
    dense = layer.dequantize(torch.float32)
    assert dense.shape == weight.shape
    # Each weight is rounded to the nearest code value of its scale: off by at most half the widest gap between
    # two neighbouring codes, times the absolute maximum of its block of 64 (4-bit) or of its row (int8).
    # The slack covers the scale's own rounding (float16 for int8, 8 bits with double quantization).
    if "int8" in mode:
        scale, half_gap = weight.abs().amax(1, keepdim=True), 0.5 / 127
    else:
        scale = weight.reshape(-1, 64).abs().amax(1, keepdim=True).expand(-1, 64).reshape(weight.shape)
        half_gap = WIDEST_GAP[mode.split(".")[1].removesuffix("-dq")] / 2
    assert ((dense - weight).abs() <= scale * (half_gap * 1.01 + 2 ** -11)).all()
    # and much smaller: a byte per weight and a float32 scale per row (int8), half a byte per weight (4-bit)
    assert layer.weight_bytes == (weight.numel() + 4 * weight.shape[0] if "int8" in mode else weight.numel() // 2)
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
