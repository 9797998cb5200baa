"""The model against Hugging Face's LlamaForCausalLM with the same weights, plus RoPE and KV-cache behaviour."""

from __future__ import annotations

import pytest
import torch

from lit_sql.checkpoint import hf_config_dict, to_hf_state_dict
from lit_sql.config import Config
from lit_sql.model import GPT, build_rope_cache

LLAMA2_STYLE = dict(name="tiny-llama2", block_size=64, vocab_size=97, n_layer=2, n_head=4, n_embd=32,
                    intermediate_size=88, rope_base=10000.0, norm_eps=1e-5, tie_embeddings=False)
# Llama-3.2 style: grouped-query attention, llama3 RoPE scaling (original length small enough that the
# scaled, kept and interpolated frequency bands all occur at head_size 16), tied embeddings.
LLAMA3_STYLE = dict(name="tiny-llama3", block_size=128, vocab_size=101, n_layer=3, n_head=4, n_query_groups=2,
                    n_embd=64, head_size=16, intermediate_size=96, rope_base=500000.0, norm_eps=1e-5,
                    tie_embeddings=True,
                    rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                  "original_max_seq_len": 32.0})


def hf_twin(model: GPT):
    """A transformers LlamaForCausalLM holding exactly the weights of `model`."""
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.LlamaConfig(**hf_config_dict(model.config))
    hf_config._attn_implementation = "eager"
    hf = transformers.LlamaForCausalLM(hf_config)
    missing, unexpected = hf.load_state_dict(to_hf_state_dict(model.state_dict(), model.config), strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}
    if model.config.tie_embeddings:
        hf.tie_weights()
    return hf.eval()


def random_model(kwargs: dict, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(Config(**kwargs))
    model.reset_parameters()
    # Norm weights away from 1 so that a missing or misplaced norm would show.
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.data.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("kwargs", [LLAMA2_STYLE, LLAMA3_STYLE], ids=["llama2-style", "llama3-style"])
def test_logits_match_transformers(kwargs):
    model = random_model(kwargs)
    hf = hf_twin(model)
    idx = torch.randint(0, kwargs["vocab_size"], (2, 40))
    with torch.no_grad():
        expected = hf(idx).logits
        assert (model(idx) - expected).abs().max() < 1e-4

        # The same logits step by step through the KV cache: a prefill, then one token at a time.
        model.set_kv_cache(batch_size=2, max_seq_length=40)
        chunks = [model(idx[:, :25], input_pos=0)]
        for t in range(25, 40):
            chunks.append(model(idx[:, t:t + 1], input_pos=t))
        assert (torch.cat(chunks, dim=1) - expected).abs().max() < 1e-4

        # A chunked prefill (several tokens after a cached prefix) needs the causal offset mask.
        model.set_kv_cache(batch_size=2, max_seq_length=40)
        first = model(idx[:, :10], input_pos=0)
        rest = model(idx[:, 10:], input_pos=10)
        assert (torch.cat([first, rest], dim=1) - expected).abs().max() < 1e-4


def test_left_padded_batch_equals_unpadded_rows():
    model = random_model(LLAMA3_STYLE)
    lengths = [12, 7, 3]
    rows = [torch.randint(0, 101, (n,)) for n in lengths]
    T = max(lengths)
    idx = torch.zeros(len(rows), T, dtype=torch.long)
    mask = torch.zeros(len(rows), T + 2, dtype=torch.long)
    for i, r in enumerate(rows):
        idx[i, T - len(r):] = r
        mask[i, T - len(r):] = 1
    nxt = torch.randint(0, 101, (len(rows), 2))
    with torch.no_grad():
        model.set_kv_cache(len(rows), T + 2)
        batched = model(idx, input_pos=0, attention_mask=mask[:, :T])
        step1 = model(nxt[:, :1], input_pos=T, attention_mask=mask[:, :T + 1])
        step2 = model(nxt[:, 1:], input_pos=T + 1, attention_mask=mask[:, :T + 2])
        for i, r in enumerate(rows):
            model.clear_kv_cache()
            full = model(torch.cat([r, nxt[i]])[None])
            n = len(r)
            assert (batched[i, T - n:] - full[0, :n]).abs().max() < 1e-4
            assert (step1[i, 0] - full[0, n]).abs().max() < 1e-4
            assert (step2[i, 0] - full[0, n + 1]).abs().max() < 1e-4


def test_rope_scaling_changes_only_low_frequencies():
    _, plain = build_rope_cache(64, 16, 500000.0, None)
    _, scaled = build_rope_cache(64, 16, 500000.0, LLAMA3_STYLE["rope_scaling"])
    # The fastest frequency (index 0) is kept; the slowest (index 7) turns 8x slower.
    assert torch.equal(plain[:, 0], scaled[:, 0])
    assert torch.allclose(plain[:, 7] / 8, scaled[:, 7], rtol=1e-3, atol=0)


def test_sequence_longer_than_max_seq_length_is_refused():
    model = random_model(LLAMA2_STYLE)
    model.max_seq_length = 16
    with pytest.raises(ValueError, match="max_seq_length"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="context"):
        model.max_seq_length = 65


@pytest.mark.parametrize("block", [64, 5])
def test_training_attention_path_matches_sdpa(monkeypatch, block):
    """The bmm attention used for CPU training gives SDPA's values and gradients, in one query block or several."""
    from lit_sql.model import _CausalAttentionCPU, causal_attention_bmm

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
    model = random_model(LLAMA3_STYLE)
    hf = hf_twin(model)
    idx = torch.randint(0, LLAMA3_STYLE["vocab_size"], (2, 30))
    ours = model(idx)  # grad enabled: the training attention path
    with torch.no_grad():
        assert (ours - hf(idx).logits).abs().max() < 1e-4


@pytest.mark.parametrize("has_amx", [False, True])
def test_frozen_bf16_linear_matches_a_float32_accumulating_gemm(monkeypatch, has_amx):
    """Without AMX a frozen bf16 Linear multiplies in float32 (faster there); its output and input gradient
    are the float32-accumulated product rounded once to bf16, as a native bf16 GEMM's would be."""
    import lit_sql.model as model

    monkeypatch.setattr(model, "cpu_has_amx", lambda: has_amx)
    torch.manual_seed(0)
    layer = model.Linear(64, 48, bias=False).to(torch.bfloat16).requires_grad_(False)
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
    from lit_sql.model import causal_attention_bmm

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
    from lit_sql.model import _CausalAttentionCPU

    monkeypatch.setattr(_CausalAttentionCPU, "BLOCK", block)  # 5: several blocks, the last one partial
    model = random_model(LLAMA3_STYLE).to(dtype)
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
