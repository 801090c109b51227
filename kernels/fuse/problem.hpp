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
