// The grouped GEMMs' device-side tile schedule: no host synchronisation, the grid is
// sized by a bound known on the host and blocks past the schedule's end exit at once
// (moe_grouped_gemm in kernels/moe/launch.cu puts it before the GEMM).
#include <cuda_runtime.h>
#include <cub/block/block_scan.cuh>

#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/moe/kernels.hpp"
#include "kernels/moe/math.hpp"

namespace kfuse::cuda::moe {
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

void launch_tile_schedule(const std::int32_t* counts, std::int64_t experts, int tile_rows,
                          std::int32_t* tile_start, cudaStream_t stream) {
  KFUSE_LAUNCH(schedule_kernel, 1, kScanThreads, 0, stream, counts, static_cast<int>(experts),
               tile_rows, tile_start);
}

}  // namespace kfuse::cuda::moe
