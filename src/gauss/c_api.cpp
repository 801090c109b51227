// The C API of the Gaussian kernel family.
#include "kfuse/kfuse_gauss.h"

#include "src/core/c_api_util.hpp"

using namespace kfuse::c_api;

extern "C" {

kfuse_gauss_matvec_options_t kfuse_gauss_matvec_options_default(void) {
  return {1.0, 1.0, 0.0, KFUSE_PRECISION_EXACT};
}
kfuse_kde_options_t kfuse_kde_options_default(void) {
  return {1.0, 1, KFUSE_PRECISION_EXACT};
}
kfuse_gauss_grad_options_t kfuse_gauss_grad_options_default(void) {
  return {1.0, KFUSE_PRECISION_EXACT};
}
kfuse_mmd2_options_t kfuse_mmd2_options_default(void) {
  return {1.0, 0, KFUSE_PRECISION_EXACT};
}

kfuse_status_t kfuse_gauss_matvec(kfuse_context_t ctx, const kfuse_matrix_t* X,
                                  const kfuse_matrix_t* Y, const kfuse_matrix_t* V,
                                  const kfuse_matrix_t* out,
                                  const kfuse_gauss_matvec_options_t* options) {
  static const char* op = "kfuse_gauss_matvec";
  return float_call(
      op, ctx, options, X, "X", [&](kfuse::Context& c, const auto& o, auto zero, kfuse_dtype_t dt) {
        using T = decltype(zero);
        kfuse::gauss_matvec(
            c, matrix<const T>(X, dt, op, "X"), matrix<const T>(Y, dt, op, "Y"),
            matrix<const T>(V, dt, op, "V"), matrix<T>(out, dt, op, "out"),
            kfuse::GaussMatvecOptions{o.sigma, o.alpha, o.beta, precision_of(o.precision, op)});
      });
}

kfuse_status_t kfuse_kde(kfuse_context_t ctx, const kfuse_matrix_t* queries,
                         const kfuse_matrix_t* Y, const kfuse_vector_t* weights,
                         const kfuse_vector_t* out, const kfuse_kde_options_t* options) {
  static const char* op = "kfuse_kde";
  return float_call(
      op, ctx, options, queries, "queries",
      [&](kfuse::Context& c, const auto& o, auto zero, kfuse_dtype_t dt) {
        using T = decltype(zero);
        kfuse::kde(c, matrix<const T>(queries, dt, op, "queries"), matrix<const T>(Y, dt, op, "Y"),
                   optional_vector<const T>(weights, dt, op, "weights"),
                   vector<T>(out, dt, op, "out"),
                   kfuse::KdeOptions{o.sigma, o.log != 0, precision_of(o.precision, op)});
      });
}

kfuse_status_t kfuse_gauss_matvec_grad_x(kfuse_context_t ctx, const kfuse_matrix_t* X,
                                         const kfuse_matrix_t* Y, const kfuse_matrix_t* V,
                                         const kfuse_matrix_t* U, const kfuse_matrix_t* grad,
                                         const kfuse_gauss_grad_options_t* options) {
  static const char* op = "kfuse_gauss_matvec_grad_x";
  return float_call(
      op, ctx, options, X, "X", [&](kfuse::Context& c, const auto& o, auto zero, kfuse_dtype_t dt) {
        using T = decltype(zero);
        kfuse::gauss_matvec_grad_x(c, matrix<const T>(X, dt, op, "X"),
                                   matrix<const T>(Y, dt, op, "Y"), matrix<const T>(V, dt, op, "V"),
                                   matrix<const T>(U, dt, op, "U"), matrix<T>(grad, dt, op, "grad"),
                                   kfuse::GaussGradOptions{o.sigma, precision_of(o.precision, op)});
      });
}

kfuse_status_t kfuse_mean_shift_step(kfuse_context_t ctx, const kfuse_matrix_t* X,
                                     const kfuse_matrix_t* Y, const kfuse_vector_t* weights,
                                     const kfuse_matrix_t* out,
                                     const kfuse_gauss_grad_options_t* options) {
  static const char* op = "kfuse_mean_shift_step";
  return float_call(
      op, ctx, options, X, "X", [&](kfuse::Context& c, const auto& o, auto zero, kfuse_dtype_t dt) {
        using T = decltype(zero);
        kfuse::mean_shift_step(c, matrix<const T>(X, dt, op, "X"), matrix<const T>(Y, dt, op, "Y"),
                               optional_vector<const T>(weights, dt, op, "weights"),
                               matrix<T>(out, dt, op, "out"),
                               kfuse::GaussGradOptions{o.sigma, precision_of(o.precision, op)});
      });
}

kfuse_status_t kfuse_mmd2(kfuse_context_t ctx, const kfuse_matrix_t* X, const kfuse_matrix_t* Y,
                          const kfuse_vector_t* out, const kfuse_mmd2_options_t* options) {
  static const char* op = "kfuse_mmd2";
  return float_call(
      op, ctx, options, X, "X", [&](kfuse::Context& c, const auto& o, auto zero, kfuse_dtype_t dt) {
        using T = decltype(zero);
        kfuse::mmd2(c, matrix<const T>(X, dt, op, "X"), matrix<const T>(Y, dt, op, "Y"),
                    vector<T>(out, dt, op, "out"),
                    kfuse::Mmd2Options{o.sigma, o.unbiased != 0, precision_of(o.precision, op)});
      });
}

}  // extern "C"
