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
    # d sum(x W^T) / dW: every row of the gradient is the sum of the 600 input rows
    expected = x.detach().double().reshape(-1, 64).sum(0).expand(48, 64).to(torch.bfloat16)
    torch.testing.assert_close(layer.weight.grad, expected, atol=1e-5, rtol=2 ** -7)


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


def lora_model(dtype: torch.dtype = torch.float32):
    """A tiny model with LoRA on every linear layer and nonzero B (a fresh adapter would hide the update)."""
    from lit_sql.lora import LoRAConfig, inject_lora

    model = random_model(LLAMA3_STYLE)
    inject_lora(model, LoRAConfig(r=4, alpha=8, targets="all-linear"))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.05)
    return model.to(dtype).train()


def grads_of(model, idx, selected=None):
    out = model(idx) if selected is None else model(idx, output_positions=selected)
    params = [p for p in model.parameters() if p.requires_grad]
    return out, torch.autograd.grad(out.float().square().sum(), params)


def test_the_rewrite_keeps_names_logits_and_gradients():
    import copy

    plain = lora_model()
    optimized = optimize_for_training(copy.deepcopy(plain))
    assert optimized.state_dict().keys() == plain.state_dict().keys()
    assert [n for n, _ in optimized.named_modules()] == [n for n, _ in plain.named_modules()]
    assert type(optimized.blocks[0].mlp.down_proj.base) is fast_training.Float32MatmulLinear
    assert type(optimized.lm_head) is torch.nn.Linear  # the head keeps the plain layer
    idx = torch.randint(0, LLAMA3_STYLE["vocab_size"], (2, 21))
    ours, our_grads = grads_of(optimized, idx)
    ref, ref_grads = grads_of(plain, idx)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
    for a, b in zip(our_grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # Generation (the execution check between steps) runs the model's own path on the rewritten model.
    with torch.no_grad():
        for model in (plain, optimized):
            model.set_kv_cache(batch_size=2, max_seq_length=21)
        torch.testing.assert_close(optimized(idx, input_pos=0, last_only=True), plain(idx, input_pos=0, last_only=True))
    with pytest.raises(ValueError, match="output_positions"):
        optimized(idx, input_pos=0, output_positions=torch.ones_like(idx, dtype=torch.bool))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_activation_checkpointing_gives_the_same_gradients(dtype):
    """Recomputing blocks in backward (all of them, or all but the first) changes nothing, in the packed path."""
    model = optimize_for_training(lora_model(dtype))
    idx = torch.randint(0, LLAMA3_STYLE["vocab_size"], (3, 19))
    selected = torch.zeros(3, 19, dtype=torch.bool)
    selected[0, 5:18], selected[1, 2:7], selected[2, 9] = True, True, True
    assert model.activation_budget == fast_training.ACTIVATION_BUDGET_GIB * 2**30  # the CPU's default
    model.activation_budget = None  # every block keeps them
    kept, kept_grads = grads_of(model, idx, selected)
    for budget in (0, 1):  # every block recomputes; the first keeps its activations, the others recompute
        model.activation_budget = budget
        recomputed, recomputed_grads = grads_of(model, idx, selected)
        assert torch.equal(recomputed, kept)
        assert all(torch.equal(a, b) for a, b in zip(recomputed_grads, kept_grads))


def test_blocks_keep_their_activations_until_the_budget(monkeypatch):
    """Blocks keep what backward needs until the next one would pass the budget; the rest recompute."""
    import torch.utils.checkpoint

    model = optimize_for_training(lora_model())
    idx = torch.randint(0, LLAMA3_STYLE["vocab_size"], (2, 24))
    x = model.wte(idx)
    cos, sin = (t[:24] for t in model._rope(idx.device))
    with fast_training._SavedBytes({p.untyped_storage().data_ptr() for p in model.parameters()}) as saved:
        model.blocks[0](x, cos, sin)
    per_block = saved.bytes
    assert per_block >= 10 * x.numel() * x.element_size()  # much more than the block's input
    recomputed = []
    checkpoint = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", lambda block, *a, **k: recomputed.append(block) or
                        checkpoint(block, *a, **k))
    n = LLAMA3_STYLE["n_layer"]
    for budget, expected in ((None, 0), (0, n), (1, n - 1), (int(2.5 * per_block), n - 2), (10 * per_block, 0)):
        model.activation_budget, recomputed[:] = budget, []
        model(idx).sum().backward()
        assert len(recomputed) == expected, budget
        assert recomputed == list(model.blocks)[n - expected:]  # the last blocks recompute
    with torch.no_grad():  # validation keeps nothing for backward: nothing to recompute
        model.activation_budget, recomputed[:] = 0, []
        model(idx)
        assert not recomputed
