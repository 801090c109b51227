// The CPU path of the fusion family (internal). Every function computes the same
// chains of exactly rounded operations as the CUDA kernels (see fuse_math.hpp).
#pragma once

#include <cstdint>

#include "../../kernels/common/fuse_problem.hpp"

namespace kfuse::cpu {

// out[i] = row_inv_norm<W>(op, i), i < n.
template <class W>
void fuse_inv_norms(const detail::FuseOperand& op, std::int64_t n, W* out);

void fuse_random_matrix(const detail::RandomMatrix& r, float* out);

template <class W>
void kron_fuse(const detail::KronProblem& p);

void fuse_projection(const detail::ProjectionProblem& p);

void tensor_sketch(const detail::SketchProblem& p);

void product_topk(const detail::TopkProblem& p);

}  // namespace kfuse::cpu
