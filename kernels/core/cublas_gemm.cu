// Row-major GEMMs on cuBLAS's column-major interface: C^T = op(B)^T op(A)^T, so
// the operands are passed swapped and each keeps its own transpose flag.
#include <cublas_v2.h>

#include "kernels/core/cublas_gemm.hpp"
#include "kernels/core/cuda_check.hpp"

namespace kfuse::cuda {
namespace {

cublasOperation_t to_cublas(Op op) {
  return op == Op::N ? CUBLAS_OP_N : CUBLAS_OP_T;
}

cublasHandle_t bound_handle(Context& ctx) {
  cublasHandle_t handle = ctx.cublas();
  KFUSE_CUBLAS_TRY(cublasSetStream(handle, ctx.stream()));
  return handle;
}

}  // namespace

void gemm(Context& ctx, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const GemmOperand& A, const GemmOperand& B, float beta, void* C, cudaDataType_t c_type,
          std::int64_t ldc, cublasComputeType_t compute) {
  if (m == 0 || n == 0) return;
  detail::DeviceGuard guard(ctx.device());
  cublasHandle_t handle = bound_handle(ctx);
  KFUSE_CUBLAS_TRY(cublasGemmEx_64(handle, to_cublas(B.op), to_cublas(A.op), n, m, k, &alpha,
                                   B.data, B.type, B.ld, A.data, A.type, A.ld, &beta, C, c_type,
                                   ldc, compute, CUBLAS_GEMM_DEFAULT));
}

void gemm_strided_batched(Context& ctx, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                          const GemmOperand& A, std::int64_t stride_a, const GemmOperand& B,
                          std::int64_t stride_b, float beta, void* C, cudaDataType_t c_type,
                          std::int64_t ldc, std::int64_t stride_c, std::int64_t batch,
                          cublasComputeType_t compute) {
  if (m == 0 || n == 0 || batch == 0) return;
  detail::DeviceGuard guard(ctx.device());
  cublasHandle_t handle = bound_handle(ctx);
  KFUSE_CUBLAS_TRY(cublasGemmStridedBatchedEx_64(handle, to_cublas(B.op), to_cublas(A.op), n, m, k,
                                                 &alpha, B.data, B.type, B.ld, stride_b, A.data,
                                                 A.type, A.ld, stride_a, &beta, C, c_type, ldc,
                                                 stride_c, batch, compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace kfuse::cuda
