// cub::BlockScan on the emulated device: the block's threads exchange their inputs
// through the caller's (per-block, shared) TempStorage between two block barriers, so
// a missing __syncthreads before the storage is reused shows as it would with CUB.
#pragma once

#include "kfuse_emu/device.hpp"

namespace cub {

template <class T, int BLOCK_DIM_X, int BLOCK_DIM_Y = 1, int BLOCK_DIM_Z = 1>
class BlockScan {
  static constexpr int kThreads = BLOCK_DIM_X * BLOCK_DIM_Y * BLOCK_DIM_Z;

 public:
  struct TempStorage {
    T values[kThreads];
  };

  explicit BlockScan(TempStorage& storage) : storage_(storage) {}

  void ExclusiveSum(T input, T& output) {
    T total;
    ExclusiveSum(input, output, total);
  }
  void ExclusiveSum(T input, T& output, T& block_aggregate) {
    const int me = linear_id();
    storage_.values[me] = input;
    __syncthreads();
    T before{};
    for (int t = 0; t < me; ++t)
      before = before + storage_.values[t];
    T total = before;
    for (int t = me; t < kThreads; ++t)
      total = total + storage_.values[t];
    output = before;
    block_aggregate = total;
    // As with CUB: no barrier on the way out; reusing the storage needs one.
  }
  void InclusiveSum(T input, T& output) {
    T total;
    InclusiveSum(input, output, total);
  }
  void InclusiveSum(T input, T& output, T& block_aggregate) {
    T before;
    ExclusiveSum(input, before, block_aggregate);
    output = before + input;
  }

 private:
  static int linear_id() {
    if (static_cast<int>(blockDim.x * blockDim.y * blockDim.z) != kThreads)
      ::kfuse::emu::device_fault("cub::BlockScan: the block's size differs from its template");
    return static_cast<int>(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
  }
  TempStorage& storage_;
};

}  // namespace cub
