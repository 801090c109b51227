// product_kernel_topk on the GPU: exact retrieval under s = k1 (C + k2) without
// the d1 d2 space or the M x N scores.
//
// A block owns BM queries and walks a range of the gallery in BN-row tiles. For
// each tile it runs both sides' chains (kernels/fuse/tile.cuh: 4 x 8 pairs per thread, the
// CPU path's order, so the scores have the CPU's bits), forms the scores of the
// tile in shared memory, and one thread per query folds the tile into that query's
// running top-k list (shared memory, sorted, ties to the lower index). When the
// query blocks alone would leave SMs idle, the gallery is split across blocks
// (grid.y) and each split's lists are merged afterwards by a second kernel; the
// order (score, then index) is total, so the result does not depend on the split.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>

#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/core/launch_plan.hpp"
#include "kernels/fuse/kernels.hpp"
#include "kernels/fuse/tile.cuh"
#include "kfuse/fuse.hpp"
#include "src/core/scratch.hpp"

namespace kfuse::cuda {
namespace {

using detail::PairKernel;
using detail::TopkProblem;
using namespace fuse;

struct TopkLaunch {
  TopkProblem p;
  int splits = 1;
  std::int64_t tiles_per_split = 0;
  float* part_scores = nullptr;  // [splits][m][k] when splits > 1
  int* part_idx = nullptr;
};

// The operand slabs and the score tile are never live together (a barrier separates
// the last slab's products from the scores' stores), so they share their bytes: with
// the lists of k = 256 the block then fits sm_80's 163 KiB (45824 + 512 k bytes did not).
struct TopkSlabs {
  float q[BK][BM + kPad];
  float g[BK][BN + kPad];
};
union TopkSmem {
  TopkSlabs slab;
  float s[BM][BN + 1];
  // followed by the lists: float scores[BM][k], int idx[BM][k]
};

std::size_t topk_smem_bytes(int k) {
  return sizeof(TopkSmem) + static_cast<std::size_t>(BM) * k * (sizeof(float) + sizeof(int));
}

// acc += side's chains for queries [row0, row0 + BM) and gallery rows [j0, j0 + BN).
__device__ __forceinline__ void side_tile(const detail::TopkSide& side, std::int64_t m,
                                          std::int64_t row0, std::int64_t j_end, std::int64_t j0,
                                          TopkSmem& sm, int ty, int tx, float (&acc)[TM][TN]) {
  const std::int64_t d = side.q.width;
  for (std::int64_t k0 = 0; k0 < d; k0 += BK) {
    __syncthreads();  // the previous slab (or the previous tile's scores) is consumed
    load_operand_slab<BM>(side.q, row0, m, k0, sm.slab.q);
    load_operand_slab<BN>(side.g, j0, j_end, k0, sm.slab.g);
    __syncthreads();
    if (side.kind == PairKernel::Rbf)
      slab_chain<PairKernel::Rbf>(sm.slab.q, sm.slab.g, ty, tx, acc);
    else
      slab_chain<PairKernel::Dot>(sm.slab.q, sm.slab.g, ty, tx, acc);
  }
}

__global__ void __launch_bounds__(kThreads) topk_kernel(const TopkLaunch L) {
  KFUSE_DYNAMIC_SHARED(16, unsigned char, smem_raw);
  TopkSmem& sm = *reinterpret_cast<TopkSmem*>(smem_raw);
  const TopkProblem& p = L.p;
  const int k = p.k;
  float* list_s = reinterpret_cast<float*>(smem_raw + sizeof(TopkSmem));
  int* list_i = reinterpret_cast<int*>(list_s + BM * k);
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const std::int64_t row0 = static_cast<std::int64_t>(blockIdx.x) * BM;
  const std::int64_t tiles = (p.n + BN - 1) / BN;
  const std::int64_t t0 = blockIdx.y * L.tiles_per_split;
  const std::int64_t t1 = std::min(tiles, t0 + L.tiles_per_split);
  const std::int64_t j_begin = t0 * BN, j_end = std::min(p.n, t1 * BN);
  // Thread t < BM keeps query row0 + t's list.
  const int mine = threadIdx.x;
  const bool owner = mine < BM && row0 + mine < p.m;
  int count = 0;

  for (std::int64_t j0 = j_begin; j0 < j_end; j0 += BN) {
    float acc0[TM][TN], acc1[TM][TN];
    fill(acc0, 0.0f);
    fill(acc1, 0.0f);
    side_tile(p.side[0], p.m, row0, j_end, j0, sm, ty, tx, acc0);
    side_tile(p.side[1], p.m, row0, j_end, j0, sm, ty, tx, acc1);
    __syncthreads();  // every thread is done with the last slab, which the scores overlay
#pragma unroll
    for (int a = 0; a < TM; ++a)
#pragma unroll
      for (int b = 0; b < TN; ++b) {
        const int r = ty * 4 + a, c = tile_col(tx, b);
        const std::int64_t i = row0 + r, j = j0 + c;
        sm.s[r][c] =
            (i < p.m && j < j_end) ? detail::topk_score(p, acc0[a][b], acc1[a][b], i, j) : 0.0f;
      }
    __syncthreads();
    if (owner) {
      const int cols = static_cast<int>(std::min<std::int64_t>(BN, j_end - j0));
      float* ls = list_s + mine * k;
      int* li = list_i + mine * k;
      for (int c = 0; c < cols; ++c)
        detail::topk_insert(ls, li, &count, k, sm.s[mine][c], static_cast<int>(j0 + c));
    }
    // The next tile's first barrier (in side_tile) orders these reads before the
    // slabs overwrite the scores.
  }

  if (!owner) return;
  const std::int64_t i = row0 + mine;
  const float* ls = list_s + mine * k;
  const int* li = list_i + mine * k;
  if (L.splits == 1) {
    for (int t = 0; t < k; ++t) {
      p.scores[i * p.lds + t] = ls[t];
      p.indices[i * p.ldi + t] = li[t];
    }
    return;
  }
  // A split's partial list, padded past its real entries with (NaN, INT_MAX),
  // which rank after every real entry.
  float* ps = L.part_scores + (static_cast<std::int64_t>(blockIdx.y) * p.m + i) * k;
  int* pi = L.part_idx + (static_cast<std::int64_t>(blockIdx.y) * p.m + i) * k;
  for (int t = 0; t < k; ++t) {
    ps[t] = t < count ? ls[t] : __int_as_float(0x7fc00000);
    pi[t] = t < count ? li[t] : INT_MAX;
  }
}

__global__ void topk_merge_kernel(const TopkLaunch L) {
  const TopkProblem& p = L.p;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < p.m;
       i += std::int64_t(gridDim.x) * blockDim.x)
    detail::topk_merge(L.part_scores + i * p.k, L.part_idx + i * p.k, p.m * p.k, L.splits, p.k, p.k,
                       p.scores + i * p.lds, p.indices + i * p.ldi);
}

// Blocks wanted in flight (1 to 3 fit per SM, depending on k).
constexpr int kBlocksPerSmTarget = 3;

}  // namespace

namespace fuse {

void launch_product_topk(Context& ctx, const TopkProblem& p, Precision precision) {
  (void)precision;  // a permission: the exact kernel is the only one
  if (p.m == 0) return;
  cudaStream_t stream = ctx.stream();
  int sms = 0;
  KFUSE_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, ctx.device()));
  detail::SplitLimits limits;
  limits.target_blocks = std::int64_t(kBlocksPerSmTarget) * sms;
  limits.max_splits = detail::kMaxTopkParts;
  const detail::SplitPlan plan = detail::plan_splits(
      p.m, p.n, 0, BM, 0, BN, static_cast<std::size_t>(p.m) * p.k * (sizeof(float) + sizeof(int)),
      limits);
  if (plan.row_blocks > 0x7fffffff || plan.splits > 65535)
    throw Error(Status::Unsupported, "product_kernel_topk: problem too large for one launch grid");

  TopkLaunch L;
  L.p = p;
  L.splits = static_cast<int>(plan.splits);
  L.tiles_per_split = plan.tiles_per_split;
  const std::size_t part_entries =
      plan.splits > 1 ? static_cast<std::size_t>(plan.splits * p.m * p.k) : 0;
  detail::Scratch part_s(ctx, part_entries * sizeof(float));
  detail::Scratch part_i(ctx, part_entries * sizeof(int));
  L.part_scores = part_s.as<float>();
  L.part_idx = part_i.as<int>();

  const std::size_t smem = topk_smem_bytes(p.k);
  int smem_limit = 0;
  KFUSE_CUDA_TRY(
      cudaDeviceGetAttribute(&smem_limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, ctx.device()));
  if (smem > static_cast<std::size_t>(smem_limit))
    throw Error(Status::Unsupported,
                "product_kernel_topk: argument 'k': k = " + std::to_string(p.k) + " needs " +
                    std::to_string(smem) + " bytes of shared memory per block, the device offers " +
                    std::to_string(smem_limit));
  KFUSE_CUDA_TRY(cudaFuncSetAttribute(topk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>(plan.row_blocks), static_cast<unsigned>(plan.splits));
  KFUSE_LAUNCH(topk_kernel, grid, kThreads, smem, stream, L);
  if (plan.splits > 1) {
    const unsigned blocks =
        static_cast<unsigned>(std::min<std::int64_t>(detail::ceil_div(p.m, 128), 65535LL * 8));
    KFUSE_LAUNCH(topk_merge_kernel, blocks, 128, 0, stream, L);
  }
}

}  // namespace fuse
}  // namespace kfuse::cuda
