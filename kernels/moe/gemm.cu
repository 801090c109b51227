// The grouped GEMMs' host side: the device-side tile schedule (no host
// synchronisation: the grid is sized by a bound known on the host, blocks past the
// schedule's end exit at once), the kernel launch, and the padding rows.
#include <cuda_runtime.h>
#include <cub/block/block_scan.cuh>

#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/moe/kernels.hpp"
#include "kernels/moe/launch.hpp"
#include "kernels/moe/math.hpp"
#include "src/core/scratch.hpp"

namespace kfuse::cuda {
namespace moe {
namespace {

constexpr int kScanThreads = 1024;

// tile_start[e] = sum over e' < e of ceil(counts[e'] / tile_rows); tile_start[E] = all.
// One block, E in chunks of 1024 with a running carry.
__global__ void __launch_bounds__(kScanThreads)
    schedule_kernel(const std::int32_t* counts, int experts, int tile_rows,
                    std::int32_t* tile_start) {
  using Scan = cub::BlockScan<int, kScanThreads>;
  KFUSE_SHARED(typename Scan::TempStorage, temp, );
  KFUSE_SHARED(int, carry, );
  if (threadIdx.x == 0) carry = 0;
  __syncthreads();
  for (int base = 0; base < experts; base += kScanThreads) {
    const int e = base + threadIdx.x;
    const int tiles =
        e < experts ? static_cast<int>(detail::moe_ceil_div(counts[e], tile_rows)) : 0;
    int before = 0, total = 0;
    Scan(temp).ExclusiveSum(tiles, before, total);
    if (e < experts) tile_start[e] = carry + before;
    __syncthreads();
    if (threadIdx.x == 0) carry += total;
    __syncthreads();
  }
  if (threadIdx.x == 0) tile_start[experts] = carry;
}

}  // namespace
}  // namespace moe

template <class T>
void moe_grouped_gemm(Context& ctx, const detail::GroupedGemmProblem<T>& g) {
  detail::DeviceGuard guard(ctx.device());
  cudaStream_t stream = ctx.stream();
  const detail::PlanArrays& p = g.plan;
  constexpr int tile_rows = moe::tile_rows<T>();
  detail::Scratch schedule(ctx, static_cast<std::size_t>(p.experts + 1) * sizeof(std::int32_t));
  KFUSE_LAUNCH(moe::schedule_kernel, 1, moe::kScanThreads, 0, stream, p.counts,
               static_cast<int>(p.experts), tile_rows, schedule.as<std::int32_t>());
  moe::launch_grouped_gemm(g, schedule.as<std::int32_t>(),
                           detail::tile_bound(p.rows, p.experts, tile_rows), stream);
  if (g.epilogue != detail::GemmEpilogue::Slots) {
    moe::zero_padding_rows(p, g.n, g.c, g.ldc, stream);
    moe::zero_padding_rows(p, g.n, g.h1, g.ld_h1, stream);
    moe::zero_padding_rows(p, g.n, g.h3, g.ld_h3, stream);
  }
}

template <class T>
void moe_wgrad(Context& ctx, const detail::WgradProblem<T>& w) {
  detail::DeviceGuard guard(ctx.device());
  moe::launch_wgrad(w, ctx.stream());
}

template void moe_grouped_gemm<float>(Context&, const detail::GroupedGemmProblem<float>&);
template void moe_grouped_gemm<bf16>(Context&, const detail::GroupedGemmProblem<bf16>&);
template void moe_wgrad<float>(Context&, const detail::WgradProblem<float>&);
template void moe_wgrad<bf16>(Context&, const detail::WgradProblem<bf16>&);

}  // namespace kfuse::cuda
