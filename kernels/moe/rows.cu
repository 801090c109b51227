// The memory-bound row kernels of the mixture-of-experts family: scatter (token
// rows to expert order), combine (expert or slot rows back to tokens, gated sums
// over k in a fixed order), the gather's backward, the SwiGLU backward, and the
// zeroing of padding rows. One pass each; a power-of-two group of threads per row
// (kernels/moe/math.hpp row_shape) moves 16-byte vectors when every row
// involved is 16-byte aligned, single elements otherwise. No atomics.
#include <cuda_runtime.h>

#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/moe/device.cuh"
#include "kernels/moe/kernels.hpp"

namespace kfuse::cuda::moe {
namespace {

using detail::PlanArrays;
using std::int64_t;

constexpr int kBlock = 256;

// The group of this thread: its row (or token, or slot) and its lane within it.
__device__ __forceinline__ int64_t group_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
}

// Xp[row of (t, j)] = X[t] for every kept slot: one read of X[t], k writes.
template <class T>
__global__ void __launch_bounds__(kBlock)
    scatter_kernel(const detail::ScatterProblem<T> a, bool vec) {
  constexpr int W = Vec<T>::n;
  const PlanArrays& p = a.plan;
  const int64_t t = group_index();
  if (t >= p.tokens) return;
  const T* src = a.src + t * a.ld_src;
  for (int64_t c = int64_t(threadIdx.x) * W; c < a.cols; c += int64_t(blockDim.x) * W) {
    const int n = static_cast<int>(a.cols - c < W ? a.cols - c : W);
    float v[W];
    load_run(src + c, n, vec, v);
    for (int64_t j = 0; j < p.top_k; ++j) {
      const std::int32_t row = p.slot_row[t * p.top_k + j];
      if (row >= 0) store_run(a.dst + row * a.ld_dst + c, n, vec, v);
    }
  }
}

// dst[t] = sum_j w_tj src[row of (t, j)], j in order, fp32.
template <class T>
__global__ void __launch_bounds__(kBlock)
    combine_kernel(const detail::CombineProblem<T> a, bool vec) {
  constexpr int W = Vec<T>::n;
  const PlanArrays& p = a.plan;
  const int64_t t = group_index();
  if (t >= p.tokens) return;
  for (int64_t c = int64_t(threadIdx.x) * W; c < a.cols; c += int64_t(blockDim.x) * W) {
    const int n = static_cast<int>(a.cols - c < W ? a.cols - c : W);
    float acc[W] = {};
    for (int64_t j = 0; j < p.top_k; ++j) {
      const int64_t s = t * p.top_k + j;
      const std::int32_t row = p.slot_row[s];
      if (row < 0) continue;
      const int64_t src_row = a.source == detail::CombineSource::Permuted ? row : s;
      const float w = a.gates ? a.gates[t * a.ld_gates + j] : 1.0f;
      float v[W];
      load_run(a.src + src_row * a.ld_src + c, n, vec, v);
#pragma unroll
      for (int i = 0; i < W; ++i)
        acc[i] = fmaf(w, v[i], acc[i]);
    }
    store_run(a.dst + t * a.ld_dst + c, n, vec, acc);
  }
}

// One group per slot: dYp[row] = g dY[t], dgates[s] = <Yp[row], dY[t]> (0 if dropped).
template <class T>
__global__ void __launch_bounds__(kBlock)
    gather_backward_kernel(const detail::GatherBackwardProblem<T> a, bool vec) {
  constexpr int W = Vec<T>::n;
  KFUSE_SHARED(float, scratch, [kBlock / 32 * 8]);
  const PlanArrays& p = a.plan;
  const int64_t s = group_index();
  const bool valid = s < p.tokens * p.top_k;
  const std::int32_t row = valid ? p.slot_row[s] : -1;
  float dot = 0.0f;
  if (row >= 0) {
    const int64_t t = detail::slot_token(s, p.top_k);
    const float g = a.gates[detail::slot_gate_offset(s, p.top_k, a.ld_gates)];
    const T* dy = a.dy + t * a.ld_dy;
    const T* yp = a.yp + row * a.ld_yp;
    T* dyp = a.dyp + row * a.ld_dyp;
    for (int64_t c = int64_t(threadIdx.x) * W; c < a.cols; c += int64_t(blockDim.x) * W) {
      const int n = static_cast<int>(a.cols - c < W ? a.cols - c : W);
      float d[W], y[W], out[W];
      load_run(dy + c, n, vec, d);
      load_run(yp + c, n, vec, y);
#pragma unroll
      for (int i = 0; i < W; ++i) {
        out[i] = g * d[i];
        dot = fmaf(y[i], d[i], dot);
      }
      store_run(dyp + c, n, vec, out);
    }
  }
  dot = group_sum(dot, scratch);
  if (valid && threadIdx.x == 0)
    a.dgates[detail::slot_gate_offset(s, p.top_k, a.ld_dgates)] = row >= 0 ? dot : 0.0f;
}

// One group per permuted row (in use): the SwiGLU backward and the gate gradient.
template <class T>
__global__ void __launch_bounds__(kBlock)
    swiglu_backward_kernel(const detail::SwigluBackwardProblem<T> a, bool vec) {
  constexpr int W = Vec<T>::n;
  KFUSE_SHARED(float, scratch, [kBlock / 32 * 8]);
  const PlanArrays& p = a.plan;
  const int64_t row = group_index();
  const bool in_use = row < p.offsets[p.experts];
  const std::int32_t s = in_use ? p.row_slot[row] : -1;
  float dot = 0.0f;
  if (in_use) {
    const float g = s >= 0 ? a.gates[detail::slot_gate_offset(s, p.top_k, a.ld_gates)] : 0.0f;
    for (int64_t c = int64_t(threadIdx.x) * W; c < a.cols; c += int64_t(blockDim.x) * W) {
      const int n = static_cast<int>(a.cols - c < W ? a.cols - c : W);
      float h1[W], h3[W], u[W], act[W], d1[W], d3[W];
      if (s >= 0) {
        load_run(a.h1 + row * a.ld_h1 + c, n, vec, h1);
        load_run(a.h3 + row * a.ld_h3 + c, n, vec, h3);
        load_run(a.u + row * a.ld_u + c, n, vec, u);
#pragma unroll
        for (int i = 0; i < W; ++i) {
          // a as the forward stored it: rounded to T before the dot.
          act[i] = to_f(from_f<T>(detail::swiglu(h1[i], h3[i])));
          dot = fmaf(act[i], u[i], dot);
          detail::swiglu_backward(h1[i], h3[i], g * u[i], &d1[i], &d3[i]);
        }
      } else {  // a padding row
#pragma unroll
        for (int i = 0; i < W; ++i)
          act[i] = d1[i] = d3[i] = 0.0f;
      }
      store_run(a.a_out + row * a.ld_a + c, n, vec, act);
      store_run(a.dh1 + row * a.ld_dh1 + c, n, vec, d1);
      store_run(a.dh3 + row * a.ld_dh3 + c, n, vec, d3);
    }
  }
  dot = group_sum(dot, scratch);
  if (s >= 0 && threadIdx.x == 0) a.dgates[detail::slot_gate_offset(s, p.top_k, a.ld_dgates)] = dot;
}

// dgates of dropped slots: 0.
__global__ void drop_dgates_kernel(const PlanArrays p, float* dgates, int64_t ld) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s < p.tokens * p.top_k && p.slot_row[s] < 0)
    dgates[detail::slot_gate_offset(s, p.top_k, ld)] = 0.0f;
}

// Padding rows (row_slot -1 below offsets[E]) of a permuted buffer: zeros.
template <class T>
__global__ void __launch_bounds__(kBlock)
    zero_padding_kernel(const PlanArrays p, int64_t cols, T* dst, int64_t ld, bool vec) {
  constexpr int W = Vec<T>::n;
  const int64_t row = group_index();
  if (row >= p.offsets[p.experts] || p.row_slot[row] >= 0) return;
  const float zero[W] = {};
  for (int64_t c = int64_t(threadIdx.x) * W; c < cols; c += int64_t(blockDim.x) * W)
    store_run(dst + row * ld + c, static_cast<int>(cols - c < W ? cols - c : W), vec, zero);
}

// A grid of row groups over `rows` rows of `cols` elements.
struct RowLaunch {
  dim3 grid, block;
};
template <class T>
RowLaunch row_launch(int64_t rows, int64_t cols) {
  const detail::RowShape s = detail::row_shape(detail::moe_ceil_div(cols, Vec<T>::n), kBlock);
  const int64_t blocks = detail::moe_ceil_div(rows, s.rows_per_block);
  if (blocks > 0x7fffffff) throw Error(Status::Unsupported, "moe: too many rows for one launch");
  return {dim3(static_cast<unsigned>(blocks)),
          dim3(static_cast<unsigned>(s.threads_per_row), static_cast<unsigned>(s.rows_per_block))};
}

}  // namespace

template <class T>
void zero_padding_rows(const PlanArrays& p, int64_t cols, T* dst, int64_t ld, cudaStream_t stream) {
  if (dst == nullptr || p.pad_to == 1 || p.rows == 0) return;
  const RowLaunch L = row_launch<T>(p.rows, cols);
  KFUSE_LAUNCH(zero_padding_kernel<T>, L.grid, L.block, 0, stream, p, cols, dst, ld,
               rows_aligned(dst, ld));
}

template void zero_padding_rows<float>(const PlanArrays&, int64_t, float*, int64_t, cudaStream_t);
template void zero_padding_rows<bf16>(const PlanArrays&, int64_t, bf16*, int64_t, cudaStream_t);

template <class T>
void launch_scatter(const detail::ScatterProblem<T>& a, cudaStream_t stream) {
  const bool vec = rows_aligned(a.src, a.ld_src) && rows_aligned(a.dst, a.ld_dst);
  if (a.plan.tokens > 0) {
    const RowLaunch L = row_launch<T>(a.plan.tokens, a.cols);
    KFUSE_LAUNCH(scatter_kernel<T>, L.grid, L.block, 0, stream, a, vec);
  }
  zero_padding_rows(a.plan, a.cols, a.dst, a.ld_dst, stream);
}

template <class T>
void launch_combine(const detail::CombineProblem<T>& a, cudaStream_t stream) {
  const bool vec = rows_aligned(a.src, a.ld_src) && rows_aligned(a.dst, a.ld_dst);
  const RowLaunch L = row_launch<T>(a.plan.tokens, a.cols);
  KFUSE_LAUNCH(combine_kernel<T>, L.grid, L.block, 0, stream, a, vec);
}

template <class T>
void launch_gather_backward(const detail::GatherBackwardProblem<T>& a, cudaStream_t stream) {
  const bool vec =
      rows_aligned(a.yp, a.ld_yp) && rows_aligned(a.dy, a.ld_dy) && rows_aligned(a.dyp, a.ld_dyp);
  const std::int64_t slots = a.plan.tokens * a.plan.top_k;
  if (slots > 0) {
    const RowLaunch L = row_launch<T>(slots, a.cols);
    KFUSE_LAUNCH(gather_backward_kernel<T>, L.grid, L.block, 0, stream, a, vec);
  }
  zero_padding_rows(a.plan, a.cols, a.dyp, a.ld_dyp, stream);
}

template <class T>
void launch_swiglu_backward(const detail::SwigluBackwardProblem<T>& a, cudaStream_t stream) {
  const bool vec = rows_aligned(a.h1, a.ld_h1) && rows_aligned(a.h3, a.ld_h3) &&
                   rows_aligned(a.u, a.ld_u) && rows_aligned(a.dh1, a.ld_dh1) &&
                   rows_aligned(a.dh3, a.ld_dh3) && rows_aligned(a.a_out, a.ld_a);
  if (a.plan.rows > 0) {
    const RowLaunch L = row_launch<T>(a.plan.rows, a.cols);
    KFUSE_LAUNCH(swiglu_backward_kernel<T>, L.grid, L.block, 0, stream, a, vec);
  }
  const std::int64_t slots = a.plan.tokens * a.plan.top_k;
  if (slots > 0) {
    KFUSE_LAUNCH(drop_dgates_kernel, static_cast<unsigned>(detail::moe_ceil_div(slots, 256)), 256,
                 0, stream, a.plan, a.dgates, a.ld_dgates);
  }
}

#define KFUSE_MOE_ROWS_INSTANTIATE(T)                                                             \
  template void launch_scatter<T>(const detail::ScatterProblem<T>&, cudaStream_t);                \
  template void launch_combine<T>(const detail::CombineProblem<T>&, cudaStream_t);                \
  template void launch_gather_backward<T>(const detail::GatherBackwardProblem<T>&, cudaStream_t); \
  template void launch_swiglu_backward<T>(const detail::SwigluBackwardProblem<T>&, cudaStream_t);
KFUSE_MOE_ROWS_INSTANTIATE(float)
KFUSE_MOE_ROWS_INSTANTIATE(bf16)
#undef KFUSE_MOE_ROWS_INSTANTIATE

}  // namespace kfuse::cuda::moe
