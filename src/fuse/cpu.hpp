// The CPU path of the fusion family (internal). Every function computes the same
// chains of exactly rounded operations as the CUDA kernels (see kernels/fuse/math.hpp).
#pragma once

#include <cstdint>

#include "kernels/fuse/problem.hpp"
#include "kfuse/precision.hpp"
#include "src/core/lru_cache.hpp"

namespace kfuse::cpu {

// out[i] = row_inv_norm<W>(op, i), i < n.
template <class W>
void fuse_inv_norms(const detail::FuseOperand& op, std::int64_t n, W* out);

void fuse_random_matrix(const detail::RandomMatrix& r, float* out);
// The same through the draw cache (null: drawn): r's [rows x cols] kept row-major (the
// TF32 / BF16 route's layout and key, so the two share entries), then copied into out
// (leading dimension r.ld).
void fuse_random_matrix(const detail::RandomMatrix& r, float* out, detail::LruCache* draw_cache);

// Entries (row, 4 quad0 .. 4 (quad0 + count) - 1) of the random matrix r (r.rows,
// r.cols and r.ld are not used): the values of detail::random_quad, computed eight
// Philox blocks at a time in vector lanes.
void random_row_quads(const detail::RandomMatrix& r, std::int64_t row, std::int64_t quad0,
                      std::int64_t count, float* out);

template <class W>
void kron_fuse(const detail::KronProblem& p);

// The exact chains (the result the GPU's exact kernel gives, bit for bit).
// draw_cache (the context's; may be null): where the drawn weights are looked up and
// kept, keyed by everything they depend on and the layout this path reads.
void fuse_projection(const detail::ProjectionProblem& p, detail::LruCache* draw_cache);
// Under a TF32 or BF16 permission a Product projection of at least
// kProjectionGemmMinRows rows goes through the BLAS (fp32 sgemm per operand, then the
// product): not bitwise reproducible. Exact, fewer rows, and Fourier projections take
// the chains above. Below that many rows the chains are faster (measured on 2 AVX2
// cores, d = 512 and 768, l = 3000: 8.8 against 9.6 ms at n = 128, the two equal
// from n = 512 on): the BLAS's parallel sgemm has too few rows to split, and the route
// stages and multiplies in separate passes.
constexpr std::int64_t kProjectionGemmMinRows = 512;
void fuse_projection(const detail::ProjectionProblem& p, Precision precision,
                     detail::LruCache* draw_cache);

void tensor_sketch(const detail::SketchProblem& p);
// Whether tensor_sketch convolves p's count sketches by FFT (else directly); a pure
// function of the widths and l, exposed for the tests.
bool sketch_uses_fft(const detail::SketchProblem& p);

void product_topk(const detail::TopkProblem& p);

// The backwards' pieces (src/fuse/cpu_backward.cpp; kernels/fuse/problem.hpp says what each
// computes).
void fuse_factor_grad(const detail::FactorGradProblem& p);
// Exact: cpu::gemm (fp32 products, double sums); TF32 / BF16: the BLAS's sgemm.
void fuse_grad_gemm(const detail::GradGemm& g, Precision precision);
template <class W>
void fuse_cosine_grad(const detail::CosineGradProblem& p);
void fuse_fourier_grad(const detail::FourierGradProblem& p);
template <class W>
void kron_fuse_grad(const detail::KronGradProblem& p);

}  // namespace kfuse::cpu
