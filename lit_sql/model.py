"""The Llama model in one file: Config -> GPT -> Block -> CausalSelfAttention -> LLaMAMLP, RoPE (with Llama-3.1
scaling), KV cache.

Module names follow the Hugging Face layout (q_proj, gate_proj, ...) so that conversion, LoRA targets and
PEFT export map one to one. Speed-ups live outside this file and rewrite a built model without changing its
parameters: `lit_sql.fast_inference.optimize_for_decoding` for generation, `lit_sql.fast_training.
optimize_for_training` for fine-tuning (packed answer-only logits, CPU attention, activation checkpointing).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from lit_sql.config import Config


class GPT(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.n_embd, eps=config.norm_eps)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        self._max_seq_length = config.block_size
        # Plain attributes, not buffers: built on first use on the input's device (never on the meta device).
        self._rope_cache: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    # The RoPE tables are built lazily for the length actually used: a 128k-context config would otherwise
    # spend memory on positions nobody reaches.
    @property
    def max_seq_length(self) -> int:
        return self._max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        if value > self.config.block_size:
            raise ValueError(f"max_seq_length {value} exceeds the model's context ({self.config.block_size} tokens)")
        self._max_seq_length = value
        self._rope_cache = None

    def _rope(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self._rope_cache is None or self._rope_cache[0].device != device:
            # Never an inference tensor, even when generation (under inference_mode) builds the table: training
            # (the execution check runs between steps) saves it for backward.
            with torch.inference_mode(False):
                self._rope_cache = build_rope_cache(self._max_seq_length, self.config.head_size,
                                                    self.config.rope_base, self.config.rope_scaling, device)
        return self._rope_cache

    def reset_parameters(self) -> None:
        """Random init for tiny test models (real models load weights)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)

    def set_kv_cache(self, batch_size: int, max_seq_length: Optional[int] = None,
                     device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None) -> None:
        max_seq_length = max_seq_length or self._max_seq_length
        device = device or self.wte.weight.device
        dtype = dtype or self.wte.weight.dtype
        for block in self.blocks:
            block.attn.kv_cache = KVCache(batch_size, self.config.n_query_groups, max_seq_length,
                                          self.config.head_size, device, dtype)

    def keep_kv_cache_rows(self, rows: torch.Tensor, length: int) -> None:
        """Shrink the cached batch to `rows` (see `KVCache.keep_rows`); later calls pass only those rows."""
        for block in self.blocks:
            block.attn.kv_cache.keep_rows(rows, length)

    def clear_kv_cache(self) -> None:
        for block in self.blocks:
            block.attn.kv_cache = None

    def forward(self, idx: torch.Tensor, input_pos: Optional[int] = None,
                attention_mask: Optional[torch.Tensor] = None, last_only: bool = False) -> torch.Tensor:
        """Logits (B, T, vocab_size) for `idx` (B, T).

        input_pos: with a KV cache, the cache slot of idx[:, 0]; positions input_pos .. input_pos+T-1 are
            written and attention sees every cached position before them. None = no cache, positions 0..T-1.
        attention_mask: (B, S) with 1 for real tokens and 0 for padding, covering every position seen so far
            (S = input_pos + T). Lets left-padded prompts of different lengths share one batch.
        last_only: return logits of the last position only (B, 1, V): generation needs nothing else.
        """
        B, T = idx.shape
        start = input_pos or 0
        self.check_length(start + T)
        cos, sin = self._rope(idx.device)
        mask = None
        if attention_mask is not None:
            attention_mask = attention_mask.bool()
            # Rotary positions count real tokens only, so a left-padded row sees the same positions as unpadded.
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, start:start + T]  # (B, T)
            cos, sin = cos[positions].unsqueeze(1), sin[positions].unsqueeze(1)  # (B, 1, T, hs)
            causal = torch.ones(T, start + T, dtype=torch.bool, device=idx.device).tril(diagonal=start)
            mask = causal[None, None] & attention_mask[:, None, None, : start + T]  # (B, 1, T, S)
            # A fully padded query row would give NaN in softmax; let pad queries see themselves (their output
            # is never used).
            own_slot = torch.arange(start + T, device=idx.device)[None, :] == torch.arange(start, start + T, device=idx.device)[:, None]
            mask = mask | own_slot[None, None]
        else:
            cos, sin = cos[start:start + T], sin[start:start + T]  # (T, hs)
            if input_pos is not None and T > 1 and start > 0:
                mask = torch.ones(T, start + T, dtype=torch.bool, device=idx.device).tril(diagonal=start)
        x = self.wte(idx)  # (B, T, n_embd)
        # Rotate in the activations' dtype (as the reference implementation does): a float32 table would turn
        # every bf16 rotation into a float32 copy.
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        for block in self.blocks:
            x = block(x, cos, sin, input_pos, mask)
        if last_only:
            x = x[:, -1:]
        return self.lm_head(self.norm(x))  # (B, T, vocab_size)

    def check_length(self, length: int) -> None:
        if length > self._max_seq_length:
            raise ValueError(f"sequence of {length} tokens exceeds max_seq_length {self._max_seq_length}")


class Block(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.n_embd, eps=config.norm_eps)
        self.attn = CausalSelfAttention(config)
        self.mlp_norm = RMSNorm(config.n_embd, eps=config.norm_eps)
        self.mlp = LLaMAMLP(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, input_pos: Optional[int] = None,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, input_pos, mask)  # (B, T, n_embd)
        return x + self.mlp(self.mlp_norm(x))


class CausalSelfAttention(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.n_head, self.n_kv, self.head_size = config.n_head, config.n_query_groups, config.head_size
        self.q_proj = nn.Linear(config.n_embd, self.n_head * self.head_size, bias=False)
        self.k_proj = nn.Linear(config.n_embd, self.n_kv * self.head_size, bias=False)
        self.v_proj = nn.Linear(config.n_embd, self.n_kv * self.head_size, bias=False)
        self.o_proj = nn.Linear(self.n_head * self.head_size, config.n_embd, bias=False)
        self.kv_cache: Optional[KVCache] = None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, input_pos: Optional[int] = None,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = (t.transpose(1, 2) for t in self.heads(x))  # (B, nh, T, hs), (B, n_kv, T, hs) x 2
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if input_pos is not None:
            if self.kv_cache is None:
                raise RuntimeError("input_pos was given but no KV cache is set: call model.set_kv_cache() first")
            k, v = self.kv_cache(input_pos, k, v)  # (B, n_kv, input_pos + T, hs)
        # SDPA's own GQA support avoids materialising repeated key/value heads.
        gqa = self.n_kv != self.n_head
        if mask is None and k.shape[2] == T:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, enable_gqa=gqa)
        else:
            # mask None here means one decode step (T == 1): it may see the whole cache.
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_head * self.head_size))

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v of x (..., n_embd), split into heads: (..., nh, hs), (..., n_kv, hs), (..., n_kv, hs)."""
        lead = x.shape[:-1]
        return (self.q_proj(x).view(*lead, self.n_head, self.head_size),
                self.k_proj(x).view(*lead, self.n_kv, self.head_size),
                self.v_proj(x).view(*lead, self.n_kv, self.head_size))


class LLaMAMLP(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.n_embd, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.n_embd, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class RMSNorm(nn.Module):
    """weight * round(x / rms(x)): normalised in float32 whatever the activations' dtype (bf16 squares lose too
    much precision), rounded back to it, then scaled (in float32 if the weight is, under mixed precision)."""

    def __init__(self, size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        normed = (xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + self.eps)).to(x.dtype)
        return (normed * self.weight).to(x.dtype)  # x's dtype even with a float32 weight (mixed precision)


class KVCache(nn.Module):
    """Preallocated keys and values: one decode step writes one slot instead of concatenating tensors."""

    def __init__(self, batch_size: int, n_kv: int, max_seq_length: int, head_size: int,
                 device: torch.device, dtype: torch.dtype) -> None:
        super().__init__()
        shape = (batch_size, n_kv, max_seq_length, head_size)
        self.register_buffer("k", torch.zeros(shape, device=device, dtype=dtype), persistent=False)
        self.register_buffer("v", torch.zeros(shape, device=device, dtype=dtype), persistent=False)

    def forward(self, input_pos: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, _, T, _ = k.shape
        end = input_pos + T
        if end > self.k.shape[2]:
            raise ValueError(f"KV cache holds {self.k.shape[2]} positions; {end} were asked for")
        self.k[:B, :, input_pos:end] = k
        self.v[:B, :, input_pos:end] = v
        return self.k[:B, :, :end], self.v[:B, :, :end]

    def keep_rows(self, rows: torch.Tensor, length: int) -> None:
        """Move batch rows `rows` (their first `length` positions) to the front, in that order: the batch
        shrinks to them, as when some sequences of a batch are finished."""
        self.k[: len(rows), :, :length] = self.k[rows, :, :length]
        self.v[: len(rows), :, :length] = self.v[rows, :, :length]


def build_rope_cache(seq_len: int, n_elem: int, base: float, scaling: Optional[dict[str, float]],
                     device: Optional[torch.device] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables (seq_len, n_elem) in the rotate-half layout Hugging Face checkpoints use."""
    inv_freq = 1.0 / (base ** (torch.arange(0, n_elem, 2, device=device, dtype=torch.float32) / n_elem))
    if scaling is not None:
        inv_freq = llama3_scale_frequencies(inv_freq, **scaling)
    positions = torch.arange(seq_len, device=device, dtype=torch.float32)
    angles = torch.outer(positions, inv_freq)  # (seq_len, n_elem / 2)
    angles = torch.cat((angles, angles), dim=-1)  # (seq_len, n_elem)
    return angles.cos(), angles.sin()


def llama3_scale_frequencies(inv_freq: torch.Tensor, factor: float, low_freq_factor: float,
                             high_freq_factor: float, original_max_seq_len: float) -> torch.Tensor:
    """Llama 3.1's long-context RoPE: slow frequencies are divided by `factor`, fast ones kept, and the band
    between them interpolated smoothly."""
    wavelength = 2 * math.pi / inv_freq
    low_freq_wavelength = original_max_seq_len / low_freq_factor  # longer waves than this get scaled fully
    high_freq_wavelength = original_max_seq_len / high_freq_factor  # shorter waves than this stay as they are
    smooth = (original_max_seq_len / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)
    interpolated = (1 - smooth) * inv_freq / factor + smooth * inv_freq
    scaled = torch.where(wavelength > low_freq_wavelength, inv_freq / factor, inv_freq)
    in_band = (wavelength >= high_freq_wavelength) & (wavelength <= low_freq_wavelength)
    return torch.where(in_band, interpolated, scaled)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, nh, T, hs) by the position angles (cos and sin in x's dtype).

    x * cos + rotate_half(x) * sin, where rotate_half(x) = (-x2, x1): written as a roll of x by half a head
    times sin with its first half negated, three operations forward and four backward (the slices, negation
    and concatenation of the textbook form cost twice that in a training step).
    """
    half = x.shape[-1] // 2
    signed_sin = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)  # a (T, hs) table: cheap
    return torch.addcmul(x * cos, x.roll(half, dims=-1), signed_sin)
