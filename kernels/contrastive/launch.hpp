// Host entry points of the CUDA path of the contrastive family (internal).
// Callers have validated everything; these enqueue work on ctx's stream and
// return, except copy_to_host, which waits for the stream.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/contrastive/problem.hpp"
#include "kfuse/context.hpp"

namespace kfuse::cuda::contrastive {

// Streaming multiprocessors of ctx's device (the plans depend on it).
int sm_count(const Context& ctx);

// The two kinds of pass (see kernels/contrastive/problem.hpp).
void forward(Context& ctx, const detail::contrastive::ForwardProblem& p);
void backward(Context& ctx, const detail::contrastive::BackwardProblem& p);

// dst (host) = src (device), ordered on ctx's stream; synchronises the stream.
void copy_to_host(Context& ctx, const void* src, std::size_t bytes, void* dst);

void fill_zero(Context& ctx, void* ptr, std::size_t bytes);

// dst [rows x d] (element type dtype, ld_dst) = src [rows x d] (fp32, ld_src).
void store_rows(Context& ctx, const float* src, std::int64_t ld_src, std::int64_t rows,
                std::int64_t d, void* dst, DType dtype, std::int64_t ld_dst);

}  // namespace kfuse::cuda::contrastive
