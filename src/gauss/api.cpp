// The Gaussian kernel family's host layer: validate every argument, describe the
// computation as a GaussProblem plus an epilogue, and hand it to the backend.
#include "kfuse/gauss.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/gauss/launch.hpp"
#include "kernels/gauss/problem.hpp"
#include "src/core/backend.hpp"
#include "src/core/checked.hpp"
#include "src/core/reduce.hpp"
#include "src/core/scratch.hpp"
#include "src/core/validate.hpp"
#include "src/gauss/cpu.hpp"

namespace kfuse {
namespace {

using detail::GaussEpilogue;
using detail::GaussEpilogueKind;
using detail::GaussProblem;
using detail::Validator;

template <class T>
void run(Context& ctx, const GaussProblem<T>& p, const GaussEpilogue<T>& e, Precision precision) {
  return KFUSE_DISPATCH(ctx, cuda::gauss_sum(ctx, p, e, precision), cpu::gauss_sum(p, e));
}

// X [M x d] and Y [N x d] with d >= 1.
template <class T>
void check_points(const Validator& v, const char* x_name, const MatrixView<const T>& X,
                  const MatrixView<const T>& Y) {
  v.matrix(x_name, X);
  v.matrix("Y", Y);
  v.at_least(x_name, "cols (the dimension d)", 1, X.cols);
  v.extent("Y", "cols (the dimension d of X)", X.cols, Y.cols);
}

// Optional weights [N]: absent, or N values. Host weights must be finite, >= 0,
// with a positive sum; returns that sum (0 when absent or on the device).
template <class T>
double check_weights(const Validator& v, const VectorView<const T>& w, std::int64_t n) {
  if (w.absent()) return 0.0;
  v.vector("weights", w);
  v.extent("weights", "size (the rows of Y)", n, w.size);
  if (w.memory != Memory::Host) return 0.0;
  double total = 0.0;
  for (std::int64_t j = 0; j < w.size; ++j) {
    const double wj = static_cast<double>(w.data[j]);
    if (!(std::isfinite(wj) && wj >= 0.0))
      v.fail(Status::InvalidArgument, "weights",
             "expected finite values >= 0, got weights[" + std::to_string(j) +
                 "] = " + std::to_string(wj));
    total += wj;
  }
  if (!(total > 0.0)) v.fail(Status::InvalidArgument, "weights", "expected a positive sum, got 0");
  return total;
}

template <class T>
GaussProblem<T> points_problem(const MatrixView<const T>& X, const MatrixView<const T>& Y,
                               double sigma) {
  GaussProblem<T> p;
  p.x = X.data;
  p.ldx = X.ld;
  p.y = Y.data;
  p.ldy = Y.ld;
  p.m = X.rows;
  p.n = Y.rows;
  p.d = X.cols;
  p.sigma = sigma;
  return p;
}

template <class T>
void matvec_impl(Context& ctx, MatrixView<const T> X, MatrixView<const T> Y, MatrixView<const T> V,
                 MatrixView<T> out, const GaussMatvecOptions& o) {
  const Validator v("gauss_matvec", ctx);
  check_points(v, "X", X, Y);
  v.matrix("V", V);
  v.matrix("out", out);
  v.extent("V", "rows (the rows of Y)", Y.rows, V.rows);
  v.at_least("V", "cols (R)", 1, V.cols);
  v.extent("out", "rows (the rows of X)", X.rows, out.rows);
  v.extent("out", "cols (the cols of V)", V.cols, out.cols);
  v.positive_finite("sigma", o.sigma);
  v.finite("alpha", o.alpha);
  v.finite("beta", o.beta);
  v.precision(o.precision);
  v.disjoint("out", out, "X", X);
  v.disjoint("out", out, "Y", Y);
  v.disjoint("out", out, "V", V);

  GaussProblem<T> p = points_problem(X, Y, o.sigma);
  p.v = V.data;
  p.ldv = V.ld;
  p.r = V.cols;
  GaussEpilogue<T> e;
  e.kind = GaussEpilogueKind::Matvec;
  e.out = out.data;
  e.ldo = out.ld;
  e.alpha = o.alpha;
  e.beta = o.beta;
  run(ctx, p, e, o.precision);
}

template <class T>
void kde_impl(Context& ctx, MatrixView<const T> Q, MatrixView<const T> Y, VectorView<const T> w,
              VectorView<T> out, const KdeOptions& o) {
  const Validator v("kde", ctx);
  check_points(v, "queries", Q, Y);
  v.at_least("Y", "rows (the sample size N)", 1, Y.rows);
  v.vector("out", out);
  v.extent("out", "size (the rows of queries)", Q.rows, out.size);
  v.positive_finite("sigma", o.sigma);
  v.precision(o.precision);
  const double host_total = check_weights(v, w, Y.rows);
  v.disjoint("out", out, "queries", Q);
  v.disjoint("out", out, "Y", Y);
  if (!w.absent()) v.disjoint("out", out, "weights", w);

  GaussProblem<T> p = points_problem(Q, Y, o.sigma);
  p.w = w.data;
  p.w_stride = 1;
  p.stabilised = true;
  GaussEpilogue<T> e;
  e.kind = GaussEpilogueKind::Kde;
  e.out = out.data;
  e.log = o.log;
  // log N(q; y, s^2 I) = -|q - y|^2 / (2 s^2) - (d / 2) log(2 pi) - d log s, with
  // log s taken alone: s^2 over- or underflows for s beyond 1e+-154.
  const double d = static_cast<double>(Q.cols);
  e.log_norm = -0.5 * d * std::log(2.0 * M_PI) - d * std::log(o.sigma);
  if (w.absent()) {
    e.log_norm -= std::log(static_cast<double>(Y.rows));
    return run(ctx, p, e, o.precision);
  }
  if (w.memory == Memory::Host) {
    e.log_norm -= std::log(host_total);
    return run(ctx, p, e, o.precision);
  }
  // Device weights: their sum stays on the device (no host synchronisation).
  detail::Scratch total(ctx, sizeof(double));
  detail::sum_to_f64(ctx, w.data, w.size, 1, total.as<double>());
  e.weight_total = total.as<double>();
  run(ctx, p, e, o.precision);
}

template <class T>
void grad_impl(Context& ctx, MatrixView<const T> X, MatrixView<const T> Y, MatrixView<const T> V,
               MatrixView<const T> U, MatrixView<T> grad, const GaussGradOptions& o) {
  const Validator v("gauss_matvec_grad_x", ctx);
  check_points(v, "X", X, Y);
  v.matrix("V", V);
  v.matrix("U", U);
  v.matrix("grad", grad);
  v.extent("V", "rows (the rows of Y)", Y.rows, V.rows);
  v.at_least("V", "cols (R)", 1, V.cols);
  v.extent("U", "rows (the rows of X)", X.rows, U.rows);
  v.extent("U", "cols (the cols of V)", V.cols, U.cols);
  v.extent("grad", "rows (the rows of X)", X.rows, grad.rows);
  v.extent("grad", "cols (the cols of X)", X.cols, grad.cols);
  v.positive_finite("sigma", o.sigma);
  v.precision(o.precision);
  v.disjoint("grad", grad, "X", X);
  v.disjoint("grad", grad, "Y", Y);
  v.disjoint("grad", grad, "V", V);
  v.disjoint("grad", grad, "U", U);

  // grad_i = (1/s^2) sum_r u_ir [sum_j K_ij v_jr y_j - x_i sum_j K_ij v_jr]: per column
  // r of V, one plain sum with weights v_r and values Y.
  GaussProblem<T> p = points_problem(X, Y, o.sigma);
  p.v = Y.data;
  p.ldv = Y.ld;
  p.r = Y.cols;
  p.w_stride = V.ld;
  GaussEpilogue<T> e;
  e.kind = GaussEpilogueKind::Grad;
  e.out = grad.data;
  e.ldo = grad.ld;
  e.x = X.data;
  e.ldx = X.ld;
  e.u_stride = U.ld;
  // 1 / s^2 = q * (q / (s q)^2) with q the distance scale (kernels/gauss/math.hpp): the
  // epilogue scales (acc - x den) by q first, so that neither factor overflows
  // (1 / s^2 alone is inf for s = 1e-200, and inf * 0 = NaN where K underflows).
  // Clamped to T's range: beyond it only a zero (acc - x den) q stays finite.
  const double q = detail::gauss_distance_scale<T>(o.sigma), sq = o.sigma * q;
  const double tmax = static_cast<double>(std::numeric_limits<T>::max());
  e.grad_distance_scale = q;
  e.grad_scale = std::min(q / (sq * sq), tmax);
  for (std::int64_t r = 0; r < V.cols; ++r) {
    p.w = V.data + r;
    e.u = U.data + r;
    e.accumulate = r > 0;
    run(ctx, p, e, o.precision);
  }
  // N == 0 leaves the sum empty: each pass still writes (zeros on the first).
}

template <class T>
void mean_shift_impl(Context& ctx, MatrixView<const T> X, MatrixView<const T> Y,
                     VectorView<const T> w, MatrixView<T> out, const GaussGradOptions& o) {
  const Validator v("mean_shift_step", ctx);
  check_points(v, "X", X, Y);
  v.at_least("Y", "rows (the sample size N)", 1, Y.rows);
  v.matrix("out", out);
  v.extent("out", "rows (the rows of X)", X.rows, out.rows);
  v.extent("out", "cols (the cols of X)", X.cols, out.cols);
  v.positive_finite("sigma", o.sigma);
  v.precision(o.precision);
  check_weights(v, w, Y.rows);
  v.disjoint("out", out, "X", X);
  v.disjoint("out", out, "Y", Y);
  if (!w.absent()) v.disjoint("out", out, "weights", w);

  GaussProblem<T> p = points_problem(X, Y, o.sigma);
  p.v = Y.data;
  p.ldv = Y.ld;
  p.r = Y.cols;
  p.w = w.data;
  p.stabilised = true;
  GaussEpilogue<T> e;
  e.kind = GaussEpilogueKind::MeanShift;
  e.out = out.data;
  e.ldo = out.ld;
  // The sample, for a query whose terms all underflow (gauss_nearest_mean).
  e.x = X.data;
  e.ldx = X.ld;
  e.y = Y.data;
  e.ldy = Y.ld;
  e.n = Y.rows;
  e.d = Y.cols;
  e.w = w.data;
  e.w_stride = 1;
  run(ctx, p, e, o.precision);
}

template <class T>
void mmd2_impl(Context& ctx, MatrixView<const T> X, MatrixView<const T> Y, VectorView<T> out,
               const Mmd2Options& o) {
  const Validator v("mmd2", ctx);
  check_points(v, "X", X, Y);
  const std::int64_t min_rows = o.unbiased ? 2 : 1;
  v.at_least("X", o.unbiased ? "rows (unbiased MMD)" : "rows", min_rows, X.rows);
  v.at_least("Y", o.unbiased ? "rows (unbiased MMD)" : "rows", min_rows, Y.rows);
  v.vector("out", out);
  v.extent("out", "size", 1, out.size);
  v.positive_finite("sigma", o.sigma);
  v.precision(o.precision);
  v.disjoint("out", out, "X", X);
  v.disjoint("out", out, "Y", Y);

  const double m = static_cast<double>(X.rows), n = static_cast<double>(Y.rows);
  const double coeff[3] = {o.unbiased ? 1.0 / (m * (m - 1)) : 1.0 / (m * m),
                           o.unbiased ? 1.0 / (n * (n - 1)) : 1.0 / (n * n), -2.0 / (m * n)};
  // Three kernel sums as row sums, each reduced in double, then combined, all in
  // the context's memory space: no host synchronisation on a GPU.
  // d >= 1 bounds each view's rows by 2^63 / sizeof(T): the sum cannot overflow.
  detail::Scratch rows(ctx,
                       detail::workspace_bytes(detail::checked_add(2 * X.rows, Y.rows), sizeof(T)));
  detail::Scratch totals(ctx, 3 * sizeof(double));
  T* row_sums = rows.as<T>();
  struct Term {
    MatrixView<const T> a, b;
    bool self;
  };
  const Term terms[3] = {{X, X, true}, {Y, Y, true}, {X, Y, false}};
  std::int64_t offset = 0;
  for (int t = 0; t < 3; ++t) {
    GaussProblem<T> p = points_problem(terms[t].a, terms[t].b, o.sigma);
    p.skip_diagonal = terms[t].self && o.unbiased;
    GaussEpilogue<T> e;
    e.kind = GaussEpilogueKind::RowSum;
    e.out = row_sums + offset;
    run(ctx, p, e, o.precision);
    detail::sum_to_f64(ctx, row_sums + offset, terms[t].a.rows, 1, totals.as<double>() + t);
    offset += terms[t].a.rows;
  }
  detail::combine_f64(ctx, totals.as<double>(), coeff, 3, out.data);
}

}  // namespace

#define KFUSE_GAUSS_OVERLOADS(T)                                                              \
  void gauss_matvec(Context& ctx, MatrixView<const T> X, MatrixView<const T> Y,               \
                    MatrixView<const T> V, MatrixView<T> out, const GaussMatvecOptions& o) {  \
    matvec_impl<T>(ctx, X, Y, V, out, o);                                                     \
  }                                                                                           \
  void kde(Context& ctx, MatrixView<const T> Q, MatrixView<const T> Y, VectorView<const T> w, \
           VectorView<T> out, const KdeOptions& o) {                                          \
    kde_impl<T>(ctx, Q, Y, w, out, o);                                                        \
  }                                                                                           \
  void gauss_matvec_grad_x(Context& ctx, MatrixView<const T> X, MatrixView<const T> Y,        \
                           MatrixView<const T> V, MatrixView<const T> U, MatrixView<T> grad,  \
                           const GaussGradOptions& o) {                                       \
    grad_impl<T>(ctx, X, Y, V, U, grad, o);                                                   \
  }                                                                                           \
  void mean_shift_step(Context& ctx, MatrixView<const T> X, MatrixView<const T> Y,            \
                       VectorView<const T> w, MatrixView<T> out, const GaussGradOptions& o) { \
    mean_shift_impl<T>(ctx, X, Y, w, out, o);                                                 \
  }                                                                                           \
  void mmd2(Context& ctx, MatrixView<const T> X, MatrixView<const T> Y, VectorView<T> out,    \
            const Mmd2Options& o) {                                                           \
    mmd2_impl<T>(ctx, X, Y, out, o);                                                          \
  }

KFUSE_GAUSS_OVERLOADS(float)
KFUSE_GAUSS_OVERLOADS(double)

}  // namespace kfuse
