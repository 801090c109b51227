// The grouped GEMM's epilogue, shared by the fp32 and bf16 kernels: a run of up
// to one 16-byte vector of accumulators of one permuted row goes out as the
// epilogue says (kernels/moe/problem.hpp GemmEpilogue). Every output row has
// exactly one writer: Rows and SwiGLU write the row itself, Slots the row's slot.
#pragma once

#include "kernels/moe/device.cuh"

namespace kfuse::cuda::moe {

// Columns [col, col + cnt) of permuted row `row`; v1 holds the accumulators (v3
// those of the second product for SwiGLU). The destination rows are 16-byte
// aligned (validated, or workspaces) and col is a multiple of Vec<T>::n.
template <class T>
__device__ __forceinline__ void gemm_epilogue(const detail::GroupedGemmProblem<T>& g,
                                              std::int64_t row, std::int64_t col, int cnt,
                                              const float* v1, const float* v3) {
  constexpr int W = Vec<T>::n;
  if (g.epilogue == detail::GemmEpilogue::Rows) {
    store_run(g.c + row * g.ldc + col, cnt, true, v1);
    return;
  }
  if (g.epilogue == detail::GemmEpilogue::Slots) {
    const std::int64_t slot = g.plan.row_slot[row];
    const float w =
        g.gates ? g.gates[detail::slot_gate_offset(slot, g.plan.top_k, g.ld_gates)] : 1.0f;
    float out[W];
#pragma unroll
    for (int i = 0; i < W; ++i)
      out[i] = w * v1[i];
    store_run(g.c + slot * g.ldc + col, cnt, true, out);
    return;
  }
  // SwiGLU: the products rounded to T first (what h1, h3 store), then a.
  float h1[W], h3[W], a[W];
#pragma unroll
  for (int i = 0; i < W; ++i) {
    h1[i] = to_f(from_f<T>(v1[i]));
    h3[i] = to_f(from_f<T>(v3[i]));
    a[i] = detail::swiglu(h1[i], h3[i]);
  }
  if (g.h1) store_run(g.h1 + row * g.ld_h1 + col, cnt, true, h1);
  if (g.h3) store_run(g.h3 + row * g.ld_h3 + col, cnt, true, h3);
  store_run(g.c + row * g.ldc + col, cnt, true, a);
}

// The source row of permuted row `row` for an A operand (itself, or its token's row).
__device__ __forceinline__ std::int64_t source_row(const detail::PlanArrays& p, std::int64_t row,
                                                   bool gather) {
  return gather ? detail::slot_token(p.row_slot[row], p.top_k) : row;
}

}  // namespace kfuse::cuda::moe
