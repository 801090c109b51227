// Deterministic device reductions shared by the op families (internal).
#pragma once

#include <cstdint>

#include "kfuse/context.hpp"

namespace kfuse::cuda {

// *out = sum_k x[k * stride], k < n, accumulated in double in a fixed order
// (the same bits every run). out points to device memory.
template <class T>
void sum_to_f64(Context& ctx, const T* x, std::int64_t n, std::int64_t stride, double* out);

// out[0] = sum_k coeff[k] * terms[k], k < count <= 4; terms on the device, coeff on the host.
template <class T>
void combine_f64(Context& ctx, const double* terms, const double* coeff, int count, T* out);

}  // namespace kfuse::cuda
