"""Faster, leaner fine-tuning: rewrite a built model for training, with the same parameters and the same numbers.

`optimize_for_training(model)` is the training counterpart of `fast_inference.optimize_for_decoding`: applied
to a built model (after LoRA injection and quantization, before `fabric.setup_module`), it gives the model,
its blocks, norms and frozen linears training subclasses of their classes. They add no parameters or buffers,
so state_dict keys, module names, LoRA and quantized layers, checkpoints and FSDP's wrapping by `Block` stay as
they were; `lit_sql.model` never sees any of this. What the rewrite adds:

- `forward(idx, output_positions=...)`: logits (N, V) of the selected positions only. Training selects the
  answer tokens, so the 49k-wide head runs on a fraction of the tokens and no (B, T, V) tensor of prompt
  logits is ever built; only the tokens these logits depend on go through the blocks, packed (`Packing`).
- Causal attention for CPU training as batched matmuls over blocks of queries, the probabilities recomputed in
  backward (`_CausalAttentionCPU`).
- Frozen bf16 linears multiplied in float32 on CPUs without AMX (`Float32MatmulLinear`).
- A hand-written RMSNorm backward (`_RMSNormFunction`).
- Activation checkpointing per block; by default on the CPU, within a memory budget
  (`TrainingGPT.activation_budget`).

Generation with a KV cache or a padding mask (the execution check between training steps) runs the model's
own path unchanged.
"""

from __future__ import annotations

import ctypes
import functools
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from lit_sql.model import GPT, Block, CausalSelfAttention, RMSNorm, apply_rope


def cpu_has_amx() -> bool:
    """AMX tiles: the only CPUs here on which torch's bf16 GEMM beats float32 (see `Float32MatmulLinear`).
    Also decides the default training precision (`lit_sql.training.default_precision`)."""
    return bool(torch.cpu._is_amx_tile_supported())


# Activations a CPU training forward keeps for backward, by default, before further blocks recompute theirs
# (see `TrainingGPT.activation_budget`).
ACTIVATION_BUDGET_GIB = 1.0


def optimize_for_training(model: GPT, activation_checkpointing: Optional[bool] = None) -> "TrainingGPT":
    """Rewrite `model` in place for training and return it (the same object, now a `TrainingGPT`).

    activation_checkpointing: True: every block recomputes its activations in backward instead of keeping
        them; False: none does; None: on the CPU, blocks keep theirs until `ACTIVATION_BUDGET_GIB` is reached
        and the rest recompute (none on other devices). See `TrainingGPT.activation_budget`.
    The output head keeps plain `nn.Linear` (it only sees the answer positions: too few rows for converting
    its (vocabulary, n_embd) weight to float32 to pay off). Calling it again only sets the checkpointing.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"optimize_for_training expects a lit_sql.model.GPT, got {type(model).__name__}")
    head = set(model.lm_head.modules())
    for module in model.modules():
        training_class = _TRAINING_CLASSES.get(type(module))
        if training_class is not None and module not in head:
            # A subclass that only overrides forward: every parameter, buffer, hook and name stays.
            module.__class__ = training_class
    if activation_checkpointing is None:
        on_cpu = model.wte.weight.device.type == "cpu"
        model.activation_budget = int(ACTIVATION_BUDGET_GIB * 2**30) if on_cpu else None
    else:
        model.activation_budget = 0 if activation_checkpointing else None
    return model


class TrainingGPT(GPT):
    """`GPT` with the training forward; made by `optimize_for_training`, never built directly."""

    # Bytes of activations a training forward keeps for backward. Blocks run in order, each keeping what
    # backward needs (measured as it runs: about 17 (N, n_embd)-sized tensors for LoRA on every linear layer);
    # once the next block would pass the budget, the rest keep only their input and recompute the others in
    # backward: one more forward of each such block, the same numbers. None: no block recomputes; 0: all do.
    # A forward that recomputes blocks also gives the heap's freed pages back to the OS (`_trim_heap`).
    activation_budget: Optional[int] = None

    def forward(self, idx: torch.Tensor, input_pos: Optional[int] = None,
                attention_mask: Optional[torch.Tensor] = None, last_only: bool = False,
                output_positions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """As `GPT.forward`, plus

        output_positions: (B, T) bool; return logits (N, V) of the selected positions only. Only the tokens
            these logits depend on are computed (see `Packing`): not the padding, not what follows a row's last
            selected position.
        """
        if input_pos is not None or attention_mask is not None or last_only:
            if output_positions is not None:
                raise ValueError("output_positions is for training: not with input_pos, attention_mask or last_only")
            return super().forward(idx, input_pos, attention_mask, last_only)
        self.check_length(idx.shape[1])
        packing = None
        if output_positions is not None and output_positions.any():
            packing = Packing.before_last(output_positions)
        x = self.wte(idx)  # (B, T, n_embd)
        T = idx.shape[1]
        if packing is not None:
            x, T = packing.pack(x), packing.shape[1]  # (N, n_embd)
        cos, sin = (t[:T].to(x.dtype) for t in self._rope(idx.device))  # (T, hs)
        budget = self.activation_budget if self.training and torch.is_grad_enabled() else None
        weights = {p.untyped_storage().data_ptr() for p in self.parameters()} if budget else set()
        kept = last = 0  # bytes kept by the blocks so far, and by the last of them
        recomputed = False
        for block in self.blocks:
            if budget is None:
                x = block(x, cos, sin, packing=packing)
            elif budget == 0 or kept + last > budget:
                x = torch.utils.checkpoint.checkpoint(block, x, cos, sin, packing=packing, use_reentrant=False)
                recomputed = True
            else:
                with _SavedBytes(weights) as saved:
                    x = block(x, cos, sin, packing=packing)
                kept, last = kept + saved.bytes, saved.bytes
        if recomputed:  # a forward this large also returns the heap memory its temporaries left free
            _trim_heap()
        if output_positions is not None:
            x = x[packing.pack(output_positions) if packing is not None else output_positions]  # (N, n_embd)
        return self.lm_head(self.norm(x))  # (B, T, vocab_size), or (N, vocab_size)


class _SavedBytes:
    """Counts the bytes autograd saves for backward inside `with` (each storage once; not the parameters)."""

    def __init__(self, weights: set[int]) -> None:
        self.weights = weights  # the data pointers of the parameters' storages
        self.storages: dict[int, int] = {}
        self.hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in self.weights:
            self.storages[storage.data_ptr()] = storage.nbytes()
        return t.detach()  # what autograd keeps; not the tensor itself, whose grad_fn would hold it in a cycle

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())

    def __enter__(self) -> "_SavedBytes":
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.hooks.__exit__(*exc)


def _trim_heap() -> None:
    """Give the pages of freed heap memory back to the OS (glibc's malloc_trim; a no-op without glibc).

    glibc serves allocations up to 32 MiB from its heap once it has seen one that size freed, and keeps the
    pages of freed blocks that sit between live ones: a forward's temporaries leave such holes among the
    activations it keeps. Measured on 8 x 512 tokens in float32 (LoRA on every linear layer of SmolLM2-135M):
    peak RSS 3.64 GiB without the trim, 3.15 with it, for a 1 GiB budget. The pages are faulted in again when
    reused (a fraction of a percent of such a step); a fixed mmap threshold instead (every large tensor on
    fresh pages) came to 2.8 GiB but 25-45% slower steps.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _libc() -> Optional[ctypes.CDLL]:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # glibc only
        return libc
    except (OSError, AttributeError):
        return None


class TrainingBlock(Block):
    """`Block` whose attention runs on packed tokens and through `causal_attention_bmm` when training on CPU."""

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, input_pos: Optional[int] = None,
                mask: Optional[torch.Tensor] = None, packing: Optional[Packing] = None) -> torch.Tensor:
        if input_pos is not None or mask is not None:
            return super().forward(x, cos, sin, input_pos, mask)
        # x: (B, T, n_embd), or (N, n_embd) when packed
        x = x + self_attention(self.attn, self.attn_norm(x), cos, sin, packing)
        return x + self.mlp(self.mlp_norm(x))


def self_attention(attn: CausalSelfAttention, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                   packing: Optional[Packing]) -> torch.Tensor:
    """`attn(x)` over whole sequences (no cache, no padding mask), packed or not; cos and sin: (T, hs)."""
    T = packing.shape[1] if packing is not None else x.shape[1]
    if not _use_cpu_training_attention(x, T):
        if packing is None:
            return attn(x, cos, sin)
        # q, k and v of the whole padded block: one copy of the input here instead of three of the outputs.
        return packing.pack(attn(packing.unpack(x), cos, sin))  # (N, n_embd)
    if packing is not None:
        # The kept tokens stay packed (no padding through the projections); attention unpacks them itself.
        q, k, v = attn.heads(x)  # (N, nh, hs), (N, n_kv, hs) x 2
        cos, sin = cos[packing.cols].unsqueeze(1), sin[packing.cols].unsqueeze(1)  # (N, 1, hs): by position
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return attn.o_proj(causal_attention_bmm(q, k, v, packing).flatten(1))  # (N, n_embd)
    B = x.shape[0]
    q, k, v = (t.transpose(1, 2) for t in attn.heads(x))  # (B, nh, T, hs), (B, n_kv, T, hs) x 2
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    return attn.o_proj(causal_attention_bmm(q, k, v).transpose(1, 2).reshape(B, T, -1))


def _use_cpu_training_attention(x: torch.Tensor, T: int) -> bool:
    """Whether causal self-attention over T positions goes through `causal_attention_bmm`: training on CPU.
    (Its query blocks keep its memory at O(BLOCK * T) a layer, so no length is too long for it.)"""
    return x.device.type == "cpu" and torch.is_grad_enabled() and T > 1


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


class Float32MatmulLinear(nn.Linear):
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


class TrainingRMSNorm(RMSNorm):
    """`RMSNorm` through `_RMSNormFunction`: the same numbers, a cheaper backward."""

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
      float32 rate (see `Float32MatmulLinear`). Only the output and the input gradients are rounded back.
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




# What `optimize_for_training` turns each (exact) class into.
_TRAINING_CLASSES: dict[type, type] = {GPT: TrainingGPT, Block: TrainingBlock, RMSNorm: TrainingRMSNorm,
                                       nn.Linear: Float32MatmulLinear}
