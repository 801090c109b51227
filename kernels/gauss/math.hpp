// Per-pair and per-row math of the Gaussian kernel family, shared by the CPU path
// and the CUDA kernels (and unit-tested on the CPU).
//
// Convention: K(x, y) = exp(-|x - y|^2 / (2 sigma^2)) = exp2(-c |x - y|^2) with
// c = log2(e) / (2 sigma^2). Every backend works in these base-2 units, so one
// exp2 per pair is all the transcendental work. Differences are taken before any
// scaling: x - y is exact for nearby points (Sterbenz), x * s - y * s is not.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/core/hd.hpp"
#include "kernels/core/hd_math.hpp"

namespace kfuse::detail {

constexpr double kLog2e = 1.4426950408889634074;
constexpr double kLn2 = 0.69314718055994530942;

// Distances are measured in units of a power of two near sigma when sigma is far
// from 1: with q = 2^-e (sigma = f 2^e, f in [1/2, 1)) every backend squares the
// scaled differences (x - y) q, and K = exp2(-c' |(x - y) q|^2) with
// c' = log2(e) / (2 (sigma q)^2) in (0.72, 2.9]. Scaling by a power of two is exact
// (up to underflow of terms that no longer matter next to sigma), so x - y keeps its
// Sterbenz exactness for near duplicates; it keeps c' |(x - y) q|^2 free of the
// 0 * inf (c underflows while |x - y|^2 overflows: sigma = 1e30, |x - y| = 2e30 in
// fp32) and of the flush of |x - y|^2 to 0 next to a huge c (sigma = 1e-30).
// Inside [2^-32, 2^32] q = 1 and c' = c: there neither can happen in fp32 (c in
// [3.9e-20, 1.3e19]: a |x - y|^2 that overflows has K = 0 anyway, one that
// underflows K = 1), so ordinary bandwidths keep the unscaled direct form (and its
// bits). q stays a normal number of W with room to spare; beyond that (sigma
// outside W's own range) c' is clamped below.
constexpr double kGaussUnscaledSigmaMin = 0x1p-32;
constexpr double kGaussUnscaledSigmaMax = 0x1p+32;

template <class W>
inline double gauss_distance_scale(double sigma) {
  if (sigma >= kGaussUnscaledSigmaMin && sigma <= kGaussUnscaledSigmaMax) return 1.0;
  int e = 0;
  std::frexp(sigma, &e);
  const int emax = std::numeric_limits<W>::max_exponent - 3;  // 125 (float), 1021 (double)
  e = e < -emax ? -emax : (e > emax ? emax : e);
  return std::ldexp(1.0, -e);
}

// c' = log2(e) / (2 (sigma q)^2) in the working type W, kept within W's normal
// range: with sigma beyond W's own range (q clamped) a tiny sigma gives K = 1 for
// identical points (0 * c' = 0) and 0 otherwise, a huge one K = 1 for all finite
// distances; c' > 0 keeps c' d2 free of 0 * inf.
template <class W>
inline W gauss_log2_coefficient(double sigma) {
  const double s = sigma * gauss_distance_scale<W>(sigma);
  const double c = kLog2e / (2.0 * s * s);
  const double wmax = static_cast<double>(std::numeric_limits<W>::max());
  const double wmin = static_cast<double>(std::numeric_limits<W>::min());
  return static_cast<W>(c < wmax ? (c > wmin ? c : wmin) : wmax);
}

// In the stabilised (log-sum-exp) form a zero weight becomes the log2-weight -inf:
// its term exp2(-inf - m) is exactly 0 whatever the other terms, since the running
// maximum m never drops below the finite running_max_init (a finite stand-in such
// as -1e30 would win against real terms below it: a far query in fp64 has s ~ -1e40).
template <class W>
KFUSE_HD W log2_weight(W w) {
  return w > W(0) ? hd_log2(w) : -std::numeric_limits<W>::infinity();
}

// 2^x for x <= 0 on the FMA pipe only: round-to-nearest range reduction and a
// degree-6 polynomial fitted for relative error on [-1/2, 1/2] (max relative error
// 1.1e-7, i.e. float rounding). Results below 2^-126 are flushed to 0. Written
// with plain arithmetic so that compilers vectorise it on the CPU; on the GPU it
// lets part of the exponentials bypass the special-function unit. Safe for every
// argument: the reduction only ever sees x clamped to [-126, 0] (NaN included, so
// that no NaN or huge value reaches the integer conversion), NaN returns NaN and
// x > 0 returns 1 (callers pass x <= 0).
KFUSE_HD float exp2_poly(float x) {
  const float kShifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float xc = x >= -126.0f ? (x <= 0.0f ? x : 0.0f) : -126.0f;  // NaN -> -126
  const float t = xc + kShifter;
  const float n = t - kShifter;  // nearest integer to xc, in [-126, 0]
  const float f = xc - n;        // in [-1/2, 1/2]
  float p = 1.5337577497120947e-4f;
  p = p * f + 1.3399859890341759e-3f;
  p = p * f + 9.6185198053717613e-3f;
  p = p * f + 5.5503290146589279e-2f;
  p = p * f + 2.4022646248340607e-1f;
  p = p * f + 6.9314718246459961e-1f;
  p = p * f + 1.0f;
  std::int32_t bits;
  std::memcpy(&bits, &p, sizeof(bits));
  bits += static_cast<std::int32_t>(n) * (1 << 23);
  float result;
  std::memcpy(&result, &bits, sizeof(result));
  return x < -126.0f ? 0.0f : (x != x ? x : result);
}

// Starting value of a row's running maximum: finite, so that a first tile whose
// terms are all -inf (distances overflowed, zero weights) rescales by exp2(-inf) = 0
// instead of producing -inf - (-inf) = NaN; and the lowest finite W, so that every
// finite term, however far (s = -7e39 for a query at 1e20 in fp64), raises it.
template <class W>
KFUSE_HD W running_max_init() {
  return -std::numeric_limits<W>::max();
}

// Online log-sum-exp, base 2: a row's running maximum m and its sums scaled by
// 2^-m. Merging a state with maximum m_new rescales the old sums by 2^(m - m_new).
template <class W>
KFUSE_HD W rescale_factor(W m_old, W m_new) {
  return hd_exp2(m_old - m_new);
}

}  // namespace kfuse::detail
