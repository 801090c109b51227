// The mixture-of-experts family's steps as plain descriptions (raw pointers and
// extents), built by the host layer (src/moe/api.cpp) after validation and handed to
// either backend: src/moe/cpu.cpp or kernels/moe_*.cu. Backends trust them.
#pragma once

#include <cstdint>

#include "kfuse/moe.hpp"

namespace kfuse::detail {

// A plan's arrays (see kfuse::MoePlan), read-only for every step but moe_plan.
struct PlanArrays {
  std::int64_t tokens = 0, top_k = 0, experts = 0;
  std::int64_t rows = 0;  // layout.rows
  std::int64_t pad_to = 1;
  const std::int32_t* counts = nullptr;
  const std::int32_t* offsets = nullptr;
  const std::int32_t* row_slot = nullptr;
  const std::int32_t* slot_row = nullptr;
};

template <class L>
struct RouterProblem {
  const L* logits = nullptr;
  std::int64_t ld_logits = 0;
  std::int64_t tokens = 0, experts = 0, top_k = 0;
  std::int32_t* ids = nullptr;
  std::int64_t ld_ids = 0;
  float* gates = nullptr;
  std::int64_t ld_gates = 0;
  RouterMode mode = RouterMode::SoftmaxTopK;
  bool renormalize = false;
};

struct PlanProblem {
  const std::int32_t* ids = nullptr;
  std::int64_t ld_ids = 0;
  std::int64_t tokens = 0, top_k = 0, experts = 0;
  std::int64_t pad_to = 1, capacity = 0, rows = 0;
  std::int32_t* counts = nullptr;
  std::int32_t* offsets = nullptr;
  std::int32_t* row_slot = nullptr;
  std::int32_t* slot_row = nullptr;
};

// dst[r] = src[token of r] for every kept row; padding rows of dst zeroed.
template <class T>
struct ScatterProblem {
  PlanArrays plan;
  std::int64_t cols = 0;
  const T* src = nullptr;  // [T x cols]
  std::int64_t ld_src = 0;
  T* dst = nullptr;  // [rows x cols]
  std::int64_t ld_dst = 0;
};

// Where a combine finds the row of slot s.
enum class CombineSource {
  Permuted,  // src[slot_row[s]]: an expert-ordered buffer (moe_gather, moe_scatter_backward)
  Slots,     // src[s]: a slot-ordered buffer (the second pass of moe_gemm_combine)
};

// dst[t] = sum_j w_tj src[row of (t, j)] over kept slots, j in order, fp32 or wider;
// w = gates (or 1 where gates is null).
template <class T>
struct CombineProblem {
  PlanArrays plan;
  std::int64_t cols = 0;
  CombineSource source = CombineSource::Permuted;
  const T* src = nullptr;
  std::int64_t ld_src = 0;
  const float* gates = nullptr;  // [T x k] or null
  std::int64_t ld_gates = 0;
  T* dst = nullptr;  // [T x cols]
  std::int64_t ld_dst = 0;
};

// dyp[r] = g_s dy[t], dgates[s] = <yp[r], dy[t]>; padding rows of dyp zeroed,
// dropped slots' dgates 0.
template <class T>
struct GatherBackwardProblem {
  PlanArrays plan;
  std::int64_t cols = 0;
  const T* yp = nullptr;
  std::int64_t ld_yp = 0;
  const float* gates = nullptr;
  std::int64_t ld_gates = 0;
  const T* dy = nullptr;
  std::int64_t ld_dy = 0;
  T* dyp = nullptr;
  std::int64_t ld_dyp = 0;
  float* dgates = nullptr;
  std::int64_t ld_dgates = 0;
};

enum class GemmEpilogue {
  Rows,    // c[r] = acc (permuted order); padding rows of c zeroed
  Slots,   // c[slot of r] = w_s acc, w = gates or 1 (slot order, [T k x n])
  SwiGLU,  // two products with one A: h1 = A b[0], h3 = A b[1]; c[r] = silu(h1) h3,
           // with h1 and h3 rounded to T first (and stored when h1/h3 are set)
};

// The row-grouped GEMM: for every expert e and each of its rows r,
//   acc[r] = sum over segments g of A_g[src row of r] * op(B_g,e)      (Rows, Slots)
// B_g,e is expert e's block of b[g]: [k x n] at b[g] + e * k * ldb (b_trans false)
// or [n x k] at b[g] + e * n * ldb, used transposed (b_trans true).
template <class T>
struct GroupedGemmProblem {
  PlanArrays plan;
  std::int64_t n = 0, k = 0;
  int segments = 1;  // 2: acc = A_0 B_0 + A_1 B_1 (SwiGLU: 1 segment, two B)
  const T* a[2] = {nullptr, nullptr};
  std::int64_t lda[2] = {0, 0};
  bool a_gather = false;  // A rows in token order: the row of r is slot_token(row_slot[r])
  const T* b[2] = {nullptr, nullptr};
  std::int64_t ldb[2] = {0, 0};
  bool b_trans = false;
  GemmEpilogue epilogue = GemmEpilogue::Rows;
  T* c = nullptr;
  std::int64_t ldc = 0;
  const float* gates = nullptr;  // Slots: [T x k] or null
  std::int64_t ld_gates = 0;
  T* h1 = nullptr;  // SwiGLU: optional stores of the two products [rows x n]
  T* h3 = nullptr;
  std::int64_t ld_h1 = 0, ld_h3 = 0;
};

// Weight gradient: c_e [m x n] = sum over the rows r of expert e of
//   A[src row of r]^T (w_r B[src row of r]),  zero when e has no row.
template <class T>
struct WgradProblem {
  PlanArrays plan;
  std::int64_t m = 0, n = 0;
  const T* a = nullptr;  // [. x m]
  std::int64_t lda = 0;
  bool a_gather = false;
  const T* b = nullptr;  // [. x n]
  std::int64_t ldb = 0;
  bool b_gather = false;
  const float* b_gates = nullptr;  // w_r = gate of r's slot, or 1 where null
  std::int64_t ld_gates = 0;
  T* c = nullptr;  // [E*m x n]
  std::int64_t ldc = 0;
};

// The SwiGLU backward, row by row over kept rows r (slot s, gate g):
//   a = silu(h1) h3 (from the rounded h1, h3, as in the forward), written to a_out;
//   dgates[s] = <a, u>; da = g u; dh1 = da h3 silu'(h1), dh3 = da silu(h1).
// u = dY[t] W2_e^T. Padding rows of dh1, dh3, a_out zeroed. dgates of dropped
// slots are written 0.
template <class T>
struct SwigluBackwardProblem {
  PlanArrays plan;
  std::int64_t cols = 0;  // F
  const T* h1 = nullptr;
  std::int64_t ld_h1 = 0;
  const T* h3 = nullptr;
  std::int64_t ld_h3 = 0;
  const T* u = nullptr;
  std::int64_t ld_u = 0;
  const float* gates = nullptr;
  std::int64_t ld_gates = 0;
  T* dh1 = nullptr;
  std::int64_t ld_dh1 = 0;
  T* dh3 = nullptr;
  std::int64_t ld_dh3 = 0;
  T* a_out = nullptr;
  std::int64_t ld_a = 0;
  float* dgates = nullptr;
  std::int64_t ld_dgates = 0;
};

}  // namespace kfuse::detail
