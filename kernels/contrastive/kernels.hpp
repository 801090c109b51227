// Internal interface between the contrastive launcher (kernels/contrastive/launch.cu) and
// the kernel files (host side).
#pragma once

#include <cuda_runtime.h>

#include "kernels/contrastive/problem.hpp"

namespace kfuse::cuda::contrastive {

namespace cd = kfuse::detail::contrastive;

enum class Mode;

// The compute mode of a pass: fp32 inputs follow the precision (Exact: SIMT FMAs,
// TF32, BF16: tensor cores on rounded inputs); 16-bit inputs use tensor cores.
Mode mode_of(const cd::Logits& s);

// Enqueue a pass (and its merges) on `stream`.
void run_forward(const cd::Forward& p, cudaStream_t stream);
void run_backward(const cd::Backward& p, cudaStream_t stream);

}  // namespace kfuse::cuda::contrastive
