"""Faster decoding on CPU: rewrite a loaded float32 model for inference, same `forward` contract, same numbers.

At batch 1, decoding one token reads every weight once (540 MB in float32 for SmolLM2-135M) and launches
~1,200 small ops: the matmuls are memory-bound and the rest is per-op overhead. `optimize_for_decoding`
cuts both without changing what the model computes:

- q/k/v become one matmul and gate/up another (weights concatenated once); the RMSNorm before them, SwiGLU
  and the residual adds run inside the matmul calls; RoPE rotates q and k together as complex numbers;
  one-token attention over the cache is one call for all heads.
- Exact compressed weights: a checkpoint converted from a GGUF file holds dequantized values, and every
  32-weight block of a row is then exactly `d * q + m` (Q4_1: q in 0..15, d and m float16) or `d * q`
  (Q8_0: q in -127..127). Such matrices are also stored in that form (5-8.5 bits a weight instead of 32: a
  decode step reads ~5x fewer bytes) and multiplied by a small AVX2/AVX-512 kernel (`lit_sql/kernels/decode.c`,
  compiled once with the system's C compiler into ~/.cache/lit_sql) that rebuilds each weight bit for bit in
  float32 and accumulates in float32: only the summation order differs from `x @ W.T` (logits within ~1e-5, greedy
  tokens the same). A prompt (more than 16 rows) is compute-bound: it uses the BLAS GEMM on the float32
  weights, which are kept for it.
- A fine-tuned LoRA adapter (unmerged `LoRALinear` layers) stays a separate low-rank update beside such
  compressed weights; where the base is not compressed it is merged into the float32 weight.
- Everything else (weights not exactly on such a grid, a CPU without AVX2, no C compiler) keeps float32
  weights, stored transposed: `x @ w_t` is the faster GEMM layout at one row.

Only for evaluation models: the result has no separate q/k/v/gate/up parameters and no gradients. Blocks
whose projections are not float32 `nn.Linear` (plain or LoRA-wrapped) on the CPU (quantized, bf16, CUDA) are
left as they are and keep working.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from lit_sql.lora import LoRALinear
from lit_sql.model import GPT, Block, KVCache, RMSNorm

_kernels: Optional[ctypes.CDLL] = None
_kernels_error: Optional[str] = None
# Above this many rows (a prompt), the BLAS GEMM on float32 weights is faster.
_KERNEL_MAX_ROWS = 16
# torch's name for the CPU's vector instructions -> the compiler flags the kernels are built with.
_ISA_FLAGS = {"AVX2": ["-mavx2"], "AVX512": ["-mavx512f"], "AVX512_BF16": ["-mavx512f"], "AMX": ["-mavx512f"]}
# The kernels' other compiler flags. fp-contract=fast lets the dot products use fused multiply-adds; the weights
# stay exact either way (see `block` in decode.c), and nothing else there multiplies and adds in one expression.
_CFLAGS = ["-x", "c", "-O3", "-mfma", "-mf16c", "-ffp-contract=fast", "-Wno-psabi", "-fopenmp"]


def exact_kernels() -> Optional[ctypes.CDLL]:
    """The compiled kernels, or None when this machine cannot have them (the reason is printed once).

    Compiled once per source version into $LIT_SQL_CACHE (default ~/.cache/lit_sql), in about a second.
    """
    global _kernels, _kernels_error
    if _kernels is not None or _kernels_error is not None:
        return _kernels
    capability = torch.backends.cpu.get_cpu_capability()
    cache = Path(os.environ.get("LIT_SQL_CACHE", Path.home() / ".cache" / "lit_sql")) / "kernels"
    isa_flags = _ISA_FLAGS.get(capability)
    if isa_flags is None:
        _kernels_error = f"the CPU lacks AVX2 and AVX-512 (torch reports {capability})"
    else:
        try:
            source = kernel_source()
            # named after the source's hash (a new version compiles anew) and the CPU (a cache shared by several)
            lib_path = cache / f"exact_mm-{hashlib.sha256(source.encode()).hexdigest()[:16]}-{capability.lower()}.so"
            if not lib_path.is_file():
                _compile(source, lib_path, isa_flags)
            _kernels = ctypes.CDLL(str(lib_path))
        except (OSError, subprocess.CalledProcessError) as e:
            detail = (getattr(e, "stderr", None) or str(e)).strip()
            _kernels_error = f"compiling them into {cache} failed: {detail[:300]}"
    if _kernels is None:
        print(f"note: lit_sql's decoding kernels are not available ({_kernels_error}); weights stay float32, "
              f"decoding is slower (set CC to a C compiler or LIT_SQL_CACHE to a writable folder)", file=sys.stderr)
        return None
    i64, ptr, i32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    _kernels.exact_mm.argtypes = [ptr, i64, i64, ptr, ptr, ptr, i64, ptr, ctypes.c_float, ptr, ptr, i64, ptr, i32,
                                  ptr, i32]
    _kernels.exact_mm.restype = None
    _kernels.pack.argtypes = [ptr, i64, i64, ptr, ptr, ptr, i32]
    _kernels.pack.restype = i32
    _kernels.decode_attention.argtypes = [ptr, i64, ptr, ptr, i64, i64, i64, i64, i64, i64, ptr, ptr, i32]
    _kernels.decode_attention.restype = None
    return _kernels


def kernel_source() -> str:
    """The kernels' C source, `lit_sql/kernels/decode.c` (package data: a wheel carries it)."""
    return (resources.files("lit_sql") / "kernels" / "decode.c").read_text(encoding="utf-8")


def _compile(source: str, lib_path: Path, isa_flags: list[str]) -> None:
    """Build `source` into `lib_path`. The text compiled is the text hashed into its name, even should the
    package's file change meanwhile."""
    lib_path.parent.mkdir(parents=True, exist_ok=True)
    src = lib_path.with_name(f"{lib_path.stem}.{os.getpid()}.c")  # per process: concurrent first runs are safe
    tmp = src.with_suffix(".so.tmp")
    try:
        src.write_text(source)
        cmd = [os.environ.get("CC", "cc"), *_CFLAGS, *isa_flags, "-shared", "-fPIC", str(src), "-o", str(tmp)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        os.replace(tmp, lib_path)  # atomic: no process ever loads a half-written file
    finally:
        src.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


def _ptr(t: Optional[torch.Tensor]) -> Optional[int]:
    return None if t is None else t.data_ptr()


class PackedLinear(nn.Module):
    """y = x @ w_t with the float32 weight stored transposed, (in, out), contiguous: the fast layout at M=1.

    Like every linear here, it takes `norm` (an RMSNorm applied to x first) and `residual` (added to the
    output), and with `swiglu` returns silu(gate) * up of a concatenated (gate | up) weight.
    """

    def __init__(self, weight: torch.Tensor, swiglu: bool = False) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.swiglu = swiglu
        self.register_buffer("weight_t", weight.detach().t().contiguous())

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None,
                norm: Optional[nn.Module] = None) -> torch.Tensor:
        x = x if norm is None else norm(x)
        x2 = x.reshape(-1, self.in_features)
        if residual is not None and not self.swiglu:  # residual + x @ w_t in one GEMM call
            y = torch.addmm(residual.reshape(-1, self.out_features), x2, self.weight_t)
        else:
            y = _swiglu_residual(torch.mm(x2, self.weight_t), self.swiglu, residual)
        return y.view(*x.shape[:-1], -1)


def _swiglu_residual(y: torch.Tensor, swiglu: bool, residual: Optional[torch.Tensor]) -> torch.Tensor:
    if swiglu:
        gate, up = y.chunk(2, dim=-1)
        y = F.silu(gate).mul_(up)
    return y if residual is None else y.add_(residual.reshape(y.shape))


class CompressedLinear(nn.Module):
    """A float32 linear layer whose weights are exactly Q4_1 or Q8_0 values, kept in that form (see the module
    docstring); same `forward` as `PackedLinear`. `try_from` returns None for any other weight.

    A fine-tuned LoRA update (`lora`: A (r, in) and B (out, r) with the scaling folded in) stays beside the
    weights, computed by the same kernel call: merged, it would turn the exact Q4_1/Q8_0 values into arbitrary
    float32 ones, read 4-6x more bytes a decode step and lose the kernel; beside them it costs ~1% more.
    """

    def __init__(self, weight: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, offset: Optional[torch.Tensor],
                 swiglu: bool, lora: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.swiglu = swiglu
        # Prompts multiply in float32 with the BLAS GEMM: rebuilding the weights for each would cost ~10% of it.
        self.register_buffer("weight", weight)
        self.register_buffer("q", q)  # (out, in / 2) uint8 nibbles for Q4_1, (out, in) int8 as uint8 for Q8_0
        self.register_buffer("scale", scale)  # (out, in / 32)
        self.register_buffer("offset", offset)  # (out, in / 32) for Q4_1, None for Q8_0
        self.register_buffer("lora_a", None if lora is None else lora[0].float().contiguous())
        self.register_buffer("lora_b", None if lora is None else lora[1].float().contiguous())
        self._cache_kernel_args()

    @classmethod
    def try_from(cls, weight: torch.Tensor, swiglu: bool = False,
                 lora: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> Optional["CompressedLinear"]:
        lib = exact_kernels()
        if lib is None or weight.dtype != torch.float32 or weight.device.type != "cpu" or weight.shape[1] % 32:
            return None
        w = weight.detach().contiguous()
        N, K = w.shape
        scale = torch.empty(N, K // 32)
        for q4 in (True, False):
            q = torch.empty(N, K // 2 if q4 else K, dtype=torch.uint8)
            offset = torch.empty(N, K // 32) if q4 else None
            if lib.pack(w.data_ptr(), N, K, q.data_ptr(), scale.data_ptr(), _ptr(offset), torch.get_num_threads()):
                return cls(w, q, scale, offset, swiglu, lora)
        return None

    @property
    def kind(self) -> str:
        return "q8" if self.offset is None else "q4"

    def _apply(self, fn, recurse: bool = True):  # .to(), .float(), ...: the buffers may be new tensors
        module = super()._apply(fn, recurse)
        self._cache_kernel_args()
        return module

    def _cache_kernel_args(self) -> None:
        """The kernel's arguments that never change, as plain ints: a decode step calls ~120 of these layers,
        and reading five buffers through nn.Module each time costs more than the C call's own overhead."""
        rank = 0 if self.lora_a is None else self.lora_a.shape[0]
        self._weight_args = (self.q.data_ptr(), self.scale.data_ptr(), _ptr(self.offset), self.out_features)
        self._lora_args = (_ptr(self.lora_a), _ptr(self.lora_b), rank)

    def _mm(self, x2: Optional[torch.Tensor], norm: Optional[RMSNorm] = None,
            residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        N, K = self.out_features, self.in_features
        M = 0 if x2 is None else x2.shape[0]
        y = torch.empty((M, N // 2 if self.swiglu else N) if x2 is not None else (N, K))
        _kernels.exact_mm(
            _ptr(x2), M, K, *self._weight_args,
            None if norm is None else norm.weight.data_ptr(), 0.0 if norm is None else norm.eps,
            *self._lora_args, _ptr(residual), int(self.swiglu), y.data_ptr(), torch.get_num_threads())
        return y

    def dequantize(self) -> torch.Tensor:
        """The float32 weight (out, in), bit for bit the original."""
        return self._mm(None)

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None,
                norm: Optional[RMSNorm] = None) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)
        if x2.shape[0] > _KERNEL_MAX_ROWS:  # a prompt: the BLAS GEMM
            x2 = x2 if norm is None else norm(x2)
            y = x2 @ self.weight.t()
            if self.lora_a is not None:
                y = torch.addmm(y, x2 @ self.lora_a.t(), self.lora_b.t())
            y = _swiglu_residual(y, self.swiglu, residual)
        else:
            res = None if residual is None else residual.reshape(x2.shape[0], -1).contiguous()
            y = self._mm(x2.contiguous(), norm, res)
        return y.view(*x.shape[:-1], -1)

    def extra_repr(self) -> str:
        lora = "" if self.lora_a is None else f", lora_rank={self.lora_a.shape[0]}"
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.kind}, swiglu={self.swiglu}{lora}"


def _weight_and_update(layer: nn.Module, reorder=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weight, A, scaled B) of a plain or LoRA-wrapped linear; a plain one has an empty update. `reorder`
    permutes output rows (of the weight and of B alike)."""
    reorder = reorder or (lambda t: t)
    if isinstance(layer, LoRALinear):
        return (reorder(layer.base.weight.detach()), layer.lora_A.detach(),
                reorder(layer.lora_B.detach() * layer.scaling))
    weight = layer.weight.detach()
    return reorder(weight), weight.new_zeros(0, weight.shape[1]), weight.new_zeros(weight.shape[0], 0)


def _linear(parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], exact: bool, swiglu: bool = False) -> nn.Module:
    """One linear computing the concatenated outputs of `parts` (from `_weight_and_update`): the base compressed
    when it can be (a LoRA update then kept beside it), else float32 with any update merged in."""
    weight = torch.cat([w for w, _, _ in parts])
    a = torch.cat([a for _, a, _ in parts])
    b = torch.block_diag(*[b for _, _, b in parts]) if a.shape[0] else None
    if b is None:
        compressed = CompressedLinear.try_from(weight, swiglu) if exact else None
        return compressed if compressed is not None else PackedLinear(weight, swiglu)
    compressed = CompressedLinear.try_from(weight, swiglu, lora=(a, b)) if exact else None
    return compressed if compressed is not None else PackedLinear(weight + b @ a, swiglu)


def _interleave_halves(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder each head's rows from (x1[0..h), x2[0..h)) to (x1[0], x2[0], x1[1], x2[1], ...).

    RoPE rotates the pairs (x1[i], x2[i]); interleaved, a rotation is one complex multiplication. Queries and
    keys are permuted alike, so every query-key dot product is unchanged (the cache holds permuted keys).
    """
    hs = weight.shape[0] // n_heads
    order = torch.arange(hs).view(2, hs // 2).t().reshape(-1)
    return weight.view(n_heads, hs, -1)[:, order].reshape(weight.shape)


class FastAttention(nn.Module):
    """Grouped-query attention with one q|k|v matmul; `kv_cache` is set by `GPT.set_kv_cache` as before."""

    def __init__(self, attn: nn.Module, exact: bool, rope_memo: dict) -> None:
        super().__init__()
        self.n_head, self.n_kv, self.head_size = attn.n_head, attn.n_kv, attn.head_size
        self.qkv = _linear([_weight_and_update(attn.q_proj, lambda t: _interleave_halves(t, self.n_head)),
                            _weight_and_update(attn.k_proj, lambda t: _interleave_halves(t, self.n_kv)),
                            _weight_and_update(attn.v_proj)], exact)
        self.o_proj = _linear([_weight_and_update(attn.o_proj)], exact)
        self.kv_cache: Optional[KVCache] = None
        self._rope_memo = rope_memo  # shared by the blocks of one model: the rotation is built once a forward

    def _rotation(self, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """cos + i sin for the interleaved layout: (T, 1, hs/2), or (B, T, 1, hs/2) for per-row positions."""
        memo = self._rope_memo
        if memo.get("cos") is not cos or memo.get("sin") is not sin:
            half = self.head_size // 2
            rotation = torch.complex(cos[..., :half], sin[..., :half])
            rotation = rotation.transpose(1, 2) if cos.dim() == 4 else rotation.unsqueeze(1)
            memo.update(cos=cos, sin=sin, rotation=rotation)
        return memo["rotation"]

    def forward(self, x: torch.Tensor, norm: RMSNorm, cos: torch.Tensor, sin: torch.Tensor,
                input_pos: Optional[int], mask: Optional[torch.Tensor]) -> torch.Tensor:
        """x + attention(norm(x)): the residual stream in, the residual stream out."""
        B, T, _ = x.shape
        nh, n_kv, hs = self.n_head, self.n_kv, self.head_size
        qkv = self.qkv(x, norm=norm).view(B, T, nh + 2 * n_kv, hs)
        qk = torch.view_as_complex(qkv[:, :, : nh + n_kv].unflatten(-1, (hs // 2, 2)))
        qk = torch.view_as_real(qk * self._rotation(cos, sin)).flatten(-2)  # (B, T, nh + n_kv, hs), rotated
        q, k, v = qk[:, :, :nh].transpose(1, 2), qk[:, :, nh:].transpose(1, 2), qkv[:, :, nh + n_kv:].transpose(1, 2)
        if input_pos is not None:
            cache = self.kv_cache
            if cache is None:
                raise RuntimeError("input_pos was given but no KV cache is set: call model.set_kv_cache() first")
            end = input_pos + T
            if end > cache.k.shape[2]:
                raise ValueError(f"KV cache holds {cache.k.shape[2]} positions; {end} were asked for")
            cache.k[:B, :, input_pos:end] = k
            cache.v[:B, :, input_pos:end] = v
            lib = exact_kernels() if T == 1 and hs % 32 == 0 else None
            if lib is not None:  # one call for every row and head instead of ~8 small ops
                y = torch.empty(B, nh * hs)
                mask_rows = None if mask is None else mask[:, 0, 0].contiguous()  # (B, end) bool = bytes
                lib.decode_attention(qk.data_ptr(), (nh + n_kv) * hs, cache.k.data_ptr(), cache.v.data_ptr(), B, nh,
                                     n_kv, cache.k.shape[2], end, hs, _ptr(mask_rows), y.data_ptr(),
                                     torch.get_num_threads())
                return self.o_proj(y.view(B, 1, nh * hs), residual=x)
            k, v = cache.k[:B, :, :end], cache.v[:B, :, :end]  # (B, n_kv, end, hs)
        if mask is None and k.shape[2] == T:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, enable_gqa=n_kv != nh)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=n_kv != nh)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, nh * hs), residual=x)


class FastMLP(nn.Module):
    def __init__(self, mlp: nn.Module, exact: bool) -> None:
        super().__init__()
        self.gate_up = _linear([_weight_and_update(mlp.gate_proj), _weight_and_update(mlp.up_proj)], exact,
                               swiglu=True)
        self.down_proj = _linear([_weight_and_update(mlp.down_proj)], exact)

    def forward(self, x: torch.Tensor, norm: RMSNorm) -> torch.Tensor:
        """x + mlp(norm(x))"""
        return self.down_proj(self.gate_up(x, norm=norm), residual=x)


class FastBlock(nn.Module):
    """A `model.Block` for inference: same call signature, fused projections, the same norms."""

    def __init__(self, block: Block, exact: bool, rope_memo: dict) -> None:
        super().__init__()
        self.attn_norm, self.mlp_norm = block.attn_norm, block.mlp_norm
        self.attn = FastAttention(block.attn, exact, rope_memo)
        self.mlp = FastMLP(block.mlp, exact)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, input_pos: Optional[int],
                mask: Optional[torch.Tensor]) -> torch.Tensor:
        x = self.attn(x, self.attn_norm, cos, sin, input_pos, mask)
        return self.mlp(x, self.mlp_norm)


def _is_plain(*layers: nn.Module) -> bool:
    """Plain float32 CPU layers: nn.Linear without bias (or such a layer with a float32 LoRA update; not
    quantized) or RMSNorm."""
    def plain(m: nn.Module) -> bool:
        if isinstance(m, LoRALinear):
            return plain(m.base) and m.lora_A.dtype == m.lora_B.dtype == torch.float32
        return (type(m) in (nn.Linear, RMSNorm) and getattr(m, "bias", None) is None
                and m.weight.dtype == torch.float32 and m.weight.device.type == "cpu")
    return all(plain(m) for m in layers)


@torch.no_grad()
def optimize_for_decoding(model: GPT, exact: bool = True) -> GPT:
    """Rewrite `model` in place for fast generation and return it (in eval mode, without gradients).

    `forward(idx, input_pos, attention_mask, last_only)` keeps its contract, so `generate` and `generate_batch`
    work unchanged, with the same greedy tokens.
    exact: keep weights that are exactly Q4_1/Q8_0 values (GGUF-converted checkpoints) in that form, computed
        by the exact kernels; False keeps every weight in float32.
    Blocks whose projections are not plain float32 CPU linears are left alone. Do not train the result.
    """
    model.eval().requires_grad_(False)
    rope_memo: dict = {}
    for i, block in enumerate(model.blocks):
        attn, mlp = block.attn, block.mlp
        if type(block) is Block and _is_plain(attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj,
                                              mlp.up_proj, mlp.down_proj, block.attn_norm, block.mlp_norm):
            model.blocks[i] = FastBlock(block, exact, rope_memo)
    head = model.lm_head
    if _is_plain(head) and not isinstance(head, LoRALinear):
        compressed = CompressedLinear.try_from(head.weight) if exact else None
        if compressed is not None:
            model.lm_head = compressed  # the embedding keeps its float32 table: it reads one row a token
        else:
            model.lm_head = PackedLinear(head.weight)
            if head.weight is model.wte.weight:  # tied: the embedding reads rows of the transposed table
                model.wte.weight = nn.Parameter(model.lm_head.weight_t.t(), requires_grad=False)
    return model
