// CPU path of the Gaussian kernel family: obviously correct, and fast where that
// costs no clarity. Panels of query rows are spread over OpenMP threads; each
// panel walks the sample in blocks, computing a block of pairwise terms in the
// direct form (x - y)^2 (no cancellation) with loops the compiler vectorises, and
// accumulates in double. The sample is packed once, GEMM-style, into strips of
// consecutive sample rows stored contiguously, and the distance loop is blocked
// over d so that a strip's chunk stays in L1 while every register block of the
// panel uses it. In fp32 at large d the distances come from sgemm instead, checked
// pair by pair against a rigorous error bound (sum_row_block_gemm). Each row's sums
// are formed in one fixed order, so the result does not depend on the number of
// threads.
#include "src/gauss/cpu.hpp"
#include "src/core/blas.hpp"
#include "src/core/isa.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

namespace kfuse::cpu {
namespace {

using detail::GaussEpilogue;
using detail::GaussProblem;

// Query rows per register block of the distance loop, register blocks per panel
// (the unit of work of one thread), sample rows per block of terms, and the
// coordinates per chunk of the d loop (a strip chunk of kDChunk x 64 bytes stays
// in L1 while all register blocks of the panel read it).
constexpr std::int64_t kRowBlock = 4;
constexpr std::int64_t kBlocksPerPanel = 8;
constexpr std::int64_t kPanelRows = kRowBlock * kBlocksPerPanel;
constexpr std::int64_t kColBlock = 256;
constexpr std::int64_t kDChunk = 256;

// 2^x for x <= 0: the vectorisable polynomial in float, libm in double.
inline float exp2_nonpositive(float x) {
  return detail::exp2_poly(x);
}
inline double exp2_nonpositive(double x) {
  return std::exp2(x);
}

// Sample rows per register block of the distance kernel: two 256-bit vectors.
template <class T>
constexpr int kColsPerStrip = 64 / sizeof(T);

// The fp32 GEMM route (sum_row_block_gemm below) from this d on. Measured on a 2-core
// AVX2 EPYC with OpenBLAS 0.3.21 at M = N = 1024: at d = 768 the route is ~15%
// faster than the direct form, at d = 256 and 384 (R = 16) not yet (the direct
// form's 2 instructions per coordinate against sgemm's 1 FMA, less the route's
// packing, centring and per-pair test).
constexpr std::int64_t kGemmMinD = 512;

// The sample packed in strips of kColsPerStrip consecutive rows, each strip stored
// transposed and contiguous ([strip][d][kColsPerStrip]), so that the distance loop
// reads one contiguous stream (a plain transpose would put the strip's coordinates
// a whole sample apart, which aliases in the cache when n is a power of two); rows
// padded with zeros to a whole number of strips. On the GEMM route the strips are
// not needed; the sample is stored centred instead, row by row, with its norms.
template <class T>
struct PackedSample {
  std::int64_t stride = 0;  // padded n
  std::vector<T> ys;        // [stride / kColsPerStrip][d][kColsPerStrip]
  std::vector<T> vt;        // [r][stride]
  std::vector<T> weight;    // [n]: log2 w (stabilised) or w (plain)
  bool gemm = false;        // the GEMM route (fp32, d >= kGemmMinD)
  std::vector<T> centre;    // [d]: mu, the mean of the sample rounded to T
  std::vector<T> yc;        // [n][d]: fl(y - mu)
  std::vector<T> ynorm;     // [n]: |y - mu|^2 rounded to T
  std::vector<T> yroot;     // [n]: an upper bound on |y - mu|
  const T* strip(std::int64_t j0, std::int64_t d) const {
    return ys.data() + j0 * d;  // j0 is a multiple of kColsPerStrip
  }
};

// out = fl(x - centre), norm = |out|^2 (in double, rounded), root >= |out| (the
// square root in double, rounded and raised by 2^-20 relative, more than the
// rounding's 2^-24).
template <class T>
void centre_row(const T* x, const T* centre, std::int64_t d, T* out, T& norm, T& root) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (std::int64_t k = 0; k < d; ++k) {
    out[k] = x[k] - centre[k];
    sum += double(out[k]) * double(out[k]);
  }
  norm = static_cast<T>(sum);
  root = static_cast<T>(std::sqrt(sum) * (1.0 + 0x1p-20));
}

template <class T>
PackedSample<T> pack_sample(const GaussProblem<T>& p) {
  PackedSample<T> s;
  s.stride = (p.n + kColsPerStrip<T> - 1) / kColsPerStrip<T> * kColsPerStrip<T>;
  constexpr int kStrip = kColsPerStrip<T>;
  s.gemm = std::is_same_v<T, float> && p.d >= kGemmMinD;
  if (s.gemm) {
    // Each coordinate's mean is summed in row order whatever the number of threads.
    constexpr std::int64_t kMeanChunk = 64;
    s.centre.resize(static_cast<std::size_t>(p.d));
#pragma omp parallel for schedule(static)
    for (std::int64_t k0 = 0; k0 < p.d; k0 += kMeanChunk) {
      const std::int64_t k1 = std::min(p.d, k0 + kMeanChunk);
      double mean[kMeanChunk] = {};
      for (std::int64_t j = 0; j < p.n; ++j)
        for (std::int64_t k = k0; k < k1; ++k)
          mean[k - k0] += double(p.y[j * p.ldy + k]);
      for (std::int64_t k = k0; k < k1; ++k)
        s.centre[k] = static_cast<T>(p.n > 0 ? mean[k - k0] / double(p.n) : 0.0);
    }
    s.yc.resize(static_cast<std::size_t>(p.n * p.d));
    s.ynorm.resize(static_cast<std::size_t>(p.n));
    s.yroot.resize(static_cast<std::size_t>(p.n));
#pragma omp parallel for schedule(static)
    for (std::int64_t j = 0; j < p.n; ++j)
      centre_row(p.y + j * p.ldy, s.centre.data(), p.d, s.yc.data() + j * p.d, s.ynorm[j],
                 s.yroot[j]);
  } else {
    s.ys.assign(static_cast<std::size_t>(p.d * s.stride), T(0));
  }
  s.vt.assign(static_cast<std::size_t>(p.r * s.stride), T(0));
  s.weight.resize(static_cast<std::size_t>(p.n));
  for (std::int64_t j = 0; j < p.n; ++j) {
    if (!s.gemm)
      for (std::int64_t k = 0; k < p.d; ++k)
        s.ys[(j / kStrip * p.d + k) * kStrip + j % kStrip] = p.y[j * p.ldy + k];
    for (std::int64_t c = 0; c < p.r; ++c)
      s.vt[c * s.stride + j] = p.v[j * p.ldv + c];
    const T w = p.w == nullptr ? T(1) : p.w[j * p.w_stride];
    s.weight[j] = p.stabilised ? detail::log2_weight(w) : w;
  }
  return s;
}

// dist[ii][jj] = |x_ii - y_(j0 + jj)|^2 for the first `blocks` register blocks of
// a panel and one strip of sample rows, in the direct form. The accumulator block
// is local (no aliasing question) and small enough to stay in vector registers for
// a whole chunk of d; the pragmas make the compiler vectorise across the strip, not
// along d (which would gather). The hot functions are always inlined into the
// per-ISA entry points (KFUSE_CPU_HOT, src/core/isa.hpp), so that each entry
// point is compiled whole for its instruction set.

// kScaled: the differences are scaled by q (a power of two, kernels/gauss/math.hpp) before
// squaring; only for a sigma far from 1, so the ordinary loop is unchanged.
template <class T, bool kScaled>
KFUSE_CPU_HOT void strip_distances(const T* __restrict xs, const T* __restrict ys, std::int64_t d,
                                   std::int64_t blocks, T q,
                                   T (&dist)[kPanelRows][kColsPerStrip<T>]) {
  constexpr int kStrip = kColsPerStrip<T>;
  for (std::int64_t k0 = 0; k0 < d; k0 += kDChunk) {
    const std::int64_t k1 = std::min(d, k0 + kDChunk);
    for (std::int64_t b = 0; b < blocks; ++b) {
      const T* __restrict xb = xs + b * kRowBlock * d;
      T acc[kRowBlock][kStrip];
      if (k0 == 0)
        std::memset(acc, 0, sizeof(acc));
      else
        std::memcpy(acc, dist[b * kRowBlock], sizeof(acc));
      for (std::int64_t k = k0; k < k1; ++k) {
        const T* __restrict yk = ys + k * kStrip;
#pragma GCC unroll 4
        for (int ii = 0; ii < kRowBlock; ++ii) {
          const T xk = xb[ii * d + k];
#pragma omp simd
          for (int jj = 0; jj < kStrip; ++jj) {
            const T diff = kScaled ? (xk - yk[jj]) * q : xk - yk[jj];
            acc[ii][jj] += diff * diff;
          }
        }
      }
      std::memcpy(dist[b * kRowBlock], acc, sizeof(acc));
    }
  }
}

// The running sums of one query row: den, acc[r] and the row maximum (stabilised).
struct RowSums {
  double den = 0.0;
  double max = 0.0;
  double* acc = nullptr;  // [r]
};

// Adds one block of terms t[jj] = -c |x_i - y_(j0 + jj)|^2 (overwritten) to row i's
// sums: weights, the left-out diagonal, the stabilised running maximum, exp2, and
// the products with V in double. The same for both distance routes.
template <class T>
KFUSE_CPU_HOT void add_terms(const GaussProblem<T>& p, const PackedSample<T>& s, std::int64_t i,
                             std::int64_t j0, std::int64_t cols, T* t, double* td, RowSums& row) {
  const T max_init = detail::running_max_init<T>();
  const std::int64_t r = p.r;
  const T* wt = s.weight.data() + j0;
  // A left-out pair (i == j) becomes a term of exactly 0.
  const std::int64_t diagonal = p.skip_diagonal ? i - j0 : -1;
  const bool has_diagonal = diagonal >= 0 && diagonal < cols;
  if (p.stabilised) {
    T block_max = max_init;
#pragma omp simd reduction(max : block_max)
    for (std::int64_t jj = 0; jj < cols; ++jj) {
      t[jj] += wt[jj];
      block_max = std::max(block_max, t[jj]);
    }
    if (has_diagonal) {
      // Recompute the maximum without the left-out term.
      t[diagonal] = -std::numeric_limits<T>::infinity();
      block_max = max_init;
      for (std::int64_t jj = 0; jj < cols; ++jj)
        block_max = std::max(block_max, t[jj]);
    }
    const double new_max = std::max(row.max, double(block_max));
    const double rescale = std::exp2(row.max - new_max);
    row.max = new_max;
    row.den *= rescale;
    for (std::int64_t c = 0; c < r; ++c)
      row.acc[c] *= rescale;
    const T m = static_cast<T>(new_max);
    for (std::int64_t jj = 0; jj < cols; ++jj)
      t[jj] = exp2_nonpositive(t[jj] - m);
  } else {
    for (std::int64_t jj = 0; jj < cols; ++jj)
      t[jj] = exp2_nonpositive(t[jj]) * wt[jj];
    if (has_diagonal) t[diagonal] = T(0);
  }
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (std::int64_t jj = 0; jj < cols; ++jj)
    sum += double(t[jj]);
  row.den += sum;
  // From four columns of V on: the terms in double once (td, scratch of cols), and
  // four columns at a time, independent chains of vector FMAs instead of one waiting
  // on its own latency (eight made GCC keep the accumulators in memory). Each
  // column's sum is formed as in the loop for one column (the same products, lanes
  // and order), so the result is the same.
  const T* vt = s.vt.data() + j0;
  const std::int64_t ld = s.stride;
  std::int64_t c = 0;
  if (r >= 4) {
#pragma omp simd
    for (std::int64_t jj = 0; jj < cols; ++jj)
      td[jj] = double(t[jj]);
  }
  for (; c + 4 <= r; c += 4) {
    const T* v = vt + c * ld;
    double d0 = 0.0, d1 = 0.0, d2 = 0.0, d3 = 0.0;
#pragma omp simd reduction(+ : d0, d1, d2, d3)
    for (std::int64_t jj = 0; jj < cols; ++jj) {
      d0 += td[jj] * double(v[jj]);
      d1 += td[jj] * double(v[ld + jj]);
      d2 += td[jj] * double(v[2 * ld + jj]);
      d3 += td[jj] * double(v[3 * ld + jj]);
    }
    row.acc[c] += d0;
    row.acc[c + 1] += d1;
    row.acc[c + 2] += d2;
    row.acc[c + 3] += d3;
  }
  for (; c < r; ++c) {
    const T* vc = vt + c * ld;
    double dot = 0.0;
#pragma omp simd reduction(+ : dot)
    for (std::int64_t jj = 0; jj < cols; ++jj)
      dot += double(t[jj]) * double(vc[jj]);
    row.acc[c] += dot;
  }
}

template <class T>
void finish_row(const GaussProblem<T>& p, const GaussEpilogue<T>& e, std::int64_t i,
                const RowSums& row) {
  if (detail::gauss_epilogue_is_row(e.kind)) {
    detail::gauss_epilogue_row<T, double>(e, i, row.den, row.max);
  } else {
    for (std::int64_t c = 0; c < p.r; ++c)
      detail::gauss_epilogue_element<T, double>(e, i, c, row.acc[c], row.den);
  }
}

// |x_i - y_j|^2 (times q^2 when kScaled) in the direct form, for one pair.
template <class T, bool kScaled>
KFUSE_CPU_HOT T pair_distance(const T* __restrict x, const T* __restrict y, std::int64_t d, T q) {
  T dist = T(0);
#pragma omp simd reduction(+ : dist)
  for (std::int64_t k = 0; k < d; ++k) {
    const T diff = kScaled ? (x[k] - y[k]) * q : x[k] - y[k];
    dist += diff * diff;
  }
  return dist;
}

template <class T, bool kScaled>
KFUSE_CPU_HOT void sum_row_block_direct(const GaussProblem<T>& p, const GaussEpilogue<T>& e,
                                        const PackedSample<T>& s, std::int64_t i0,
                                        std::int64_t rows) {
  const T c = detail::gauss_log2_coefficient<T>(p.sigma);
  const T q = static_cast<T>(detail::gauss_distance_scale<T>(p.sigma));
  const T max_init = detail::running_max_init<T>();
  const std::int64_t d = p.d, n = p.n, r = p.r;
  constexpr int kStrip = kColsPerStrip<T>;
  // Register blocks that hold a row of the panel (rows past the end are 0 and
  // ignored).
  const std::int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  std::vector<T> xs(static_cast<std::size_t>(kPanelRows * d), T(0));
  std::vector<T> terms(static_cast<std::size_t>(kPanelRows * kColBlock));
  std::vector<double> td(static_cast<std::size_t>(kColBlock));
  std::vector<double> acc(static_cast<std::size_t>(kPanelRows * r), 0.0);
  RowSums sums[kPanelRows];
  for (std::int64_t ii = 0; ii < rows; ++ii) {
    sums[ii].max = p.stabilised ? double(max_init) : 0.0;
    sums[ii].acc = acc.data() + ii * r;
    for (std::int64_t k = 0; k < d; ++k)
      xs[ii * d + k] = p.x[(i0 + ii) * p.ldx + k];
  }

  for (std::int64_t j0 = 0; j0 < n; j0 += kColBlock) {
    const std::int64_t cols = std::min(kColBlock, n - j0);
    // terms[ii][jj] = -c |x_i - y_j|^2, strip by strip (padding columns are computed
    // and ignored).
    for (std::int64_t js = 0; js < cols; js += kStrip) {
      T dist[kPanelRows][kStrip];
      strip_distances<T, kScaled>(xs.data(), s.strip(j0 + js, d), d, blocks, q, dist);
      for (std::int64_t ii = 0; ii < rows; ++ii)
        for (int jj = 0; jj < kStrip && js + jj < cols; ++jj)
          terms[ii * kColBlock + js + jj] = -c * dist[ii][jj];
    }
    for (std::int64_t ii = 0; ii < rows; ++ii)
      add_terms(p, s, i0 + ii, j0, cols, terms.data() + ii * kColBlock, td.data(), sums[ii]);
  }
  for (std::int64_t ii = 0; ii < rows; ++ii)
    finish_row(p, e, i0 + ii, sums[ii]);
}

// The GEMM route (fp32, d >= kGemmMinD): squared distances as |a|^2 + |b|^2 - 2 a.b
// on centred points a = fl(x - mu), b = fl(y - mu) (mu the mean of Y), the cross
// products a.b by sgemm, and every pair whose rigorous error bound is not small
// next to its distance recomputed in the direct form.
//
// The bound, with u = 2^-24 and gamma_k = k u / (1 - k u), for the computed
// dhat = fl(fl(|a|^2 + |b|^2) + fl(-2 a.b)) against the true D = |x - y|^2:
//   - centring: a - b = (x - y) + e with |e_k| <= u (|a_k| + |b_k|), so
//     |D' - D| <= |e| (2 |a - b| + |e|) <= 3u (|a| + |b|)^2 (1 + O(u)), D' = |a - b|^2;
//   - the dot product, in any summation order and with or without FMA:
//     |fl(a.b) - a.b| <= gamma_d sum_k |a_k b_k| <= gamma_d |a| |b|;
//   - the norms (in double, rounded to fp32) and the two additions:
//     2u (|a|^2 + |b|^2) + u dhat;
// in all |dhat - D| <= gamma_(d+7) (|a| + |b|)^2, plus (d + 8) 2^-126 for products
// that underflow (absolute errors <= 2^-150 each). The code takes
//   E = gamma_(d+16) (ra + rb)^2 + (d + 8) 2^-126   (ra >= |a|, rb >= |b|; the extra
// 9 u cover the rounding of E itself) and keeps dhat when
//   E (1 + 1 / (kappa gamma_d)) <= dhat <= FLT_MAX,  kappa = 4,
// which gives dhat - E >= E / (kappa gamma_d), so, as D >= dhat - E,
//   |dhat - D| <= E <= kappa gamma_d D:
// about 4 times the worst case of the direct form (whose terms are all >= 0, so its
// error is <= gamma_(d+3) D: the rounded difference, its square, the sum). Every
// other pair (near duplicates, points far from mu next to their distance,
// overflowing norms, NaN) takes the direct form. For independent points centred at
// their mean (|a|, |b| about |a - b| / sqrt 2) the test needs (|a| + |b|)^2 <= ~3.9 D
// and passes with ~2 D, so random data stays on the fast route. kScaled: dhat is
// scaled by q twice, exact (q a power of two) unless the result underflows, where
// the kernel value is 1 either way.
constexpr double kGemmKappa = 4.0;

// Query rows per panel (one sgemm operand, fixed so that results do not depend on
// the number of threads) and sample rows per sgemm call: 256 x 1024 was the fastest
// of {64, 128, 256} x {256, 512, 1024} at d = 768 (fewer repackings of the sample).
constexpr std::int64_t kGemmPanelRows = 256;
constexpr std::int64_t kGemmColBlock = 1024;

// The constants of the test above, in fp32: err = gamma (ra + rb)^2 + tiny, kept when
// err * ratio <= dhat (ratio rounded up, so that the product is not below the real
// E (1 + 1 / (kappa gamma_d))).
struct GemmBound {
  float gamma, tiny, ratio;
};
inline GemmBound gemm_bound(std::int64_t d) {
  const double u = 0x1p-24;
  const auto gamma = [u](double k) { return k * u / (1.0 - k * u); };
  GemmBound b;
  b.gamma = static_cast<float>(gamma(double(d) + 16.0) * (1.0 + 0x1p-20));
  b.tiny = static_cast<float>((double(d) + 8.0) * 0x1p-126);
  b.ratio = static_cast<float>((1.0 + 1.0 / (kGemmKappa * gamma(double(d)))) * (1.0 + 0x1p-20));
  return b;
}

template <class T, bool kScaled>
KFUSE_CPU_HOT void sum_row_block_gemm(const GaussProblem<T>& p, const GaussEpilogue<T>& e,
                                      const PackedSample<T>& s, std::int64_t i0,
                                      std::int64_t rows) {
  static_assert(std::is_same_v<T, float>, "the GEMM route is fp32 only");
  const float c = detail::gauss_log2_coefficient<float>(p.sigma);
  const float q = static_cast<float>(detail::gauss_distance_scale<float>(p.sigma));
  const float max_init = detail::running_max_init<float>();
  const std::int64_t d = p.d, n = p.n, r = p.r;
  const GemmBound bound = gemm_bound(d);

  // Buffers written before they are read: left uninitialised (zeroing the terms,
  // 1 MiB a panel, is measurable).
  const std::unique_ptr<float[]> xc(new float[static_cast<std::size_t>(rows * d)]);
  std::vector<float> xnorm(static_cast<std::size_t>(rows)), xroot(static_cast<std::size_t>(rows));
  const std::unique_ptr<float[]> terms(new float[static_cast<std::size_t>(rows * kGemmColBlock)]);
  const std::unique_ptr<double[]> td(new double[static_cast<std::size_t>(kGemmColBlock)]);
  std::vector<double> acc(static_cast<std::size_t>(rows * r), 0.0);
  std::vector<RowSums> sums(static_cast<std::size_t>(rows));
  for (std::int64_t ii = 0; ii < rows; ++ii) {
    sums[ii].max = p.stabilised ? double(max_init) : 0.0;
    sums[ii].acc = acc.data() + ii * r;
    centre_row(p.x + (i0 + ii) * p.ldx, s.centre.data(), d, xc.get() + ii * d, xnorm[ii],
               xroot[ii]);
  }

  for (std::int64_t j0 = 0; j0 < n; j0 += kGemmColBlock) {
    const std::int64_t cols = std::min(kGemmColBlock, n - j0);
    // terms = -2 a.b, then -c dhat where the bound allows and NaN (to be redone) elsewhere.
    sgemm(Trans::No, Trans::Yes, rows, cols, d, -2.0f, xc.get(), d, s.yc.data() + j0 * d, d, 0.0f,
          terms.get(), kGemmColBlock);
    const float* yn = s.ynorm.data() + j0;
    const float* yr = s.yroot.data() + j0;
    for (std::int64_t ii = 0; ii < rows; ++ii) {
      float* t = terms.get() + ii * kGemmColBlock;
      const float xn = xnorm[ii], xr = xroot[ii];
      std::int32_t redo = 0;  // pairs left to the direct form (int: vectorises with float)
#pragma omp simd reduction(+ : redo)
      for (std::int64_t jj = 0; jj < cols; ++jj) {
        const float dhat = (xn + yn[jj]) + t[jj];
        const float root = xr + yr[jj];
        const float err = bound.gamma * root * root + bound.tiny;
        const bool ok = err * bound.ratio <= dhat && dhat <= std::numeric_limits<float>::max();
        const float dist = kScaled ? dhat * q * q : dhat;
        t[jj] = ok ? -c * dist : std::numeric_limits<float>::quiet_NaN();
        redo += ok ? 0 : 1;
      }
      if (redo != 0) {
        const float* x = p.x + (i0 + ii) * p.ldx;
        for (std::int64_t jj = 0; jj < cols; ++jj)
          if (std::isnan(t[jj]))
            t[jj] = -c * pair_distance<float, kScaled>(x, p.y + (j0 + jj) * p.ldy, d, q);
      }
      add_terms(p, s, i0 + ii, j0, cols, t, td.get(), sums[ii]);
    }
  }
  for (std::int64_t ii = 0; ii < rows; ++ii)
    finish_row(p, e, i0 + ii, sums[ii]);
}

template <class T, bool kScaled>
KFUSE_CPU_HOT void sum_row_block(const GaussProblem<T>& p, const GaussEpilogue<T>& e,
                                 const PackedSample<T>& s, std::int64_t i0, std::int64_t rows) {
  if constexpr (std::is_same_v<T, float>) {
    if (s.gemm) {
      sum_row_block_gemm<T, kScaled>(p, e, s, i0, rows);
      return;
    }
  }
  sum_row_block_direct<T, kScaled>(p, e, s, i0, rows);
}

}  // namespace

template <class T>
void gauss_sum(const GaussProblem<T>& p, const GaussEpilogue<T>& e) {
  if (p.m == 0) return;
  const bool scaled = detail::gauss_distance_scale<T>(p.sigma) != 1.0;
  // One entry point per instruction set (src/core/isa.hpp): a strip is two 256-bit
  // vectors on AVX2, one 512-bit vector on AVX-512.
  auto* const rows_fn = scaled ? cpu_entry_point<&sum_row_block<T, true>>()
                               : cpu_entry_point<&sum_row_block<T, false>>();
  const PackedSample<T> sample = pack_sample(p);
  // Panels of fixed rows whatever the number of threads: each sgemm call, and so
  // each result, is the same with any number of threads.
  const std::int64_t panel_rows = sample.gemm ? kGemmPanelRows : kPanelRows;
  const std::int64_t panels = (p.m + panel_rows - 1) / panel_rows;
#pragma omp parallel for schedule(dynamic, sample.gemm ? 1 : 2)
  for (std::int64_t b = 0; b < panels; ++b) {
    const std::int64_t i0 = b * panel_rows;
    rows_fn(p, e, sample, i0, std::min(panel_rows, p.m - i0));
  }
}

template void gauss_sum<float>(const GaussProblem<float>&, const GaussEpilogue<float>&);
template void gauss_sum<double>(const GaussProblem<double>&, const GaussEpilogue<double>&);

}  // namespace kfuse::cpu
