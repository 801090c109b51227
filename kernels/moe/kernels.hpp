// The mixture-of-experts kernels' launch interface (internal, host side): the
// grouped GEMM variants (fp32 SIMT, bf16 tensor cores) and the padding helper.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "kernels/moe/math.hpp"
#include "kernels/moe/problem.hpp"
#include "kfuse/error.hpp"

namespace kfuse::cuda::moe {

// Rows of a grouped GEMM tile: a tile never spans two experts.
constexpr int kTileRowsF32 = 64;
constexpr int kTileRowsBF16 = 128;
template <class T>
constexpr int tile_rows() {
  return sizeof(T) == 4 ? kTileRowsF32 : kTileRowsBF16;
}

// grid.y of a grouped GEMM: one block per `width` output columns. CUDA allows at
// most 65535, i.e. n up to 65535 * width (4.19 million columns for width 64): a
// wider product is Unsupported here, not a launch that fails with a CUDA error.
inline unsigned column_blocks(std::int64_t n, int width) {
  const std::int64_t blocks = detail::moe_ceil_div(n, width);
  if (blocks > 65535)
    throw Error(Status::Unsupported, "moe grouped GEMM on a GPU: N = " + std::to_string(n) +
                                         " output columns exceed the grid's 65535 blocks of " +
                                         std::to_string(width));
  return static_cast<unsigned>(blocks);
}

// Grouped GEMM over `tiles` (the host bound) row tiles; tile_start [E + 1] is the
// device-side schedule (expert e's first tile; tile_start[E] = tiles in use).
void launch_grouped_gemm(const detail::GroupedGemmProblem<float>& g, const std::int32_t* tile_start,
                         std::int64_t tiles, cudaStream_t stream);
void launch_grouped_gemm(const detail::GroupedGemmProblem<bf16>& g, const std::int32_t* tile_start,
                         std::int64_t tiles, cudaStream_t stream);

void launch_wgrad(const detail::WgradProblem<float>& w, cudaStream_t stream);
void launch_wgrad(const detail::WgradProblem<bf16>& w, cudaStream_t stream);

// Zeroes the padding rows of a permuted buffer (nothing when pad_to == 1).
template <class T>
void zero_padding_rows(const detail::PlanArrays& p, std::int64_t cols, T* dst, std::int64_t ld,
                       cudaStream_t stream);

}  // namespace kfuse::cuda::moe
