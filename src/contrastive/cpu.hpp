// The CPU path of the contrastive loss family (internal): the two kinds of pass
// over the logits that the host layer composes every call from.
#pragma once

#include <memory>

#include "kernels/contrastive/problem.hpp"

namespace kfuse::cpu {

// A CLIP forward's fp32 dot products [nx x ny], kept (where the BLAS scheme runs)
// for the backward of the same forward + backward call, which then forms no logit
// again (3 matrix products in all, as with a materialised S).
struct KeptDots {
  std::unique_ptr<float[]> dots;  // null: none kept
};

// Forward statistics (CLIP log-sum-exps and CE losses, or SigLIP row losses) into
// p's outputs; p.plan and p.row_part / p.col_part (double states) from the layout.
// keep non-null: also the dot products into *keep (where the BLAS scheme runs).
void contrastive_forward(const detail::contrastive::ForwardProblem& p, KeptDots* keep = nullptr);

// One gradient pass (dX and per-row sums) over all columns; where
// contrastive_dy_in_row_pass, also dY into p.dy_accum (+=) when that is set.
// kept: the dot products of p's forward (consumed: they become dS').
void contrastive_backward(const detail::contrastive::BackwardProblem& p, KeptDots* kept = nullptr);

// Whether the passes over nx x ny pairs (either orientation) run the BLAS scheme,
// whose gradient pass over the rows forms dY as well: the host layer then runs no
// pass over the columns (whose logits would be formed in the other orientation,
// with other bits than the forward's).
bool contrastive_dy_in_row_pass(std::int64_t nx, std::int64_t ny, std::int64_t d);

// dst rows [rows x d] (dtype, ld_dst) = src (fp32, ld_src), rounded to nearest.
void contrastive_store_rows(const float* src, std::int64_t ld_src, std::int64_t rows,
                            std::int64_t d, void* dst, DType dtype, std::int64_t ld_dst);

}  // namespace kfuse::cpu
