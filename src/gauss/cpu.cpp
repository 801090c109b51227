// CPU path of the Gaussian kernel family: obviously correct, and fast where that
// costs no clarity. Panels of query rows are spread over OpenMP threads; each
// panel walks the sample in blocks, computing a block of pairwise terms in the
// direct form (x - y)^2 (no cancellation) with loops the compiler vectorises, and
// accumulates in double. The sample is packed once, GEMM-style, into strips of
// consecutive sample rows stored contiguously, and the distance loop is blocked
// over d so that a strip's chunk stays in L1 while every register block of the
// panel uses it. Each row's sums are formed in one fixed order, so the result does
// not depend on the number of threads.
#include "src/gauss/cpu.hpp"
#include "src/core/isa.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
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

// The sample packed in strips of kColsPerStrip consecutive rows, each strip stored
// transposed and contiguous ([strip][d][kColsPerStrip]), so that the distance loop
// reads one contiguous stream (a plain transpose would put the strip's coordinates
// a whole sample apart, which aliases in the cache when n is a power of two); rows
// padded with zeros to a whole number of strips.
template <class T>
struct PackedSample {
  std::int64_t stride = 0;  // padded n
  std::vector<T> ys;        // [stride / kColsPerStrip][d][kColsPerStrip]
  std::vector<T> vt;        // [r][stride]
  std::vector<T> weight;    // [n]: log2 w (stabilised) or w (plain)
  const T* strip(std::int64_t j0, std::int64_t d) const {
    return ys.data() + j0 * d;  // j0 is a multiple of kColsPerStrip
  }
};

template <class T>
PackedSample<T> pack_sample(const GaussProblem<T>& p) {
  PackedSample<T> s;
  s.stride = (p.n + kColsPerStrip<T> - 1) / kColsPerStrip<T> * kColsPerStrip<T>;
  constexpr int kStrip = kColsPerStrip<T>;
  s.ys.assign(static_cast<std::size_t>(p.d * s.stride), T(0));
  s.vt.assign(static_cast<std::size_t>(p.r * s.stride), T(0));
  s.weight.resize(static_cast<std::size_t>(p.n));
  for (std::int64_t j = 0; j < p.n; ++j) {
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

template <class T, bool kScaled>
KFUSE_CPU_HOT void sum_row_block(const GaussProblem<T>& p, const GaussEpilogue<T>& e,
                                 const PackedSample<T>& s, std::int64_t i0, std::int64_t rows) {
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
  std::vector<double> acc(static_cast<std::size_t>(kPanelRows * r), 0.0);
  double den[kPanelRows] = {};
  double row_max[kPanelRows];
  for (std::int64_t ii = 0; ii < rows; ++ii) {
    row_max[ii] = p.stabilised ? double(max_init) : 0.0;
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
    for (std::int64_t ii = 0; ii < rows; ++ii) {
      T* t = terms.data() + ii * kColBlock;
      const T* wt = s.weight.data() + j0;
      // A left-out pair (i == j) becomes a term of exactly 0.
      const std::int64_t diagonal = p.skip_diagonal ? i0 + ii - j0 : -1;
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
  const std::int64_t panels = (p.m + kPanelRows - 1) / kPanelRows;
#pragma omp parallel for schedule(dynamic, 2)
  for (std::int64_t b = 0; b < panels; ++b) {
    const std::int64_t i0 = b * kPanelRows;
    rows_fn(p, e, sample, i0, std::min(kPanelRows, p.m - i0));
  }
}

template void gauss_sum<float>(const GaussProblem<float>&, const GaussEpilogue<float>&);
template void gauss_sum<double>(const GaussProblem<double>&, const GaussEpilogue<double>&);

}  // namespace kfuse::cpu
