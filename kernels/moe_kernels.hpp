// The mixture-of-experts kernels' launch interface (internal, host side): the
// grouped GEMM variants (fp32 SIMT, bf16 tensor cores) and the padding helper.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/moe_problem.hpp"

namespace kfuse::cuda::moe {

// Rows of a grouped GEMM tile: a tile never spans two experts.
constexpr int kTileRowsF32 = 64;
constexpr int kTileRowsBF16 = 128;
template <class T>
constexpr int tile_rows() {
  return sizeof(T) == 4 ? kTileRowsF32 : kTileRowsBF16;
}

// Grouped GEMM over `tiles` (the host bound) row tiles; tile_start [E + 1] is the
// device-side schedule (expert e's first tile; tile_start[E] = tiles in use).
void launch_grouped_gemm(const detail::GroupedGemmArgs<float>& g, const std::int32_t* tile_start,
                         std::int64_t tiles, cudaStream_t stream);
void launch_grouped_gemm(const detail::GroupedGemmArgs<bf16>& g, const std::int32_t* tile_start,
                         std::int64_t tiles, cudaStream_t stream);

void launch_wgrad(const detail::WgradArgs<float>& w, cudaStream_t stream);
void launch_wgrad(const detail::WgradArgs<bf16>& w, cudaStream_t stream);

// Zeroes the padding rows of a permuted buffer (nothing when pad_to == 1).
template <class T>
void zero_padding_rows(const detail::PlanArrays& p, std::int64_t cols, T* dst, std::int64_t ld,
                       cudaStream_t stream);

}  // namespace kfuse::cuda::moe
