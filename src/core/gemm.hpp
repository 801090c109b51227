// A plain, correct CPU matrix product for the CPU paths of the op families
// (internal): row-major, transposes through flags, sums in double, OpenMP over
// the rows of C. Not a BLAS: it favours obvious correctness over peak speed.
#pragma once

#include <cstdint>

namespace kfuse::cpu {

enum class Trans { No, Yes };

// C [m x n] = alpha * op(A) * op(B) + beta * C, op(A) [m x k], op(B) [k x n].
// A is stored [m x k] (Trans::No) or [k x m] (Trans::Yes) with leading dimension
// lda, likewise B. beta == 0: C is not read.
template <class T>
void gemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
          const T* A, std::int64_t lda, const T* B, std::int64_t ldb, double beta, T* C,
          std::int64_t ldc);

}  // namespace kfuse::cpu
