// What a backend of the contrastive family is asked to do: one pass over the
// logits S_ij = tau x_i . y_j + b of two embedding sets (internal). The host layer
// (src/contrastive/api.cpp) turns every public call into such passes, with the roles of
// A and B swapped where a pass runs over B's rows, and lays out their workspace.
#pragma once

#include <cstdint>

#include "kernels/contrastive/math.hpp"
#include "kernels/contrastive/plan.hpp"
#include "kfuse/precision.hpp"
#include "kfuse/view.hpp"

namespace kfuse::detail::contrastive {

enum class Loss : int { Clip = 0, Siglip = 1 };

// A scalar that is a host value, or (ptr non-null) one float in the backend's memory.
struct Scalar {
  double value = 0.0;
  const float* ptr = nullptr;
};

// The logits of a pass. x [nx x d] are its rows, y [ny x d] its columns; both of
// `dtype` (F32, BF16, F16).
struct Logits {
  DType dtype = DType::F32;
  const void* x = nullptr;
  std::int64_t ldx = 0, nx = 0;
  const void* y = nullptr;
  std::int64_t ldy = 0, ny = 0;
  std::int64_t d = 0;
  Scalar t;  // tau = exp(t)
  Scalar b;
  LabelMode label_mode = LabelMode::Identity;
  const std::int64_t* labels = nullptr;  // [nx] (Rows) or [ny] (Cols)
  Precision precision = Precision::Exact;
};

// Forward statistics over all pairs, in a G x H partition of the pairs into
// rectangles (plan) whose partial results are merged in a fixed order.
//   Clip: for rows (want_rows) and columns (want_cols): log-sum-exp and CE loss
//         (smoothing eps); the positives' logits are recorded as they are met.
//   Siglip: per row, sum_j softplus(-z_ij S_ij) into loss_x.
struct ForwardProblem {
  Loss loss = Loss::Clip;
  Logits s;
  double smoothing = 0.0;
  bool want_rows = true, want_cols = false;
  RectPlan plan;
  // Workspace: partial states, `partial_bytes` per float of a state (4 on the GPU,
  // 8 on the CPU): [H][nx] row and [G][ny] column states of kStateFloats each.
  void* row_part = nullptr;
  void* col_part = nullptr;
  float* pos_x = nullptr;  // [nx] positive logit of each row (NaN until met)
  float* pos_y = nullptr;  // [ny]
  // Outputs, fp32, [nx] / [ny] (those of an unwanted direction unused).
  float* lse_x = nullptr;
  float* loss_x = nullptr;
  float* lse_y = nullptr;
  float* loss_y = nullptr;
};

// One gradient pass: dX = tau c0 sum_j dS'_ij y_j for the pass's rows, c0 =
// coef * grad_loss, with
//   Clip:   dS' = clip_dlogit(S, lse_x[i], lse_y[j], positive, rx, ry, eps, nx, ny)
//   Siglip: dS' = siglip_dlogit(S, positive)
// plus per-row sums for the scalar gradients and SigLIP's loss. The columns may be
// split into `col_splits` ranges whose partial sums the backend merges in order.
struct BackwardProblem {
  Loss loss = Loss::Clip;
  Logits s;
  double smoothing = 0.0;
  const float* lse_x = nullptr;  // Clip, when rx != 0
  const float* lse_y = nullptr;  // Clip, when ry != 0
  double rx = 0.0, ry = 0.0;
  double coef = 1.0;
  Scalar grad_loss;
  // Outputs (each optional).
  void* dx = nullptr;  // [nx x d], element type dx_dtype
  DType dx_dtype = DType::F32;
  std::int64_t lddx = 0;
  double* dt_rows = nullptr;   // [nx]: c0 sum_j dS'_ij (S_ij - b)
  double* db_rows = nullptr;   // [nx]: c0 sum_j dS'_ij
  float* loss_rows = nullptr;  // [nx] Siglip: sum_j softplus(-z_ij S_ij)
  // GPU only, deterministic = false: dY += tau c0 dS'^T x in fp32 with atomics,
  // [ny x ld_dy_accum], zeroed by the caller.
  float* dy_accum = nullptr;
  std::int64_t ld_dy_accum = 0;
  // GPU workspace: fp32 row-block accumulators and per-split row sums.
  BackwardPlan plan;
  float* slots = nullptr;
  double* split_sums = nullptr;  // [3][col_splits][nx] when col_splits > 1
};

}  // namespace kfuse::detail::contrastive
