// Small deterministic reductions in the context's memory space (internal).
#pragma once

#include <cstdint>

#include "kfuse/context.hpp"

namespace kfuse::detail {

// *out = sum_k x[k * stride], k < n, in double, in a fixed order. x and out in the
// context's memory space.
template <class T>
void sum_to_f64(Context& ctx, const T* x, std::int64_t n, std::int64_t stride, double* out);

// out[0] = sum_k coeff[k] * terms[k], k < count <= 4. terms and out in the
// context's memory space, coeff on the host.
template <class T>
void combine_f64(Context& ctx, const double* terms, const double* coeff, int count, T* out);

}  // namespace kfuse::detail
