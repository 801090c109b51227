// The CPU path of the contrastive loss family (internal): the two kinds of pass
// over the logits that the host layer composes every call from.
#pragma once

#include "kernels/contrastive/problem.hpp"

namespace kfuse::cpu {

// Forward statistics (CLIP log-sum-exps and CE losses, or SigLIP row losses) into
// p's outputs; p.plan and p.row_part / p.col_part (double states) from the layout.
void contrastive_forward(const detail::contrastive::ForwardProblem& p);

// One gradient pass (dX and per-row sums) over all columns.
void contrastive_backward(const detail::contrastive::BackwardProblem& p);

}  // namespace kfuse::cpu
