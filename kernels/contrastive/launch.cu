// Host entry points of the contrastive family's CUDA path: the device's shape,
// the passes on the context's stream, and the small copies the host layer needs.
#include "kernels/contrastive/launch.hpp"

#include <cuda_runtime.h>

#include "kernels/contrastive/device.cuh"
#include "kernels/contrastive/kernels.hpp"
#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"

namespace kfuse::cuda::contrastive {
namespace {

__global__ void store_rows_kernel(const float* src, std::int64_t ld_src, std::int64_t rows,
                                  std::int64_t d, void* dst, DType dtype, std::int64_t ld_dst) {
  const std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= rows * d) return;
  const std::int64_t r = e / d, k = e % d;
  store_element(dst, dtype, r * ld_dst + k, src[r * ld_src + k]);
}

}  // namespace

int sm_count(const Context& ctx) {
  int sms = 0;
  KFUSE_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, ctx.device()));
  return sms;
}

void forward(Context& ctx, const cd::ForwardProblem& p) {
  detail::DeviceGuard guard(ctx.device());
  run_forward(p, ctx.stream());
}

void backward(Context& ctx, const cd::BackwardProblem& p) {
  detail::DeviceGuard guard(ctx.device());
  run_backward(p, ctx.stream());
}

void copy_to_host(Context& ctx, const void* src, std::size_t bytes, void* dst) {
  detail::DeviceGuard guard(ctx.device());
  if (bytes > 0)
    KFUSE_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx.stream()));
  KFUSE_CUDA_TRY(cudaStreamSynchronize(ctx.stream()));
}

void fill_zero(Context& ctx, void* ptr, std::size_t bytes) {
  detail::DeviceGuard guard(ctx.device());
  if (bytes > 0) KFUSE_CUDA_TRY(cudaMemsetAsync(ptr, 0, bytes, ctx.stream()));
}

void store_rows(Context& ctx, const float* src, std::int64_t ld_src, std::int64_t rows,
                std::int64_t d, void* dst, DType dtype, std::int64_t ld_dst) {
  if (rows * d == 0) return;
  detail::DeviceGuard guard(ctx.device());
  constexpr int kBlock = 256;
  KFUSE_LAUNCH(store_rows_kernel, static_cast<unsigned>((rows * d + kBlock - 1) / kBlock), kBlock,
               0, ctx.stream(), src, ld_src, rows, d, dst, dtype, ld_dst);
}

}  // namespace kfuse::cuda::contrastive
