// The CPU paths' fp32 matrix products through the system BLAS (internal).
//
// Why a library: a hand-written GEMM is tuned for one instruction set, and a user
// without a GPU runs the CPU path on whatever processor is at hand. OpenBLAS, as
// Debian builds it (DYNAMIC_ARCH), picks its kernels for the processor when it is
// loaded (Haswell/Zen AVX2, SkylakeX/Cooper Lake AVX-512, ...). Measured on a 2-core
// AMD EPYC (AVX2, one thread): sgemm 512^3 at ~85 GFLOP/s against ~5.6 GFLOP/s for
// the double-accumulating cpu::gemm; BLIS 0.9 was as fast on square shapes but
// 3.4x slower at 256 x 1024 x 512 (bench/results/2026-12-03-cpu-blas-fftw/NOTE.md).
//
// Threads: the OpenMP build of OpenBLAS (libopenblas0-openmp) runs a call made
// inside a parallel region on that one thread and otherwise uses
// omp_get_max_threads() threads, so the CPU paths' OpenMP regions and the BLAS do
// not oversubscribe the cores. (Another libopenblas.so.0 chosen by the system's
// alternatives gives the same results, with its own threads.)
#pragma once

#include <cstdint>
#include <string>

#include "src/core/gemm.hpp"

namespace kfuse::cpu {

// C [m x n] = alpha * op(A) * op(B) + beta * C, fp32 with fp32 accumulation
// (row-major; A stored [m x k] (Trans::No) or [k x m] (Trans::Yes) with leading
// dimension lda, likewise B). beta == 0: C is not read (NaN there is overwritten).
// Any extents >= 0: m is split into calls that fit the BLAS's 32-bit integers, and
// a k, n or leading dimension past them falls back to cpu::gemm.
void sgemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
           const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float beta, float* C,
           std::int64_t ldc);

// "OpenBLAS 0.3.21 ... (core Zen)": the library, its build and the kernels it chose
// for this processor, for kfuse-bench's report.
std::string blas_description();

}  // namespace kfuse::cpu
