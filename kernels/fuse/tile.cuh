// The block tile shared by the fusion family's exact GPU kernels (the projections
// of rp_fuse / rff_fuse and the pair scores of product_kernel_topk): 256 threads own
// a BM x BN tile of outputs, 4 x 8 per thread, and walk the reduction dimension in
// BK-wide slabs staged k-major in shared memory. Each output's chain runs over k in
// increasing order (slab by slab, then within the slab), exactly as the CPU path's
// loops: the same bits. Slab entries past the operand's width are 0, and
// fma(0, 0, acc) == acc for every acc the chains produce (they start at +0 and never
// reach -0), so the padding changes no bit.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/fuse/math.hpp"

namespace kfuse::cuda::fuse {

constexpr int kThreads = 256;  // 16 x 16
constexpr int BM = 64, BN = 128, BK = 16;
constexpr int TM = 4, TN = 8;
constexpr int kPad = 4;  // row stride of a k-major slab: a 16-byte multiple, fewer bank conflicts

// The tile column of a thread's b-th output column: two groups of four, 64 apart,
// so that a warp's 16-byte shared loads are conflict-free.
__device__ __forceinline__ int tile_col(int tx, int b) {
  return (b < 4 ? 0 : 64) + tx * 4 + (b & 3);
}

// dst[k][r] = mapped value (row0 + r, k0 + k) of the operand for rows < rows_end and
// columns < its width, else 0. Consecutive threads read consecutive k of a row.
template <int R>
__device__ __forceinline__ void load_operand_slab(const detail::FuseOperand& op, std::int64_t row0,
                                                  std::int64_t rows_end, std::int64_t k0,
                                                  float (*dst)[R + kPad]) {
  for (int idx = threadIdx.x; idx < R * BK; idx += kThreads) {
    const int r = idx / BK, k = idx % BK;
    const std::int64_t gr = row0 + r, gk = k0 + k;
    dst[k][r] = (gr < rows_end && gk < op.width) ? detail::operand_value<float>(op, gr, gk) : 0.0f;
  }
}

// dst[k][c] = w[(k0 + k) * ld + col0 + c] for k0 + k < rows and col0 + c < cols, else 0.
__device__ __forceinline__ void load_matrix_slab(const float* w, std::int64_t ld, std::int64_t rows,
                                                 std::int64_t cols, std::int64_t k0,
                                                 std::int64_t col0, float (*dst)[BN + kPad]) {
  for (int idx = threadIdx.x; idx < BN * BK; idx += kThreads) {
    const int k = idx / BN, c = idx % BN;
    const std::int64_t gk = k0 + k, gc = col0 + c;
    dst[k][c] = (gk < rows && gc < cols) ? w[gk * ld + gc] : 0.0f;
  }
}

// acc[a][b] = pair_step(K, a_slab[k][row a], b_slab[k][col b], acc[a][b]), k = 0 .. BK-1.
template <detail::PairKernel K>
__device__ __forceinline__ void slab_chain(const float (*a)[BM + kPad], const float (*b)[BN + kPad],
                                           int ty, int tx, float (&acc)[TM][TN]) {
#pragma unroll
  for (int k = 0; k < BK; ++k) {
    const float4 av = *reinterpret_cast<const float4*>(&a[k][ty * 4]);
    const float4 b0 = *reinterpret_cast<const float4*>(&b[k][tx * 4]);
    const float4 b1 = *reinterpret_cast<const float4*>(&b[k][64 + tx * 4]);
    const float ar[TM] = {av.x, av.y, av.z, av.w};
    const float br[TN] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j)
        acc[i][j] = detail::pair_step(K, ar[i], br[j], acc[i][j]);
  }
}

template <class T, int R, int C>
__device__ __forceinline__ void fill(T (&x)[R][C], T value) {
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int j = 0; j < C; ++j)
      x[i][j] = value;
}

}  // namespace kfuse::cuda::fuse
