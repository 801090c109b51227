// Per-pair and per-row math of the contrastive loss family, shared by the CPU
// path (W = double) and the CUDA kernels (W = float), and unit-tested on the CPU.
//
// Every exponential here has a non-positive argument or is the stable branch of a
// two-sided formula, so logits of any size (tau = 100 gives |S| up to 100 and
// beyond) give finite results.
#pragma once

#include <math.h>

#include <cstdint>
#include <cstring>

#include "kernels/core/hd.hpp"
#include "kernels/core/hd_math.hpp"

namespace kfuse::detail::contrastive {

// e^x in double with arithmetic only, so that the CPU path's loops vectorise it
// (libm's exp is a call per element): x = n ln 2 + r with |r| <= ln 2 / 2 (n by
// round-to-nearest, ln 2 split in two parts), e^r by its degree-13 Taylor
// polynomial (truncation < 5e-18), times 2^n built in the exponent bits. Relative
// error ~2e-16 (tested); x < -708.39 gives 0 (no subnormal results), x > 709.78
// gives inf, NaN stays NaN.
KFUSE_HD double exp_poly(double x) {
  const double kShifter = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
  const double kLog2e = 1.4426950408889634074;
  const double kLn2Hi = 6.93147180369123816490e-01;  // ln 2, upper bits (n * kLn2Hi is exact)
  const double kLn2Lo = 1.90821492927058770002e-10;
  const double xc = x < -708.5 ? -708.5 : (x > 709.5 ? 709.5 : x);
  const double t = xc * kLog2e + kShifter;  // n sits in the low mantissa bits of t
  const double n = t - kShifter;
  const double r = (xc - n * kLn2Hi) - n * kLn2Lo;
  double p = 1.0 / 6227020800.0;  // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // p * 2^n: n added to the exponent field, in unsigned (wrapping) integer
  // arithmetic taken from t's bits (no double-to-integer conversion, which would
  // keep AVX2 from vectorising the loops that call this).
  std::uint64_t p_bits, t_bits;
  std::memcpy(&p_bits, &p, sizeof(p_bits));
  std::memcpy(&t_bits, &t, sizeof(t_bits));
  p_bits += (t_bits - 0x4338000000000000ull) << 52;  // 0x4338...: the bits of kShifter
  double result;
  std::memcpy(&result, &p_bits, sizeof(result));
  if (x < -708.39) result = 0.0;
  if (x > 709.78) result = INFINITY;
  return x != x ? x : result;
}

// log(1 + u) for u in [0, 1] (softplus's range) in double with arithmetic only, so
// that the CPU path's loops vectorise it (libm's log1p is a call per element):
// log(1 + u) = 2 atanh(z), z = u / (2 + u) in [0, 1/3], by the odd series
// 2 z (1 + z^2/3 + ... + z^32/33) (truncation < 2e-17 relative, z^2 <= 1/9).
// Relative error ~3e-16 (tested); NaN stays NaN.
KFUSE_HD double log1p_unit_poly(double u) {
  const double z = u / (2.0 + u), z2 = z * z;
  double p = 1.0 / 33.0;
  p = p * z2 + 1.0 / 31.0;
  p = p * z2 + 1.0 / 29.0;
  p = p * z2 + 1.0 / 27.0;
  p = p * z2 + 1.0 / 25.0;
  p = p * z2 + 1.0 / 23.0;
  p = p * z2 + 1.0 / 21.0;
  p = p * z2 + 1.0 / 19.0;
  p = p * z2 + 1.0 / 17.0;
  p = p * z2 + 1.0 / 15.0;
  p = p * z2 + 1.0 / 13.0;
  p = p * z2 + 1.0 / 11.0;
  p = p * z2 + 1.0 / 9.0;
  p = p * z2 + 1.0 / 7.0;
  p = p * z2 + 1.0 / 5.0;
  p = p * z2 + 1.0 / 3.0;
  p = p * z2 + 1.0;
  return 2.0 * z * p;
}

// exp on host and device alike (the host's double exp is exp_poly: see above),
// and log1p of an argument in [0, 1] (the host's double one is log1p_unit_poly);
// log and log1p come from hd_math.hpp.
KFUSE_HD float c_exp(float x) {
  return expf(x);
}
KFUSE_HD double c_exp(double x) {
#if KFUSE_DEVICE_CODE
  return exp(x);
#else
  return exp_poly(x);
#endif
}
KFUSE_HD float c_log1p_unit(float u) {
  return hd_log1p(u);
}
KFUSE_HD double c_log1p_unit(double u) {
#if KFUSE_DEVICE_CODE
  return hd_log1p(u);
#else
  return log1p_unit_poly(u);
#endif
}
template <class W>
KFUSE_HD W c_max(W a, W b) {
  return a > b ? a : b;
}

// ------------------------------------------------------------------ log-sum-exp

// A running log-sum-exp: the value is m + log(s), s the sum of exp(x - m) over the
// terms seen. Empty: m = -inf, s = 0 (value -inf).
template <class W>
struct Lse {
  W m;
  W s;
};

template <class W>
KFUSE_HD Lse<W> lse_empty() {
  return {W(-INFINITY), W(0)};
}

// The state of the union of two term sets. Exact up to rounding in any order, and
// the same bits for the same two states (the merge order is the caller's to fix).
template <class W>
KFUSE_HD Lse<W> lse_merge(Lse<W> a, Lse<W> b) {
  const W m = c_max(a.m, b.m);
  if (m == W(-INFINITY)) return lse_empty<W>();  // both empty: -inf - -inf is NaN
  return {m, a.s * c_exp(a.m - m) + b.s * c_exp(b.m - m)};
}

// Adds one term x (a finite logit, or -inf for a masked one).
template <class W>
KFUSE_HD Lse<W> lse_add(Lse<W> a, W x) {
  return lse_merge(a, Lse<W>{x, x == W(-INFINITY) ? W(0) : W(1)});
}

template <class W>
KFUSE_HD W lse_value(Lse<W> a) {
  return a.m + hd_log(a.s);
}

// ------------------------------------------------------------------ logits, labels

// S_ij = tau * (x_i . y_j) + b.
template <class W>
KFUSE_HD W logit(W dot, W tau, W bias) {
  return tau * dot + bias;
}

// How a pass learns which pairs are positive. Identity: (i, i). Rows: labels[i] is
// row i's positive column. Cols: labels[j] is column j's positive row (the pass
// over B's rows of a symmetric loss whose labels are given for A's rows).
enum class LabelMode : int { Identity = 0, Rows = 1, Cols = 2 };

// label_row = labels[i] (mode Rows), label_col = labels[j] (mode Cols); the other
// is ignored.
KFUSE_HD bool is_positive(LabelMode mode, std::int64_t i, std::int64_t j, std::int64_t label_row,
                          std::int64_t label_col) {
  switch (mode) {
    case LabelMode::Rows:
      return label_row == j;
    case LabelMode::Cols:
      return label_col == i;
    default:
      return i == j;
  }
}

// ------------------------------------------------------------------ CLIP

// Cross-entropy of one row of logits against the label-smoothed target
// (1 - eps) onehot(pos) + eps / C:  lse - (1 - eps) s_pos - (eps / C) sum_c s_c.
template <class W>
KFUSE_HD W ce_loss(W lse, W s_pos, W s_sum, W eps, W classes) {
  return lse - (W(1) - eps) * s_pos - (eps / classes) * s_sum;
}

// d ce_loss / d s for one logit s of that row: softmax minus target.
template <class W>
KFUSE_HD W ce_grad(W s, W lse, bool positive, W eps, W classes) {
  return c_exp(s - lse) - ((positive ? W(1) - eps : W(0)) + eps / classes);
}

// dL/dS_ij up to the common factor c0 (clip_factors below): the row direction's
// and the column direction's CE gradients, weighted by rx and ry. nx is the
// number of rows (the column direction's classes), ny the number of columns.
template <class W>
KFUSE_HD W clip_dlogit(W s, W lse_row, W lse_col, bool positive, W rx, W ry, W eps, W nx, W ny) {
  W g = W(0);
  if (rx != W(0)) g += rx * ce_grad(s, lse_row, positive, eps, ny);
  if (ry != W(0)) g += ry * ce_grad(s, lse_col, positive, eps, nx);
  return g;
}

// L = wx (1/nx) sum_rows CE + wy (1/ny) sum_cols CE has dL/dS_ij =
// c0 * clip_dlogit(..., rx, ry) with c0 = coef * grad_loss. The ratios rx, ry lie
// in [0, 1] (one of them is 1), so the stored dS' = dS / c0 is O(1) whatever N:
// it keeps fp16/bf16 operands of the gradient products away from underflow.
struct ClipFactors {
  double rx, ry, coef;
};
inline ClipFactors clip_factors(double wx, double wy, double nx, double ny) {
  const double cx = wx / nx, cy = wy / ny;
  const double c = cx > cy ? cx : cy;
  return {cx / c, cy / c, c};
}

// ------------------------------------------------------------------ SigLIP

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|).
template <class W>
KFUSE_HD W softplus(W x) {
  const W a = x < W(0) ? -x : x;
  return c_max(x, W(0)) + c_log1p_unit(c_exp(-a));
}

// 1 / (1 + e^-x), with the exponential of -|x| only.
template <class W>
KFUSE_HD W sigmoid(W x) {
  if (x >= W(0)) return W(1) / (W(1) + c_exp(-x));
  const W e = c_exp(x);
  return e / (W(1) + e);
}

// One pair's loss, softplus(-z s) with z = +1 for a positive pair, -1 otherwise.
template <class W>
KFUSE_HD W siglip_term(W s, bool positive) {
  return softplus(positive ? -s : s);
}

// Its derivative in s: -z sigmoid(-z s).
template <class W>
KFUSE_HD W siglip_dlogit(W s, bool positive) {
  return positive ? -sigmoid(-s) : sigmoid(s);
}

}  // namespace kfuse::detail::contrastive
