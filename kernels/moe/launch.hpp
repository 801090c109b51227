// Host entry points of the CUDA path of the mixture-of-experts family (internal).
// Callers have validated everything; these enqueue work on ctx's stream and return
// without waiting for the device, except where noted.
#pragma once

#include <cstdint>

#include "kernels/moe/problem.hpp"
#include "kfuse/context.hpp"

namespace kfuse::cuda {

template <class L>
void moe_router_topk(Context& ctx, const detail::RouterProblem<L>& args);

// The plan: a stable radix sort of the slots by expert (CUB), counts by binary
// search, offsets by a scan. Scratch from the context's allocator.
void moe_plan(Context& ctx, const detail::PlanProblem& args);

// True when every id of ids [rows x cols] lies in [0, experts). Waits for the stream.
bool moe_ids_valid(Context& ctx, const std::int32_t* ids, std::int64_t ld, std::int64_t rows,
                   std::int64_t cols, std::int64_t experts);

// host[0..n) <- device values. Waits for the stream.
void moe_copy_to_host(Context& ctx, const std::int32_t* values, std::int64_t n, std::int32_t* host);

template <class T>
void moe_scatter(Context& ctx, const detail::ScatterProblem<T>& args);
template <class T>
void moe_combine(Context& ctx, const detail::CombineProblem<T>& args);
template <class T>
void moe_gather_backward(Context& ctx, const detail::GatherBackwardProblem<T>& args);
template <class T>
void moe_swiglu_backward(Context& ctx, const detail::SwigluBackwardProblem<T>& args);
template <class T>
void moe_grouped_gemm(Context& ctx, const detail::GroupedGemmProblem<T>& args);
template <class T>
void moe_wgrad(Context& ctx, const detail::WgradProblem<T>& args);

}  // namespace kfuse::cuda
