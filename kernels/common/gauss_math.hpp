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

#include "hd.hpp"
#include "hd_math.hpp"

namespace kfuse::detail {

constexpr double kLog2e = 1.4426950408889634074;
constexpr double kLn2 = 0.69314718055994530942;

// c in the working type W, clamped to W's largest value: with a sigma so tiny that
// c overflows, K is 1 for identical points (0 * c = 0) and 0 otherwise (-inf).
template <class W>
inline W gauss_log2_coefficient(double sigma) {
  const double c = kLog2e / (2.0 * sigma * sigma);
  const double wmax = static_cast<double>(std::numeric_limits<W>::max());
  return static_cast<W>(c < wmax ? c : wmax);
}

// In the stabilised (log-sum-exp) form a zero weight becomes this log2-weight
// instead of -inf: exp2(s - m) of such a term is exactly 0 once any positive-weight
// term has set the running maximum, and -inf - (-inf) = NaN never arises.
constexpr float kLog2ZeroWeight = -1.0e30f;

template <class W>
KFUSE_HD W log2_weight(W w) {
  return w > W(0) ? hd_log2(w) : W(kLog2ZeroWeight);
}

// 2^x for x <= 0 on the FMA pipe only: round-to-nearest range reduction and a
// degree-6 polynomial fitted for relative error on [-1/2, 1/2] (max relative error
// 1.1e-7, i.e. float rounding). Results below 2^-126 are flushed to 0. Written
// with plain arithmetic so that compilers vectorise it on the CPU; on the GPU it
// lets part of the exponentials bypass the special-function unit.
KFUSE_HD float exp2_poly(float x) {
  const float kShifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float xc = x < -126.0f ? -126.0f : x;
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
  return x < -126.0f ? 0.0f : result;
}

// Starting value of a row's running maximum: finite, so that a first tile whose
// terms are all -inf (distances overflowed for a tiny sigma) rescales by
// exp2(-inf) = 0 instead of producing -inf - (-inf) = NaN.
constexpr float kRunningMaxInit = -3.0e38f;

// Online log-sum-exp, base 2: a row's running maximum m and its sums scaled by
// 2^-m. Merging a state with maximum m_new rescales the old sums by 2^(m - m_new).
template <class W>
KFUSE_HD W rescale_factor(W m_old, W m_new) {
  return hd_exp2(m_old - m_new);
}

}  // namespace kfuse::detail
