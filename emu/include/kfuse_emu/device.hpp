// The device language of the emulated CUDA device: what nvcc gives every .cu file
// implicitly (threadIdx and friends, __syncthreads, warp collectives, atomics, the
// __*_rn intrinsics, __ldg), defined for a host compiler. The build force-includes
// this header into every kernels/*.cu file of the emulation build, as nvcc
// force-includes cuda_runtime.h. Host API types (dim3, float4, cudaStream_t) come
// from the toolkit's own headers, which a host compiler accepts as they are.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kfuse_emu/launch.hpp"

// ------------------------------------------------------------------ qualifiers
// __host__, __device__, __global__, __forceinline__, __align__ and __grid_constant__
// are already defined by the toolkit's host_defines.h for a host compiler.
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif
// Shared memory is per block: declare it with KFUSE_SHARED / KFUSE_DYNAMIC_SHARED
// (kernels/core/device.cuh). A plain __shared__ would be one variable per thread here.
#undef __shared__
#define __shared__ KFUSE_EMU_error_use_KFUSE_SHARED_for_shared_memory

namespace kfuse::emu {

// The running emulated thread: its indices, and the block it belongs to.
struct ThreadInfo {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};
// Set by the block scheduler before it resumes a thread's fiber.
const ThreadInfo& this_thread() noexcept;

// ------------------------------------------------------------------ barriers, warp collectives
[[noreturn]] void device_fault(const char* what);
void syncthreads(const char* site);

// One lane's part in a warp collective. The last lane of `mask` to arrive calls
// `combine` with every participating lane's slot (slots[lane], null outside the mask).
struct WarpSlot {
  std::uint64_t value = 0;
  std::uint64_t result = 0;
  int arg = 0;
  int width = 32;
  const void* data = nullptr;
};
using WarpCombine = void (*)(WarpSlot* const* slots, unsigned mask);
enum class WarpOp {
  Syncwarp,
  Shfl,
  ShflUp,
  ShflDown,
  ShflXor,
  Ballot,
  Any,
  All,
  WmmaLoad,
  WmmaStore,
  WmmaMma
};
void warp_collective(unsigned mask, WarpOp op, const char* what, WarpSlot& mine,
                     WarpCombine combine);
unsigned lane_id() noexcept;
unsigned active_mask() noexcept;

// ------------------------------------------------------------------ shared memory
// Per-block storage of the static __shared__ variable identified by `key`
// (allocated, NaN-filled, by the first of the block's threads to reach it).
void* static_shared(const void* key, std::size_t bytes, std::size_t align);
// The block's dynamic shared-memory buffer (the launch's dynamic size).
void* dynamic_shared() noexcept;

template <class T, std::size_t Align>
T& static_shared_as(const void* key) {
  return *static_cast<T*>(static_shared(key, sizeof(T), Align < alignof(T) ? alignof(T) : Align));
}

// ------------------------------------------------------------------ special functions
// ex2.approx.ftz.f32: 2^x with subnormal inputs and results flushed to zero.
inline float ex2_approx_ftz(float x) {
  if (std::fpclassify(x) == FP_SUBNORMAL) x = 0.0f;
  const float y = std::exp2(x);
  return std::fpclassify(y) == FP_SUBNORMAL ? std::copysign(0.0f, y) : y;
}

template <class T>
std::uint64_t to_bits(const T& v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                "warp exchange of values up to 8 bytes");
  std::uint64_t u = 0;
  std::memcpy(&u, &v, sizeof(T));
  return u;
}
template <class T>
T from_bits(std::uint64_t u) {
  T v;
  std::memcpy(&v, &u, sizeof(T));
  return v;
}
std::uint64_t shfl(WarpOp op, const char* what, unsigned mask, std::uint64_t bits, int arg,
                   int width);
unsigned vote(WarpOp op, const char* what, unsigned mask, bool predicate);

// Atomic read-modify-write of a 32/64-bit word, atomic across the OS threads that run blocks.
template <class T, class F>
T atomic_update(T* address, F f) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "32- or 64-bit atomics");
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  U* word = reinterpret_cast<U*>(address);
  U expected = __atomic_load_n(word, __ATOMIC_RELAXED);
  for (;;) {
    const T old = from_bits<T>(expected);
    const T next = f(old);
    U desired;
    std::memcpy(&desired, &next, sizeof(U));
    if (__atomic_compare_exchange_n(word, &expected, desired, false, __ATOMIC_SEQ_CST,
                                    __ATOMIC_RELAXED))
      return old;
  }
}

}  // namespace kfuse::emu

// The runtime's template overloads that the toolkit's cuda_runtime.h gives nvcc only.
template <class T>
cudaError_t cudaFuncSetAttribute(T* entry, cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(entry), attr, value);
}

// ------------------------------------------------------------------ built-in variables
#define threadIdx (::kfuse::emu::this_thread().thread_idx)
#define blockIdx (::kfuse::emu::this_thread().block_idx)
#define blockDim (::kfuse::emu::this_thread().block_dim)
#define gridDim (::kfuse::emu::this_thread().grid_dim)
constexpr int warpSize = 32;

#define KFUSE_EMU_STR2(x) #x
#define KFUSE_EMU_STR(x) KFUSE_EMU_STR2(x)
// The call site names the barrier: threads waiting at different __syncthreads fail.
#define __syncthreads() ::kfuse::emu::syncthreads(__FILE__ ":" KFUSE_EMU_STR(__LINE__))

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::kfuse::emu::WarpSlot slot;
  ::kfuse::emu::warp_collective(mask, ::kfuse::emu::WarpOp::Syncwarp, "__syncwarp", slot, nullptr);
}
inline unsigned __activemask() {
  return ::kfuse::emu::active_mask();
}
template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  using namespace ::kfuse::emu;
  return from_bits<T>(shfl(WarpOp::Shfl, "__shfl_sync", mask, to_bits(v), src, width));
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  using namespace ::kfuse::emu;
  return from_bits<T>(
      shfl(WarpOp::ShflUp, "__shfl_up_sync", mask, to_bits(v), static_cast<int>(delta), width));
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  using namespace ::kfuse::emu;
  return from_bits<T>(
      shfl(WarpOp::ShflDown, "__shfl_down_sync", mask, to_bits(v), static_cast<int>(delta), width));
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  using namespace ::kfuse::emu;
  return from_bits<T>(shfl(WarpOp::ShflXor, "__shfl_xor_sync", mask, to_bits(v), lane_mask, width));
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return ::kfuse::emu::vote(::kfuse::emu::WarpOp::Ballot, "__ballot_sync", mask, predicate != 0);
}
inline int __any_sync(unsigned mask, int predicate) {
  return ::kfuse::emu::vote(::kfuse::emu::WarpOp::Any, "__any_sync", mask, predicate != 0) != 0;
}
inline int __all_sync(unsigned mask, int predicate) {
  return ::kfuse::emu::vote(::kfuse::emu::WarpOp::All, "__all_sync", mask, predicate != 0) != 0;
}
inline void __threadfence() {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
inline void __threadfence_block() {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

// ------------------------------------------------------------------ atomics
template <class T>
T atomicAdd(T* address, T v) {
  return ::kfuse::emu::atomic_update(address, [v](T old) { return static_cast<T>(old + v); });
}
template <class T>
T atomicOr(T* address, T v) {
  return ::kfuse::emu::atomic_update(address, [v](T old) { return static_cast<T>(old | v); });
}
template <class T>
T atomicAnd(T* address, T v) {
  return ::kfuse::emu::atomic_update(address, [v](T old) { return static_cast<T>(old & v); });
}
template <class T>
T atomicMax(T* address, T v) {
  return ::kfuse::emu::atomic_update(address, [v](T old) { return old < v ? v : old; });
}
template <class T>
T atomicMin(T* address, T v) {
  return ::kfuse::emu::atomic_update(address, [v](T old) { return v < old ? v : old; });
}
template <class T>
T atomicExch(T* address, T v) {
  return ::kfuse::emu::atomic_update(address, [v](T) { return v; });
}
template <class T>
T atomicCAS(T* address, T compare, T v) {
  return ::kfuse::emu::atomic_update(address,
                                     [compare, v](T old) { return old == compare ? v : old; });
}

// ------------------------------------------------------------------ loads, bit casts
template <class T>
T __ldg(const T* p) {
  return *p;
}
inline unsigned __float_as_uint(float f) {
  return ::kfuse::emu::from_bits<unsigned>(::kfuse::emu::to_bits(f));
}
inline int __float_as_int(float f) {
  return ::kfuse::emu::from_bits<int>(::kfuse::emu::to_bits(f));
}
inline float __uint_as_float(unsigned u) {
  return ::kfuse::emu::from_bits<float>(::kfuse::emu::to_bits(u));
}
inline float __int_as_float(int i) {
  return ::kfuse::emu::from_bits<float>(::kfuse::emu::to_bits(i));
}
inline long long __double_as_longlong(double d) {
  return ::kfuse::emu::from_bits<long long>(::kfuse::emu::to_bits(d));
}
inline double __longlong_as_double(long long i) {
  return ::kfuse::emu::from_bits<double>(::kfuse::emu::to_bits(i));
}

// ------------------------------------------------------------------ exactly rounded arithmetic
// x86-64 arithmetic is IEEE binary32/binary64 with round-to-nearest-even and no flush
// to zero, the same as the _rn intrinsics; the emulated kernels are compiled with
// -ffp-contract=off so that no two of these fuse into one rounding.
inline float __fadd_rn(float a, float b) {
  return a + b;
}
inline float __fsub_rn(float a, float b) {
  return a - b;
}
inline float __fmul_rn(float a, float b) {
  return a * b;
}
inline float __fdiv_rn(float a, float b) {
  return a / b;
}
inline float __fsqrt_rn(float a) {
  return std::sqrt(a);
}
inline float __fmaf_rn(float a, float b, float c) {
  return std::fma(a, b, c);
}
inline double __dadd_rn(double a, double b) {
  return a + b;
}
inline double __dsub_rn(double a, double b) {
  return a - b;
}
inline double __dmul_rn(double a, double b) {
  return a * b;
}
inline double __ddiv_rn(double a, double b) {
  return a / b;
}
inline double __dsqrt_rn(double a) {
  return std::sqrt(a);
}
inline double __fma_rn(double a, double b, double c) {
  return std::fma(a, b, c);
}
inline float __saturatef(float x) {
  return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x));
}
