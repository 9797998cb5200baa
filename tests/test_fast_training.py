"""The training rewrite (lit_sql.fast_training): the CPU attention path against SDPA, frozen bf16 linears against a
float32-accumulating GEMM, packed answer-only logits against the padded batch, the rewritten model against the
plain one and against transformers, activation checkpointing against keeping the activations."""

from __future__ import annotations

import pytest
import torch

from lit_sql import fast_training
from lit_sql.fast_training import _CausalAttentionCPU, causal_attention_bmm, optimize_for_training
from tests.test_model import LLAMA3_STYLE, hf_twin, random_model


@pytest.mark.parametrize("block", [64, 5])
def test_training_attention_path_matches_sdpa(monkeypatch, block):
    """The bmm attention used for CPU training gives SDPA's values and gradients, in one query block or several."""
    monkeypatch.setattr(_CausalAttentionCPU, "BLOCK", block)
    torch.manual_seed(0)
    q = torch.randn(2, 6, 17, 8, requires_grad=True)
    k = torch.randn(2, 2, 17, 8, requires_grad=True)
    v = torch.randn(2, 2, 17, 8, requires_grad=True)
    ours = causal_attention_bmm(q, k, v)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    assert (ours - ref).abs().max() < 1e-5
    g = torch.randn_like(ours)
    grads = torch.autograd.grad(ours, (q, k, v), g)
    ref_grads = torch.autograd.grad(ref, (q, k, v), g)
    assert all((a - b).abs().max() < 1e-5 for a, b in zip(grads, ref_grads))


def test_logits_with_grad_enabled_match_transformers():
    model = optimize_for_training(random_model(LLAMA3_STYLE))
    hf = hf_twin(model)
    idx = torch.randint(0, LLAMA3_STYLE["vocab_size"], (2, 30))
    ours = model(idx)  # grad enabled: the training attention path
    with torch.no_grad():
        assert (ours - hf(idx).logits).abs().max() < 1e-4


@pytest.mark.parametrize("has_amx", [False, True])
def test_frozen_bf16_linear_matches_a_float32_accumulating_gemm(monkeypatch, has_amx):
    """Without AMX a frozen bf16 Linear multiplies in float32 (faster there); its output and input gradient
    are the float32-accumulated product rounded once to bf16, as a native bf16 GEMM's would be."""
    monkeypatch.setattr(fast_training, "cpu_has_amx", lambda: has_amx)
    torch.manual_seed(0)
    layer = fast_training.Float32MatmulLinear(64, 48, bias=False).to(torch.bfloat16).requires_grad_(False)
    x = torch.randn(3, 200, 64, dtype=torch.bfloat16, requires_grad=True)  # 600 rows: enough to upcast
    y = layer(x)
    grad = torch.randn_like(y)
    y.backward(grad)
    assert y.dtype == x.grad.dtype == torch.bfloat16
    reference = (x.detach().double() @ layer.weight.double().t()).to(torch.bfloat16)
    reference_grad = (grad.double() @ layer.weight.double()).to(torch.bfloat16)
    # float32 accumulation order may move a result by one bf16 step (or a tiny amount near zero) at most
    torch.testing.assert_close(y.detach(), reference, atol=1e-5, rtol=2 ** -7)
    torch.testing.assert_close(x.grad, reference_grad, atol=1e-5, rtol=2 ** -7)
    assert ("_Float32Matmul" in type(y.grad_fn).__name__) == (not has_amx)
    assert "_Float32Matmul" not in type(layer(x[:, :20]).grad_fn).__name__  # 60 rows: not worth converting
    layer.weight.requires_grad_(True)  # trainable weights keep the plain path, which computes their gradient
    layer(x).sum().backward()
    assert layer.weight.grad is not None


@pytest.mark.parametrize("has_amx", [False, True])
def test_training_attention_path_in_bf16(monkeypatch, has_amx):
    """bf16 inputs: computed in float32 and rounded once (in bf16 matmuls with AMX); gradients within bf16
    rounding of float32's."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: has_amx)
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, h, 33, 16).bfloat16().requires_grad_() for h in (6, 2, 2))
    ours = causal_attention_bmm(q, k, v)
    ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True,
                                                           enable_gqa=True)
    assert ours.dtype == torch.bfloat16
    torch.testing.assert_close(ours, ref.bfloat16(), rtol=2e-2, atol=2e-2)
    if not has_amx:  # one rounding of the float32 result: bit-equal but for the rare value at a rounding tie
        assert (ours != ref.bfloat16()).float().mean() < 0.01
    g = torch.randn_like(ours)
    grads = torch.autograd.grad(ours, (q, k, v), g)
    ref_grads = torch.autograd.grad(ref, (q, k, v), g.float())
    for ours_grad, ref_grad in zip(grads, ref_grads):
        assert ours_grad.dtype == torch.bfloat16
        torch.testing.assert_close(ours_grad.float(), ref_grad.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("block", [64, 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packed_training_forward_matches_the_padded_batch(monkeypatch, block, dtype):
    """Training selects output positions: only the tokens they depend on go through the layers (packed), and
    attention runs in query blocks. Logits and every gradient match the plain padded forward."""
    monkeypatch.setattr(_CausalAttentionCPU, "BLOCK", block)  # 5: several blocks, the last one partial
    model = optimize_for_training(random_model(LLAMA3_STYLE).to(dtype))
    idx = torch.randint(0, LLAMA3_STYLE["vocab_size"], (3, 23))
    selected = torch.zeros(3, 23, dtype=torch.bool)
    selected[0, 10:22] = True  # row 0 uses nearly all of its tokens
    selected[1, 4:9] = True  # row 1 ends early: its later tokens are padding to the packed path
    selected[2, [2, 6]] = True
    packed = model(idx, output_positions=selected)
    packed_grads = torch.autograd.grad(packed.float().square().sum(), list(model.parameters()))
    padded = model(idx)[selected]
    padded_grads = torch.autograd.grad(padded.float().square().sum(), list(model.parameters()))
    tolerance = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(packed, padded, **tolerance)
    for name, a, b in zip([n for n, _ in model.named_parameters()], packed_grads, padded_grads):
        torch.testing.assert_close(a.float(), b.float(), **tolerance, msg=lambda m, name=name: f"{name}: {m}")
