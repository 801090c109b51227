// The dispatch plan's kernels (the host side, with CUB's sort and scan between them, is
// moe_plan in kernels/moe/launch.cu), without host synchronisation:
//   1. keys[s] = expert of slot s (E for an id out of range), values[s] = s;
//   2. a stable LSD radix sort of (key, slot) over the bits of E (CUB): within an
//      expert the slots stay in increasing order, the same on every run;
//   3. per expert, a binary search of the sorted keys gives its first position and
//      its routed count; capacity and padding give counts and padded sizes;
//   4. an exclusive scan of the padded sizes (CUB) gives the offsets;
//   5. sorted position i of expert e with rank i - first[e] < counts[e] takes row
//      offsets[e] + rank; the rest are dropped.
// The result equals the CPU path's bit for bit (the same arithmetic from kernels/moe/math.hpp).
#include <cuda_runtime.h>

#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/moe/kernels.hpp"
#include "kernels/moe/math.hpp"

namespace kfuse::cuda::moe {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(std::int64_t n) {
  return static_cast<unsigned>(detail::moe_ceil_div(n, kThreads));
}

__device__ __forceinline__ std::int32_t id_of(const detail::PlanProblem& a, std::int64_t s) {
  return a.ids[(s / a.top_k) * a.ld_ids + s % a.top_k];
}

// Keys are unsigned: the radix sort then orders the low bits it is given plainly.
__global__ void keys_kernel(const __grid_constant__ detail::PlanProblem a, std::uint32_t* keys,
                            std::int32_t* slots) {
  const std::int64_t s = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s >= a.tokens * a.top_k) return;
  const std::int32_t id = id_of(a, s);
  keys[s] = static_cast<std::uint32_t>(id >= 0 && id < a.experts ? id : a.experts);
  slots[s] = static_cast<std::int32_t>(s);
}

// The first position of a key >= e in sorted[0..n).
__device__ __forceinline__ std::int64_t lower_bound(const std::uint32_t* sorted, std::int64_t n,
                                                    std::uint32_t e) {
  std::int64_t lo = 0, hi = n;
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    if (sorted[mid] < e)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

// Per expert: first sorted position, kept count, padded size (sizes[E] = 0 so that
// the exclusive scan's last entry is the total).
__global__ void experts_kernel(const __grid_constant__ detail::PlanProblem a,
                               const std::uint32_t* sorted, std::int32_t* first,
                               std::int32_t* sizes) {
  const std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e > a.experts) return;
  if (e == a.experts) {
    sizes[e] = 0;
    return;
  }
  const std::int64_t n = a.tokens * a.top_k;
  const std::int64_t lo = lower_bound(sorted, n, static_cast<std::uint32_t>(e));
  const std::int64_t hi = lower_bound(sorted, n, static_cast<std::uint32_t>(e + 1));
  first[e] = static_cast<std::int32_t>(lo);
  a.counts[e] = static_cast<std::int32_t>(detail::kept_rows(hi - lo, a.capacity));
  sizes[e] = static_cast<std::int32_t>(detail::padded_rows(hi - lo, a.capacity, a.pad_to));
}

__global__ void fill_kernel(const __grid_constant__ detail::PlanProblem a,
                            const std::uint32_t* sorted, const std::int32_t* slots,
                            const std::int32_t* first) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.tokens * a.top_k) return;
  const std::int32_t e = static_cast<std::int32_t>(sorted[i]), s = slots[i];
  if (e >= a.experts) {  // an id out of range: dropped
    a.slot_row[s] = -1;
    return;
  }
  const std::int32_t rank = static_cast<std::int32_t>(i) - first[e];
  if (rank >= a.counts[e]) {  // beyond the capacity: dropped
    a.slot_row[s] = -1;
    return;
  }
  const std::int32_t row = a.offsets[e] + rank;
  a.slot_row[s] = row;
  a.row_slot[row] = s;
}

__global__ void check_ids_kernel(const std::int32_t* ids, std::int64_t ld, std::int64_t rows,
                                 std::int64_t cols, std::int64_t experts, int* bad) {
  const std::int64_t s = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s >= rows * cols) return;
  const std::int32_t id = ids[(s / cols) * ld + s % cols];
  if (id < 0 || id >= experts) atomicOr(bad, 1);  // an integer flag: order-free
}

}  // namespace

int plan_key_bits(std::int64_t experts) {
  int bits = 1;
  while ((std::int64_t(1) << bits) <= experts)  // keys go up to E (out of range)
    ++bits;
  return bits;
}

void launch_plan_keys(const detail::PlanProblem& a, std::uint32_t* keys, std::int32_t* slots,
                      cudaStream_t stream) {
  KFUSE_LAUNCH(keys_kernel, blocks_for(a.tokens * a.top_k), kThreads, 0, stream, a, keys, slots);
}

void launch_plan_experts(const detail::PlanProblem& a, const std::uint32_t* sorted_keys,
                         std::int32_t* first, std::int32_t* sizes, cudaStream_t stream) {
  KFUSE_LAUNCH(experts_kernel, blocks_for(a.experts + 1), kThreads, 0, stream, a, sorted_keys,
               first, sizes);
}

void launch_plan_fill(const detail::PlanProblem& a, const std::uint32_t* sorted_keys,
                      const std::int32_t* sorted_slots, const std::int32_t* first,
                      cudaStream_t stream) {
  KFUSE_LAUNCH(fill_kernel, blocks_for(a.tokens * a.top_k), kThreads, 0, stream, a, sorted_keys,
               sorted_slots, first);
}

void launch_check_ids(const std::int32_t* ids, std::int64_t ld, std::int64_t rows,
                      std::int64_t cols, std::int64_t experts, int* bad, cudaStream_t stream) {
  KFUSE_LAUNCH(check_ids_kernel, blocks_for(rows * cols), kThreads, 0, stream, ids, ld, rows, cols,
               experts, bad);
}

}  // namespace kfuse::cuda::moe
