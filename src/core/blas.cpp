#include "src/core/blas.hpp"

#include <algorithm>
#include <climits>

#include <cblas.h>

// OpenBLAS's own entry points (declared by its cblas.h, but not by every other).
extern "C" char* openblas_get_config(void);
extern "C" char* openblas_get_corename(void);

namespace kfuse::cpu {

namespace {

bool fits_int(std::int64_t v) {
  return v <= INT_MAX;
}

}  // namespace

void sgemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
           const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float beta, float* C,
           std::int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) {
    // No products (the BLAS would also reject lda < 1 for k == 0).
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  // The BLAS checks lda >= max(1, columns stored per row); a view's ld may be
  // smaller only where that dimension has a single row, where it is never used.
  lda = std::max(lda, ta == Trans::No ? k : m);
  ldb = std::max(ldb, tb == Trans::No ? n : k);
  ldc = std::max(ldc, n);
  if (!fits_int(n) || !fits_int(k) || !fits_int(lda) || !fits_int(ldb) || !fits_int(ldc)) {
    gemm<float>(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const std::int64_t step = INT_MAX;
  for (std::int64_t i0 = 0; i0 < m; i0 += step) {
    const std::int64_t rows = std::min(step, m - i0);
    const float* a = A + (ta == Trans::No ? i0 * lda : i0);
    cblas_sgemm(CblasRowMajor, ta == Trans::No ? CblasNoTrans : CblasTrans,
                tb == Trans::No ? CblasNoTrans : CblasTrans, static_cast<int>(rows),
                static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), B,
                static_cast<int>(ldb), beta, C + i0 * ldc, static_cast<int>(ldc));
  }
}

std::string blas_description() {
  std::string s = openblas_get_config();
  s += " (core ";
  s += openblas_get_corename();
  s += ")";
  return s;
}

}  // namespace kfuse::cpu
