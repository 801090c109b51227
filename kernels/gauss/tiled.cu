// Gaussian sums for any dimension, exact (fp32 or fp64): a block owns BM query
// rows and walks the sample in BN-row tiles. Each tile's squared distances are
// accumulated in the direct form sum_k (x_ik - y_jk)^2 (no cancellation, however
// close the points) over d in BK-wide steps, 4 x 4 pairs per thread, then folded
// into the rows' sums by the shared tile epilogue (kernels/gauss/tile.cuh).
#include <cuda_runtime.h>

#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/gauss/kernels.hpp"
#include "kernels/gauss/tile.cuh"

namespace kfuse::cuda::gauss {
namespace {

constexpr int kThreads = 256;  // 16 x 16 threads, 4 x 4 pairs each
constexpr int BM = 64, BN = 64, BK = 16;
constexpr int TPR = kThreads / BM;  // threads per row in the tile epilogue
constexpr int kPad = 4;             // keeps rows of the k-major tiles 16-byte aligned

template <class T, int RC>
struct Smem {
  T x[BK][BM + kPad];  // k-major: a thread's 4 rows are contiguous
  T y[BK][BN + kPad];
  T s[BM][BN + 1];  // the distance tile, then its terms
  T w[BN];
  T v[BN * (RC > 0 ? RC : 1)];
};

template <class T>
__device__ __forceinline__ void load_k_slab(const T* src, std::int64_t ld, std::int64_t row0,
                                            std::int64_t rows, std::int64_t k0, std::int64_t d,
                                            T (*dst)[BM + kPad]) {
  // Consecutive threads read consecutive k of one row (coalesced), then store
  // transposed.
  for (int idx = threadIdx.x; idx < BM * BK; idx += kThreads) {
    const int r = idx / BK, k = idx % BK;
    const std::int64_t gr = row0 + r, gk = k0 + k;
    dst[k][r] = (gr < rows && gk < d) ? src[gr * ld + gk] : T(0);
  }
}

// SCALED: the differences are scaled by L.q before squaring (a sigma far from 1).
template <class T, int RC, bool STAB, bool SCALED>
__global__ void __launch_bounds__(kThreads) gauss_tiled_kernel(const Launch<T> L) {
  KFUSE_DYNAMIC_SHARED(16, unsigned char, smem_raw);
  auto& sm = *reinterpret_cast<Smem<T, RC>*>(smem_raw);
  const auto& p = L.p;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int lrow = threadIdx.x / TPR, q = threadIdx.x % TPR;
  const std::int64_t i0 = static_cast<std::int64_t>(blockIdx.x) * BM;
  const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * RC;
  std::int64_t jb = 0, je = 0;
  split_range(L, BN, &jb, &je);

  RowSums<T, RC, TPR> st;
  st.init(p.stabilised);

  for (std::int64_t j0 = jb; j0 < je; j0 += BN) {
    const int cols = static_cast<int>(je - j0 < BN ? je - j0 : BN);
    T d2[4][4] = {};
    for (std::int64_t k0 = 0; k0 < p.d; k0 += BK) {
      __syncthreads();  // the previous slab (or tile) is consumed
      load_k_slab(p.x, p.ldx, i0, p.m, k0, p.d, sm.x);
      load_k_slab(p.y, p.ldy, j0, je, k0, p.d, sm.y);
      __syncthreads();
#pragma unroll
      for (int k = 0; k < BK; ++k) {
        T xr[4], yr[4];
#pragma unroll
        for (int a = 0; a < 4; ++a) {
          xr[a] = sm.x[k][ty * 4 + a];
          yr[a] = sm.y[k][tx * 4 + a];
        }
#pragma unroll
        for (int a = 0; a < 4; ++a)
#pragma unroll
          for (int b = 0; b < 4; ++b) {
            const T diff = SCALED ? (xr[a] - yr[b]) * L.q : xr[a] - yr[b];
            d2[a][b] = fma(diff, diff, d2[a][b]);
          }
      }
    }
#pragma unroll
    for (int a = 0; a < 4; ++a)
#pragma unroll
      for (int b = 0; b < 4; ++b)
        sm.s[ty * 4 + a][tx * 4 + b] = -L.c * d2[a][b];
    load_tile_values<T, BN, RC, STAB>(L, j0, cols, r0, sm.w, sm.v);
    __syncthreads();
    accumulate_tile<T, BN, RC, TPR, STAB>(sm.s[lrow], sm.w, sm.v, q, i0 + lrow, j0, cols,
                                          p.skip_diagonal, st);
    __syncthreads();  // (also covered by the next slab's barrier; kept for clarity)
  }
  finish_row<T, RC, TPR>(L, i0 + lrow, r0, q, st);
}

int chunk_cols(std::int64_t r) {
  return r == 0 ? 0 : (r <= 4 ? 4 : 32);
}

template <class T, int RC>
void launch_rc(const Launch<T>& L, const Shape& shape, dim3 grid, cudaStream_t stream) {
  const bool scaled = L.q != T(1);
  auto kernel = L.p.stabilised ? (scaled ? gauss_tiled_kernel<T, RC, true, true>
                                         : gauss_tiled_kernel<T, RC, true, false>)
                               : (scaled ? gauss_tiled_kernel<T, RC, false, true>
                                         : gauss_tiled_kernel<T, RC, false, false>);
  KFUSE_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(shape.smem_bytes)));
  KFUSE_LAUNCH(kernel, grid, kThreads, shape.smem_bytes, stream, L);
}

}  // namespace

template <class T>
Shape tiled_shape(std::int64_t r) {
  Shape s;
  s.rows_per_block = BM;
  s.r_chunk = chunk_cols(r);
  s.tile_cols = BN;
  s.threads = kThreads;
  switch (s.r_chunk) {
    case 0:
      s.smem_bytes = sizeof(Smem<T, 0>);
      break;
    case 4:
      s.smem_bytes = sizeof(Smem<T, 4>);
      break;
    default:
      s.smem_bytes = sizeof(Smem<T, 32>);
      break;
  }
  return s;
}

template <class T>
void launch_tiled(const Launch<T>& L, const Shape& shape, dim3 grid, cudaStream_t stream) {
  switch (shape.r_chunk) {
    case 0:
      return launch_rc<T, 0>(L, shape, grid, stream);
    case 4:
      return launch_rc<T, 4>(L, shape, grid, stream);
    default:
      return launch_rc<T, 32>(L, shape, grid, stream);
  }
}

template Shape tiled_shape<float>(std::int64_t);
template Shape tiled_shape<double>(std::int64_t);
template void launch_tiled<float>(const Launch<float>&, const Shape&, dim3, cudaStream_t);
template void launch_tiled<double>(const Launch<double>&, const Shape&, dim3, cudaStream_t);

}  // namespace kfuse::cuda::gauss
