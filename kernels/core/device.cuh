// The device-language pieces the kernels use beyond what nvcc provides, in one place,
// with a host definition for the emulated device (KFUSE_CUDA_EMULATION, emu/):
//   KFUSE_LAUNCH(kernel, grid, block, smem, stream, args...): a launch plus its check
//     (a kernel name with template arguments goes in parentheses);
//   KFUSE_SHARED / KFUSE_SHARED_ALIGNED (static) and KFUSE_DYNAMIC_SHARED (extern)
//     shared memory, which the emulation keeps per block;
//   ex2_approx_ftz: the special-function unit's 2^x.
#pragma once

#include <cuda_runtime.h>

#include "kernels/core/cuda_check.hpp"

#if defined(KFUSE_CUDA_EMULATION)

#include "kfuse_emu/device.hpp"

#define KFUSE_LAUNCH(kernel, grid, block, smem, stream, ...)                             \
  do {                                                                                   \
    ::kfuse::emu::launch(kernel, #kernel, __FILE__, __LINE__, grid, block, smem, stream, \
                         __VA_ARGS__);                                                   \
    KFUSE_CUDA_CHECK_LAUNCH(kernel);                                                     \
  } while (0)

#define KFUSE_SHARED_ALIGNED(align, type, name, dims) \
  static const char kfuse_shared_key_##name = 0;      \
  auto& name = ::kfuse::emu::static_shared_as<type dims, align>(&kfuse_shared_key_##name)
#define KFUSE_SHARED(type, name, dims) KFUSE_SHARED_ALIGNED(alignof(type), type, name, dims)
#define KFUSE_DYNAMIC_SHARED(align, type, name) \
  type* const name = static_cast<type*>(::kfuse::emu::dynamic_shared())

namespace kfuse::cuda {
inline float ex2_approx_ftz(float x) {
  return ::kfuse::emu::ex2_approx_ftz(x);
}
}  // namespace kfuse::cuda

#else

#define KFUSE_LAUNCH(kernel, grid, block, smem, stream, ...) \
  do {                                                       \
    kernel<<<grid, block, smem, stream>>>(__VA_ARGS__);      \
    KFUSE_CUDA_CHECK_LAUNCH(kernel);                         \
  } while (0)

#define KFUSE_SHARED_ALIGNED(align, type, name, dims) \
  __shared__ __align__(align)                         \
  type name dims
#define KFUSE_SHARED(type, name, dims) __shared__ type name dims
#define KFUSE_DYNAMIC_SHARED(align, type, name) \
  extern __shared__ __align__(align)            \
  type name[]

namespace kfuse::cuda {
// 2^x on the special-function unit (flushes subnormal inputs and results to 0).
__device__ __forceinline__ float ex2_approx_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
}  // namespace kfuse::cuda

#endif
