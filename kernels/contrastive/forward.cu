// The forward pass of the contrastive family on the GPU: one block per rectangle
// of the plan (a group of 64-row blocks times a group of 64-column tiles). For each
// tile of logits, computed into shared memory and never stored:
//   rows:    two lanes per row fold the tile into the row's running log-sum-exp
//            (registers); the row's partial state is written once per row block;
//   columns: two threads per column fold it into the column's partial state, kept
//            in the workspace and owned by this block alone (no atomics);
//   positives: the lane that meets a positive pair records its logit.
// A merge kernel then folds the partial states in a fixed order into log-sum-exps
// and cross-entropies. SigLIP keeps only the rows' sums of softplus(-z S).
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/contrastive/device.cuh"
#include "kernels/contrastive/kernels.hpp"
#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"

namespace kfuse::cuda::contrastive {
namespace {

using cd::LabelMode;
using cd::Lse;

constexpr int kStates = cd::kStateFloats;

// Partial state q of entry i among n: [q][field][i] (fields: max, sum of exps, sum).
__device__ __forceinline__ float* state(float* part, std::int64_t q, int field, std::int64_t n,
                                        std::int64_t i) {
  return part + (q * kStates + field) * n + i;
}

// Shared memory: the dot-product tile, then the column owners' exchange arrays.
template <Mode M>
struct ForwardSmem {
  static constexpr unsigned s = 0;
  static constexpr unsigned xs = align128(s + DotSmem<M>::kResultBytes);
  static constexpr unsigned ys = align128(xs + DotSmem<M>::kSlabBytes);
  static constexpr unsigned cols = align128(ys + DotSmem<M>::kSlabBytes);  // 3 x [2][BN] floats
  static constexpr unsigned bytes = cols + 3 * 2 * BN * sizeof(float);
};

template <Mode M, class In>
__global__ void __launch_bounds__(kThreads) forward_kernel(const cd::ForwardProblem p) {
  KFUSE_DYNAMIC_SHARED(128, unsigned char, smem_raw);
  unsigned char* smem = aligned_smem(smem_raw);
  using L = ForwardSmem<M>;
  using S = typename Compute<M>::Stored;
  const DotSmem<M> dot{reinterpret_cast<S*>(smem + L::xs), reinterpret_cast<S*>(smem + L::ys),
                       reinterpret_cast<float*>(smem + L::s)};
  float* col_max = reinterpret_cast<float*>(smem + L::cols);  // [half][column]
  float* col_sum = col_max + 2 * BN;
  float* col_exp = col_sum + 2 * BN;

  const cd::Logits& s = p.s;
  const cd::RectPlan& plan = p.plan;
  const In* x = static_cast<const In*>(s.x);
  const In* y = static_cast<const In*>(s.y);
  const Scales sc = scales_of(s);
  const bool clip = p.loss == cd::Loss::Clip;
  const bool cols_wanted = clip && p.want_cols;
  const std::int64_t lo = clip ? 0 : -1;
  auto* row_part = static_cast<float*>(p.row_part);
  auto* col_part = static_cast<float*>(p.col_part);

  const std::int64_t g = blockIdx.x / plan.col_groups, h = blockIdx.x % plan.col_groups;
  const std::int64_t rb_begin = g * plan.blocks_per_group;
  const std::int64_t rb_end = std::min(plan.row_blocks, rb_begin + plan.blocks_per_group);
  const std::int64_t ct_begin = h * plan.tiles_per_group;
  const std::int64_t ct_end = std::min(plan.col_tiles, ct_begin + plan.tiles_per_group);
  const std::int64_t col_end = std::min(s.ny, ct_end * BN);

  const int r = threadIdx.x / 2, q = threadIdx.x % 2;        // row owners: 2 lanes per row
  const int cc = threadIdx.x % BN, half = threadIdx.x / BN;  // column owners: 2 halves

  for (std::int64_t rb = rb_begin; rb < rb_end; ++rb) {
    const std::int64_t i0 = rb * BM, i = i0 + r;
    const bool row_ok = i < s.nx;
    const std::int64_t label = (s.label_mode == LabelMode::Rows && row_ok) ? s.labels[i] : -1;
    const bool label_bad = s.label_mode == LabelMode::Rows && row_ok && !label_ok(label, lo, s.ny);
    Lse<float> st = cd::lse_empty<float>();
    float row_sum = 0.0f;

    for (std::int64_t ct = ct_begin; ct < ct_end; ++ct) {
      const std::int64_t j0 = ct * BN;
      dot_tile<M>(dot, x, s.ldx, s.nx, i0, y, s.ldy, col_end, j0, s.d);
      const float* srow = dot.s + r * kLdS;

      // ---- rows
      if (clip) {
        float tile_max = -INFINITY, tile_sum = 0.0f;
#pragma unroll 4
        for (int m = 0; m < BN / 2; ++m) {
          const int jj = 2 * m + q;
          const std::int64_t j = j0 + jj;
          if (!row_ok || j >= col_end) continue;
          const float v = cd::logit(srow[jj], sc.tau, sc.bias);
          tile_max = fmaxf(tile_max, v);
          tile_sum += v;
          if (cd::is_positive(s.label_mode, i, j, label, -1)) {
            p.pos_x[i] = v;
            if (p.want_cols) p.pos_y[j] = v;
          }
        }
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
        tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 1);
        float e = 0.0f;
        if (tile_max != -INFINITY) {
#pragma unroll 4
          for (int m = 0; m < BN / 2; ++m) {
            const int jj = 2 * m + q;
            if (j0 + jj < col_end) e += cd::c_exp(cd::logit(srow[jj], sc.tau, sc.bias) - tile_max);
          }
        }
        e += __shfl_xor_sync(0xffffffffu, e, 1);
        if (row_ok) {
          st = cd::lse_merge(st, Lse<float>{tile_max, e});
          row_sum += tile_sum;
        }
      } else {
        float t = 0.0f;
#pragma unroll 4
        for (int m = 0; m < BN / 2; ++m) {
          const int jj = 2 * m + q;
          const std::int64_t j = j0 + jj;
          if (!row_ok || j >= col_end) continue;
          const float v = cd::logit(srow[jj], sc.tau, sc.bias);
          t += cd::siglip_term(v, cd::is_positive(s.label_mode, i, j, label, -1));
        }
        row_sum += t + __shfl_xor_sync(0xffffffffu, t, 1);
      }

      // ---- columns
      if (cols_wanted) {
        const std::int64_t j = j0 + cc;
        const bool col_ok = j < col_end;
        const int r_end = static_cast<int>(std::min<std::int64_t>(BM, s.nx - i0));
        float m_half = -INFINITY, s_half = 0.0f;
        for (int rr = half * (BM / 2); rr < (half + 1) * (BM / 2) && rr < r_end; ++rr) {
          if (!col_ok) break;
          const float v = cd::logit(dot.s[rr * kLdS + cc], sc.tau, sc.bias);
          m_half = fmaxf(m_half, v);
          s_half += v;
        }
        col_max[half * BN + cc] = m_half;
        col_sum[half * BN + cc] = s_half;
        __syncthreads();
        const float tile_max = fmaxf(col_max[cc], col_max[BN + cc]);
        float e = 0.0f;
        if (col_ok && tile_max != -INFINITY)
          for (int rr = half * (BM / 2); rr < (half + 1) * (BM / 2) && rr < r_end; ++rr)
            e += cd::c_exp(cd::logit(dot.s[rr * kLdS + cc], sc.tau, sc.bias) - tile_max);
        col_exp[half * BN + cc] = e;
        __syncthreads();
        if (half == 0 && col_ok) {
          Lse<float> old = cd::lse_empty<float>();
          float old_sum = 0.0f;
          if (rb != rb_begin) {  // this block owns the column's state for its row group
            old = {*state(col_part, g, 0, s.ny, j), *state(col_part, g, 1, s.ny, j)};
            old_sum = *state(col_part, g, 2, s.ny, j);
          }
          const Lse<float> now =
              cd::lse_merge(old, Lse<float>{tile_max, col_exp[cc] + col_exp[BN + cc]});
          *state(col_part, g, 0, s.ny, j) = now.m;
          *state(col_part, g, 1, s.ny, j) = now.s;
          *state(col_part, g, 2, s.ny, j) = old_sum + col_sum[cc] + col_sum[BN + cc];
        }
      }
    }
    if (q == 0 && row_ok) {
      *state(row_part, h, 0, s.nx, i) = st.m;
      *state(row_part, h, 1, s.nx, i) = st.s;
      *state(row_part, h, 2, s.nx, i) = label_bad ? NAN : row_sum;
    }
  }
}

// Folds the partial states of one direction in order 0, 1, ..., in double, into
// log-sum-exps and cross-entropies (CLIP) or the row losses (SigLIP).
__global__ void merge_kernel(const cd::ForwardProblem p, const float* part, std::int64_t parts,
                             std::int64_t n, const float* pos, double classes, float* lse_out,
                             float* loss_out) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  Lse<double> st = cd::lse_empty<double>();
  double sum = 0.0;
  for (std::int64_t q = 0; q < parts; ++q) {
    st = cd::lse_merge(st,
                       Lse<double>{part[(q * kStates) * n + i], part[(q * kStates + 1) * n + i]});
    sum += part[(q * kStates + 2) * n + i];
  }
  if (p.loss != cd::Loss::Clip) {
    loss_out[i] = static_cast<float>(sum);
    return;
  }
  const double lse = cd::lse_value(st);
  lse_out[i] = static_cast<float>(lse);
  loss_out[i] = static_cast<float>(cd::ce_loss(lse, double(pos[i]), sum, p.smoothing, classes));
}

__global__ void fill_kernel(float* p, std::int64_t n, float value) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) p[i] = value;
}

unsigned blocks_for(std::int64_t n, int block) {
  return static_cast<unsigned>((n + block - 1) / block);
}

template <Mode M, class In>
void launch(const cd::ForwardProblem& p, cudaStream_t stream) {
  constexpr unsigned smem = ForwardSmem<M>::bytes + 128;  // + alignment of the base
  auto kernel = forward_kernel<M, In>;
  KFUSE_CUDA_TRY(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const std::int64_t blocks = p.plan.row_groups * p.plan.col_groups;
  KFUSE_LAUNCH(kernel, static_cast<unsigned>(blocks), kThreads, smem, stream, p);
}

}  // namespace

void run_forward(const cd::ForwardProblem& p, cudaStream_t stream) {
  const std::int64_t nx = p.s.nx, ny = p.s.ny;
  if (p.plan.row_groups * p.plan.col_groups > 0x7fffffff)
    throw Error(Status::Unsupported, "contrastive: too many rectangles for one launch");
  constexpr int kBlock = 256;
  if (p.loss == cd::Loss::Clip) {
    KFUSE_LAUNCH(fill_kernel, blocks_for(nx, kBlock), kBlock, 0, stream, p.pos_x, nx, NAN);
    if (p.want_cols) {
      KFUSE_LAUNCH(fill_kernel, blocks_for(ny, kBlock), kBlock, 0, stream, p.pos_y, ny, NAN);
    }
  }
  visit_mode(p.s,
             [&](auto mode, auto in) { launch<decltype(mode)::value, decltype(in)>(p, stream); });
  KFUSE_LAUNCH(merge_kernel, blocks_for(nx, kBlock), kBlock, 0, stream, p,
               static_cast<const float*>(p.row_part), p.plan.col_groups, nx, p.pos_x, double(ny),
               p.lse_x, p.loss_x);
  if (p.loss == cd::Loss::Clip && p.want_cols) {
    KFUSE_LAUNCH(merge_kernel, blocks_for(ny, kBlock), kBlock, 0, stream, p,
                 static_cast<const float*>(p.col_part), p.plan.row_groups, ny, p.pos_y, double(nx),
                 p.lse_y, p.loss_y);
  }
}

}  // namespace kfuse::cuda::contrastive
