// The CPU path of the mixture-of-experts family (internal): one function per step
// of kernels/moe/problem.hpp. Reductions in double, products through
// the BLAS (blas.hpp), per-element math from kernels/moe/math.hpp.
#pragma once

#include "kernels/moe/problem.hpp"

namespace kfuse::cpu {

template <class L>
void moe_router_topk(const detail::RouterProblem<L>& args);
void moe_plan(const detail::PlanProblem& args);
template <class T>
void moe_scatter(const detail::ScatterProblem<T>& args);
template <class T>
void moe_combine(const detail::CombineProblem<T>& args);
template <class T>
void moe_gather_backward(const detail::GatherBackwardProblem<T>& args);
template <class T>
void moe_grouped_gemm(const detail::GroupedGemmProblem<T>& args);
template <class T>
void moe_wgrad(const detail::WgradProblem<T>& args);
template <class T>
void moe_swiglu_backward(const detail::SwigluBackwardProblem<T>& args);

}  // namespace kfuse::cpu
