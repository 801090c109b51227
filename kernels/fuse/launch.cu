// The CUDA path of the fusion family: the entry points of kernels/fuse/launch.hpp.
// Each selects the caller's device and hands the problem to its kernel file
// (kernels/fuse/kernels.hpp); everything is enqueued on the context's stream, and only
// tensor_sketch waits for the device (documented in include/kfuse/fuse.hpp).
#include "kernels/core/cuda_check.hpp"
#include "kernels/fuse/kernels.hpp"
#include "kernels/fuse/launch.hpp"

namespace kfuse::cuda {

template <class W>
void fuse_inv_norms(Context& ctx, const detail::FuseOperand& op, std::int64_t n, W* out) {
  detail::DeviceGuard guard(ctx.device());
  fuse::launch_inv_norms(ctx, op, n, out);
}

void fuse_random_matrix(Context& ctx, const detail::RandomMatrix& r, float* out) {
  detail::DeviceGuard guard(ctx.device());
  fuse::launch_random_matrix(ctx, r, out);
}

template <class W>
void kron_fuse(Context& ctx, const detail::KronProblem& p) {
  detail::DeviceGuard guard(ctx.device());
  fuse::launch_kron<W>(ctx, p);
}

void fuse_projection(Context& ctx, const detail::ProjectionProblem& p, Precision precision) {
  detail::DeviceGuard guard(ctx.device());
  fuse::launch_projection(ctx, p, precision);
}

void tensor_sketch(Context& ctx, const detail::SketchProblem& p) {
  detail::DeviceGuard guard(ctx.device());
  fuse::launch_tensor_sketch(ctx, p);
}

void product_topk(Context& ctx, const detail::TopkProblem& p, Precision precision) {
  detail::DeviceGuard guard(ctx.device());
  fuse::launch_product_topk(ctx, p, precision);
}

void fuse_factor_grad(Context& ctx, const detail::FactorGradProblem& p) {
  detail::DeviceGuard guard(ctx.device());
  fuse::launch_factor_grad(ctx, p);
}

void fuse_grad_gemm(Context& ctx, const detail::GradGemm& g, Precision precision) {
  detail::DeviceGuard guard(ctx.device());
  fuse::launch_grad_gemm(ctx, g, precision);
}

template <class W>
void fuse_cosine_grad(Context& ctx, const detail::CosineGradProblem& p) {
  detail::DeviceGuard guard(ctx.device());
  fuse::launch_cosine_grad<W>(ctx, p);
}

void fuse_fourier_grad(Context& ctx, const detail::FourierGradProblem& p) {
  detail::DeviceGuard guard(ctx.device());
  fuse::launch_fourier_grad(ctx, p);
}

template <class W>
void kron_fuse_grad(Context& ctx, const detail::KronGradProblem& p) {
  detail::DeviceGuard guard(ctx.device());
  fuse::launch_kron_grad<W>(ctx, p);
}

#define KFUSE_FUSE_INSTANTIATE(W)                                                          \
  template void fuse_inv_norms<W>(Context&, const detail::FuseOperand&, std::int64_t, W*); \
  template void kron_fuse<W>(Context&, const detail::KronProblem&);                        \
  template void fuse_cosine_grad<W>(Context&, const detail::CosineGradProblem&);           \
  template void kron_fuse_grad<W>(Context&, const detail::KronGradProblem&);
KFUSE_FUSE_INSTANTIATE(float)
KFUSE_FUSE_INSTANTIATE(double)
#undef KFUSE_FUSE_INSTANTIATE

}  // namespace kfuse::cuda
