// The router on the GPU: one warp per token. The row's logits become ordered keys
// in shared memory (kernels/moe/math.hpp topk_key), then k rounds each pick the largest
// remaining (key, lower index) with a warp max over packed 64-bit words and mark
// it taken; lane 0 turns the k selected logits into gates with the shared
// router_gates. fp32 throughout; the sum over all E experts is a fixed butterfly.
#include <cuda_runtime.h>

#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/moe/device.cuh"
#include "kernels/moe/kernels.hpp"

namespace kfuse::cuda::moe {
namespace {

constexpr int kMaxWarps = 4;
constexpr std::size_t kDefaultSmem = 48 * 1024;

// Shared memory per warp: E keys, then k selected logits.
inline std::size_t warp_smem_bytes(std::int64_t experts, std::int64_t top_k) {
  return static_cast<std::size_t>(experts + top_k) * 4;
}

template <class L>
__global__ void router_kernel(const __grid_constant__ detail::RouterProblem<L> a) {
  KFUSE_DYNAMIC_SHARED(alignof(std::uint32_t), std::uint32_t, router_smem);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x / 32) + warp;
  if (t >= a.tokens) return;  // whole warps only: nothing below synchronises the block
  const int E = static_cast<int>(a.experts), k = static_cast<int>(a.top_k);
  std::uint32_t* keys = router_smem + static_cast<std::size_t>(warp) * (E + k);
  float* selected = reinterpret_cast<float*>(keys + E);
  const L* row = a.logits + t * a.ld_logits;

  for (int e = lane; e < E; e += 32)
    keys[e] = detail::topk_key(to_f(row[e]));
  __syncwarp();
  for (int j = 0; j < k; ++j) {
    unsigned long long best = detail::kTopkTaken;
    for (int e = lane; e < E; e += 32)
      if (keys[e] != 0) {
        const unsigned long long packed = detail::topk_pack(keys[e], e);
        best = packed > best ? packed : best;
      }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const unsigned long long other = __shfl_xor_sync(0xffffffffu, best, o);
      best = other > best ? other : best;
    }
    const int chosen = detail::topk_index(best);
    if (chosen % 32 == lane) keys[chosen] = 0;  // its owner marks it taken
    if (lane == 0) {
      a.ids[t * a.ld_ids + j] = chosen;
      selected[j] = to_f(row[chosen]);
    }
    __syncwarp();
  }
  float sum_all = 0.0f;
  if (a.mode == RouterMode::SoftmaxTopK && !a.renormalize) {
    const float m = selected[0];
    for (int e = lane; e < E; e += 32)
      sum_all += detail::router_softmax_term(to_f(row[e]), m);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
      sum_all += __shfl_xor_sync(0xffffffffu, sum_all, o);
  }
  if (lane == 0)
    detail::router_gates(a.mode, a.renormalize, selected, k, sum_all, a.gates + t * a.ld_gates);
}

}  // namespace

template <class L>
void launch_router(const detail::RouterProblem<L>& a, cudaStream_t stream) {
  const std::size_t per_warp = warp_smem_bytes(a.experts, a.top_k);
  int warps = kMaxWarps;
  while (warps > 1 && per_warp * warps > kDefaultSmem)
    warps /= 2;
  const std::size_t smem = per_warp * warps;
  if (smem > kDefaultSmem)
    KFUSE_CUDA_TRY(cudaFuncSetAttribute(
        router_kernel<L>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const std::int64_t blocks = detail::moe_ceil_div(a.tokens, warps);
  KFUSE_LAUNCH(router_kernel<L>, static_cast<unsigned>(blocks), 32 * warps, smem, stream, a);
}

template void launch_router<float>(const detail::RouterProblem<float>&, cudaStream_t);
template void launch_router<bf16>(const detail::RouterProblem<bf16>&, cudaStream_t);

}  // namespace kfuse::cuda::moe
