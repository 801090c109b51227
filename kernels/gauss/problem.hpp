// The one computation behind every Gaussian-family operation, and what is done
// with its per-row results. Both backends implement gauss_sum over this
// description; the operations differ only in their inputs and their epilogue.
//
// For each query row i, over the sample rows j (a pair i == j left out when
// skip_diagonal), with s_ij = -c |x_i - y_j|^2 in base-2 units (kernels/gauss/math.hpp):
//   plain:       e_ij = w_j * 2^s_ij                      (any real weights)
//   stabilised:  e_ij = 2^(s_ij + log2 w_j - m_i)         (w_j >= 0; m_i the row maximum)
//   acc_i[r] = sum_j e_ij v_jr,   den_i = sum_j e_ij,   m_i (0 in plain form).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/core/hd.hpp"
#include "kernels/gauss/math.hpp"

namespace kfuse::detail {

template <class T>
struct GaussProblem {
  const T* x = nullptr;
  std::int64_t ldx = 0;
  const T* y = nullptr;
  std::int64_t ldy = 0;
  std::int64_t m = 0, n = 0, d = 0;
  const T* v = nullptr;  // [n x r]; r == 0: no acc, only den and m
  std::int64_t ldv = 0, r = 0;
  const T* w = nullptr;  // [n] with stride w_stride; null: all ones
  std::int64_t w_stride = 1;
  double sigma = 1.0;  // c = gauss_log2_coefficient<W>(sigma) in the backend's working type
  bool stabilised = false;
  bool skip_diagonal = false;  // x and y are the same sample
};

enum class GaussEpilogueKind : int {
  Matvec,     // out[i][r] = alpha * acc + beta * out (beta == 0: out not read)
  MeanShift,  // out[i][r] = acc / den
  Grad,       // out[i][r] (+)= grad_scale * u_i * (acc - x_ir * den)
  Kde,        // out[i] = ln 2 * (m + log2 den) + log_norm - ln(weight_total), or exp of that
  RowSum,     // out[i] = den
};

template <class T>
struct GaussEpilogue {
  GaussEpilogueKind kind = GaussEpilogueKind::Matvec;
  T* out = nullptr;
  std::int64_t ldo = 0;  // row stride of a matrix output
  double alpha = 1.0, beta = 0.0;
  const T* x = nullptr;  // Grad: the query rows
  std::int64_t ldx = 0;
  const T* u = nullptr;  // Grad: one column of U
  std::int64_t u_stride = 0;
  double grad_scale = 0.0;           // Grad: q / (sigma q)^2
  double grad_distance_scale = 1.0;  // Grad: q, applied to (acc - x den) first
  // MeanShift: the query rows (x, ldx) and the weighted sample, for a query whose
  // terms all underflow (gauss_nearest_mean).
  const T* y = nullptr;
  std::int64_t ldy = 0, n = 0, d = 0;
  const T* w = nullptr;  // null: all ones
  std::int64_t w_stride = 1;
  bool accumulate = false;
  bool log = true;  // Kde
  double log_norm = 0.0;
  const double* weight_total = nullptr;  // Kde: sum of weights in the backend's memory, or null
};

// A squared distance |x - y|^2 as 2^exp * mant, mant in [1/2, 1): compared
// lexicographically it orders distances whose square over- or underflows W (a
// query at 1e30 in fp32). Differences are scaled by a power of two before squaring
// (exact). A difference that overflows W ranks after every finite distance.
template <class W>
struct WideDist2 {
  int exp = 0;
  W mant = W(0);
};
template <class W>
KFUSE_HD bool wide_less(const WideDist2<W>& a, const WideDist2<W>& b) {
  return a.exp < b.exp || (a.exp == b.exp && a.mant < b.mant);
}
template <class W>
KFUSE_HD bool wide_equal(const WideDist2<W>& a, const WideDist2<W>& b) {
  return a.exp == b.exp && a.mant == b.mant;
}
template <class W, class T>
KFUSE_HD WideDist2<W> wide_dist2(const T* x, const T* y, std::int64_t d) {
  W a = W(0);
  for (std::int64_t k = 0; k < d; ++k) {
    const W diff = static_cast<W>(x[k]) - static_cast<W>(y[k]);
    const W mag = diff < W(0) ? -diff : diff;
    a = mag > a ? mag : a;
  }
  WideDist2<W> out;
  if (a == W(0)) {
    out.exp = -0x7fffffff;  // identical points: below every other distance
    return out;
  }
  if (a > std::numeric_limits<W>::max()) {
    out.exp = 0x7fffffff;
    return out;
  }
  int e = 0;
  hd_frexp(a, &e);
  W r = W(0);
  for (std::int64_t k = 0; k < d; ++k) {
    const W t = hd_ldexp(static_cast<W>(x[k]) - static_cast<W>(y[k]), -e);
    r += t * t;
  }
  int er = 0;
  out.mant = hd_frexp(r, &er);
  out.exp = 2 * e + er;
  return out;
}

// Mean shift for a query whose every term underflowed (den == 0: all its squared
// distances overflow the working type, e.g. a query at 1e30 in fp32): the limit of
// the stabilised weighted mean, the weighted mean of its nearest sample points of
// positive weight (ties averaged), coordinate r. O(n d) per call; such rows are rare.
// Not inlined into the kernels' epilogues on the device: the hot kernels should not
// pay registers for a path that rows far from every point take.
#if defined(__CUDACC__)
#define KFUSE_HD_COLD __host__ __device__ __noinline__
#else
#define KFUSE_HD_COLD inline
#endif
template <class T, class Acc>
KFUSE_HD_COLD Acc gauss_nearest_mean(const GaussEpilogue<T>& e, std::int64_t i, std::int64_t r) {
  const T* x = e.x + i * e.ldx;
  WideDist2<Acc> best;
  bool found = false;
  for (std::int64_t j = 0; j < e.n; ++j) {
    const Acc wj = e.w == nullptr ? Acc(1) : static_cast<Acc>(e.w[j * e.w_stride]);
    if (!(wj > Acc(0))) continue;
    const WideDist2<Acc> dj = wide_dist2<Acc>(x, e.y + j * e.ldy, e.d);
    if (!found || wide_less(dj, best)) best = dj;
    found = true;
  }
  Acc num = Acc(0), den = Acc(0);
  for (std::int64_t j = 0; j < e.n; ++j) {
    const Acc wj = e.w == nullptr ? Acc(1) : static_cast<Acc>(e.w[j * e.w_stride]);
    if (!(wj > Acc(0)) || !wide_equal(wide_dist2<Acc>(x, e.y + j * e.ldy, e.d), best)) continue;
    num += wj * static_cast<Acc>(e.y[j * e.ldy + r]);
    den += wj;
  }
  return num / den;
}

// Per element of a matrix output (kinds Matvec, MeanShift, Grad).
template <class T, class Acc>
KFUSE_HD void gauss_epilogue_element(const GaussEpilogue<T>& e, std::int64_t i, std::int64_t r,
                                     Acc acc, Acc den) {
  T* dst = e.out + i * e.ldo + r;
  switch (e.kind) {
    case GaussEpilogueKind::Matvec: {
      const Acc value = static_cast<Acc>(e.alpha) * acc;
      *dst = static_cast<T>(
          e.beta == 0.0 ? value : value + static_cast<Acc>(e.beta) * static_cast<Acc>(*dst));
      break;
    }
    case GaussEpilogueKind::MeanShift:
      // den == 0: every term underflowed (den is >= 1 otherwise: the row maximum's
      // own term is 2^0).
      *dst = static_cast<T>(den == Acc(0) && e.y != nullptr ? gauss_nearest_mean<T, Acc>(e, i, r)
                                                            : acc / den);
      break;
    case GaussEpilogueKind::Grad: {
      const Acc xir = static_cast<Acc>(e.x[i * e.ldx + r]);
      const Acc value = static_cast<Acc>(e.grad_scale) * static_cast<Acc>(e.u[i * e.u_stride]) *
                        ((acc - xir * den) * static_cast<Acc>(e.grad_distance_scale));
      *dst = static_cast<T>(e.accumulate ? static_cast<Acc>(*dst) + value : value);
      break;
    }
    default:
      break;
  }
}

// Per row (kinds Kde, RowSum).
template <class T, class Acc>
KFUSE_HD void gauss_epilogue_row(const GaussEpilogue<T>& e, std::int64_t i, Acc den, Acc m) {
  switch (e.kind) {
    case GaussEpilogueKind::Kde: {
      Acc log_p = static_cast<Acc>(kLn2) * (m + hd_log2(den)) + static_cast<Acc>(e.log_norm);
      if (e.weight_total != nullptr) log_p -= static_cast<Acc>(log(*e.weight_total));
      e.out[i] = static_cast<T>(e.log ? log_p : hd_exp(log_p));
      break;
    }
    case GaussEpilogueKind::RowSum:
      e.out[i] = static_cast<T>(den);
      break;
    default:
      break;
  }
}

KFUSE_HD bool gauss_epilogue_is_row(GaussEpilogueKind kind) {
  return kind == GaussEpilogueKind::Kde || kind == GaussEpilogueKind::RowSum;
}

}  // namespace kfuse::detail
