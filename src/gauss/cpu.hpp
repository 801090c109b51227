// The CPU path of the Gaussian kernel family (internal).
#pragma once

#include "kernels/gauss/problem.hpp"

namespace kfuse::cpu {

// Runs p and hands every row's result to e. Pairwise math in T, sums in double.
template <class T>
void gauss_sum(const detail::GaussProblem<T>& p, const detail::GaussEpilogue<T>& e);

}  // namespace kfuse::cpu
