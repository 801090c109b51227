// Row-major matrix products through cuBLAS (internal, host side): the one place
// where kfuse calls cuBLAS GEMMs. Every call binds the context's stream, uses
// 64-bit extents and checks the status.
#pragma once

#include <cublas_v2.h>
#include <library_types.h>

#include <cstdint>

#include "kfuse/context.hpp"

namespace kfuse::cuda {

enum class Op { N, T };

// A row-major operand: `data` holds op(M) stored [rows x cols] (Op::N) or its
// transpose (Op::T), with leading dimension `ld`, elements of `type`.
struct GemmOperand {
  const void* data = nullptr;
  cudaDataType_t type = CUDA_R_32F;
  std::int64_t ld = 0;
  Op op = Op::N;
};

// C [m x n] (row-major, ldc) = alpha * op(A) [m x k] * op(B) [k x n] + beta * C.
// compute: a 32-bit float compute type (alpha and beta are float): CUBLAS_COMPUTE_32F
// (exact fp32, or bf16/fp16 inputs with fp32 accumulation) or
// CUBLAS_COMPUTE_32F_FAST_TF32. Enqueued on ctx's stream.
void gemm(Context& ctx, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const GemmOperand& A, const GemmOperand& B, float beta, void* C, cudaDataType_t c_type,
          std::int64_t ldc, cublasComputeType_t compute);

// `batch` independent products, operand b at data + b * stride (in elements).
void gemm_strided_batched(Context& ctx, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                          const GemmOperand& A, std::int64_t stride_a, const GemmOperand& B,
                          std::int64_t stride_b, float beta, void* C, cudaDataType_t c_type,
                          std::int64_t ldc, std::int64_t stride_c, std::int64_t batch,
                          cublasComputeType_t compute);

}  // namespace kfuse::cuda
