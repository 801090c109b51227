// The CUDA path of the mixture-of-experts family: the entry points of
// kernels/moe/launch.hpp. Each enqueues on the context's stream the kernels of one
// file (kernels/moe/kernels.hpp) and, for the plan, CUB's sort and scan between them;
// only moe_ids_valid and moe_copy_to_host wait for the device, as their callers ask.
#include <cuda_runtime.h>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>

#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/moe/kernels.hpp"
#include "kernels/moe/launch.hpp"
#include "kernels/moe/math.hpp"
#include "src/core/scratch.hpp"

namespace kfuse::cuda {

template <class L>
void moe_router_topk(Context& ctx, const detail::RouterProblem<L>& a) {
  detail::DeviceGuard guard(ctx.device());
  moe::launch_router(a, ctx.stream());
}

void moe_plan(Context& ctx, const detail::PlanProblem& a) {
  detail::DeviceGuard guard(ctx.device());
  cudaStream_t stream = ctx.stream();
  const std::int64_t slots = a.tokens * a.top_k, E = a.experts;
  if (a.rows > 0)
    KFUSE_CUDA_TRY(cudaMemsetAsync(a.row_slot, 0xff, static_cast<std::size_t>(a.rows) * 4, stream));
  if (slots == 0) {
    KFUSE_CUDA_TRY(cudaMemsetAsync(a.counts, 0, static_cast<std::size_t>(E) * 4, stream));
    KFUSE_CUDA_TRY(cudaMemsetAsync(a.offsets, 0, static_cast<std::size_t>(E + 1) * 4, stream));
    return;
  }
  const int n = static_cast<int>(slots);  // < 2^31, validated
  // Work arrays: keys and slots in and out, per-expert first positions and sizes.
  detail::Scratch work(ctx, static_cast<std::size_t>(4 * slots + 2 * (E + 1)) * 4);
  std::uint32_t* keys_in = work.as<std::uint32_t>();
  std::uint32_t* keys_out = keys_in + slots;
  std::int32_t* slots_in = reinterpret_cast<std::int32_t*>(keys_out + slots);
  std::int32_t* slots_out = slots_in + slots;
  std::int32_t* first = slots_out + slots;
  std::int32_t* sizes = first + (E + 1);
  const int end_bit = moe::plan_key_bits(E);
  std::size_t sort_bytes = 0, scan_bytes = 0;
  KFUSE_CUDA_TRY(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, keys_in, keys_out, slots_in,
                                                 slots_out, n, 0, end_bit, stream));
  KFUSE_CUDA_TRY(cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, sizes, a.offsets,
                                               static_cast<int>(E + 1), stream));
  detail::Scratch temp(ctx, std::max(sort_bytes, scan_bytes));

  moe::launch_plan_keys(a, keys_in, slots_in, stream);
  KFUSE_CUDA_TRY(cub::DeviceRadixSort::SortPairs(temp.as<void>(), sort_bytes, keys_in, keys_out,
                                                 slots_in, slots_out, n, 0, end_bit, stream));
  moe::launch_plan_experts(a, keys_out, first, sizes, stream);
  KFUSE_CUDA_TRY(cub::DeviceScan::ExclusiveSum(temp.as<void>(), scan_bytes, sizes, a.offsets,
                                               static_cast<int>(E + 1), stream));
  moe::launch_plan_fill(a, keys_out, slots_out, first, stream);
}

bool moe_ids_valid(Context& ctx, const std::int32_t* ids, std::int64_t ld, std::int64_t rows,
                   std::int64_t cols, std::int64_t experts) {
  if (rows * cols == 0) return true;
  detail::DeviceGuard guard(ctx.device());
  cudaStream_t stream = ctx.stream();
  detail::Scratch flag(ctx, sizeof(int));
  KFUSE_CUDA_TRY(cudaMemsetAsync(flag.as<int>(), 0, sizeof(int), stream));
  moe::launch_check_ids(ids, ld, rows, cols, experts, flag.as<int>(), stream);
  int bad = 0;
  KFUSE_CUDA_TRY(
      cudaMemcpyAsync(&bad, flag.as<int>(), sizeof(int), cudaMemcpyDeviceToHost, stream));
  KFUSE_CUDA_TRY(cudaStreamSynchronize(stream));
  return bad == 0;
}

void moe_copy_to_host(Context& ctx, const std::int32_t* values, std::int64_t n,
                      std::int32_t* host) {
  detail::DeviceGuard guard(ctx.device());
  KFUSE_CUDA_TRY(cudaMemcpyAsync(host, values, static_cast<std::size_t>(n) * 4,
                                 cudaMemcpyDeviceToHost, ctx.stream()));
  KFUSE_CUDA_TRY(cudaStreamSynchronize(ctx.stream()));
}

template <class T>
void moe_scatter(Context& ctx, const detail::ScatterProblem<T>& a) {
  detail::DeviceGuard guard(ctx.device());
  moe::launch_scatter(a, ctx.stream());
}

template <class T>
void moe_combine(Context& ctx, const detail::CombineProblem<T>& a) {
  detail::DeviceGuard guard(ctx.device());
  moe::launch_combine(a, ctx.stream());
}

template <class T>
void moe_gather_backward(Context& ctx, const detail::GatherBackwardProblem<T>& a) {
  detail::DeviceGuard guard(ctx.device());
  moe::launch_gather_backward(a, ctx.stream());
}

template <class T>
void moe_swiglu_backward(Context& ctx, const detail::SwigluBackwardProblem<T>& a) {
  detail::DeviceGuard guard(ctx.device());
  moe::launch_swiglu_backward(a, ctx.stream());
}

template <class T>
void moe_grouped_gemm(Context& ctx, const detail::GroupedGemmProblem<T>& g) {
  detail::DeviceGuard guard(ctx.device());
  cudaStream_t stream = ctx.stream();
  const detail::PlanArrays& p = g.plan;
  constexpr int tile_rows = moe::tile_rows<T>();
  detail::Scratch schedule(ctx, static_cast<std::size_t>(p.experts + 1) * sizeof(std::int32_t));
  moe::launch_tile_schedule(p.counts, p.experts, tile_rows, schedule.as<std::int32_t>(), stream);
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

#define KFUSE_MOE_INSTANTIATE(T)                                                           \
  template void moe_router_topk<T>(Context&, const detail::RouterProblem<T>&);             \
  template void moe_scatter<T>(Context&, const detail::ScatterProblem<T>&);                \
  template void moe_combine<T>(Context&, const detail::CombineProblem<T>&);                \
  template void moe_gather_backward<T>(Context&, const detail::GatherBackwardProblem<T>&); \
  template void moe_swiglu_backward<T>(Context&, const detail::SwigluBackwardProblem<T>&); \
  template void moe_grouped_gemm<T>(Context&, const detail::GroupedGemmProblem<T>&);       \
  template void moe_wgrad<T>(Context&, const detail::WgradProblem<T>&);
KFUSE_MOE_INSTANTIATE(float)
KFUSE_MOE_INSTANTIATE(bf16)
#undef KFUSE_MOE_INSTANTIATE

}  // namespace kfuse::cuda
