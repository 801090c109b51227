// Gaussian sums for small dimensions (d <= 32), fp32.
//
// Each thread owns TM query rows (their coordinates, sums and running maxima in
// registers) and walks the sample through shared-memory tiles; a tile row is read
// once per TM pairs. Per pair: d FSUB+FFMA for the exact squared distance, one
// FMUL, one hardware exp2, and R FFMA into the sums. Nothing of size M x N exists.
#include <cuda_runtime.h>

#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/gauss/kernels.hpp"

namespace kfuse::cuda::gauss {
namespace {

constexpr int kThreads = 128;
constexpr int kTile = 128;  // sample rows per shared-memory tile

// Rows per thread: as many as the registers allow (coordinates + sums per row).
constexpr int rows_per_thread(int dp, int rc) {
  return dp + rc <= 12 ? 4 : (dp + rc <= 36 ? 2 : 1);
}

// STAB: the stabilised (log-sum-exp) form. SKIP_DIAG: leave out i == j (MMD).
// MATVEC: a plain sum whose epilogue needs neither weights nor the denominator,
// which saves a multiply and an add per pair (9 instead of 11 at d = 3).
template <int DP, int RC, bool STAB, bool SKIP_DIAG, bool MATVEC>
__global__ void __launch_bounds__(kThreads) gauss_small_d_kernel(const Launch<float> L) {
  static_assert(!(MATVEC && (STAB || SKIP_DIAG)), "a matvec is plain and keeps the diagonal");
  constexpr int TM = rows_per_thread(DP, RC);
  constexpr int RCS = RC > 0 ? RC : 1;
  KFUSE_SHARED(float, sy, [kTile][DP]);
  KFUSE_SHARED(float, sv, [kTile][RCS]);
  KFUSE_SHARED(float, sw, [kTile]);

  const auto& p = L.p;
  const std::int64_t row0 = static_cast<std::int64_t>(blockIdx.x) * (kThreads * TM);
  const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * RC;
  std::int64_t jb = 0, je = 0;
  split_range(L, kTile, &jb, &je);

  float x[TM][DP];
  float acc[TM][RCS];
  float den[TM];
  float mx[TM];
#pragma unroll
  for (int t = 0; t < TM; ++t) {
    const std::int64_t i = row0 + t * kThreads + threadIdx.x;
#pragma unroll
    for (int k = 0; k < DP; ++k)
      x[t][k] = (i < p.m && k < p.d) ? p.x[i * p.ldx + k] : 0.0f;
#pragma unroll
    for (int r = 0; r < RCS; ++r)
      acc[t][r] = 0.0f;
    den[t] = 0.0f;
    mx[t] = STAB ? detail::running_max_init<float>() : 0.0f;
  }

  for (std::int64_t j0 = jb; j0 < je; j0 += kTile) {
    const int cols = static_cast<int>(je - j0 < kTile ? je - j0 : kTile);
    __syncthreads();  // the previous tile is consumed
    for (int idx = threadIdx.x; idx < kTile * DP; idx += kThreads) {
      const int jj = idx / DP, k = idx % DP;
      sy[jj][k] = (jj < cols && k < p.d) ? p.y[(j0 + jj) * p.ldy + k] : 0.0f;
    }
    if constexpr (RC > 0) {
      for (int idx = threadIdx.x; idx < kTile * RC; idx += kThreads) {
        const int jj = idx / RC, r = idx % RC;
        sv[jj][r] = (jj < cols && r0 + r < p.r) ? p.v[(j0 + jj) * p.ldv + r0 + r] : 0.0f;
      }
    }
    for (int jj = threadIdx.x; jj < kTile; jj += kThreads) {
      const float w = (jj < cols && p.w != nullptr) ? p.w[(j0 + jj) * p.w_stride] : 1.0f;
      sw[jj] = STAB ? detail::log2_weight(w) : w;
    }
    __syncthreads();

    for (int jj = 0; jj < cols; ++jj) {
      float yv[DP];
#pragma unroll
      for (int k = 0; k < DP; ++k)
        yv[k] = sy[jj][k];
      const float wj = sw[jj];
#pragma unroll
      for (int t = 0; t < TM; ++t) {
        float d2 = 0.0f;
#pragma unroll
        for (int k = 0; k < DP; ++k) {
          const float diff = x[t][k] - yv[k];
          d2 = fmaf(diff, diff, d2);
        }
        float s = -L.c * d2;
        float e;
        if (STAB) {
          s += wj;
          if (s > mx[t]) {  // rare once the nearest points have been seen
            const float rescale = fast_exp2(mx[t] - s);
            den[t] *= rescale;
#pragma unroll
            for (int r = 0; r < RCS; ++r)
              acc[t][r] *= rescale;
            mx[t] = s;
          }
          e = fast_exp2(s - mx[t]);
        } else if (MATVEC) {
          e = fast_exp2(s);
        } else {
          e = wj * fast_exp2(s);
        }
        if (SKIP_DIAG && j0 + jj == row0 + t * kThreads + threadIdx.x) e = 0.0f;
        if (!MATVEC) den[t] += e;
#pragma unroll
        for (int r = 0; r < RC; ++r)
          acc[t][r] = fmaf(e, sv[jj][r], acc[t][r]);
      }
    }
  }

#pragma unroll
  for (int t = 0; t < TM; ++t) {
    const std::int64_t i = row0 + t * kThreads + threadIdx.x;
    if (i >= p.m) continue;
#pragma unroll
    for (int r = 0; r < RC; ++r)
      if (r0 + r < p.r) store_element(L, i, r0 + r, acc[t][r], den[t]);
    if (blockIdx.y == 0) store_row(L, i, den[t], mx[t]);
  }
}

int padded_dim(std::int64_t d) {
  if (d <= 4) return static_cast<int>(d);
  return d <= 8 ? 8 : (d <= 16 ? 16 : 32);
}

int chunk_cols(std::int64_t r) {
  if (r <= 1) return static_cast<int>(r);
  return r <= 4 ? 4 : (r <= 16 ? 16 : 32);
}

template <int DP, int RC>
void launch_rc(const Launch<float>& L, dim3 grid, cudaStream_t stream) {
  if (L.p.skip_diagonal) {
    // Only the kernel sums of MMD leave the diagonal out: plain form, no columns.
    if constexpr (RC == 0) {
      KFUSE_LAUNCH((gauss_small_d_kernel<DP, 0, false, true, false>), grid, kThreads, 0, stream, L);
      return;
    }
    throw Error(Status::Internal, "gauss small-d kernel: diagonal skip needs R == 0");
  }
  if (L.p.stabilised) {
    KFUSE_LAUNCH((gauss_small_d_kernel<DP, RC, true, false, false>), grid, kThreads, 0, stream, L);
  } else if (L.e.kind == detail::GaussEpilogueKind::Matvec && L.p.w == nullptr) {
    if constexpr (RC > 0)
      KFUSE_LAUNCH((gauss_small_d_kernel<DP, RC, false, false, true>), grid, kThreads, 0, stream,
                   L);
    else
      throw Error(Status::Internal, "gauss small-d kernel: a matvec has R >= 1");
  } else {
    KFUSE_LAUNCH((gauss_small_d_kernel<DP, RC, false, false, false>), grid, kThreads, 0, stream, L);
  }
}

template <int DP>
void launch_dp(const Launch<float>& L, int rc, dim3 grid, cudaStream_t stream) {
  switch (rc) {
    case 0:
      return launch_rc<DP, 0>(L, grid, stream);
    case 1:
      return launch_rc<DP, 1>(L, grid, stream);
    case 4:
      return launch_rc<DP, 4>(L, grid, stream);
    case 16:
      return launch_rc<DP, 16>(L, grid, stream);
    default:
      return launch_rc<DP, 32>(L, grid, stream);
  }
}

}  // namespace

Shape small_d_shape(std::int64_t d, std::int64_t r) {
  Shape s;
  const int dp = padded_dim(d), rc = chunk_cols(r);
  s.rows_per_block = kThreads * rows_per_thread(dp, rc);
  s.r_chunk = rc;
  s.tile_cols = kTile;
  s.threads = kThreads;
  s.smem_bytes = 0;  // static shared memory only
  return s;
}

void launch_small_d(const Launch<float>& L, const Shape& shape, dim3 grid, cudaStream_t stream) {
  switch (padded_dim(L.p.d)) {
    case 1:
      return launch_dp<1>(L, shape.r_chunk, grid, stream);
    case 2:
      return launch_dp<2>(L, shape.r_chunk, grid, stream);
    case 3:
      return launch_dp<3>(L, shape.r_chunk, grid, stream);
    case 4:
      return launch_dp<4>(L, shape.r_chunk, grid, stream);
    case 8:
      return launch_dp<8>(L, shape.r_chunk, grid, stream);
    case 16:
      return launch_dp<16>(L, shape.r_chunk, grid, stream);
    default:
      return launch_dp<32>(L, shape.r_chunk, grid, stream);
  }
}

}  // namespace kfuse::cuda::gauss
