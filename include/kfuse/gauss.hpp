// The Gaussian kernel family: K(x, y) = exp(-|x - y|^2 / (2 sigma^2)) between the
// rows of two point sets, used without ever storing the M x N matrix K.
//
// Every function takes float or double views (one overload each), validates all
// arguments before touching any output, and runs on the context's backend: on a
// Cuda context it is asynchronous on the context's stream. Extra memory is
// O((M + N) * d) at most (centred copies for the tensor-core path and the CPU's
// fp32 path at large d), never O(M * N).
//
// Accepted ranges and special values:
//   - sigma: any finite value > 0, in fp32 as in fp64. Differences x - y are taken
//     first (exact for near duplicates) and, for sigma outside [2^-32, 2^32], scaled
//     by a power of two near 1 / sigma before squaring, so that 1e30 or 1e-30 in fp32
//     (1e+-200 in fp64) give the same kernel values as sigma = 1 on scaled points.
//     Exception, the CPU's fp32 path for d >= 512: |a|^2 + |b|^2 - 2 a.b on points
//     centred at the mean of Y, kept only for pairs whose rigorous error bound is at
//     most 4 gamma_d |x - y|^2 (gamma_d ~ d 2^-24, the direct form's own worst case
//     is gamma_d |x - y|^2); every other pair (near duplicates among them) takes the
//     direct form. The same power-of-two scaling applies, to the distance.
//   - Coordinates: any finite values. Points whose squared distance overflows the
//     working type (in units of sigma) have K = 0; a coordinate difference that
//     itself overflows (|x - y| > FLT_MAX in fp32) counts as infinitely far.
//   - NaN in a query row (X, queries) makes that row's outputs NaN; NaN in a sample
//     row (Y), in V or in the weights makes every output that sums over it NaN.
//     Infinite coordinates are outside the accepted range (their results are
//     unspecified, but they never read or write out of bounds).
#pragma once

#include "kfuse/context.hpp"
#include "kfuse/precision.hpp"
#include "kfuse/view.hpp"

namespace kfuse {

struct GaussMatvecOptions {
  double sigma = 1.0;                      // bandwidth, finite and > 0
  double alpha = 1.0;                      // out = alpha * K(X, Y) V + beta * out
  double beta = 0.0;                       // beta == 0: out is not read (it may hold NaN)
  Precision precision = Precision::Exact;  // TF32/BF16: tensor cores for d >= 64 on a GPU
};

// out [M x R] = alpha * K(X, Y) V + beta * out, X [M x d], Y [N x d], V [N x R].
// d >= 1, R >= 1; M = 0 or N = 0 are allowed (N = 0 gives out = beta * out).
void gauss_matvec(Context& ctx, MatrixView<const float> X, MatrixView<const float> Y,
                  MatrixView<const float> V, MatrixView<float> out,
                  const GaussMatvecOptions& options);
void gauss_matvec(Context& ctx, MatrixView<const double> X, MatrixView<const double> Y,
                  MatrixView<const double> V, MatrixView<double> out,
                  const GaussMatvecOptions& options);

struct KdeOptions {
  double sigma = 1.0;
  bool log = true;  // true: log-density (stabilised, finite far from the data); false: density
  Precision precision = Precision::Exact;
};

// Density of each query under the Gaussian KDE of the sample Y:
//   p(q) = sum_j w_j N(q; y_j, sigma^2 I) / sum_j w_j,
// N the normalised d-dimensional Gaussian density. weights [N] are optional (an
// absent VectorView means all ones); they must be >= 0 with a positive sum (that
// check reads host weights only; device weights are trusted). The log form is a
// log-sum-exp over the sample, so a query far from every point gets its true
// (very negative) log-density rather than -inf (fp64: -5e39 for a query at 1e20
// with sigma = 1; in fp32 a log-density below the fp32 range is -inf). The
// normalisation is -(d/2) log(2 pi) - d log sigma, finite for every sigma.
// queries [M x d], Y [N x d] (N >= 1), out [M].
void kde(Context& ctx, MatrixView<const float> queries, MatrixView<const float> Y,
         VectorView<const float> weights, VectorView<float> out, const KdeOptions& options);
void kde(Context& ctx, MatrixView<const double> queries, MatrixView<const double> Y,
         VectorView<const double> weights, VectorView<double> out, const KdeOptions& options);

struct GaussGradOptions {
  double sigma = 1.0;
  Precision precision = Precision::Exact;
};

// grad [M x d] = d/dX <U, K(X, Y) V>, U [M x R], V [N x R]:
//   grad_i = (1 / sigma^2) sum_j K_ij <u_i, v_j> (y_j - x_i),
// with 1 / sigma^2 applied in two factors (finite for every sigma: sigma = 1e-200
// gives 0 where K underflows, not inf * 0).
void gauss_matvec_grad_x(Context& ctx, MatrixView<const float> X, MatrixView<const float> Y,
                         MatrixView<const float> V, MatrixView<const float> U,
                         MatrixView<float> grad, const GaussGradOptions& options);
void gauss_matvec_grad_x(Context& ctx, MatrixView<const double> X, MatrixView<const double> Y,
                         MatrixView<const double> V, MatrixView<const double> U,
                         MatrixView<double> grad, const GaussGradOptions& options);

// One mean-shift step towards the modes of the (weighted) KDE of Y:
//   out_i = x_i + sigma^2 * grad log p(x_i) = sum_j w_j K_ij y_j / sum_j w_j K_ij,
// the gradient above with U = 1 and V = w, normalised by the density. Evaluated
// in stabilised form, so a query far from every point still moves to its nearest
// points instead of dividing 0 by 0: to the weighted mean of the positive-weight
// points nearest to it, also when every squared distance overflows the working
// type (a query at 1e30 in fp32). Far out the exponents -|x - y|^2 / (2 sigma^2)
// are themselves large, and points (and log2 weights) whose exponents differ by
// less than their rounding (|s| 2^-24 in fp32, 2^-53 in fp64) are not told apart.
// weights as for kde. X, out [M x d] (out may not alias X; iterate with two buffers).
void mean_shift_step(Context& ctx, MatrixView<const float> X, MatrixView<const float> Y,
                     VectorView<const float> weights, MatrixView<float> out,
                     const GaussGradOptions& options);
void mean_shift_step(Context& ctx, MatrixView<const double> X, MatrixView<const double> Y,
                     VectorView<const double> weights, MatrixView<double> out,
                     const GaussGradOptions& options);

struct Mmd2Options {
  double sigma = 1.0;
  bool unbiased = false;  // true: U-statistic (diagonal terms excluded; needs >= 2 rows each)
  Precision precision = Precision::Exact;
};

// Squared maximum mean discrepancy between the samples X [m x d] and Y [n x d]:
//   biased:   mean K(X,X) + mean K(Y,Y) - 2 mean K(X,Y)
//   unbiased: the same with the i == j terms left out of the two self terms.
// The scalar is written to out[0] (out.size == 1) in the context's memory space.
void mmd2(Context& ctx, MatrixView<const float> X, MatrixView<const float> Y, VectorView<float> out,
          const Mmd2Options& options);
void mmd2(Context& ctx, MatrixView<const double> X, MatrixView<const double> Y,
          VectorView<double> out, const Mmd2Options& options);

}  // namespace kfuse
