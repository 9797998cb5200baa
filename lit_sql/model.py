"""The Llama model in one file: RMSNorm, RoPE (with Llama-3.1 scaling), grouped-query attention, SwiGLU, KV cache.

Module names follow the Hugging Face layout (q_proj, gate_proj, ...) so that conversion, LoRA targets and
PEFT export map one to one.
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from lit_sql.config import Config


class GPT(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.n_embd, eps=config.norm_eps)
        # A plain nn.Linear: it only sees the answer positions in training, too few rows for converting its
        # (vocabulary, n_embd) weight to float32 to pay off (see `Linear`).
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        self._max_seq_length = config.block_size
        self.activation_checkpointing = False
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

    def forward(
        self,
        idx: torch.Tensor,
        input_pos: Optional[int] = None,
        attention_mask: Optional[torch.Tensor] = None,
        last_only: bool = False,
        output_positions: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Logits for `idx` (B, T).

        input_pos: with a KV cache, the cache slot of idx[:, 0]; positions input_pos .. input_pos+T-1 are
            written and attention sees every cached position before them. None = no cache, positions 0..T-1.
        attention_mask: (B, S) with 1 for real tokens and 0 for padding, covering every position seen so far
            (S = input_pos + T). Lets left-padded prompts of different lengths share one batch.
        last_only: return logits of the last position only (B, 1, V): generation needs nothing else.
        output_positions: (B, T) bool; return logits (N, V) of the selected positions only. Training selects
            the answer tokens: the 49k-wide head then runs on a fraction of the tokens, and no (B, T, V) tensor
            of prompt logits is ever built. Without cache or mask, only the tokens these logits depend on are
            computed (see `Packing`): not the padding, not what follows a row's last selected position.
        """
        B, T = idx.shape
        start = input_pos or 0
        if start + T > self._max_seq_length:
            raise ValueError(f"sequence of {start + T} tokens exceeds max_seq_length {self._max_seq_length}")
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
        packing = None
        if output_positions is not None and attention_mask is None and input_pos is None and output_positions.any():
            packing = Packing.before_last(output_positions)
        x = self.wte(idx)  # (B, T, n_embd)
        if packing is not None:
            x = packing.pack(x)  # (N, n_embd)
        # Rotate in the activations' dtype (as the reference implementation does): a float32 table would turn
        # every bf16 rotation into a float32 copy.
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        extra = {} if packing is None else {"packing": packing}  # only the training path knows about packing
        for block in self.blocks:
            if self.activation_checkpointing and self.training:
                # Recompute each block in backward instead of keeping its activations.
                x = torch.utils.checkpoint.checkpoint(block, x, cos, sin, input_pos, mask, use_reentrant=False,
                                                      **extra)
            else:
                x = block(x, cos, sin, input_pos, mask, **extra)
        if last_only:
            x = x[:, -1:]
        elif output_positions is not None:
            x = x[packing.pack(output_positions) if packing is not None else output_positions]  # (N, n_embd)
        return self.lm_head(self.norm(x))  # (B, T, vocab_size), or (N, vocab_size)


class Packing:
    """The tokens of a right-padded (B, T) batch that the selected outputs depend on, packed into (N, ...).

    Attention is causal, so a row's tokens after its last selected position (its padding, its final EOS) change
    no selected logit. Every layer but attention works token by token, so it runs on the N kept tokens only;
    attention unpacks them to (B, T') with zeros elsewhere (only ever at positions after a row's kept ones, so
    causal masking keeps them out of every kept token's result). With batches of mixed lengths this skips
    the padding's share of the compute.
    """

    def __init__(self, keep: torch.Tensor) -> None:
        self.shape = keep.shape  # (B, T')
        self.rows, self.cols = keep.nonzero(as_tuple=True)  # (N,) each, in row-major order

    @classmethod
    def before_last(cls, selected: torch.Tensor) -> "Packing":
        """Keep, in each row, every position up to its last selected one; trim columns no row needs."""
        keep = selected.flip(-1).cumsum(-1).flip(-1) > 0  # (B, T): at or before the row's last selected position
        width = int(keep.sum(-1).max()) if keep.numel() else 0
        return cls(keep[:, :width])

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) -> (N, ...)"""
        return x[self.rows, self.cols]

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> (B, T', ...), zeros where nothing was kept."""
        return x.new_zeros((*self.shape, *x.shape[1:])).index_put((self.rows, self.cols), x)


class Block(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.n_embd, eps=config.norm_eps)
        self.attn = CausalSelfAttention(config)
        self.mlp_norm = RMSNorm(config.n_embd, eps=config.norm_eps)
        self.mlp = LLaMAMLP(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, input_pos: Optional[int],
                mask: Optional[torch.Tensor], packing: Optional[Packing] = None) -> torch.Tensor:
        # x: (B, T, n_embd), or (N, n_embd) when packed
        x = x + self.attn(self.attn_norm(x), cos, sin, input_pos, mask, packing)
        return x + self.mlp(self.mlp_norm(x))


class CausalSelfAttention(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.n_head, self.n_kv, self.head_size = config.n_head, config.n_query_groups, config.head_size
        self.q_proj = Linear(config.n_embd, self.n_head * self.head_size, bias=False)
        self.k_proj = Linear(config.n_embd, self.n_kv * self.head_size, bias=False)
        self.v_proj = Linear(config.n_embd, self.n_kv * self.head_size, bias=False)
        self.o_proj = Linear(self.n_head * self.head_size, config.n_embd, bias=False)
        self.kv_cache: Optional[KVCache] = None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, input_pos: Optional[int],
                mask: Optional[torch.Tensor], packing: Optional[Packing] = None) -> torch.Tensor:
        if packing is not None and _use_cpu_training_attention(x, packing.shape[1]):
            # The kept tokens stay packed (no padding through the projections); attention unpacks them itself.
            q, k, v = self._heads(x)  # (N, nh, hs), (N, n_kv, hs) x 2
            cos, sin = cos[packing.cols].unsqueeze(1), sin[packing.cols].unsqueeze(1)  # (N, 1, hs): by position
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            return self.o_proj(causal_attention_bmm(q, k, v, packing).flatten(1))  # (N, n_embd)
        if packing is not None:
            # q, k and v of the whole padded block: one copy of the input here instead of three of the outputs.
            x = packing.unpack(x)  # (N, n_embd) -> (B, T, n_embd)
        B, T, _ = x.shape
        if packing is not None:
            cos, sin = cos[:T], sin[:T]
        q, k, v = (t.transpose(1, 2) for t in self._heads(x))  # (B, nh, T, hs), (B, n_kv, T, hs) x 2
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if input_pos is not None:
            if self.kv_cache is None:
                raise RuntimeError("input_pos was given but no KV cache is set: call model.set_kv_cache() first")
            k, v = self.kv_cache(input_pos, k, v)  # (B, n_kv, input_pos + T, hs)
        # SDPA's own GQA support avoids materialising repeated key/value heads.
        gqa = self.n_kv != self.n_head
        if mask is None and k.shape[2] == T and _use_cpu_training_attention(x, T):
            y = causal_attention_bmm(q, k, v)
        elif mask is None and k.shape[2] == T:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, enable_gqa=gqa)
        else:
            # mask None here means one decode step (T == 1): it may see the whole cache.
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        y = y.transpose(1, 2)  # (B, T, nh, hs)
        if packing is not None:
            return self.o_proj(packing.pack(y).flatten(1))  # (N, n_embd)
        return self.o_proj(y.reshape(B, T, self.n_head * self.head_size))

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v of x (..., n_embd), split into heads: (..., nh, hs), (..., n_kv, hs), (..., n_kv, hs)."""
        lead = x.shape[:-1]
        return (self.q_proj(x).view(*lead, self.n_head, self.head_size),
                self.k_proj(x).view(*lead, self.n_kv, self.head_size),
                self.v_proj(x).view(*lead, self.n_kv, self.head_size))


def _use_cpu_training_attention(x: torch.Tensor, T: int) -> bool:
    """Whether causal self-attention over T positions goes through `causal_attention_bmm`: training on CPU.
    (Its query blocks keep its memory at O(BLOCK * T) a layer, so no length is too long for it.)"""
    return x.device.type == "cpu" and torch.is_grad_enabled() and T > 1


class LLaMAMLP(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.gate_proj = Linear(config.n_embd, config.intermediate_size, bias=False)
        self.up_proj = Linear(config.n_embd, config.intermediate_size, bias=False)
        self.down_proj = Linear(config.intermediate_size, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Linear(nn.Linear):
    """nn.Linear, except that a frozen bfloat16 weight on a CPU without AMX is multiplied in float32.

    Without AMX tiles, torch's bf16 GEMM is the slow path: measured at half the float32 rate on a Xeon with
    AVX512-BF16 (150 against 300 GFLOP/s on 2 cores) and 1/7 of it on an AVX2 EPYC. Converting both operands to
    float32 is exact (a bf16 product fits a float32 mantissa) and a native bf16 GEMM accumulates in float32
    too, so the result is the same arithmetic, rounded to bf16 once at the end, in half the time: training
    steps 25% faster. Converting the weight costs about 1.3 ns an element, which the faster GEMM pays back
    from about 200 rows of x on: fewer rows (decoding) keep the plain path, and so do trainable weights (full
    fine-tuning), whose gradient it computes.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.dtype == torch.bfloat16 and x.device.type == "cpu" and self.bias is None
                and not self.weight.requires_grad and x.numel() >= _MIN_UPCAST_ROWS * x.shape[-1]
                and not cpu_has_amx()):
            return _Float32Matmul.apply(x, self.weight)
        return F.linear(x, self.weight, self.bias)


_MIN_UPCAST_ROWS = 256


def cpu_has_amx() -> bool:
    """AMX tiles: the only CPUs here on which torch's bf16 GEMM beats float32 (see `Linear`)."""
    return bool(torch.cpu._is_amx_tile_supported())


class _Float32Matmul(torch.autograd.Function):
    """y = x @ W.T computed in float32 for a frozen bf16 W; backward gives x's gradient only (W is frozen) and
    saves nothing beyond W itself."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weight)
        return (x.float() @ weight.float().t()).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (weight,) = ctx.saved_tensors
        return (grad.float() @ weight.float()).to(grad.dtype), None


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _RMSNormFunction.apply(x, self.weight, self.eps)


class _RMSNormFunction(torch.autograd.Function):
    """y = weight * round(x / rms(x)), normalised in float32 whatever the activation dtype (bf16 squares lose
    too much precision); the output keeps the activations' dtype, the weight may be float32 under mixed
    precision. Written out by hand, with every elementwise pass in one dtype (on CPU a mixed-dtype operation
    first copies its inputs to the common dtype): forward plus backward cost 40% less than autograd through
    the plain expression, and a training step runs sixty norms."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        xf = x.float()
        rstd = torch.linalg.vector_norm(xf, dim=-1, keepdim=True).square_().div_(x.shape[-1]).add_(eps).rsqrt_()
        ctx.save_for_backward(x, weight, rstd)
        return (xf * rstd).to(x.dtype).mul_(weight)  # rounded to x's dtype, then scaled (in float32 if the weight is)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, rstd = ctx.saved_tensors
        xf = x.float()
        grad_x = grad_w = None
        if ctx.needs_input_grad[1]:
            normed = (xf * rstd).to(x.dtype)
            grad_w = (grad * normed).flatten(0, -2).sum(0, dtype=torch.float32).to(weight.dtype)
        if ctx.needs_input_grad[0]:
            g = (grad * weight).float()  # the gradient of the normalised x (rounded like autograd's)
            # d/dx [x * rstd] applied to g: rstd * g - x * rstd^3 * mean(g * x)
            coef = torch.linalg.vecdot(g, xf).unsqueeze(-1).mul_(rstd.pow(3)).div_(x.shape[-1])
            grad_x = g.mul_(rstd).addcmul_(xf, coef, value=-1).to(x.dtype)
        return grad_x, grad_w, None


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


def causal_attention_bmm(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                         packing: Optional[Packing] = None) -> torch.Tensor:
    """Causal attention as batched matmuls, for training on CPU (see `_CausalAttentionCPU`).

    q: (B, nh, T, hs); k, v: (B, n_kv, T, hs) -> (B, nh, T, hs) in q's dtype, a transposed view of a contiguous
    (B, T, nh, hs) tensor (what the output projection reads). With `packing`, the kept tokens only:
    q: (N, nh, hs); k, v: (N, n_kv, hs) -> (N, nh, hs).
    """
    return _CausalAttentionCPU.apply(q, k, v, packing)


class _CausalAttentionCPU(torch.autograd.Function):
    """Causal attention for CPU training: batched matmuls over blocks of queries, probabilities recomputed in
    backward.

    - On CPU, the backward of SDPA's flash kernel is 2-3x slower than plain matmuls + softmax at training
      lengths (measured: 54 ms against 22 ms per layer for 8 x 230 tokens in bf16).
    - Plain matmuls through autograd keep each layer's (T, T) probabilities until backward (0.3 GB of a 1.5 GB
      step); here backward recomputes them from q and k, so a layer keeps nothing beyond q, k and v.
    - Queries go in blocks of `BLOCK` positions, each against the keys up to its end only: the score
      matrices skip most of the masked upper triangle (5/8 of the full work at four blocks).
    - bf16 inputs are computed in float32 unless the CPU has AMX: elsewhere a bf16 matmul runs at half the
      float32 rate (see `Linear`). Only the output and the input gradients are rounded back.
    - The query heads that share a key/value head are stacked along the rows, position-major ((t, head)
      order), so keys and values are never repeated and a block of positions is a contiguous block of rows.
    - Packed tokens are placed into that layout directly, zeros elsewhere: a zero key or value only ever sits
      after a row's last kept token (see `Packing`), where causal masking hides it from every kept query.
    - Autocast is off inside: the dtype is chosen here, as above.
    """

    BLOCK = 64

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, packing: Optional[Packing]) -> torch.Tensor:
        ctx.save_for_backward(q, k, v)
        ctx.packing = packing
        with torch.autocast("cpu", enabled=False):
            qs, ks, vs = _CausalAttentionCPU._stacked(ctx, q, k, v)
            group = qs.shape[1] // ks.shape[1]
            y = torch.empty_like(qs)  # (B*n_kv, T*group, hs)
            for start, end, probs in _CausalAttentionCPU._blocks(qs, ks, group):
                y[:, start * group:end * group] = torch.bmm(probs, vs[:, :end])
            return _unstack_heads(y, q.shape, q.dtype, packing)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        q, k, v = ctx.saved_tensors
        packing = ctx.packing
        with torch.autocast("cpu", enabled=False):
            qs, ks, vs, grads = _CausalAttentionCPU._stacked(ctx, q, k, v, grad)
            group = qs.shape[1] // ks.shape[1]
            scale = 1.0 / math.sqrt(q.shape[-1])
            grad_q, grad_k, grad_v = torch.empty_like(qs), torch.zeros_like(ks), torch.zeros_like(vs)
            for start, end, probs in _CausalAttentionCPU._blocks(qs, ks, group):
                rows = slice(start * group, end * group)
                # Accumulated with add_: an in-place matmul into these strided slices runs a GEMM per batch entry.
                grad_v[:, :end].add_(torch.bmm(probs.transpose(1, 2), grads[:, rows]))
                grad_probs = torch.bmm(grads[:, rows], vs[:, :end].transpose(1, 2))
                # Through softmax, p * (g - sum(g * p)); then through the scaling of the scores.
                grad_scores = torch._softmax_backward_data(grad_probs, probs, -1, probs.dtype).mul_(scale)
                grad_q[:, rows] = torch.bmm(grad_scores, ks[:, :end])
                grad_k[:, :end].add_(torch.bmm(grad_scores.transpose(1, 2), qs[:, rows]))
            return (_unstack_heads(grad_q, q.shape, q.dtype, packing),
                    _unstack_heads(grad_k, k.shape, k.dtype, packing),
                    _unstack_heads(grad_v, v.shape, v.dtype, packing), None)

    @staticmethod
    def _stacked(ctx, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """q, k, v (and grad) in the stacked layout and compute dtype; k is the second."""
        dtype = tensors[0].dtype
        if dtype != torch.float32 and not (dtype == torch.bfloat16 and cpu_has_amx()):
            dtype = torch.float32
        n_kv = tensors[1].shape[-2] if ctx.packing is not None else tensors[1].shape[1]
        return [_stack_heads(t, n_kv, ctx.packing, dtype) for t in tensors]

    @staticmethod
    def _blocks(q: torch.Tensor, k: torch.Tensor, group: int):
        """(start, end, probabilities) for each block of query positions [start, end): the softmax of the
        scaled scores against keys [0, end), (B*n_kv, (end-start)*group, end)."""
        T, hs = k.shape[1], k.shape[2]
        bias = _causal_bias(T, group, q.dtype, q.device)  # (T*group, T)
        for start in range(0, T, _CausalAttentionCPU.BLOCK):
            end = min(start + _CausalAttentionCPU.BLOCK, T)
            rows = slice(start * group, end * group)
            scores = torch.baddbmm(bias[None, rows, :end], q[:, rows], k[:, :end].transpose(1, 2),
                                   alpha=1.0 / math.sqrt(hs))
            yield start, end, scores.softmax(dim=-1)


def _stack_heads(x: torch.Tensor, n_kv: int, packing: Optional[Packing], dtype: torch.dtype) -> torch.Tensor:
    """(B, h, T, hs) with any strides, or packed (N, h, hs) -> `dtype` (B*n_kv, T*(h/n_kv), hs) with the rows in
    (position, head) order, in one copy (h: nh query heads or n_kv key/value heads). A transposed view's
    `.to(dtype)` would keep its strides and need a second copy to reshape, 20x slower."""
    if packing is None:
        B, h, T, hs = x.shape
        stacked = torch.empty(B, n_kv, T, h // n_kv, hs, dtype=dtype, device=x.device)
        stacked.copy_(x.view(B, n_kv, h // n_kv, T, hs).transpose(2, 3))
    else:
        (B, T), (N, h, hs) = packing.shape, x.shape
        stacked = torch.zeros(B, n_kv, T, h // n_kv, hs, dtype=dtype, device=x.device)
        stacked[packing.rows, :, packing.cols] = x.to(dtype).view(N, n_kv, h // n_kv, hs)
    return stacked.view(B * n_kv, T * (h // n_kv), hs)


def _unstack_heads(x: torch.Tensor, shape: torch.Size, dtype: torch.dtype, packing: Optional[Packing]) -> torch.Tensor:
    """The inverse of `_stack_heads`, to `dtype`: (N, h, hs) packed, else (B, h, T, hs) as a transposed view of
    a contiguous (B, T, h, hs) tensor."""
    if packing is not None:
        (B, T), (N, h, hs) = packing.shape, shape
        n_kv = x.shape[0] // B
        return x.view(B, n_kv, T, h // n_kv, hs)[packing.rows, :, packing.cols].view(N, h, hs).to(dtype)
    B, h, T, hs = shape
    n_kv = x.shape[0] // B
    out = torch.empty(B, T, n_kv, h // n_kv, hs, dtype=dtype, device=x.device)
    out.copy_(x.view(B, n_kv, T, h // n_kv, hs).permute(0, 2, 1, 3, 4))
    return out.view(B, T, h, hs).transpose(1, 2)


@functools.lru_cache(maxsize=8)
def _causal_bias(T: int, group: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(T*group, T): 0 where a query may see the key, -inf where the key is in its future, with the rows in
    (position, head) order for `group` query heads; built once per length, not once per layer."""
    future = torch.full((T, T), float("-inf"), dtype=dtype, device=device).triu(1)
    return future.repeat_interleave(group, dim=0)


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
