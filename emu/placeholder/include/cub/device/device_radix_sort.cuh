// TEMPORARY placeholder until the emulated CUB device-wide headers (emu/include/cub/
// device/, which come first on the include path) are merged: reports "not emulated".
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdio>

namespace cub {
struct DeviceRadixSort {
  template <class... A>
  static cudaError_t SortPairs(A&&...) {
    std::fprintf(stderr, "kfuse emulated device: cub::DeviceRadixSort is not emulated yet\n");
    return cudaErrorNotSupported;
  }
};
}  // namespace cub
