// Host entry points of the CUDA path of the Gaussian family (internal). Callers
// have validated everything; these enqueue work on ctx's stream and return.
#pragma once

#include "kernels/gauss/problem.hpp"
#include "kfuse/context.hpp"
#include "kfuse/precision.hpp"

namespace kfuse::cuda {

template <class T>
void gauss_sum(Context& ctx, const detail::GaussProblem<T>& p, const detail::GaussEpilogue<T>& e,
               Precision precision);

}  // namespace kfuse::cuda
