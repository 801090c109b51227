// The fusion kernels' launch interface (internal, host side): what each kernel file
// enqueues on the context's stream, for the family's entry points in launch.cu. Each
// takes the Context for its workspace (and cuBLAS / cuFFT); empty problems launch
// nothing.
#pragma once

#include <cstdint>

#include "kernels/fuse/problem.hpp"
#include "kfuse/context.hpp"
#include "kfuse/precision.hpp"

namespace kfuse::cuda::fuse {

// rows.cu: row norms, U drawn from Philox, the Kronecker rows.
template <class W>
void launch_inv_norms(Context& ctx, const detail::FuseOperand& op, std::int64_t n, W* out);
void launch_random_matrix(Context& ctx, const detail::RandomMatrix& r, float* out);
template <class W>
void launch_kron(Context& ctx, const detail::KronProblem& p);

// projection.cu: the exact tiled projection, or the TF32/BF16 route through cuBLAS.
void launch_projection(Context& ctx, const detail::ProjectionProblem& p, Precision precision);

// sketch.cu: count sketches and their product through cuFFT (synchronises, documented).
void launch_tensor_sketch(Context& ctx, const detail::SketchProblem& p);

// topk.cu: the product-kernel top-k and the merge of its splits.
void launch_product_topk(Context& ctx, const detail::TopkProblem& p, Precision precision);

// backward.cu: the backwards' pieces (kernels/fuse/problem.hpp says what each computes).
void launch_factor_grad(Context& ctx, const detail::FactorGradProblem& p);
void launch_grad_gemm(Context& ctx, const detail::GradGemm& g, Precision precision);
template <class W>
void launch_cosine_grad(Context& ctx, const detail::CosineGradProblem& p);
void launch_fourier_grad(Context& ctx, const detail::FourierGradProblem& p);
template <class W>
void launch_kron_grad(Context& ctx, const detail::KronGradProblem& p);

}  // namespace kfuse::cuda::fuse
