// CPU path of the Gaussian kernel family: obviously correct, and fast where that
// costs no clarity. Rows are spread over OpenMP threads; each thread walks the
// sample in blocks, computing a block of pairwise terms with loops the compiler
// vectorises (the sample is stored transposed and pre-scaled once), and
// accumulates in double. Each row's sums are formed in one fixed order, so the
// result does not depend on the number of threads.
#include "gauss.hpp"
#include "isa.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

namespace kfuse::cpu {
namespace {

using detail::GaussEpilogue;
using detail::GaussSum;

constexpr std::int64_t kRowBlock = 4;
constexpr std::int64_t kColBlock = 256;

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

// The sample transposed, so that the inner loops run over consecutive sample rows;
// rows padded with zeros to a whole number of strips.
template <class T>
struct PackedSample {
  std::int64_t stride = 0;  // padded n
  std::vector<T> yt;        // [d][stride]
  std::vector<T> vt;        // [r][stride]
  std::vector<T> weight;    // [n]: log2 w (stabilised) or w (plain)
};

template <class T>
PackedSample<T> pack_sample(const GaussSum<T>& p) {
  PackedSample<T> s;
  s.stride = (p.n + kColsPerStrip<T> - 1) / kColsPerStrip<T> * kColsPerStrip<T>;
  s.yt.assign(static_cast<std::size_t>(p.d * s.stride), T(0));
  s.vt.assign(static_cast<std::size_t>(p.r * s.stride), T(0));
  s.weight.resize(static_cast<std::size_t>(p.n));
  for (std::int64_t j = 0; j < p.n; ++j) {
    for (std::int64_t k = 0; k < p.d; ++k)
      s.yt[k * s.stride + j] = p.y[j * p.ldy + k];
    for (std::int64_t c = 0; c < p.r; ++c)
      s.vt[c * s.stride + j] = p.v[j * p.ldv + c];
    const T w = p.w == nullptr ? T(1) : p.w[j * p.w_stride];
    s.weight[j] = p.stabilised ? detail::log2_weight(w) : w;
  }
  return s;
}

// dist[ii][jj] = |x_ii - y_(j0 + jj)|^2 for kRowBlock rows and one strip of sample
// rows, in the direct form. The accumulator block is local (no aliasing question)
// and small enough to stay in vector registers for the whole d loop; the pragmas
// make the compiler vectorise across the strip, not along d (which would gather).
// The hot functions are always inlined into the per-ISA entry points below, so that
// each entry point is compiled whole for its instruction set.
#define KFUSE_CPU_HOT inline __attribute__((always_inline))

template <class T>
KFUSE_CPU_HOT void strip_distances(const T* __restrict xs, const T* __restrict yt,
                                   std::int64_t stride, std::int64_t d,
                                   T (&dist)[kRowBlock][kColsPerStrip<T>]) {
  constexpr int kStrip = kColsPerStrip<T>;
  T acc[kRowBlock][kStrip] = {};
  for (std::int64_t k = 0; k < d; ++k) {
    const T* __restrict yk = yt + k * stride;
#pragma GCC unroll 4
    for (int ii = 0; ii < kRowBlock; ++ii) {
      const T xk = xs[ii * d + k];
#pragma omp simd
      for (int jj = 0; jj < kStrip; ++jj) {
        const T diff = xk - yk[jj];
        acc[ii][jj] += diff * diff;
      }
    }
  }
  std::memcpy(dist, acc, sizeof(acc));
}

template <class T>
KFUSE_CPU_HOT void sum_row_block(const GaussSum<T>& p, const GaussEpilogue<T>& e,
                                 const PackedSample<T>& s, std::int64_t i0, std::int64_t rows) {
  const T c = detail::gauss_log2_coefficient<T>(p.sigma);
  const std::int64_t d = p.d, n = p.n, r = p.r;
  constexpr int kStrip = kColsPerStrip<T>;
  std::vector<T> xs(static_cast<std::size_t>(kRowBlock * d), T(0));  // rows past the end: 0
  std::vector<T> terms(static_cast<std::size_t>(kRowBlock * kColBlock));
  std::vector<double> acc(static_cast<std::size_t>(kRowBlock * r), 0.0);
  double den[kRowBlock] = {};
  double row_max[kRowBlock];
  for (std::int64_t ii = 0; ii < rows; ++ii) {
    row_max[ii] = p.stabilised ? double(detail::kRunningMaxInit) : 0.0;
    for (std::int64_t k = 0; k < d; ++k)
      xs[ii * d + k] = p.x[(i0 + ii) * p.ldx + k];
  }

  for (std::int64_t j0 = 0; j0 < n; j0 += kColBlock) {
    const std::int64_t cols = std::min(kColBlock, n - j0);
    // terms[ii][jj] = -c |x_i - y_j|^2, strip by strip (padding columns are computed
    // and ignored).
    for (std::int64_t js = 0; js < cols; js += kStrip) {
      T dist[kRowBlock][kStrip];
      strip_distances(xs.data(), s.yt.data() + j0 + js, s.stride, d, dist);
      for (int ii = 0; ii < kRowBlock; ++ii)
        for (int jj = 0; jj < kStrip && js + jj < cols; ++jj)
          terms[ii * kColBlock + js + jj] = -c * dist[ii][jj];
    }
    for (std::int64_t ii = 0; ii < rows; ++ii) {
      T* t = terms.data() + ii * kColBlock;
      const T* wt = s.weight.data() + j0;
      // A left-out pair (i == j) becomes a term of exactly 0.
      const std::int64_t diagonal = p.skip_diagonal ? i0 + ii - j0 : -1;
      const bool has_diagonal = diagonal >= 0 && diagonal < cols;
      if (p.stabilised) {
        T block_max = T(detail::kRunningMaxInit);
#pragma omp simd reduction(max : block_max)
        for (std::int64_t jj = 0; jj < cols; ++jj) {
          t[jj] += wt[jj];
          block_max = std::max(block_max, t[jj]);
        }
        if (has_diagonal) {
          // Recompute the maximum without the left-out term.
          t[diagonal] = -std::numeric_limits<T>::infinity();
          block_max = T(detail::kRunningMaxInit);
          for (std::int64_t jj = 0; jj < cols; ++jj)
            block_max = std::max(block_max, t[jj]);
        }
        const double new_max = std::max(row_max[ii], double(block_max));
        const double rescale = std::exp2(row_max[ii] - new_max);
        row_max[ii] = new_max;
        den[ii] *= rescale;
        for (std::int64_t c = 0; c < r; ++c)
          acc[ii * r + c] *= rescale;
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
      den[ii] += sum;
      for (std::int64_t c = 0; c < r; ++c) {
        const T* vc = s.vt.data() + c * s.stride + j0;
        double dot = 0.0;
#pragma omp simd reduction(+ : dot)
        for (std::int64_t jj = 0; jj < cols; ++jj)
          dot += double(t[jj]) * double(vc[jj]);
        acc[ii * r + c] += dot;
      }
    }
  }

  for (std::int64_t ii = 0; ii < rows; ++ii) {
    const std::int64_t i = i0 + ii;
    if (detail::gauss_epilogue_is_row(e.kind)) {
      detail::gauss_epilogue_row<T, double>(e, i, den[ii], row_max[ii]);
    } else {
      for (std::int64_t c = 0; c < r; ++c)
        detail::gauss_epilogue_element<T, double>(e, i, c, acc[ii * r + c], den[ii]);
    }
  }
}

// One entry point per instruction set: the baseline of the build, and on x86-64
// AVX2+FMA (256-bit vectors, twice the baseline's SSE2 width), chosen at run time.
template <class T>
void sum_rows_baseline(const GaussSum<T>& p, const GaussEpilogue<T>& e, const PackedSample<T>& s,
                       std::int64_t i0, std::int64_t rows) {
  sum_row_block(p, e, s, i0, rows);
}

#ifdef KFUSE_CPU_HAVE_AVX2_PATH
template <class T>
__attribute__((target("avx2,fma"))) void sum_rows_avx2(const GaussSum<T>& p,
                                                       const GaussEpilogue<T>& e,
                                                       const PackedSample<T>& s, std::int64_t i0,
                                                       std::int64_t rows) {
  sum_row_block(p, e, s, i0, rows);
}
#endif

}  // namespace

template <class T>
void gauss_sum(const GaussSum<T>& p, const GaussEpilogue<T>& e) {
  if (p.m == 0) return;
  auto* rows_fn = &sum_rows_baseline<T>;
#ifdef KFUSE_CPU_HAVE_AVX2_PATH
  if (use_avx2()) rows_fn = &sum_rows_avx2<T>;
#endif
  const PackedSample<T> sample = pack_sample(p);
  const std::int64_t blocks = (p.m + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(dynamic, 8)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t i0 = b * kRowBlock;
    rows_fn(p, e, sample, i0, std::min(kRowBlock, p.m - i0));
  }
}

template void gauss_sum<float>(const GaussSum<float>&, const GaussEpilogue<float>&);
template void gauss_sum<double>(const GaussSum<double>&, const GaussEpilogue<double>&);

}  // namespace kfuse::cpu
