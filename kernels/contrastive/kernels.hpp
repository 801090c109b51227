// Internal interface between the contrastive launcher (kernels/contrastive/launch.cu) and
// the kernel files (host side).
#pragma once

#include <cuda_runtime.h>

#include "kernels/contrastive/problem.hpp"

namespace kfuse::cuda::contrastive {

namespace cd = kfuse::detail::contrastive;

// Enqueue a pass (and its merges) on `stream`.
void run_forward(const cd::ForwardProblem& p, cudaStream_t stream);
void run_backward(const cd::BackwardProblem& p, cudaStream_t stream);

}  // namespace kfuse::cuda::contrastive
