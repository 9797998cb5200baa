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
  decode step reads ~5x fewer bytes) and multiplied by a small AVX2/AVX-512 kernel (C source below, compiled
  once with the system's C compiler into ~/.cache/lit_sql) that rebuilds each weight bit for bit in float32
  and accumulates in float32: only the summation order differs from `x @ W.T` (logits within ~1e-5, greedy
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
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from lit_sql.lora import LoRALinear
from lit_sql.model import GPT, Block, KVCache, RMSNorm

_KERNEL_SOURCE = r"""
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Written with GCC/Clang vector types at the machine's own width, not intrinsics, so one source builds for
   AVX-512 (16 floats a vector) and AVX2 (8). A 32-weight block is PARTS vectors. */
#ifdef __AVX512F__
#define LANES 16
#else
#define LANES 8
#endif
#define PARTS (32 / LANES)
typedef float vf __attribute__((vector_size(4 * LANES)));
typedef int32_t vi __attribute__((vector_size(4 * LANES)));
/* LANES bytes widened to LANES int32s: the compilers do not turn a generic conversion into one instruction. */
#ifdef __AVX512F__
static inline vi widen_u8(const uint8_t* p) { return (vi)_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)p)); }
static inline vi widen_s8(const uint8_t* p) { return (vi)_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)p)); }
#else
static inline vi widen_u8(const uint8_t* p) { return (vi)_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)p)); }
static inline vi widen_s8(const uint8_t* p) { return (vi)_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)p)); }
#endif

static inline vf load(const float* p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void store(float* p, vf v) { memcpy(p, &v, sizeof v); }
static inline float hsum(vf v) {
  typedef float vf4 __attribute__((vector_size(16)));
#if LANES == 16
  typedef float vf8 __attribute__((vector_size(32)));
  const vf8 h = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
#else
  const vf h = v;
#endif
  const vf4 g = __builtin_shufflevector(h, h, 0, 1, 2, 3) + __builtin_shufflevector(h, h, 4, 5, 6, 7);
  return (g[0] + g[2]) + (g[1] + g[3]);
}

/* x . w over K floats (K a multiple of 32) with PARTS accumulators (the norm's and the attention's sums). */
static inline float dot(const float* x, const float* w, int64_t K) {
  vf acc[PARTS] = {{0}};
  for (int64_t k = 0; k < K; k += 32)
    for (int p = 0; p < PARTS; ++p) acc[p] += load(x + k + p * LANES) * load(w + k + p * LANES);
  for (int p = 1; p < PARTS; ++p) acc[0] += acc[p];
  return hsum(acc[0]);
}

/* One compressed row: q4 (m given): 16 bytes a block, byte j holds q[j] in its low nibble and q[j+16] in its
   high one, w = d*q + m; q8 (m NULL): 32 signed bytes a block, w = d*q. d and m are one float per block. */
typedef struct { const uint8_t* q; const float* d; const float* m; } Row;

static inline Row row_at(const uint8_t* q, const float* d, const float* m, int64_t n, int64_t K) {
  Row r = {q + n * (m ? K / 2 : K), d + n * (K / 32), m ? m + n * (K / 32) : 0};
  return r;
}

/* The 32 weights of block b, as PARTS vectors. d*q is exact in float32, so d*q + m rounds once whether or not
   the compiler fuses it into one multiply-add. */
static inline void block(Row r, int64_t b, vf w[PARTS]) {
  const vf d = (vf){0} + r.d[b];
  if (r.m) {
    const vf m = (vf){0} + r.m[b];
    for (int p = 0; p < PARTS; ++p) {  /* the first half of the parts are low nibbles, the second high ones */
      const vi v = widen_u8(r.q + 16 * b + (p % (PARTS / 2)) * LANES);
      w[p] = d * __builtin_convertvector(p < PARTS / 2 ? v & 15 : v >> 4, vf) + m;
    }
  } else {
    for (int p = 0; p < PARTS; ++p) {
      w[p] = d * __builtin_convertvector(widen_s8(r.q + 32 * b + p * LANES), vf);
    }
  }
}

static inline void unpack(Row r, int64_t K, float* w) {
  vf part[PARTS];
  for (int64_t b = 0; b < K / 32; ++b) {
    block(r, b, part);
    for (int p = 0; p < PARTS; ++p) store(w + 32 * b + p * LANES, part[p]);
  }
}

/* A batch's dot products come NB weight rows at a time, rebuilt once for every row of x. The summation order
   differs from one row's (`dot_row`): a row's logits alone and in a batch agree to ~1e-6, not to the bit. */
#define NB 4

/* z[r * ldz + j] = x_r . w_j for the M rows of x and the nb <= NB weight rows rebuilt in w (nb x K). Two rows of x
   against four weight rows share every load: the loop is bound by multiply-adds, not by loads. */
static inline void dots_unpacked(const float* x, int64_t M, int64_t K, const float* w, int nb, float* z,
                                 int64_t ldz) {
  int64_t r = 0;
  if (nb == NB)
    for (; r + 2 <= M; r += 2) {
      const float* x0 = x + r * K;
      const float* x1 = x0 + K;
      vf a0[NB] = {{0}}, a1[NB] = {{0}};
      for (int64_t k = 0; k < K; k += LANES) {
        const vf u = load(x0 + k), v = load(x1 + k);
        for (int j = 0; j < NB; ++j) {
          const vf wj = load(w + j * K + k);
          a0[j] += u * wj;
          a1[j] += v * wj;
        }
      }
      for (int j = 0; j < NB; ++j) z[r * ldz + j] = hsum(a0[j]), z[(r + 1) * ldz + j] = hsum(a1[j]);
    }
  for (; r < M; ++r)
    for (int j = 0; j < nb; ++j) {
      vf acc = {0};
      for (int64_t k = 0; k < K; k += LANES) acc += load(x + r * K + k) * load(w + j * K + k);
      z[r * ldz + j] = hsum(acc);
    }
}

/* dot(x, row) with the row rebuilt in registers only (one token: nothing to reuse it for), PARTS accumulators: a
   single row streams its weights, and one accumulator would wait on each multiply-add. */
static inline float dot_row(const float* x, Row r, int64_t K) {
  vf acc[PARTS] = {{0}}, part[PARTS];
  for (int64_t b = 0; b < K / 32; ++b) {
    block(r, b, part);
    for (int p = 0; p < PARTS; ++p) acc[p] += load(x + 32 * b + p * LANES) * part[p];
  }
  for (int p = 1; p < PARTS; ++p) acc[0] += acc[p];
  return hsum(acc[0]);
}

static inline float silu(float v) { return v / (1.0f + expf(-v)); }

/* y (M, N') = z = x' @ W.T for W (N, K) compressed, x' = x or, with norm_w, model.RMSNorm(x); with lora_a, z +=
   (x' @ A.T) @ B.T. With swiglu, N' = N/2 and y[:, n] = silu(z[:, n]) * z[:, n + N/2]; a residual (M, N'), if
   given, is added last. x NULL: y = W. */
void exact_mm(const float* x, int64_t M, int64_t K, const uint8_t* q, const float* d, const float* m, int64_t N,
              const float* norm_w, float eps, const float* lora_a, const float* lora_b, int64_t rank,
              const float* residual, int swiglu, float* y, int nthreads) {
  const int64_t n_out = swiglu ? N / 2 : N;
  if (!x) {
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t n = 0; n < N; ++n) unpack(row_at(q, d, m, n, K), K, y + n * K);
    return;
  }
  float* normed = 0;
  if (norm_w) {
    normed = (float*)_mm_malloc(M * K * sizeof(float), 64);
    for (int64_t r = 0; r < M; ++r) {
      const float* xr = x + r * K;
      const float inv = 1.0f / sqrtf(dot(xr, xr, K) / (float)K + eps);
      for (int64_t k = 0; k < K; ++k) normed[r * K + k] = (xr[k] * inv) * norm_w[k];
    }
    x = normed;
  }
  /* z = x @ W.T (M x N), NB weight rows at a time; a batch rebuilds each weight row once for all its rows */
  float* z = (float*)_mm_malloc(M * N * sizeof(float), 64);
  #pragma omp parallel num_threads(nthreads)
  {
    float* w = M > 1 ? (float*)_mm_malloc(NB * K * sizeof(float), 64) : 0;
    #pragma omp for schedule(static)
    for (int64_t n0 = 0; n0 < N; n0 += NB) {
      const int nb = N - n0 < NB ? (int)(N - n0) : NB;
      if (M == 1) {
        for (int j = 0; j < nb; ++j) z[n0 + j] = dot_row(x, row_at(q, d, m, n0 + j, K), K);
      } else {
        for (int j = 0; j < nb; ++j) unpack(row_at(q, d, m, n0 + j, K), K, w + j * K);
        dots_unpacked(x, M, K, w, nb, z + n0, N);
      }
    }
    if (w) _mm_free(w);
  }
  if (lora_a) {  /* z += (x A.T) B.T: a LoRA update (rank x K, N x rank, scaling in B) kept beside the weights */
    float* t = (float*)_mm_malloc(M * rank * sizeof(float), 64);
    for (int64_t r = 0; r < M; ++r)
      for (int64_t i = 0; i < rank; ++i) t[r * rank + i] = dot(x + r * K, lora_a + i * K, K);
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t r = 0; r < M; ++r) {
        float s = 0.0f;
        for (int64_t i = 0; i < rank; ++i) s += t[r * rank + i] * lora_b[n * rank + i];
        z[r * N + n] += s;
      }
    _mm_free(t);
  }
  for (int64_t r = 0; r < M; ++r)
    for (int64_t n = 0; n < n_out; ++n) {
      const float* zr = z + r * N;
      const float v = swiglu ? silu(zr[n]) * zr[n + n_out] : zr[n];
      y[r * n_out + n] = residual ? v + residual[r * n_out + n] : v;
    }
  _mm_free(z);
  if (normed) _mm_free(normed);
}

static inline float half_round(float v) { return _cvtsh_ss(_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT)); }

/* The compressed form of w (N, K), q4 (m given) or q8, if every 32-block is exactly d*q + m (q4: d = (max - min)
   / 15, m = min, both float16, q in 0..15) or d*q (q8: d = max|w| / 127 in float16, q in -127..127), the way
   a GGUF file stores them. Returns 1 and fills q, d, m; 0 (stopping early) when any weight differs by a bit. */
int pack(const float* w, int64_t N, int64_t K, uint8_t* q, float* d, float* m, int nthreads) {
  int ok = 1;
  #pragma omp parallel for num_threads(nthreads) schedule(static) reduction(&&: ok)
  for (int64_t b = 0; b < N * K / 32; ++b) {
    if (!ok) continue;  /* one bad block rejects the matrix */
    const float* v = w + 32 * b;
    float lo = v[0], hi = v[0];
    for (int j = 1; j < 32; ++j) lo = fminf(lo, v[j]), hi = fmaxf(hi, v[j]);
    const float db = half_round(m ? (hi - lo) / 15.0f : fmaxf(hi, -lo) / 127.0f), mb = m ? lo : 0.0f;
    const float inv = db > 0.0f ? 1.0f / db : 0.0f;  /* q is within rounding error of an integer, or rejected */
    float qf[32];
    int bad = 0;
    for (int j = 0; j < 32; ++j) {
      qf[j] = nearbyintf((v[j] - mb) * inv);
      bad |= m ? (qf[j] < 0.0f) | (qf[j] > 15.0f) | (fmaf(db, qf[j], mb) != v[j])
               : (fabsf(qf[j]) > 127.0f) | (db * qf[j] != v[j]);
    }
    ok = !bad && half_round(mb) == mb;
    if (m) {
      for (int j = 0; j < 16; ++j) q[16 * b + j] = (uint8_t)((int)qf[j] | ((int)qf[j + 16] << 4));
      m[b] = mb;
    } else {
      for (int j = 0; j < 32; ++j) q[32 * b + j] = (uint8_t)(int8_t)(int)qf[j];
    }
    d[b] = db;
  }
  return ok;
}

/* e^x for x <= 0 (softmax after subtracting the maximum), LANES at a time: Cody-Waite reduction to r in
   [-ln2/2, ln2/2] and a degree-6 polynomial, within 2 float32 ulps of expf; below -87 (where e^x is no longer a
   normal float) it is 0, as it is for masked positions (-inf). */
static inline vf vexp(vf x) {
  const vi keep = x >= -87.0f;
  x = (vf)(((vi)x & keep) | ((vi)((vf){0} - 87.0f) & ~keep));
  const vf n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  /* round(x / ln2) */
  const vf r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  vf p = (vf){0} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const vi two_n = (__builtin_convertvector(n, vi) + 127) << 23;  /* 2^n as float bits */
  return (vf)((vi)(p * (vf)two_n) & keep);
}

/* One new token's attention over the cache, for every (row, query head); query heads sharing a key/value head
   read the same cache rows. q (B, nh, hs) with row stride q_stride; caches (Bc, n_kv, smax, hs), of which
   the first S positions are used; mask (B, S) bytes or NULL (0 = padding); y (B, nh, hs). */
void decode_attention(const float* q, int64_t q_stride, const float* kc, const float* vc, int64_t B, int64_t nh,
                      int64_t n_kv, int64_t smax, int64_t S, int64_t hs, const uint8_t* mask, float* y,
                      int nthreads) {
  const float scale = 1.0f / sqrtf((float)hs);
  const int64_t S_padded = (S + LANES - 1) / LANES * LANES;
  #pragma omp parallel for num_threads(nthreads) schedule(static) if (B * nh * S * hs > (1 << 18))
  for (int64_t bh = 0; bh < B * nh; ++bh) {
    const int64_t b = bh / nh, h = bh % nh, g = h / (nh / n_kv);
    const float* qh = q + b * q_stride + h * hs;
    const float* kh = kc + (b * n_kv + g) * smax * hs;
    const float* vh = vc + (b * n_kv + g) * smax * hs;
    float* p = (float*)_mm_malloc(S_padded * sizeof(float), 64);
    float top = -INFINITY;
    for (int64_t s = 0; s < S; ++s) {
      p[s] = (mask && !mask[b * S + s]) ? -INFINITY : dot(qh, kh + s * hs, hs) * scale;
      top = fmaxf(top, p[s]);
    }
    for (int64_t s = S; s < S_padded; ++s) p[s] = -INFINITY;
    vf sums = {0};
    for (int64_t s = 0; s < S_padded; s += LANES) {
      const vf e = vexp(load(p + s) - top);
      store(p + s, e);
      sums += e;
    }
    const float total = hsum(sums);
    float* out = y + bh * hs;
    int64_t k = 0;
    for (; k + 8 * LANES <= hs; k += 8 * LANES) {  /* eight vectors of the output in registers, one pass */
      vf acc[8] = {{0}};
      for (int64_t s = 0; s < S; ++s)
        for (int j = 0; j < 8; ++j) acc[j] += p[s] * load(vh + s * hs + k + j * LANES);
      for (int j = 0; j < 8; ++j) store(out + k + j * LANES, acc[j] / total);
    }
    for (; k < hs; k += LANES) {
      vf acc = {0};
      for (int64_t s = 0; s < S; ++s) acc += p[s] * load(vh + s * hs + k);
      store(out + k, acc / total);
    }
    _mm_free(p);
  }
}
"""
_kernels: Optional[ctypes.CDLL] = None
_kernels_error: Optional[str] = None
# Above this many rows (a prompt), the BLAS GEMM on float32 weights is faster.
_KERNEL_MAX_ROWS = 16
# torch's name for the CPU's vector instructions -> the compiler flags the kernels are built with.
_ISA_FLAGS = {"AVX2": ["-mavx2"], "AVX512": ["-mavx512f"], "AVX512_BF16": ["-mavx512f"], "AMX": ["-mavx512f"]}


def exact_kernels() -> Optional[ctypes.CDLL]:
    """The compiled kernels, or None when this machine cannot have them (the reason is printed once).

    Compiled once per source version into $LIT_SQL_CACHE (default ~/.cache/lit_sql), in about a second.
    """
    global _kernels, _kernels_error
    if _kernels is not None or _kernels_error is not None:
        return _kernels
    capability = torch.backends.cpu.get_cpu_capability()
    cache = Path(os.environ.get("LIT_SQL_CACHE", Path.home() / ".cache" / "lit_sql")) / "kernels"
    lib_path = cache / f"exact_mm-{hashlib.sha256(_KERNEL_SOURCE.encode()).hexdigest()[:16]}.so"
    isa_flags = _ISA_FLAGS.get(capability)
    lib_path = lib_path.with_name(f"{lib_path.stem}-{capability.lower()}.so")  # a cache shared by different CPUs
    if isa_flags is None:
        _kernels_error = f"the CPU lacks AVX2 and AVX-512 (torch reports {capability})"
    else:
        try:
            if not lib_path.is_file():
                _compile(lib_path, isa_flags)
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


def _compile(lib_path: Path, isa_flags: list[str]) -> None:
    lib_path.parent.mkdir(parents=True, exist_ok=True)
    src = lib_path.with_name(f"{lib_path.stem}.{os.getpid()}.c")  # per process: concurrent first runs are safe
    tmp = src.with_suffix(".so.tmp")
    try:
        src.write_text(_KERNEL_SOURCE)
        # fp-contract=fast lets the dot products use fused multiply-adds; the weights stay exact either way (see
        # `block`), and nothing else in the source multiplies and adds in one expression.
        cmd = [os.environ.get("CC", "cc"), "-O3", *isa_flags, "-mfma", "-mf16c", "-ffp-contract=fast", "-Wno-psabi",
               "-fopenmp", "-shared", "-fPIC", str(src), "-o", str(tmp)]
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
