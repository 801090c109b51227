// fp32 grouped GEMMs on the CUDA cores (exact IEEE fp32 FMAs, no TF32): the
// row-grouped product (64 x 64 tiles of one expert's rows, 16-deep slabs, 4 x 4
// outputs per thread) and the weight gradient (64 x 64 tiles of dW_e, the expert's
// rows streamed in 16-row slabs). Slabs are staged through registers so that the
// next slab's global loads overlap the current slab's FMAs.
#include <cuda_runtime.h>

#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/moe/gemm_epilogue.cuh"
#include "kernels/moe/kernels.hpp"

namespace kfuse::cuda::moe {
namespace {

using detail::GroupedGemmProblem;
using detail::WgradProblem;
using std::int64_t;

constexpr int kThreads = 256;
constexpr int BM = kTileRowsF32, BN = 64, BK = 16;
static_assert(BM * BK / 4 == kThreads && BK * BN / 4 == kThreads, "one float4 per thread");

// float4 of row `src` (or zeros when src < 0), columns [c, c + 4) clipped to `cols`.
__device__ __forceinline__ void load4(const float* base, int64_t ld, int64_t src, int64_t c,
                                      int64_t cols, float* v) {
  if (src < 0 || c >= cols) {
    v[0] = v[1] = v[2] = v[3] = 0.0f;
    return;
  }
  load_run(base + src * ld + c, static_cast<int>(cols - c < 4 ? cols - c : 4), true, v);
}

// 16 outer-product steps of a 4 x 4 register tile: a from As[k][row], b from Bs[k][col].
template <int NB>
__device__ __forceinline__ void slab_fma(const float (&As)[BK][BM + 4],
                                         const float (&Bs)[NB][BK][BN + 4], int ty, int tx,
                                         float (&acc)[NB][4][4]) {
#pragma unroll
  for (int kk = 0; kk < BK; ++kk) {
    const float4 a = *reinterpret_cast<const float4*>(&As[kk][ty * 4]);
    const float av[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
    for (int q = 0; q < NB; ++q) {
      const float4 b = *reinterpret_cast<const float4*>(&Bs[q][kk][tx * 4]);
      const float bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
          acc[q][i][j] = fmaf(av[i], bv[j], acc[q][i][j]);
    }
  }
}

// NB = 2: SwiGLU (two weight tensors, one A). Tiles are scheduled on the device:
// block x is tile x of tile_start's schedule; blocks past its end exit at once.
template <int NB>
__global__ void __launch_bounds__(kThreads)
    grouped_gemm_f32_kernel(const __grid_constant__ GroupedGemmProblem<float> g,
                            const std::int32_t* tile_start) {
  KFUSE_SHARED_ALIGNED(16, float, As, [BK][BM + 4]);
  KFUSE_SHARED_ALIGNED(16, float, Bs, [NB][BK][BN + 4]);
  KFUSE_SHARED(int64_t, a_src, [BM]);
  const detail::PlanArrays& p = g.plan;
  const int E = static_cast<int>(p.experts);
  const int64_t tile = blockIdx.x;
  if (tile >= tile_start[E]) return;
  const int e = detail::find_tile_expert(tile_start, E, tile);
  const int64_t m0 = (tile - tile_start[e]) * BM;
  const int64_t row0 = p.offsets[e] + m0;
  const int64_t m_rows = p.counts[e] - m0 < BM ? p.counts[e] - m0 : BM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * BN;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  for (int i = tid; i < BM; i += kThreads)
    a_src[i] = i < m_rows ? source_row(p, row0 + i, g.a_gather) : -1;
  __syncthreads();

  // Per thread: one float4 of the A slab (row tid / 4) and of each B slab.
  const int a_r = tid / 4, a_c = (tid % 4) * 4;
  const int b_k = tid / 16, b_c = (tid % 16) * 4;  // B stored [K x N]
  const int t_n = tid / 4, t_k = (tid % 4) * 4;    // B stored [N x K] (transposed)
  float ra[4], rb[NB][4];
  const int64_t k_tiles = detail::moe_ceil_div(g.k, BK);
  const int64_t steps = k_tiles * g.segments;
  auto load = [&](int64_t step) {
    const int seg = static_cast<int>(step / k_tiles);
    const int64_t k0 = (step % k_tiles) * BK;
    load4(g.a[seg], g.lda[seg], a_src[a_r], k0 + a_c, g.k, ra);
#pragma unroll
    for (int q = 0; q < NB; ++q) {
      const int bi = NB == 2 ? q : seg;
      if (!g.b_trans) {
        const float* b = g.b[bi] + e * g.k * g.ldb[bi];
        load4(b, g.ldb[bi], k0 + b_k < g.k ? k0 + b_k : -1, n0 + b_c, g.n, rb[q]);
      } else {
        const float* b = g.b[bi] + e * g.n * g.ldb[bi];
        load4(b, g.ldb[bi], n0 + t_n < g.n ? n0 + t_n : -1, k0 + t_k, g.k, rb[q]);
      }
    }
  };
  float acc[NB][4][4] = {};
  if (steps > 0) load(0);
  for (int64_t step = 0; step < steps; ++step) {
#pragma unroll
    for (int i = 0; i < 4; ++i)
      As[a_c + i][a_r] = ra[i];
#pragma unroll
    for (int q = 0; q < NB; ++q)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        if (!g.b_trans)
          Bs[q][b_k][b_c + i] = rb[q][i];
        else
          Bs[q][t_k + i][t_n] = rb[q][i];
      }
    __syncthreads();
    if (step + 1 < steps) load(step + 1);
    slab_fma<NB>(As, Bs, ty, tx, acc);
    __syncthreads();
  }
  const int64_t col = n0 + tx * 4;
  if (col >= g.n) return;
  const int cnt = static_cast<int>(g.n - col < 4 ? g.n - col : 4);
#pragma unroll
  for (int i = 0; i < 4; ++i)
    if (ty * 4 + i < m_rows)
      gemm_epilogue(g, row0 + ty * 4 + i, col, cnt, acc[0][i], acc[NB - 1][i]);
}

// dW_e tile [m0, m0 + 64) x [n0, n0 + 64) = sum over the expert's rows of
// A[src]^T (w B[src]); block (x, y) = (tile, expert). No rows: zeros.
__global__ void __launch_bounds__(kThreads)
    wgrad_f32_kernel(const __grid_constant__ WgradProblem<float> w, int64_t tiles_n) {
  KFUSE_SHARED_ALIGNED(16, float, As, [BK][BM + 4]);
  KFUSE_SHARED_ALIGNED(16, float, Bs, [1][BK][BN + 4]);
  const detail::PlanArrays& p = w.plan;
  const int e = blockIdx.y;
  const int64_t m0 = (blockIdx.x / tiles_n) * BM, n0 = (blockIdx.x % tiles_n) * BN;
  const int64_t rows = p.counts[e], r0 = p.offsets[e];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int s_r = tid / 16, s_c = (tid % 16) * 4;  // slab row, column
  float ra[4], rb[4];
  auto load = [&](int64_t c0) {
    const bool live = c0 + s_r < rows;
    const int64_t row = r0 + c0 + s_r;
    load4(w.a, w.lda, live ? source_row(p, row, w.a_gather) : -1, m0 + s_c, w.m, ra);
    load4(w.b, w.ldb, live ? source_row(p, row, w.b_gather) : -1, n0 + s_c, w.n, rb);
    if (live && w.b_gates) {
      const float gate = w.b_gates[detail::slot_gate_offset(p.row_slot[row], p.top_k, w.ld_gates)];
#pragma unroll
      for (int i = 0; i < 4; ++i)
        rb[i] *= gate;
    }
  };
  float acc[1][4][4] = {};
  if (rows > 0) load(0);
  for (int64_t c0 = 0; c0 < rows; c0 += BK) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      As[s_r][s_c + i] = ra[i];
      Bs[0][s_r][s_c + i] = rb[i];
    }
    __syncthreads();
    if (c0 + BK < rows) load(c0 + BK);
    slab_fma<1>(As, Bs, ty, tx, acc);
    __syncthreads();
  }
  const int64_t col = n0 + tx * 4;
  if (col >= w.n) return;
  const int cnt = static_cast<int>(w.n - col < 4 ? w.n - col : 4);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + ty * 4 + i;
    if (m < w.m) store_run(w.c + (e * w.m + m) * w.ldc + col, cnt, true, acc[0][i]);
  }
}

}  // namespace

void launch_grouped_gemm(const GroupedGemmProblem<float>& g, const std::int32_t* tile_start,
                         std::int64_t tiles, cudaStream_t stream) {
  if (tiles == 0) return;
  const dim3 grid(static_cast<unsigned>(tiles), column_blocks(g.n, BN));
  if (g.epilogue == detail::GemmEpilogue::SwiGLU) {
    KFUSE_LAUNCH(grouped_gemm_f32_kernel<2>, grid, kThreads, 0, stream, g, tile_start);
  } else {
    KFUSE_LAUNCH(grouped_gemm_f32_kernel<1>, grid, kThreads, 0, stream, g, tile_start);
  }
}

void launch_wgrad(const WgradProblem<float>& w, cudaStream_t stream) {
  const int64_t tiles_n = detail::moe_ceil_div(w.n, BN);
  const int64_t tiles = detail::moe_ceil_div(w.m, BM) * tiles_n;
  if (tiles == 0 || w.plan.experts == 0) return;
  KFUSE_LAUNCH(wgrad_f32_kernel,
               dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(w.plan.experts)), kThreads,
               0, stream, w, tiles_n);
}

}  // namespace kfuse::cuda::moe
