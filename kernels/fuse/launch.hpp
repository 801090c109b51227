// Host entry points of the CUDA path of the fusion family (internal). Callers have
// validated everything; these enqueue work on ctx's stream and return (except
// tensor_sketch, which documents its one synchronisation).
#pragma once

#include <cstdint>

#include "kernels/fuse/problem.hpp"
#include "kfuse/context.hpp"
#include "kfuse/precision.hpp"

namespace kfuse::cuda {

template <class W>
void fuse_inv_norms(Context& ctx, const detail::FuseOperand& op, std::int64_t n, W* out);

void fuse_random_matrix(Context& ctx, const detail::RandomMatrix& r, float* out);

template <class W>
void kron_fuse(Context& ctx, const detail::KronProblem& p);

void fuse_projection(Context& ctx, const detail::ProjectionProblem& p, Precision precision);

void tensor_sketch(Context& ctx, const detail::SketchProblem& p);

void product_topk(Context& ctx, const detail::TopkProblem& p, Precision precision);

// The backwards' pieces (kernels/fuse/backward.cu; kernels/fuse/problem.hpp says what each
// computes).
void fuse_factor_grad(Context& ctx, const detail::FactorGradProblem& p);
// cuBLAS: fp32 (Exact) or TF32 tensor cores (a TF32 or BF16 permission).
void fuse_grad_gemm(Context& ctx, const detail::GradGemm& g, Precision precision);
template <class W>
void fuse_cosine_grad(Context& ctx, const detail::CosineGradProblem& p);
void fuse_fourier_grad(Context& ctx, const detail::FourierGradProblem& p);
template <class W>
void kron_fuse_grad(Context& ctx, const detail::KronGradProblem& p);

}  // namespace kfuse::cuda
