// The CPU path of the fusion family's backwards (kron_fuse_backward,
// rp_fuse_backward): the entries kernels/fuse/problem.hpp defines, in plain loops over the
// rows, and the matrix products through cpu::gemm (Exact) or the BLAS.
// Compiled with -ffp-contract=off (CMakeLists.txt), like the forward.
#include <cstdint>

#include "src/core/blas.hpp"
#include "src/core/gemm.hpp"
#include "src/fuse/cpu.hpp"

namespace kfuse::cpu {

using detail::CosineGradProblem;
using detail::FactorGradProblem;
using detail::FourierGradProblem;
using detail::GradGemm;
using detail::KronGradProblem;

void fuse_factor_grad(const FactorGradProblem& p) {
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < p.n; ++i)
    for (std::int64_t c = 0; c < p.l; ++c)
      p.out[i * p.l + c] = detail::factor_grad_entry(p, i, c);
}

void fuse_grad_gemm(const GradGemm& g, Precision precision) {
  if (g.m == 0 || g.n == 0) return;
  if (precision == Precision::Exact)
    gemm<float>(Trans::No, Trans::Yes, g.m, g.n, g.k, g.alpha, g.A, g.lda, g.B, g.ldb, 0.0, g.C,
                g.ldc);
  else
    sgemm(Trans::No, Trans::Yes, g.m, g.n, g.k, g.alpha, g.A, g.lda, g.B, g.ldb, 0.0f, g.C, g.ldc);
}

template <class W>
void fuse_cosine_grad(const CosineGradProblem& p) {
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < p.n; ++i)
    detail::cosine_grad_row<W>(p, i);
}

void fuse_fourier_grad(const FourierGradProblem& p) {
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < p.n; ++i)
    for (std::int64_t c = 0; c < p.r; ++c)
      p.grad[i * 2 * p.r + c] = detail::fourier_grad_entry(p, i, c);
}

template <class W>
void kron_fuse_grad(const KronGradProblem& p) {
  const std::int64_t w = p.in[p.skip].width;
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < p.n; ++i)
    for (std::int64_t k = 0; k < w; ++k)
      static_cast<W*>(p.out)[i * p.ldo + k] = detail::kron_grad_entry<W>(p, i, k);
}

template void fuse_cosine_grad<float>(const CosineGradProblem&);
template void fuse_cosine_grad<double>(const CosineGradProblem&);
template void kron_fuse_grad<float>(const KronGradProblem&);
template void kron_fuse_grad<double>(const KronGradProblem&);

}  // namespace kfuse::cpu
