/* The exact decoding kernels of lit_sql/fast_inference.py, whose docstring says what they compute and why. It
   compiles this file once per version, with the system's C compiler and the flags `_compile` names there, for
   AVX2 or AVX-512, into ~/.cache/lit_sql, and calls these functions through ctypes. */
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
