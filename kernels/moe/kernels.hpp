// The mixture-of-experts kernels' launch interface (internal, host side): what each
// kernel file launches on a stream, for the family's entry points in launch.cu.
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

// router.cu: one warp per token.
template <class L>
void launch_router(const detail::RouterProblem<L>& a, cudaStream_t stream);

// plan.cu: the plan's kernels around CUB's sort and scan (moe_plan), and the id check.
int plan_key_bits(std::int64_t experts);  // the radix sort's key bits for keys 0..E
void launch_plan_keys(const detail::PlanProblem& a, std::uint32_t* keys, std::int32_t* slots,
                      cudaStream_t stream);
void launch_plan_experts(const detail::PlanProblem& a, const std::uint32_t* sorted_keys,
                         std::int32_t* first, std::int32_t* sizes, cudaStream_t stream);
void launch_plan_fill(const detail::PlanProblem& a, const std::uint32_t* sorted_keys,
                      const std::int32_t* sorted_slots, const std::int32_t* first,
                      cudaStream_t stream);
void launch_check_ids(const std::int32_t* ids, std::int64_t ld, std::int64_t rows,
                      std::int64_t cols, std::int64_t experts, int* bad, cudaStream_t stream);

// rows.cu: the memory-bound row passes (each also zeroes the padding rows it owns).
template <class T>
void launch_scatter(const detail::ScatterProblem<T>& a, cudaStream_t stream);
template <class T>
void launch_combine(const detail::CombineProblem<T>& a, cudaStream_t stream);
template <class T>
void launch_gather_backward(const detail::GatherBackwardProblem<T>& a, cudaStream_t stream);
template <class T>
void launch_swiglu_backward(const detail::SwigluBackwardProblem<T>& a, cudaStream_t stream);

// gemm_schedule.cu: tile_start [E + 1] from the per-expert counts, on the device.
void launch_tile_schedule(const std::int32_t* counts, std::int64_t experts, int tile_rows,
                          std::int32_t* tile_start, cudaStream_t stream);

// gemm_f32.cu, gemm_bf16.cu: grouped GEMM over `tiles` (the host bound) row tiles; tile_start [E +
// 1] is the device-side schedule (expert e's first tile; tile_start[E] = tiles in use).
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
