// What the backends of the fusion family compute, described once for the CPU path
// and the CUDA kernels (internal). The host layer (src/fuse/api.cpp) validates the
// arguments and builds these; the backends trust them.
#pragma once

#include <cstdint>

#include "kernels/fuse/math.hpp"
#include "kfuse/view.hpp"

namespace kfuse::detail {

constexpr int kFuseMaxOperands = 4;

// out [rows x cols] (leading dimension ld) entry (r, c) = random_entry(seed,
// stream, r, c, distribution).
struct RandomMatrix {
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;
  int distribution = kDrawUniform;
  std::int64_t rows = 0, cols = 0, ld = 0;
};

// Row i of out = (v_0 (x) v_1 (x) ...)(i), v_j = the mapped row i of operand j;
// W (float or double, out_dtype) is the working type.
struct KronProblem {
  FuseOperand in[kFuseMaxOperands];
  int count = 0;
  std::int64_t n = 0;
  std::int64_t width = 0;  // prod_j in[j].width, < 2^31
  void* out = nullptr;
  DType out_dtype = DType::F32;
  std::int64_t ldo = 0;
};

// Projections of the mapped rows onto random weight matrices, fp32. Weight j is
// the [width_j x l] matrix drawn as `weight[j]` describes (its rows and cols are
// width_j and l); each backend draws it in the layout it reads best (the entries
// are a pure function of their position).
//   Product: f_j = (v_j . weight_j[:, c]) * factor_scale     (an fma chain in k)
//            out[i][c] = (f_0 f_1 ...) * final_scale         (products left to right)
//            A factor whose factor_row is set is factor_row[c] * factor_scale
//            instead (a projection that is the same for every row, precomputed).
//   Fourier: a = chain over the operands in order, then over k, of v_jk weight_j[k][c];
//            out[i][c] = amplitude cos a, out[i][l + c] = amplitude sin a.
enum class ProjectionKind : int { Product = 0, Fourier = 1 };

struct ProjectionProblem {
  FuseOperand in[kFuseMaxOperands];
  RandomMatrix weight[kFuseMaxOperands];
  const float* factor_row[kFuseMaxOperands] = {};
  int count = 0;
  std::int64_t n = 0, l = 0;
  ProjectionKind kind = ProjectionKind::Product;
  float factor_scale = 1.0f, final_scale = 1.0f;  // Product
  float amplitude = 1.0f;                         // Fourier
  float* out = nullptr;
  std::int64_t ldo = 0;
};

// One factor of a Product projection for row i, column c (the chain the CPU path
// and the exact GPU kernel both compute, k in increasing order).
KFUSE_HDI float projection_combine(const ProjectionProblem& p, int j, float acc, float prod) {
  const float factor = mul_rn(acc, p.factor_scale);
  return j == 0 ? factor : mul_rn(prod, factor);
}

// ------------------------------------------------------------------ backwards

// rp_fuse_backward's gradient with respect to factor `skip` of a Product
// projection whose factors F_k = (v_k . U_k[:, c]) * factor_scale the host layer has
// computed ([n x l] each, leading dimension l):
//   out[i][c] = (scale * dz[i][c]) * prod_{k != skip} F_k[i][c]   (left to right)
struct FactorGradProblem {
  const float* factor[kFuseMaxOperands] = {};
  int count = 0;
  int skip = 0;
  std::int64_t n = 0, l = 0;
  const float* dz = nullptr;
  std::int64_t ldz = 0;
  float scale = 1.0f;
  float* out = nullptr;  // [n x l], leading dimension l
};

// C [m x n] (ldc) = alpha * A [m x k] (lda) * B^T, B stored [n x k] (ldb); fp32.
struct GradGemm {
  std::int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f;
  const float* A = nullptr;
  std::int64_t lda = 0;
  const float* B = nullptr;
  std::int64_t ldb = 0;
  float* C = nullptr;
  std::int64_t ldc = 0;
};

// In place through a cosine side: grad row i, the gradient with respect to the
// mapped row v = x inv (inv = in.row_scale[i], as the forward computed it), becomes
// the gradient with respect to x:
//   t = sum_k g_k v_k (fma chain),  g_k <- (g_k - t v_k) inv
// (inv = 0, a row the forward maps to zero, gives a zero gradient). W: the working
// type of the row scales and of grad.
struct CosineGradProblem {
  FuseOperand in;  // the raw input, row_scale set
  std::int64_t n = 0;
  void* grad = nullptr;  // [n x in.d] of W
  std::int64_t ldg = 0;
};

// Through an Rbf side's random Fourier features F = [cos a ; sin a] amplitude ([n x
// 2r], leading dimension 2r): in grad [n x 2r] (leading dimension 2r, the gradient
// with respect to F), columns c < r become
//   h[i][c] = grad[i][r + c] F[i][c] - grad[i][c] F[i][r + c]
// (the gradient with respect to the argument a_c); a GradGemm with the frequencies
// then gives the input's gradient.
struct FourierGradProblem {
  const float* features = nullptr;
  float* grad = nullptr;
  std::int64_t n = 0, r = 0;
};

// kron_fuse_backward's gradient with respect to mapped operand `skip`:
//   out[i][k] = sum over the fused columns p whose slot-skip index is k (in
//               increasing p) of dz[i][p] * prod_{m != skip} v_m[idx_m(p)]
// W (float or double, the type of dz and out) is the working type.
struct KronGradProblem {
  FuseOperand in[kFuseMaxOperands];
  int count = 0;
  int skip = 0;
  std::int64_t n = 0;
  std::int64_t width = 0;  // prod_j in[j].width
  const void* dz = nullptr;
  std::int64_t ldz = 0;
  void* out = nullptr;  // [n x in[skip].width]
  std::int64_t ldo = 0;
};

// One entry of a KronGradProblem (the chain both backends compute).
template <class W>
KFUSE_HDI W kron_grad_entry(const KronGradProblem& p, std::int64_t i, std::int64_t k) {
  const std::int64_t wj = p.in[p.skip].width;
  const std::int64_t others = p.width / wj;
  // Strides of the slots in a fused column (slot 0 most significant).
  std::int64_t stride[kFuseMaxOperands];
  std::int64_t s = 1;
  for (int m = p.count - 1; m >= 0; --m) {
    stride[m] = s;
    s *= p.in[m].width;
  }
  const W* dz = static_cast<const W*>(p.dz) + i * p.ldz;
  W sum = W(0);
  for (std::int64_t q = 0; q < others; ++q) {
    // q enumerates the other slots' indices, the last slot fastest.
    std::int64_t rest = q;
    std::int64_t col = k * stride[p.skip];
    W prod = W(1);
    for (int m = p.count - 1; m >= 0; --m) {
      if (m == p.skip) continue;
      const std::int64_t idx = rest % p.in[m].width;
      rest /= p.in[m].width;
      col += idx * stride[m];
      prod = mul_rn(prod, operand_value<W>(p.in[m], i, idx));
    }
    sum = fma_rn(dz[col], prod, sum);
  }
  return sum;
}

// One row of a CosineGradProblem, in place.
template <class W>
KFUSE_HDI void cosine_grad_row(const CosineGradProblem& p, std::int64_t i) {
  const W inv = static_cast<const W*>(p.in.row_scale)[i];
  W* g = static_cast<W*>(p.grad) + i * p.ldg;
  if (!(inv > W(0))) {  // not x * 0: a NaN or an inf in x would give NaN
    for (std::int64_t k = 0; k < p.in.d; ++k)
      g[k] = W(0);
    return;
  }
  W t = W(0);
  for (std::int64_t k = 0; k < p.in.d; ++k)
    t = fma_rn(g[k], operand_value<W>(p.in, i, k), t);
  for (std::int64_t k = 0; k < p.in.d; ++k)
    g[k] = mul_rn(fma_rn(-t, operand_value<W>(p.in, i, k), g[k]), inv);
}

// Entry (i, c < r) of a FourierGradProblem: returns h, which the caller stores at
// grad[i][c].
KFUSE_HDI float fourier_grad_entry(const FourierGradProblem& p, std::int64_t i, std::int64_t c) {
  const float* f = p.features + i * 2 * p.r;
  const float* g = p.grad + i * 2 * p.r;
  return fma_rn(g[p.r + c], f[c], -mul_rn(g[c], f[p.r + c]));
}

// Entry (i, c) of a FactorGradProblem.
KFUSE_HDI float factor_grad_entry(const FactorGradProblem& p, std::int64_t i, std::int64_t c) {
  float v = mul_rn(p.scale, p.dz[i * p.ldz + c]);
  for (int k = 0; k < p.count; ++k)
    if (k != p.skip) v = mul_rn(v, p.factor[k][i * p.l + c]);
  return v;
}

// TensorSketch of two operands into out [n x l] (see fuse.hpp).
struct SketchProblem {
  FuseOperand in[2];
  std::int64_t n = 0, l = 0;
  std::uint64_t seed = 0;
  float* out = nullptr;
  std::int64_t ldo = 0;
};

// product_kernel_topk. Side s reads queries q[s] and gallery g[s] (Identity
// operands of d_s columns); a Cosine side's inverse norms are q_inv / g_inv.
struct TopkSide {
  FuseOperand q, g;
  PairKernel kind = PairKernel::Dot;
  float rbf_c = 0.0f;  // log2(e) / (2 sigma^2), clamped to the largest float
  const float* q_inv = nullptr;
  const float* g_inv = nullptr;
};

struct TopkProblem {
  TopkSide side[2];
  std::int64_t m = 0, n = 0;
  int k = 0;
  float C = 0.0f;
  std::int64_t* indices = nullptr;
  std::int64_t ldi = 0;
  float* scores = nullptr;
  std::int64_t lds = 0;
};

// The score of query i against gallery j given the two sides' chains.
KFUSE_HDI float topk_score(const TopkProblem& p, float acc0, float acc1, std::int64_t i,
                           std::int64_t j) {
  const TopkSide& a = p.side[0];
  const TopkSide& b = p.side[1];
  const float k0 =
      pair_value(a.kind, acc0, a.q_inv ? a.q_inv[i] : 1.0f, a.g_inv ? a.g_inv[j] : 1.0f, a.rbf_c);
  const float k1 =
      pair_value(b.kind, acc1, b.q_inv ? b.q_inv[i] : 1.0f, b.g_inv ? b.g_inv[j] : 1.0f, b.rbf_c);
  return product_score(k0, k1, p.C);
}

}  // namespace kfuse::detail
