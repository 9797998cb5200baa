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
