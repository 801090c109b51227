// The part of a tiled Gaussian kernel that follows the distance tile: given
// s_ij = -c |x_i - y_j|^2 for a BM x BN tile in shared memory, fold it into each
// row's running sums. Shared by the exact (SIMT) and the tensor-core kernels.
//
// TPR consecutive lanes of one warp own a row: each holds the row's maximum and
// denominator (replicated) and RC / TPR of its output columns (q, q + TPR, ...).
#pragma once

#include <cuda_runtime.h>

#include "kernels/gauss/device.cuh"

namespace kfuse::cuda::gauss {

template <class W, int RC, int TPR>
struct RowSums {
  static constexpr int kCols = RC / TPR > 0 ? RC / TPR : 1;
  W m;
  W den;
  W acc[kCols];

  __device__ void init(bool stabilised) {
    m = stabilised ? detail::running_max_init<W>() : W(0);
    den = W(0);
#pragma unroll
    for (int c = 0; c < kCols; ++c)
      acc[c] = W(0);
  }
};

template <int TPR, class W>
__device__ __forceinline__ W lanes_max(W v) {
#pragma unroll
  for (int o = TPR / 2; o > 0; o /= 2)
    v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o, TPR));
  return v;
}
template <int TPR, class W>
__device__ __forceinline__ W lanes_sum(W v) {
#pragma unroll
  for (int o = TPR / 2; o > 0; o /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, o, TPR);
  return v;
}

// Called by every thread of the block (uniformly) after the tile's s values,
// weights and values are in shared memory and a barrier:
//   srow: this thread's row of the tile (BN entries; overwritten with the terms e_ij)
//   sw:   [BN] plain weights, or log2 weights when STAB
//   sv:   [BN][RC] the tile's values
// i is the global row, j0 the tile's first sample row, cols the valid columns.
template <class W, int BN, int RC, int TPR, bool STAB>
__device__ __forceinline__ void accumulate_tile(W* srow, const W* sw, const W* sv, int q,
                                                std::int64_t i, std::int64_t j0, int cols,
                                                bool skip_diagonal, RowSums<W, RC, TPR>& st) {
  constexpr int kPerLane = BN / TPR;
  W part = W(0);
  if (STAB) {
    W tile_max = detail::running_max_init<W>();
#pragma unroll 4
    for (int c = 0; c < kPerLane; ++c) {
      const int jj = c * TPR + q;
      W s = -INFINITY;
      if (jj < cols && !(skip_diagonal && j0 + jj == i)) s = srow[jj] + sw[jj];
      srow[jj] = s;
      tile_max = fmax(tile_max, s);
    }
    tile_max = lanes_max<TPR>(tile_max);
    const W m_new = fmax(st.m, tile_max);
    const W rescale = fast_exp2(st.m - m_new);
    st.m = m_new;
    st.den *= rescale;
#pragma unroll
    for (int c = 0; c < RowSums<W, RC, TPR>::kCols; ++c)
      st.acc[c] *= rescale;
#pragma unroll 4
    for (int c = 0; c < kPerLane; ++c) {
      const int jj = c * TPR + q;
      const W e = fast_exp2(srow[jj] - m_new);
      srow[jj] = e;
      part += e;
    }
  } else {
#pragma unroll 4
    for (int c = 0; c < kPerLane; ++c) {
      const int jj = c * TPR + q;
      W e = W(0);
      if (jj < cols && !(skip_diagonal && j0 + jj == i)) e = sw[jj] * fast_exp2(srow[jj]);
      srow[jj] = e;
      part += e;
    }
  }
  st.den += lanes_sum<TPR>(part);
  __syncwarp();  // the row's terms, written by its TPR lanes, are visible to all of them
  if constexpr (RC > 0) {
    for (int jj = 0; jj < cols; ++jj) {
      const W e = srow[jj];
#pragma unroll
      for (int c = 0; c < RowSums<W, RC, TPR>::kCols; ++c)
        st.acc[c] = fma(e, sv[jj * RC + c * TPR + q], st.acc[c]);
    }
  }
}

// Hands a finished row on (see store_element / store_row).
template <class T, int RC, int TPR>
__device__ __forceinline__ void finish_row(const Launch<T>& L, std::int64_t i, std::int64_t r0,
                                           int q, const RowSums<T, RC, TPR>& st) {
  if (i >= L.p.m) return;
#pragma unroll
  for (int c = 0; c < RowSums<T, RC, TPR>::kCols; ++c) {
    const std::int64_t r = r0 + c * TPR + q;
    if (RC > 0 && r < L.p.r && c * TPR + q < RC) store_element(L, i, r, st.acc[c], st.den);
  }
  if (blockIdx.y == 0 && q == 0) store_row(L, i, st.den, st.m);
}

// Loads the tile's weights and values into shared memory (zeros past the valid
// columns and past R).
template <class T, int BN, int RC, bool STAB>
__device__ __forceinline__ void load_tile_values(const Launch<T>& L, std::int64_t j0, int cols,
                                                 std::int64_t r0, T* sw, T* sv) {
  const auto& p = L.p;
  for (int jj = threadIdx.x; jj < BN; jj += blockDim.x) {
    const T w = (jj < cols && p.w != nullptr) ? p.w[(j0 + jj) * p.w_stride] : T(1);
    sw[jj] = STAB ? detail::log2_weight(w) : (jj < cols ? w : T(0));
  }
  if constexpr (RC > 0) {
    for (int idx = threadIdx.x; idx < BN * RC; idx += blockDim.x) {
      const int jj = idx / RC, r = idx % RC;
      sv[idx] = (jj < cols && r0 + r < p.r) ? p.v[(j0 + jj) * p.ldv + r0 + r] : T(0);
    }
  }
}

}  // namespace kfuse::cuda::gauss
