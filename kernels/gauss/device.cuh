// Device-side pieces shared by the Gaussian kernels: the launch description, the
// hardware exp2, and how a block hands a row's finished sums on (straight to the
// epilogue, or as a partial when the sample is split across blocks).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/core/device.cuh"
#include "kernels/gauss/math.hpp"
#include "kernels/gauss/problem.hpp"

namespace kfuse::cuda::gauss {

using detail::GaussEpilogue;
using detail::GaussProblem;

// Everything a Gaussian kernel needs, passed by value. W is the working type
// (float for float inputs, double for double).
template <class T>
struct Launch {
  using W = T;
  GaussProblem<T> p;
  GaussEpilogue<T> e;
  W c = 0;  // gauss_log2_coefficient<W>(p.sigma), or 1 when folded into prepared inputs
  W q = 1;  // gauss_distance_scale<W>(p.sigma): != 1 only on the tiled kernel
  // The sample is cut into `splits` contiguous ranges of `tile_cols`-row tiles, one
  // per blockIdx.z. With splits > 1 each block writes its partial sums and a
  // combine kernel merges them in split order (deterministically).
  int splits = 1;
  std::int64_t tiles_per_split = 0;
  W* part_acc = nullptr;  // [splits][m][r]
  W* part_den = nullptr;  // [splits][m]
  W* part_max = nullptr;  // [splits][m]
};

// The sample rows [begin, end) of split `s` for tiles of `tile` rows.
template <class T>
__device__ __forceinline__ void split_range(const Launch<T>& L, int tile, std::int64_t* begin,
                                            std::int64_t* end) {
  const std::int64_t b = static_cast<std::int64_t>(blockIdx.z) * L.tiles_per_split * tile;
  const std::int64_t e = b + L.tiles_per_split * tile;
  *begin = b < L.p.n ? b : L.p.n;
  *end = e < L.p.n ? e : L.p.n;
}

// 2^x on the special-function unit (flushes subnormal results to 0; x <= 0 here).
__device__ __forceinline__ float fast_exp2(float x) {
  return ex2_approx_ftz(x);
}
__device__ __forceinline__ double fast_exp2(double x) {
  return exp2(x);
}

// A finished element of a matrix output (kinds Matvec, MeanShift, Grad).
template <class T>
__device__ __forceinline__ void store_element(const Launch<T>& L, std::int64_t i, std::int64_t r,
                                              T acc, T den) {
  if (L.splits == 1) {
    if (!detail::gauss_epilogue_is_row(L.e.kind))
      detail::gauss_epilogue_element<T, T>(L.e, i, r, acc, den);
    return;
  }
  L.part_acc[(static_cast<std::int64_t>(blockIdx.z) * L.p.m + i) * L.p.r + r] = acc;
}

// A finished row's statistics; called once per row and split (r-chunk 0 only).
template <class T>
__device__ __forceinline__ void store_row(const Launch<T>& L, std::int64_t i, T den, T m) {
  if (L.splits == 1) {
    if (detail::gauss_epilogue_is_row(L.e.kind)) detail::gauss_epilogue_row<T, T>(L.e, i, den, m);
    return;
  }
  const std::int64_t k = static_cast<std::int64_t>(blockIdx.z) * L.p.m + i;
  L.part_den[k] = den;
  L.part_max[k] = m;
}

// Merges the splits' partials in split order and applies the epilogue. One thread
// per (row, r) for matrix outputs, one per row for row outputs.
template <class T>
__global__ void combine_splits_kernel(Launch<T> L) {
  const bool row_kind = detail::gauss_epilogue_is_row(L.e.kind);
  const std::int64_t cols = row_kind ? 1 : L.p.r;
  const std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= L.p.m * cols) return;
  const std::int64_t i = t / cols, r = t % cols;
  T m = detail::running_max_init<T>();
  for (int s = 0; s < L.splits; ++s)
    m = fmax(m, L.part_max[s * L.p.m + i]);
  T den = 0, acc = 0;
  for (int s = 0; s < L.splits; ++s) {
    const std::int64_t k = s * L.p.m + i;
    const T scale = L.p.stabilised ? detail::hd_exp2(L.part_max[k] - m) : T(1);
    den += L.part_den[k] * scale;
    if (!row_kind) acc += L.part_acc[k * L.p.r + r] * scale;
  }
  if (row_kind)
    detail::gauss_epilogue_row<T, T>(L.e, i, den, m);
  else
    detail::gauss_epilogue_element<T, T>(L.e, i, r, acc, den);
}

}  // namespace kfuse::cuda::gauss
