// A CPU-only build has no device whose copy bandwidth to measure
// (moe_copy_cuda.cpp in a CUDA build).
#include "bench.hpp"

namespace kfuse::bench {

double moe_device_copy_bytes_per_s(Context&) {
  return 0;
}

}  // namespace kfuse::bench
