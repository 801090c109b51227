// Math of the fusion family shared by the CPU path and the CUDA kernels, and
// unit-tested on the CPU (tests/test_fuse_math.cpp).
//
// Reproducibility: the random matrices (U of RP-KrossFuse, the random Fourier
// frequencies, the count-sketch hashes) and every value of the exact paths are
// defined here as chains of exactly rounded fp32 (or fp64) operations: +, -, *, /,
// sqrt and fused multiply-add, each written as an explicit call below. The host
// compiler and nvcc then produce the same bits:
//   - on the device the *_rn intrinsics are never contracted into FMAs (nvcc's
//     default -fmad=true only contracts plain a * b + c);
//   - on the host the plain operators are correctly rounded, std::fma is the fused
//     operation (an FMA instruction, or glibc's correctly rounded fmaf), and the
//     files that use this header are compiled with -ffp-contract=off;
//   - no libm or CUDA transcendental function appears: log, sin, cos and exp2 are
//     implemented below from those operations, with hex-float constants (no
//     decimal-to-binary conversion left to a compiler).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/core/float16.hpp"
#include "kernels/core/hd.hpp"
#include "kernels/core/philox.hpp"
#include "kfuse/view.hpp"

// Always inlined on the host too: the CPU path's per-ISA entry points must inline
// std::fma into an FMA instruction rather than call libm.
#if defined(__CUDACC__)
#define KFUSE_HDI __host__ __device__ __forceinline__
#else
#define KFUSE_HDI inline __attribute__((always_inline))
#endif

namespace kfuse::detail {

// ------------------------------------------------------------------ exactly rounded operations

KFUSE_HDI float add_rn(float a, float b) {
#if KFUSE_DEVICE_CODE
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
KFUSE_HDI float sub_rn(float a, float b) {
#if KFUSE_DEVICE_CODE
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
KFUSE_HDI float mul_rn(float a, float b) {
#if KFUSE_DEVICE_CODE
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
KFUSE_HDI float div_rn(float a, float b) {
#if KFUSE_DEVICE_CODE
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
KFUSE_HDI float sqrt_rn(float a) {
#if KFUSE_DEVICE_CODE
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}
KFUSE_HDI float fma_rn(float a, float b, float c) {
#if KFUSE_DEVICE_CODE
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

KFUSE_HDI double add_rn(double a, double b) {
#if KFUSE_DEVICE_CODE
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
KFUSE_HDI double sub_rn(double a, double b) {
#if KFUSE_DEVICE_CODE
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
KFUSE_HDI double mul_rn(double a, double b) {
#if KFUSE_DEVICE_CODE
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
KFUSE_HDI double div_rn(double a, double b) {
#if KFUSE_DEVICE_CODE
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
KFUSE_HDI double sqrt_rn(double a) {
#if KFUSE_DEVICE_CODE
  return __dsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}
KFUSE_HDI double fma_rn(double a, double b, double c) {
#if KFUSE_DEVICE_CODE
  return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// Round to the nearest integer (ties to even) for |x| < 2^22, by the 1.5 * 2^23
// shifter: exact, and free of the rounding-mode state that rintf would read.
KFUSE_HDI float round_small(float x) {
  const float kShifter = 0x1.8p+23f;
  return sub_rn(add_rn(x, kShifter), kShifter);
}

// ------------------------------------------------------------------ elementary functions

// Natural logarithm of a positive normal float: x = 2^e m with m in [sqrt(1/2),
// sqrt(2)), log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716, by its odd
// series to s^13 (truncation < 1e-9 relative). A few ulps; used for the Gaussian
// draws only.
KFUSE_HDI float log_rn(float x) {
  std::uint32_t bits = float_bits(x);
  int e = static_cast<int>(bits >> 23) - 127;
  bits = (bits & 0x007fffffu) | 0x3f800000u;  // m in [1, 2)
  // m > sqrt(2): use m / 2 and e + 1 (branch-free, so that loops of draws vectorise).
  const std::uint32_t halve = bits > 0x3fb504f3u ? 1u : 0u;
  bits -= halve << 23;
  e += static_cast<int>(halve);
  const float m = bits_float(bits);
  const float f = sub_rn(m, 1.0f);  // exact (Sterbenz)
  const float s = div_rn(f, add_rn(2.0f, f));
  const float z = mul_rn(s, s);
  float p = 0x1.3b13b2p-4f;          // 1/13
  p = fma_rn(p, z, 0x1.745d18p-4f);  // 1/11
  p = fma_rn(p, z, 0x1.c71c72p-4f);  // 1/9
  p = fma_rn(p, z, 0x1.24924ap-3f);  // 1/7
  p = fma_rn(p, z, 0x1.99999ap-3f);  // 1/5
  p = fma_rn(p, z, 0x1.555556p-2f);  // 1/3
  const float two_s = add_rn(s, s);
  const float log_m = fma_rn(mul_rn(two_s, z), p, two_s);  // 2s + 2s z p
  const float ef = static_cast<float>(e);                  // exact
  // e ln2 with ln 2 in two parts (hi + lo), the small part added first.
  return add_rn(fma_rn(ef, -0x1.05c61p-29f, log_m), mul_rn(ef, 0x1.62e43p-1f));
}

// sin and cos of |r| <= pi/4 by their Taylor series to r^13 / r^14 (truncation
// below 1e-12).
KFUSE_HDI void sincos_reduced(float r, float* s, float* c) {
  const float z = mul_rn(r, r);
  float ps = 0x1.612462p-33f;            // 1/13!
  ps = fma_rn(ps, z, -0x1.ae6456p-26f);  // -1/11!
  ps = fma_rn(ps, z, 0x1.71de3ap-19f);   // 1/9!
  ps = fma_rn(ps, z, -0x1.a01a02p-13f);  // -1/7!
  ps = fma_rn(ps, z, 0x1.111112p-7f);    // 1/5!
  ps = fma_rn(ps, z, -0x1.555556p-3f);   // -1/3!
  *s = fma_rn(mul_rn(r, z), ps, r);
  float pc = -0x1.93974ap-37f;           // -1/14!
  pc = fma_rn(pc, z, 0x1.1eed8ep-29f);   // 1/12!
  pc = fma_rn(pc, z, -0x1.27e4fcp-22f);  // -1/10!
  pc = fma_rn(pc, z, 0x1.a01a02p-16f);   // 1/8!
  pc = fma_rn(pc, z, -0x1.6c16c2p-10f);  // -1/6!
  pc = fma_rn(pc, z, 0x1.555556p-5f);    // 1/4!
  pc = fma_rn(pc, z, -0.5f);
  *c = fma_rn(z, pc, 1.0f);
}

// sin x and cos x: x = q pi/2 + r with q the nearest integer to 2x/pi and r taken
// off in three parts (Cody-Waite with FMA), then the quadrant's signs. Accurate to
// a few ulps for |x| < 1e5; beyond 2^22 pi/2 (6.6e6) the reduction breaks down (the
// results stay deterministic, not accurate). Random Fourier arguments are O(10).
KFUSE_HDI void sincos_rn(float x, float* s, float* c) {
  const float q = round_small(mul_rn(x, 0x1.45f306p-1f));  // 2/pi
  float r = fma_rn(-q, 0x1.921fb6p+0f, x);                 // pi/2 in three parts
  r = fma_rn(-q, -0x1.777a5cp-25f, r);
  r = fma_rn(-q, -0x1p-49f, r);
  float sr, cr;
  sincos_reduced(r, &sr, &cr);
  // Quadrant q: sin x = (-1)^(q >> 1) (q odd ? cos r : sin r),
  //             cos x = (-1)^((q + 1) >> 1) (q odd ? sin r : cos r). Branch-free.
  const int quadrant = static_cast<int>(q) & 3;
  const bool odd = (quadrant & 1) != 0;
  const float s_abs = odd ? cr : sr, c_abs = odd ? sr : cr;
  *s = (quadrant & 2) ? -s_abs : s_abs;
  *c = ((quadrant + 1) & 2) ? -c_abs : c_abs;
}

// 2^x for x <= 0 (results below 2^-126 flush to 0): nearest-integer range
// reduction and a degree-6 polynomial on [-1/2, 1/2] (max relative error 1.1e-7).
KFUSE_HDI float exp2_rn(float x) {
  if (!(x >= -126.0f)) return x != x ? x : 0.0f;  // NaN stays NaN
  const float n = round_small(x);                 // in [-126, 0]
  const float f = sub_rn(x, n);                   // exact, in [-1/2, 1/2]
  float p = 0x1.41a6fep-13f;
  p = fma_rn(p, f, 0x1.5f44fp-10f);
  p = fma_rn(p, f, 0x1.3b2dfep-7f);
  p = fma_rn(p, f, 0x1.c6aed6p-5f);
  p = fma_rn(p, f, 0x1.ebfbdap-3f);
  p = fma_rn(p, f, 0x1.62e43p-1f);
  p = fma_rn(p, f, 1.0f);
  // Scale by 2^n through the exponent field (p in [0.70, 1.42], n >= -126: p 2^n
  // may be subnormal only for n = -126 and p < 1, where the multiply rounds once).
  const int ni = static_cast<int>(n);
  if (ni > -126) return bits_float(float_bits(p) + static_cast<std::uint32_t>(ni * (1 << 23)));
  return mul_rn(p, 0x1p-126f);
}

// ------------------------------------------------------------------ random draws

// Philox streams (the counter's third word) of the family's random objects: the
// projection matrix U_j of input j, the random Fourier frequencies of input j (of
// rff_fuse, and of an Rbf side map), and the count-sketch hashes of input j.
constexpr std::uint32_t kStreamProjection = 0x52500000u;   // 'RP' + j
constexpr std::uint32_t kStreamFourier = 0x52460000u;      // 'RF' + j
constexpr std::uint32_t kStreamSideFourier = 0x53460000u;  // 'SF' + j
constexpr std::uint32_t kStreamSketch = 0x54530000u;       // 'TS' + j

// Distribution codes (== kfuse::RpDistribution).
constexpr int kDrawUniform = 0;     // Uniform[-sqrt 3, sqrt 3]: mean 0, variance 1
constexpr int kDrawGaussian = 1;    // N(0, 1)
constexpr int kDrawRademacher = 2;  // +-1

// The centre of one of 2^24 equal cells of (-1, 1): (2k + 1 - 2^24) 2^-24 for the
// top 24 bits k of a word. Exact, symmetric (mean exactly 0), never 0 or +-1.
KFUSE_HDI float centred_uniform(std::uint32_t word) {
  const std::int32_t k = static_cast<std::int32_t>(word >> 8);
  return mul_rn(static_cast<float>(2 * k + 1 - (1 << 24)), 0x1p-24f);
}

// Two N(0, 1) draws from two words (Box-Muller): radius sqrt(-2 log u), u in (0, 1)
// from the first word, angle pi v, v in (-1, 1) from the second.
KFUSE_HDI void gaussian_pair(std::uint32_t w0, std::uint32_t w1, float* z0, float* z1) {
  const float u = mul_rn(add_rn(centred_uniform(w0), 1.0f), 0.5f);  // exact, in (0, 1)
  const float radius = sqrt_rn(mul_rn(-2.0f, log_rn(u)));
  float s, c;
  sincos_rn(mul_rn(centred_uniform(w1), 0x1.921fb6p+1f), &s, &c);  // pi v
  *z0 = mul_rn(radius, c);
  *z1 = mul_rn(radius, s);
}

// Entries (row, 4q .. 4q + 3) of the random matrix of `stream` under `seed`: one
// Philox block keyed by the seed, counter (q | row << 32, stream). An entry is a pure
// function of (seed, stream, row, column): independent of the matrix's extents (the
// first l columns of a wider matrix are the same), of the backend and of the order
// in which entries are drawn.
KFUSE_HDI void random_quad(std::uint64_t seed, std::uint32_t stream, std::uint64_t row,
                           std::uint64_t quad, int distribution, float out[4]) {
  const PhiloxBlock b = philox_draw(seed, stream, (row << 32) | (quad & 0xffffffffu));
  if (distribution == kDrawGaussian) {
    gaussian_pair(b.v[0], b.v[1], &out[0], &out[1]);
    gaussian_pair(b.v[2], b.v[3], &out[2], &out[3]);
  } else if (distribution == kDrawRademacher) {
    for (int t = 0; t < 4; ++t)
      out[t] = (b.v[t] >> 31) ? -1.0f : 1.0f;
  } else {
    for (int t = 0; t < 4; ++t)
      out[t] = mul_rn(centred_uniform(b.v[t]), 0x1.bb67aep+0f);  // sqrt(3)
  }
}

KFUSE_HDI float random_entry(std::uint64_t seed, std::uint32_t stream, std::uint64_t row,
                             std::uint64_t col, int distribution) {
  float q[4];
  random_quad(seed, stream, row, col >> 2, distribution, q);
  return q[col & 3];
}

// The count-sketch hash of coordinate k of input j into l buckets, and its sign.
struct SketchHash {
  std::int64_t bucket;
  float sign;
};
KFUSE_HDI SketchHash sketch_hash(std::uint64_t seed, int input, std::int64_t k, std::int64_t l) {
  const PhiloxBlock b = philox_draw(seed, kStreamSketch + static_cast<std::uint32_t>(input),
                                    static_cast<std::uint64_t>(k));
  // Multiply-shift: bucket = floor(word * l / 2^32), uniform up to l / 2^32.
  const std::uint64_t bucket =
      (static_cast<std::uint64_t>(b.v[0]) * static_cast<std::uint64_t>(l)) >> 32;
  return SketchHash{static_cast<std::int64_t>(bucket), (b.v[1] >> 31) ? -1.0f : 1.0f};
}

// ------------------------------------------------------------------ operands

// How a fused row's factor is read from an input row x (d columns):
//   Identity:  v_k = x_k                                    (width d)
//   PlusMinus: v = [(g + x) / sqrt 2 ; (g - x) / sqrt 2]     (width 2d; cross-modal)
//   Constant:  v_k = constant                               (width given; no input)
// x_k is first multiplied by the row's scale (1/|x| for a cosine side) and by
// `scale` (1/sigma of a random Fourier input), when present.
enum class OperandMap : int { Identity = 0, PlusMinus = 1, Constant = 2 };

struct FuseOperand {
  const void* data = nullptr;
  DType dtype = DType::F32;  // F32, F64, BF16 or F16
  std::int64_t ld = 0;       // 0: every row reads row 0
  std::int64_t d = 0;
  std::int64_t width = 0;
  OperandMap map = OperandMap::Identity;
  const void* row_scale = nullptr;  // [rows] of the working type, or null
  double scale = 1.0;
  double gamma = 0.0;     // PlusMinus
  double constant = 0.0;  // Constant
};

template <class W>
KFUSE_HDI W load_as(const void* data, DType dtype, std::int64_t index) {
  switch (dtype) {
    case DType::F64:
      return static_cast<W>(static_cast<const double*>(data)[index]);
    case DType::BF16:
      return static_cast<W>(to_float(static_cast<const bf16*>(data)[index]));
    case DType::F16:
      return static_cast<W>(to_float(static_cast<const f16*>(data)[index]));
    default:
      return static_cast<W>(static_cast<const float*>(data)[index]);
  }
}

// Column k of row i of the operand's mapped row, in the working type W.
template <class W>
KFUSE_HDI W operand_value(const FuseOperand& op, std::int64_t i, std::int64_t k) {
  if (op.map == OperandMap::Constant) return static_cast<W>(op.constant);
  const bool minus = op.map == OperandMap::PlusMinus && k >= op.d;
  W x = load_as<W>(op.data, op.dtype, i * op.ld + (minus ? k - op.d : k));
  if (op.row_scale != nullptr) x = mul_rn(x, static_cast<const W*>(op.row_scale)[i]);
  if (op.scale != 1.0) x = mul_rn(x, static_cast<W>(op.scale));
  if (op.map == OperandMap::PlusMinus) {
    const W g = static_cast<W>(op.gamma);
    x = mul_rn(minus ? sub_rn(g, x) : add_rn(g, x), static_cast<W>(0.70710678118654752440));
  }
  return x;
}

// The binary exponent of a finite |a| > 0 (floor(log2 a); subnormals report the
// minimum normal exponent minus 1) and the exact power of two 2^e for e in W's
// normal range: read and built in the exponent field, no rounding involved.
KFUSE_HDI int binary_exponent(float a) {
  return static_cast<int>((float_bits(a) >> 23) & 0xffu) - 127;
}
KFUSE_HDI int binary_exponent(double a) {
  std::uint64_t u;
  std::memcpy(&u, &a, sizeof(u));
  return static_cast<int>((u >> 52) & 0x7ffu) - 1023;
}
KFUSE_HDI float pow2_exact(float, int e) {
  return bits_float(static_cast<std::uint32_t>(e + 127) << 23);
}
KFUSE_HDI double pow2_exact(double, int e) {
  const std::uint64_t u = static_cast<std::uint64_t>(e + 1023) << 52;
  double d;
  std::memcpy(&d, &u, sizeof(d));
  return d;
}

// 1 / |x_i| of a finite row whose plain sum of squares under- or overflowed (or is
// subnormal): every x_k is first scaled by s = 2^-e with 2^e <= max |x_k| < 2^(e+1)
// (exact: a power of two; terms that underflow are below the norm's rounding), so
// the sum of squares lies in [1, 4 d); then 1 / |x| = s / |x s|, one rounded
// division. 0 for a zero row, and for a row whose inverse norm overflows W
// (|x| < 2^-128 in fp32): such a row is treated as zero.
template <class W>
KFUSE_HDI W row_inv_norm_rescaled(const FuseOperand& op, std::int64_t i) {
  W a = W(0);
  for (std::int64_t k = 0; k < op.d; ++k) {
    const W x = load_as<W>(op.data, op.dtype, i * op.ld + k);
    const W mag = x < W(0) ? -x : x;
    a = mag > a ? mag : a;
  }
  if (!(a > W(0) && a <= std::numeric_limits<W>::max())) return W(0);
  const int emax = std::numeric_limits<W>::max_exponent - 2;  // 126 (float), 1022 (double)
  int e = binary_exponent(a);
  e = e < -emax ? -emax : (e > emax ? emax : e);
  const W s = pow2_exact(W(0), -e);
  W sum = W(0);
  for (std::int64_t k = 0; k < op.d; ++k) {
    const W x = mul_rn(load_as<W>(op.data, op.dtype, i * op.ld + k), s);
    sum = fma_rn(x, x, sum);
  }
  const W inv = div_rn(s, sqrt_rn(sum));
  return inv <= std::numeric_limits<W>::max() ? inv : W(0);
}

// 1 / |x_i| from the row's plain sum of squares `sum` (the fma chain below). A
// normal, finite sum gives 1 / sqrt(sum) (two rounded operations); a sum that
// under- or overflowed W, or is subnormal, with every x_k finite takes the
// rescaled form above, so rows of norm 1e-30 or 1e30 in fp32 keep their direction
// instead of becoming zero rows. Only those rows change: ordinary rows keep their
// bits. A row with a NaN or an inf gives 0, as before.
template <class W>
KFUSE_HDI W row_inv_norm_of_sum(const FuseOperand& op, std::int64_t i, W sum) {
  if (sum >= std::numeric_limits<W>::min() && sum <= std::numeric_limits<W>::max())
    return div_rn(W(1), sqrt_rn(sum));
  if (sum != sum) return W(0);
  return row_inv_norm_rescaled<W>(op, i);
}

// 1 / |x_i| over the d input columns (fma chain in increasing k, then a rounded
// sqrt and division, or the rescaled form when the sum leaves W's normal range);
// 0 for a zero row.
template <class W>
KFUSE_HDI W row_inv_norm(const FuseOperand& op, std::int64_t i) {
  W sum = W(0);
  for (std::int64_t k = 0; k < op.d; ++k) {
    const W x = load_as<W>(op.data, op.dtype, i * op.ld + k);
    sum = fma_rn(x, x, sum);
  }
  return row_inv_norm_of_sum<W>(op, i, sum);
}

// ------------------------------------------------------------------ per-pair kernels

// How product_kernel_topk turns a side's accumulated chain into k(q, g):
//   Dot:    acc = sum q_k g_k,        k = acc
//   Cosine: acc = sum q_k g_k,        k = (acc * iq) * ig
//   Rbf:    acc = sum (q_k - g_k)^2,  k = 2^(-c acc), c = log2(e) / (2 sigma^2)
enum class PairKernel : int { Dot = 0, Cosine = 1, Rbf = 2 };

KFUSE_HDI float pair_step(PairKernel kind, float q, float g, float acc) {
  if (kind == PairKernel::Rbf) {
    const float diff = sub_rn(q, g);
    return fma_rn(diff, diff, acc);
  }
  return fma_rn(q, g, acc);
}

KFUSE_HDI float pair_value(PairKernel kind, float acc, float iq, float ig, float c) {
  switch (kind) {
    case PairKernel::Cosine:
      return mul_rn(mul_rn(acc, iq), ig);
    case PairKernel::Rbf:
      return exp2_rn(mul_rn(-c, acc));
    default:
      return acc;
  }
}

// s = k1 (C + k2)
KFUSE_HDI float product_score(float k1, float k2, float C) {
  return mul_rn(k1, add_rn(C, k2));
}

// ------------------------------------------------------------------ top-k

// The order of candidates: higher score first, equal scores by lower index, NaN
// after every number (and among NaNs by lower index).
template <class I>
KFUSE_HDI bool topk_before(float sa, I ja, float sb, I jb) {
  const bool na = sa != sa, nb = sb != sb;
  if (na || nb) return na == nb ? ja < jb : nb;
  return sa > sb || (sa == sb && ja < jb);
}

// Inserts (s, j) into the sorted list (scores, idx) of *count <= k entries, keeping
// the best k. Returns whether it was kept.
template <class I>
KFUSE_HDI bool topk_insert(float* scores, I* idx, int* count, int k, float s, I j) {
  int pos = *count;
  if (pos == k) {
    if (!topk_before(s, j, scores[k - 1], idx[k - 1])) return false;
    pos = k - 1;
  } else {
    ++*count;
  }
  while (pos > 0 && topk_before(s, j, scores[pos - 1], idx[pos - 1])) {
    scores[pos] = scores[pos - 1];
    idx[pos] = idx[pos - 1];
    --pos;
  }
  scores[pos] = s;
  idx[pos] = j;
  return true;
}

// Merges `parts` sorted lists (list p at scores + p * stride, idx + p * stride, each
// of `len` entries, padded with (NaN, index_end)) into the best k. index_end
// exceeds every real index, so padding ranks after every real entry and is only
// taken once the real entries run out.
constexpr int kMaxTopkParts = 64;
template <class I, class J>
KFUSE_HDI void topk_merge(const float* scores, const I* idx, std::int64_t stride, int parts,
                          int len, int k, float* out_scores, J* out_idx) {
  int head[kMaxTopkParts];
  for (int p = 0; p < parts; ++p)
    head[p] = 0;
  for (int t = 0; t < k; ++t) {
    int best = -1;
    for (int p = 0; p < parts; ++p) {
      if (head[p] >= len) continue;
      const std::int64_t at = p * stride + head[p];
      if (best < 0 || topk_before(scores[at], idx[at], scores[best * stride + head[best]],
                                  idx[best * stride + head[best]]))
        best = p;
    }
    const std::int64_t at = best * stride + head[best];
    out_scores[t] = scores[at];
    out_idx[t] = static_cast<J>(idx[at]);
    ++head[best];
  }
}

// ------------------------------------------------------------------ Kronecker indexing

// Splits column p of a fused row into one index per input (input 0 most
// significant): widths w[0..m).
KFUSE_HDI void kron_decode(std::int64_t p, const std::int64_t* w, int m, std::int64_t* idx) {
  for (int j = m - 1; j >= 0; --j) {
    idx[j] = p % w[j];
    p /= w[j];
  }
}

}  // namespace kfuse::detail
