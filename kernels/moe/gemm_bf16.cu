// bf16 grouped GEMMs on tensor cores (WMMA 16 x 16 x 16, fp32 accumulation): the
// row-grouped product (128-row tiles of one expert's rows; 128 output columns, or
// 64 for SwiGLU, which carries two accumulators) and the weight gradient (128 x 128
// tiles of dW_e, the expert's rows streamed in 32-row slabs). 8 warps in a 4 x 2
// grid; slabs staged through registers (16-byte loads) so that the next slab's
// global loads overlap the current slab's MMAs. The epilogue goes through a small
// per-warp fp32 tile in shared memory.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/moe/gemm_epilogue.cuh"
#include "kernels/moe/kernels.hpp"

namespace kfuse::cuda::moe {
namespace {

using namespace nvcuda;
using detail::GroupedGemmProblem;
using detail::WgradProblem;
using std::int64_t;
using bf = __nv_bfloat16;

constexpr int kThreads = 256;
constexpr int kWarpsM = 4, kWarpsN = 2;
constexpr int BM = kTileRowsBF16, BK = 32, kPad = 8;
constexpr int kEpiLd = 20;  // floats: a multiple of 4, rows 80 bytes

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf, wmma::row_major>;
using FragAt = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf, wmma::col_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf, wmma::row_major>;
using FragBt = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// 8 bf16 of row `src` (zeros when src < 0), columns [c, c + 8) clipped to `cols`.
__device__ __forceinline__ uint4 load8(const bf16* base, int64_t ld, int64_t src, int64_t c,
                                       int64_t cols) {
  if (src < 0 || c >= cols) return make_uint4(0, 0, 0, 0);
  return load_bits(base + src * ld + c, static_cast<int>(cols - c < 8 ? cols - c : 8));
}

// Stores warp fragment `acc` (rows r0.., cols c0.. of the block tile) through the
// warp's fp32 scratch; `emit(local_row, local_col, v)` gets each lane's 8 values.
template <class Emit>
__device__ __forceinline__ void drain(float (*scratch)[kEpiLd], const FragC& acc, Emit&& emit) {
  wmma::store_matrix_sync(&scratch[0][0], acc, kEpiLd, wmma::mem_row_major);
  __syncwarp();
  const int lane = threadIdx.x % 32, r = lane / 2, c = (lane % 2) * 8;
  emit(r, c, &scratch[r][c]);
  __syncwarp();
}

// ------------------------------------------------------------------ row-grouped product

template <int BN, int NB>
struct GemmSmem {
  static constexpr int kLdA = BK + kPad, kLdB = BN + kPad, kLdBt = BK + kPad;
  struct Tiles {
    bf a[BM][kLdA];
    union {
      bf b[NB][BK][kLdB];    // B stored [K x N]
      bf bt[NB][BN][kLdBt];  // B stored [N x K]: the tile as B^T rows
    };
  };
  union {
    Tiles t;
    float epi[kThreads / 32][NB][16][kEpiLd];
  };
  int64_t a_src[BM];
};

// NB = 2: SwiGLU (two weight tensors, one A; 64 columns); NB = 1: 128 columns.
template <int BN, int NB>
__global__ void __launch_bounds__(kThreads)
    grouped_gemm_bf16_kernel(const __grid_constant__ GroupedGemmProblem<bf16> g,
                             const std::int32_t* tile_start) {
  using S = GemmSmem<BN, NB>;
  constexpr int WM = BM / kWarpsM, WN = BN / kWarpsN, FM = WM / 16, FN = WN / 16;
  constexpr int kBVecs = BK * BN / 8 / kThreads;  // 16-byte vectors per thread per B slab
  static_assert(BM * BK / 8 == 2 * kThreads && kBVecs >= 1, "slab loads");
  KFUSE_SHARED_ALIGNED(128, unsigned char, smem_raw, [sizeof(S)]);
  S& sm = *reinterpret_cast<S*>(smem_raw);
  const detail::PlanArrays& p = g.plan;
  const int E = static_cast<int>(p.experts);
  const int64_t tile = blockIdx.x;
  if (tile >= tile_start[E]) return;
  const int e = detail::find_tile_expert(tile_start, E, tile);
  const int64_t m0 = (tile - tile_start[e]) * BM;
  const int64_t row0 = p.offsets[e] + m0;
  const int64_t m_rows = p.counts[e] - m0 < BM ? p.counts[e] - m0 : BM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * BN;
  const int tid = threadIdx.x, warp = tid / 32, wm = warp / kWarpsN, wn = warp % kWarpsN;
  for (int i = tid; i < BM; i += kThreads)
    sm.a_src[i] = i < m_rows ? source_row(p, row0 + i, g.a_gather) : -1;
  __syncthreads();

  uint4 ra[2], rb[NB][kBVecs];
  const int64_t k_tiles = detail::moe_ceil_div(g.k, BK);
  const int64_t steps = k_tiles * g.segments;
  auto load = [&](int64_t step) {
    const int seg = static_cast<int>(step / k_tiles);
    const int64_t k0 = (step % k_tiles) * BK;
#pragma unroll
    for (int v = 0; v < 2; ++v) {
      const int idx = tid + v * kThreads, r = idx / 4, c = (idx % 4) * 8;
      ra[v] = load8(g.a[seg], g.lda[seg], sm.a_src[r], k0 + c, g.k);
    }
#pragma unroll
    for (int q = 0; q < NB; ++q) {
      const int bi = NB == 2 ? q : seg;
#pragma unroll
      for (int v = 0; v < kBVecs; ++v) {
        const int idx = tid + v * kThreads;
        if (!g.b_trans) {  // rows k, columns n
          const int r = idx / (BN / 8), c = (idx % (BN / 8)) * 8;
          const bf16* b = g.b[bi] + e * g.k * g.ldb[bi];
          rb[q][v] = load8(b, g.ldb[bi], k0 + r < g.k ? k0 + r : -1, n0 + c, g.n);
        } else {  // rows n, columns k
          const int r = idx / (BK / 8), c = (idx % (BK / 8)) * 8;
          const bf16* b = g.b[bi] + e * g.n * g.ldb[bi];
          rb[q][v] = load8(b, g.ldb[bi], n0 + r < g.n ? n0 + r : -1, k0 + c, g.k);
        }
      }
    }
  };
  FragC acc[NB][FM][FN];
#pragma unroll
  for (int q = 0; q < NB; ++q)
#pragma unroll
    for (int i = 0; i < FM; ++i)
#pragma unroll
      for (int j = 0; j < FN; ++j)
        wmma::fill_fragment(acc[q][i][j], 0.0f);

  if (steps > 0) load(0);
  for (int64_t step = 0; step < steps; ++step) {
#pragma unroll
    for (int v = 0; v < 2; ++v) {
      const int idx = tid + v * kThreads;
      *reinterpret_cast<uint4*>(&sm.t.a[idx / 4][(idx % 4) * 8]) = ra[v];
    }
#pragma unroll
    for (int q = 0; q < NB; ++q)
#pragma unroll
      for (int v = 0; v < kBVecs; ++v) {
        const int idx = tid + v * kThreads;
        if (!g.b_trans)
          *reinterpret_cast<uint4*>(&sm.t.b[q][idx / (BN / 8)][(idx % (BN / 8)) * 8]) = rb[q][v];
        else
          *reinterpret_cast<uint4*>(&sm.t.bt[q][idx / (BK / 8)][(idx % (BK / 8)) * 8]) = rb[q][v];
      }
    __syncthreads();
    if (step + 1 < steps) load(step + 1);
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      FragA a[FM];
#pragma unroll
      for (int i = 0; i < FM; ++i)
        wmma::load_matrix_sync(a[i], &sm.t.a[wm * WM + i * 16][kk], S::kLdA);
#pragma unroll
      for (int q = 0; q < NB; ++q)
#pragma unroll
        for (int j = 0; j < FN; ++j) {
          const int col = wn * WN + j * 16;
          if (!g.b_trans) {
            FragB b;
            wmma::load_matrix_sync(b, &sm.t.b[q][kk][col], S::kLdB);
#pragma unroll
            for (int i = 0; i < FM; ++i)
              wmma::mma_sync(acc[q][i][j], a[i], b, acc[q][i][j]);
          } else {
            FragBt b;
            wmma::load_matrix_sync(b, &sm.t.bt[q][col][kk], S::kLdBt);
#pragma unroll
            for (int i = 0; i < FM; ++i)
              wmma::mma_sync(acc[q][i][j], a[i], b, acc[q][i][j]);
          }
        }
    }
    __syncthreads();
  }
  // The epilogue reuses the tiles' shared memory (the loop ended on a barrier).
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j) {
      if constexpr (NB == 2)
        wmma::store_matrix_sync(&sm.epi[warp][1][0][0], acc[1][i][j], kEpiLd, wmma::mem_row_major);
      drain(sm.epi[warp][0], acc[0][i][j], [&](int r, int c, const float* v1) {
        const int64_t local = wm * WM + i * 16 + r;
        const int64_t col = n0 + wn * WN + j * 16 + c;
        if (local < m_rows && col < g.n)
          gemm_epilogue(g, row0 + local, col, static_cast<int>(g.n - col < 8 ? g.n - col : 8), v1,
                        &sm.epi[warp][NB - 1][r][c]);
      });
    }
}

// ------------------------------------------------------------------ weight gradient

struct WgradSmem {
  static constexpr int kLd = BM + kPad;  // both slabs are 32 rows x 128 columns
  union {
    struct {
      bf a[BK][kLd];  // A slab [row][m]: the A^T tile, column-major
      bf b[BK][kLd];  // B slab [row][n]
    } t;
    float epi[kThreads / 32][16][kEpiLd];
  };
};

__global__ void __launch_bounds__(kThreads)
    wgrad_bf16_kernel(const __grid_constant__ WgradProblem<bf16> w, int64_t tiles_n) {
  constexpr int BN = BM, WM = BM / kWarpsM, WN = BN / kWarpsN, FM = WM / 16, FN = WN / 16;
  KFUSE_SHARED_ALIGNED(128, unsigned char, smem_raw, [sizeof(WgradSmem)]);
  WgradSmem& sm = *reinterpret_cast<WgradSmem*>(smem_raw);
  const detail::PlanArrays& p = w.plan;
  const int e = blockIdx.y;
  const int64_t m0 = (blockIdx.x / tiles_n) * BM, n0 = (blockIdx.x % tiles_n) * BN;
  const int64_t rows = p.counts[e], r0 = p.offsets[e];
  const int tid = threadIdx.x, warp = tid / 32, wm = warp / kWarpsN, wn = warp % kWarpsN;
  uint4 ra[2], rb[2];
  auto load = [&](int64_t c0) {
#pragma unroll
    for (int v = 0; v < 2; ++v) {
      const int idx = tid + v * kThreads, r = idx / (BM / 8), c = (idx % (BM / 8)) * 8;
      const bool live = c0 + r < rows;
      const int64_t row = r0 + c0 + r;
      ra[v] = load8(w.a, w.lda, live ? source_row(p, row, w.a_gather) : -1, m0 + c, w.m);
      rb[v] = load8(w.b, w.ldb, live ? source_row(p, row, w.b_gather) : -1, n0 + c, w.n);
      if (live && w.b_gates) {  // scaled in fp32, rounded back to bf16
        const float gate =
            w.b_gates[detail::slot_gate_offset(p.row_slot[row], p.top_k, w.ld_gates)];
        float x[8];
        unpack<bf16>(rb[v], x);
#pragma unroll
        for (int i = 0; i < 8; ++i)
          x[i] *= gate;
        rb[v] = pack<bf16>(x);
      }
    }
  };
  FragC acc[FM][FN];
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j)
      wmma::fill_fragment(acc[i][j], 0.0f);
  if (rows > 0) load(0);
  for (int64_t c0 = 0; c0 < rows; c0 += BK) {
#pragma unroll
    for (int v = 0; v < 2; ++v) {
      const int idx = tid + v * kThreads, r = idx / (BM / 8), c = (idx % (BM / 8)) * 8;
      *reinterpret_cast<uint4*>(&sm.t.a[r][c]) = ra[v];
      *reinterpret_cast<uint4*>(&sm.t.b[r][c]) = rb[v];
    }
    __syncthreads();
    if (c0 + BK < rows) load(c0 + BK);
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      FragAt a[FM];
#pragma unroll
      for (int i = 0; i < FM; ++i)
        wmma::load_matrix_sync(a[i], &sm.t.a[kk][wm * WM + i * 16], WgradSmem::kLd);
#pragma unroll
      for (int j = 0; j < FN; ++j) {
        FragB b;
        wmma::load_matrix_sync(b, &sm.t.b[kk][wn * WN + j * 16], WgradSmem::kLd);
#pragma unroll
        for (int i = 0; i < FM; ++i)
          wmma::mma_sync(acc[i][j], a[i], b, acc[i][j]);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j)
      drain(sm.epi[warp], acc[i][j], [&](int r, int c, const float* v) {
        const int64_t m = m0 + wm * WM + i * 16 + r, col = n0 + wn * WN + j * 16 + c;
        if (m < w.m && col < w.n)
          store_run(w.c + (e * w.m + m) * w.ldc + col,
                    static_cast<int>(w.n - col < 8 ? w.n - col : 8), true, v);
      });
}

}  // namespace

void launch_grouped_gemm(const GroupedGemmProblem<bf16>& g, const std::int32_t* tile_start,
                         std::int64_t tiles, cudaStream_t stream) {
  if (tiles == 0) return;
  if (g.epilogue == detail::GemmEpilogue::SwiGLU) {
    const dim3 grid(static_cast<unsigned>(tiles), column_blocks(g.n, 64));
    KFUSE_LAUNCH((grouped_gemm_bf16_kernel<64, 2>), grid, kThreads, 0, stream, g, tile_start);
  } else {
    const dim3 grid(static_cast<unsigned>(tiles), column_blocks(g.n, 128));
    KFUSE_LAUNCH((grouped_gemm_bf16_kernel<128, 1>), grid, kThreads, 0, stream, g, tile_start);
  }
}

void launch_wgrad(const WgradProblem<bf16>& w, cudaStream_t stream) {
  const int64_t tiles_n = detail::moe_ceil_div(w.n, BM);
  const int64_t tiles = detail::moe_ceil_div(w.m, BM) * tiles_n;
  if (tiles == 0 || w.plan.experts == 0) return;
  KFUSE_LAUNCH(wgrad_bf16_kernel,
               dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(w.plan.experts)), kThreads,
               0, stream, w, tiles_n);
}

}  // namespace kfuse::cuda::moe
