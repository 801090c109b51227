// A gradient pass of the contrastive family on the GPU: dX = tau c0 dS' Y for the
// pass's rows, never storing S or dS'.
//
// A block owns a block of 64 rows (and, when the rows alone would not fill the
// GPU, one range of column tiles). It walks its columns in groups of two 64-column
// tiles: for each tile it computes the logits into shared memory, turns them into
// dlogits dS' (operands of the mode's type) and the rows' sums for dt, db and
// SigLIP's loss; then, slice by slice of d, it adds dS' Y_group to the rows' fp32
// accumulator (a `slot` of 64 x ld_slot floats in the workspace, private to the
// block). With deterministic = false it also adds tau c0 dS'^T X_block to dY with
// fp32 atomics (dY's other pass is then skipped).
//
// Without column splits the blocks are persistent (a slot per block, reused row
// block after row block) and write dX themselves; with splits a merge kernel adds
// the splits' slots in a fixed order. Every sum has a fixed order: deterministic.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/contrastive/device.cuh"
#include "kernels/contrastive/kernels.hpp"
#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"

namespace kfuse::cuda::contrastive {
namespace {

using cd::LabelMode;

// Shared memory: the dot-product tile's result, the group's dlogits and the
// tile's column data persist; the k-slabs of the dot products and the d-chunks of
// the gradient products are used in turn and share one region.
template <Mode M>
struct BackwardSmem {
  using D = DotSmem<M>;
  using G = GradSmem<M>;
  static constexpr unsigned s = 0;
  static constexpr unsigned g = align128(s + D::kResultBytes);
  static constexpr unsigned lse_col = align128(g + G::kGBytes);
  static constexpr unsigned label_col = align128(lse_col + BN * sizeof(float));
  static constexpr unsigned shared = align128(label_col + BN * sizeof(std::int64_t));
  static constexpr unsigned xs = shared;
  static constexpr unsigned ys = align128(xs + D::kSlabBytes);
  static constexpr unsigned yc = shared;
  static constexpr unsigned xc = align128(yc + G::kYcBytes);
  static constexpr unsigned bytes(bool with_xc) {
    const unsigned slabs = ys + D::kSlabBytes;
    const unsigned chunks = with_xc ? xc + G::kXcBytes : yc + G::kYcBytes;
    return slabs > chunks ? slabs : chunks;
  }
};

// Blocks per SM the shared memory allows (16-bit operands: ~57 KiB; fp32: ~90 KiB),
// which bounds the registers ptxas may use (65536 / (128 x blocks)).
template <Mode M>
constexpr int kMinBlocks = sizeof(typename Compute<M>::Stored) == 2 ? 3 : 2;

template <Mode M, class In>
__global__ void __launch_bounds__(kThreads, kMinBlocks<M>)
    backward_kernel(const cd::BackwardProblem p) {
  KFUSE_DYNAMIC_SHARED(128, unsigned char, smem_raw);
  unsigned char* smem = aligned_smem(smem_raw);
  using L = BackwardSmem<M>;
  using S = typename Compute<M>::Stored;
  const DotSmem<M> dot{reinterpret_cast<S*>(smem + L::xs), reinterpret_cast<S*>(smem + L::ys),
                       reinterpret_cast<float*>(smem + L::s)};
  const GradSmem<M> grad{reinterpret_cast<S*>(smem + L::g), reinterpret_cast<S*>(smem + L::yc),
                         reinterpret_cast<S*>(smem + L::xc)};
  float* lse_col = reinterpret_cast<float*>(smem + L::lse_col);
  auto* label_col = reinterpret_cast<std::int64_t*>(smem + L::label_col);
  constexpr int kLdG = GradSmem<M>::kLdG, kLdC = GradSmem<M>::kLdC;

  const cd::Logits& s = p.s;
  const cd::BackwardPlan& plan = p.plan;
  const In* x = static_cast<const In*>(s.x);
  const In* y = static_cast<const In*>(s.y);
  const Scales sc = scales_of(s);
  const float c0 = static_cast<float>(p.coef) * scalar_value(p.grad_loss);
  const float scale = sc.tau * c0;
  const bool clip = p.loss == cd::Loss::Clip;
  const std::int64_t lo = clip ? 0 : -1;
  const float rx = static_cast<float>(p.rx), ry = static_cast<float>(p.ry);
  const float eps = static_cast<float>(p.smoothing);
  const float fnx = static_cast<float>(s.nx), fny = static_cast<float>(s.ny);
  const bool want_loss = p.loss_rows != nullptr;
  const bool persistent = plan.col_splits == 1;
  const std::int64_t items = plan.row_blocks * plan.col_splits;
  const int r = threadIdx.x / 2, q = threadIdx.x % 2;  // row owners: 2 lanes per row

  for (std::int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const std::int64_t rb = item / plan.col_splits, split = item % plan.col_splits;
    float* slot = p.slots + (persistent ? std::int64_t(blockIdx.x) : item) * BM * plan.ld_slot;
    const std::int64_t i0 = rb * BM, i = i0 + r;
    const bool row_ok = i < s.nx;
    const std::int64_t label = (s.label_mode == LabelMode::Rows && row_ok) ? s.labels[i] : -1;
    const bool row_bad = s.label_mode == LabelMode::Rows && row_ok && !label_ok(label, lo, s.ny);
    const float lse_row = (clip && p.rx != 0.0 && row_ok) ? p.lse_x[i] : 0.0f;
    const std::int64_t ct_begin = split * plan.tiles_per_split;
    const std::int64_t ct_end = std::min(plan.col_tiles, ct_begin + plan.tiles_per_split);
    const std::int64_t col_end = std::min(s.ny, ct_end * BN);
    double dt = 0.0, db = 0.0, loss = 0.0;
    bool first = true;

    for (std::int64_t gt = ct_begin; gt < ct_end; gt += kGroupTiles) {
#pragma unroll 1
      for (int t = 0; t < kGroupTiles; ++t) {
        const std::int64_t ct = gt + t, j0 = ct * BN;
        auto* grow = grad.g + r * kLdG + t * BN;
        if (ct >= ct_end) {  // past the range: zero dlogits
          for (int m = 0; m < BN / 2; ++m)
            grow[2 * m + q] = Compute<M>::from_float(0.0f);
          continue;
        }
        __syncthreads();  // the previous tile's column data is consumed
        for (int c = threadIdx.x; c < BN; c += kThreads) {
          const std::int64_t j = j0 + c;
          lse_col[c] = (clip && p.ry != 0.0 && j < col_end) ? p.lse_y[j] : 0.0f;
          label_col[c] = (s.label_mode == LabelMode::Cols && j < col_end) ? s.labels[j] : -1;
        }
        dot_tile<M>(dot, x, s.ldx, s.nx, i0, y, s.ldy, col_end, j0, s.d);
        const float* srow = dot.s + r * kLdS;
        float tdt = 0.0f, tdb = 0.0f, tloss = 0.0f;
#pragma unroll 2
        for (int m = 0; m < BN / 2; ++m) {
          const int jj = 2 * m + q;
          const std::int64_t j = j0 + jj;
          float gv = 0.0f;
          if (row_ok && j < col_end) {
            const float v = cd::logit(srow[jj], sc.tau, sc.bias);
            const bool pos = cd::is_positive(s.label_mode, i, j, label, label_col[jj]);
            gv = clip ? cd::clip_dlogit(v, lse_row, lse_col[jj], pos, rx, ry, eps, fnx, fny)
                      : cd::siglip_dlogit(v, pos);
            const bool bad =
                row_bad || (s.label_mode == LabelMode::Cols && !label_ok(label_col[jj], lo, s.nx));
            if (bad) gv = NAN;
            tdt += gv * (v - sc.bias);
            tdb += gv;
            if (want_loss) tloss += bad ? NAN : cd::siglip_term(v, pos);
          }
          grow[jj] = Compute<M>::from_float(gv);
        }
        dt += tdt;
        db += tdb;
        loss += tloss;
      }
      __syncthreads();  // the group's dlogits are complete

      if (p.dx != nullptr || p.dy_accum != nullptr) {
        const std::int64_t g0 = gt * BN;
        const int group_cols = static_cast<int>(std::min<std::int64_t>(TBN, col_end - g0));
#pragma unroll 1
        for (int c0 = 0; c0 < plan.ld_slot; c0 += DC) {
          load_block<M>(y, s.ldy, g0, col_end, c0, s.d, TBN, DC, grad.yc, kLdC);
          if (p.dy_accum != nullptr)
            load_block<M>(x, s.ldx, i0, s.nx, c0, s.d, BM, DC, grad.xc, kLdC);
          __syncthreads();
          if (p.dx != nullptr) accumulate_chunk<M>(grad, slot, plan.ld_slot, c0, first);
          if (p.dy_accum != nullptr)
            scatter_dy_chunk<M>(grad, p.dy_accum, p.ld_dy_accum, g0, group_cols, c0, s.d, scale,
                                dot.s);
          __syncthreads();  // the chunks are consumed before the next ones load
        }
        first = false;
      }
    }

    // The rows' sums, combined over the row's two lanes.
    dt += __shfl_xor_sync(0xffffffffu, dt, 1);
    db += __shfl_xor_sync(0xffffffffu, db, 1);
    loss += __shfl_xor_sync(0xffffffffu, loss, 1);
    if (q == 0 && row_ok) {
      if (persistent) {
        if (p.dt_rows != nullptr) p.dt_rows[i] = double(c0) * dt;
        if (p.db_rows != nullptr) p.db_rows[i] = double(c0) * db;
        if (want_loss) p.loss_rows[i] = static_cast<float>(loss);
      } else {
        const std::int64_t n = s.nx, splits = plan.col_splits;
        p.split_sums[(0 * splits + split) * n + i] = double(c0) * dt;
        p.split_sums[(1 * splits + split) * n + i] = double(c0) * db;
        p.split_sums[(2 * splits + split) * n + i] = loss;
      }
    }
    if (p.dx != nullptr && persistent) {
      __syncthreads();  // the slot is complete (written by every warp)
      const std::int64_t rows = std::min<std::int64_t>(BM, s.nx - i0);
      for (std::int64_t e = threadIdx.x; e < rows * s.d; e += kThreads) {
        const std::int64_t rr = e / s.d, k = e % s.d;
        store_element(p.dx, p.dx_dtype, (i0 + rr) * p.lddx + k,
                      scale * slot[rr * plan.ld_slot + k]);
      }
    }
  }
}

// dX[i][k] = tau c0 sum over the column splits, in order, of the splits' slots.
__global__ void merge_splits_kernel(const cd::BackwardProblem p) {
  const std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= p.s.nx * p.s.d) return;
  const std::int64_t i = e / p.s.d, k = e % p.s.d;
  const std::int64_t rb = i / BM, rr = i % BM, splits = p.plan.col_splits;
  float sum = 0.0f;
  for (std::int64_t sp = 0; sp < splits; ++sp)
    sum += p.slots[((rb * splits + sp) * BM + rr) * p.plan.ld_slot + k];
  store_element(p.dx, p.dx_dtype, i * p.lddx + k, gradient_scale(p) * sum);
}

// The rows' sums over the column splits, in order.
__global__ void merge_split_sums_kernel(const cd::BackwardProblem p) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t n = p.s.nx, splits = p.plan.col_splits;
  if (i >= n) return;
  double sums[3] = {0.0, 0.0, 0.0};
  for (int f = 0; f < 3; ++f)
    for (std::int64_t sp = 0; sp < splits; ++sp)
      sums[f] += p.split_sums[(f * splits + sp) * n + i];
  if (p.dt_rows != nullptr) p.dt_rows[i] = sums[0];
  if (p.db_rows != nullptr) p.db_rows[i] = sums[1];
  if (p.loss_rows != nullptr) p.loss_rows[i] = static_cast<float>(sums[2]);
}

unsigned blocks_for(std::int64_t n, int block) {
  return static_cast<unsigned>((n + block - 1) / block);
}

template <Mode M, class In>
void launch(const cd::BackwardProblem& p, cudaStream_t stream) {
  const unsigned smem = BackwardSmem<M>::bytes(p.dy_accum != nullptr) + 128;  // + alignment
  auto kernel = backward_kernel<M, In>;
  KFUSE_CUDA_TRY(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  KFUSE_LAUNCH(kernel, static_cast<unsigned>(p.plan.grid), kThreads, smem, stream, p);
}

}  // namespace

void run_backward(const cd::BackwardProblem& p, cudaStream_t stream) {
  if (p.plan.grid <= 0) return;
  if (p.plan.grid > 0x7fffffff)
    throw Error(Status::Unsupported, "contrastive: too many row blocks for one launch");
  visit_mode(p.s,
             [&](auto mode, auto in) { launch<decltype(mode)::value, decltype(in)>(p, stream); });
  if (p.plan.col_splits > 1) {
    constexpr int kBlock = 256;
    if (p.dx != nullptr) {
      KFUSE_LAUNCH(merge_splits_kernel, blocks_for(p.s.nx * p.s.d, kBlock), kBlock, 0, stream, p);
    }
    KFUSE_LAUNCH(merge_split_sums_kernel, blocks_for(p.s.nx, kBlock), kBlock, 0, stream, p);
  }
}

}  // namespace kfuse::cuda::contrastive
