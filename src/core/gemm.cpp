#include "src/core/gemm.hpp"

#include <vector>

namespace kfuse::cpu {

template <class T>
void gemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
          const T* A, std::int64_t lda, const T* B, std::int64_t ldb, double beta, T* C,
          std::int64_t ldc) {
  if (m <= 0 || n <= 0) return;
#pragma omp parallel
  {
    std::vector<double> row(static_cast<std::size_t>(n));
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < n; ++j)
        row[j] = 0.0;
      for (std::int64_t p = 0; p < k; ++p) {
        const double a = static_cast<double>(ta == Trans::No ? A[i * lda + p] : A[p * lda + i]);
        if (tb == Trans::No) {
          const T* b = B + p * ldb;  // contiguous: the loop vectorises
          for (std::int64_t j = 0; j < n; ++j)
            row[j] += a * static_cast<double>(b[j]);
        } else {
          for (std::int64_t j = 0; j < n; ++j)
            row[j] += a * static_cast<double>(B[j * ldb + p]);
        }
      }
      T* c = C + i * ldc;
      for (std::int64_t j = 0; j < n; ++j) {
        const double value = alpha * row[j];
        c[j] = static_cast<T>(beta == 0.0 ? value : value + beta * static_cast<double>(c[j]));
      }
    }
  }
}

template void gemm<float>(Trans, Trans, std::int64_t, std::int64_t, std::int64_t, double,
                          const float*, std::int64_t, const float*, std::int64_t, double, float*,
                          std::int64_t);
template void gemm<double>(Trans, Trans, std::int64_t, std::int64_t, std::int64_t, double,
                           const double*, std::int64_t, const double*, std::int64_t, double,
                           double*, std::int64_t);

}  // namespace kfuse::cpu
