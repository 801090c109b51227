// Device helpers of the mixture-of-experts kernels: float <-> element conversion
// of 16-byte vectors, masked runs of up to one vector, and a fixed-order sum over
// the threads of a row group. The per-element math itself is in kernels/moe/math.hpp.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/core/float16.hpp"
#include "kernels/moe/math.hpp"
#include "kernels/moe/problem.hpp"

namespace kfuse::cuda::moe {

// Elements of T in 16 bytes.
template <class T>
struct Vec;
template <>
struct Vec<float> {
  static constexpr int n = 4;
};
template <>
struct Vec<bf16> {
  static constexpr int n = 8;
};

__device__ __forceinline__ float to_f(float v) {
  return v;
}
__device__ __forceinline__ float to_f(bf16 v) {
  return detail::to_float(v);
}
template <class T>
__device__ __forceinline__ T from_f(float v) {
  return detail::from_float<T>(v);
}

// A 16-byte vector as floats, and back (round to nearest even for bf16).
template <class T>
__device__ __forceinline__ void unpack(const uint4& u, float* v) {
  const std::uint32_t w[4] = {u.x, u.y, u.z, u.w};
  if constexpr (std::is_same_v<T, float>) {
#pragma unroll
    for (int i = 0; i < 4; ++i)
      v[i] = __uint_as_float(w[i]);
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[2 * i] = __uint_as_float(w[i] << 16);  // the lower half is the lower address
      v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  }
}
template <class T>
__device__ __forceinline__ uint4 pack(const float* v) {
  std::uint32_t w[4];
  if constexpr (std::is_same_v<T, float>) {
#pragma unroll
    for (int i = 0; i < 4; ++i)
      w[i] = __float_as_uint(v[i]);
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i)
      w[i] = static_cast<std::uint32_t>(detail::to_bf16(v[2 * i]).bits) |
             (static_cast<std::uint32_t>(detail::to_bf16(v[2 * i + 1]).bits) << 16);
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// p[0..n) as floats, zeros beyond n (n <= Vec<T>::n): one 16-byte load when `vec`
// (p 16-byte aligned) and the run is whole, element loads otherwise.
template <class T>
__device__ __forceinline__ void load_run(const T* p, int n, bool vec, float* v) {
  constexpr int W = Vec<T>::n;
  if (vec && n == W) {
    unpack<T>(*reinterpret_cast<const uint4*>(p), v);
    return;
  }
#pragma unroll
  for (int i = 0; i < W; ++i)
    v[i] = i < n ? to_f(p[i]) : 0.0f;
}
template <class T>
__device__ __forceinline__ void store_run(T* p, int n, bool vec, const float* v) {
  constexpr int W = Vec<T>::n;
  if (vec && n == W) {
    *reinterpret_cast<uint4*>(p) = pack<T>(v);
    return;
  }
#pragma unroll
  for (int i = 0; i < W; ++i)
    if (i < n) p[i] = from_f<T>(v[i]);
}

// The raw bits of p[0..n) (n <= Vec<T>::n, zeros beyond) for a shared-memory tile;
// p is 16-byte aligned (the GEMM family's validated requirement).
template <class T>
__device__ __forceinline__ uint4 load_bits(const T* p, int n) {
  constexpr int W = Vec<T>::n;
  if (n == W) return *reinterpret_cast<const uint4*>(p);
  T part[W];
#pragma unroll
  for (int i = 0; i < W; ++i)
    part[i] = i < n ? p[i] : from_f<T>(0.0f);
  uint4 u;
  std::memcpy(&u, part, sizeof(u));
  return u;
}

// Sum of v over the threadIdx.x threads of each row group (a multiple of 32 wide)
// in a fixed order: butterflies within each warp, then the warps in order. Every
// thread of the block calls it (it synchronises the block); `scratch` holds
// blockDim.y * 8 floats. All threads of a group get the sum.
__device__ __forceinline__ float group_sum(float v, float* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warps = blockDim.x / 32;
  if (warps == 1) return v;
  float* mine = scratch + threadIdx.y * 8;
  __syncthreads();
  if (threadIdx.x % 32 == 0) mine[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < warps; ++w)
    total += mine[w];
  return total;
}

// Is a matrix's every row 16-byte aligned?
template <class T>
inline bool rows_aligned(const T* p, std::int64_t ld) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0 && (ld * std::int64_t(sizeof(T))) % 16 == 0;
}

}  // namespace kfuse::cuda::moe
