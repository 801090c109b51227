// The one place where an op reaches its backend, and the only #ifdef on CUDA in src/
// besides the device layer (device.hpp: device_cuda.cpp or device_none.cpp).
//
// KFUSE_DISPATCH(ctx, cuda_call, cpu_call) evaluates the CUDA call (a launcher from
// kernels/*_launch.hpp) on a Cuda context and the CPU call otherwise; both calls have one
// type. In a CPU-only build the launchers are declared but never defined, so the CUDA
// call stays an unevaluated operand there: still type-checked (a launcher's signature
// cannot drift from its callers unnoticed), never linked. Wrap a call whose arguments
// hold a top-level comma (`T{a, b}`, `f<A, B>(x)`) in parentheses.
#pragma once

#include "kfuse/context.hpp"
#include "kfuse/version.hpp"  // KFUSE_BUILT_WITH_CUDA: the one "built with CUDA" macro

namespace kfuse::detail {

#if KFUSE_BUILT_WITH_CUDA
inline constexpr bool kBuiltWithCuda = true;
#define KFUSE_DISPATCH(ctx, cuda_call, cpu_call) \
  (((ctx).backend() == ::kfuse::Backend::Cuda) ? (cuda_call) : (cpu_call))
#else
inline constexpr bool kBuiltWithCuda = false;
#define KFUSE_DISPATCH(ctx, cuda_call, cpu_call) \
  ((void)sizeof(((void)(cuda_call), 0)), (void)(ctx), (cpu_call))
#endif

}  // namespace kfuse::detail
