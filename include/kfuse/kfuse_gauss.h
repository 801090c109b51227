/* kfuse C API: the Gaussian kernel family (see include/kfuse/gauss.hpp). Included
 * by kfuse/kfuse.h. */
#ifndef KFUSE_KFUSE_GAUSS_H
#define KFUSE_KFUSE_GAUSS_H

#include "kfuse/kfuse.h"

#ifdef __cplusplus
extern "C" {
#endif

/* All matrices and vectors of one call share one dtype, KFUSE_F32 or KFUSE_F64.
 * See include/kfuse/gauss.hpp for the mathematics of each function. */
typedef struct kfuse_gauss_matvec_options {
  double sigma;
  double alpha;
  double beta;
  kfuse_precision_t precision;
} kfuse_gauss_matvec_options_t;

typedef struct kfuse_kde_options {
  double sigma;
  int log; /* nonzero: log-density */
  kfuse_precision_t precision;
} kfuse_kde_options_t;

typedef struct kfuse_gauss_grad_options {
  double sigma;
  kfuse_precision_t precision;
} kfuse_gauss_grad_options_t;

typedef struct kfuse_mmd2_options {
  double sigma;
  int unbiased; /* nonzero: the U-statistic */
  kfuse_precision_t precision;
} kfuse_mmd2_options_t;

/* Defaults: sigma 1, alpha 1, beta 0, log 1, unbiased 0, exact precision. */
kfuse_gauss_matvec_options_t kfuse_gauss_matvec_options_default(void);
kfuse_kde_options_t kfuse_kde_options_default(void);
kfuse_gauss_grad_options_t kfuse_gauss_grad_options_default(void);
kfuse_mmd2_options_t kfuse_mmd2_options_default(void);

/* out [M x R] = alpha * K(X, Y) V + beta * out */
kfuse_status_t kfuse_gauss_matvec(kfuse_context_t ctx, const kfuse_matrix_t* X,
                                  const kfuse_matrix_t* Y, const kfuse_matrix_t* V,
                                  const kfuse_matrix_t* out,
                                  const kfuse_gauss_matvec_options_t* options);
/* out [M] = (log-)density of each query; weights may be NULL */
kfuse_status_t kfuse_kde(kfuse_context_t ctx, const kfuse_matrix_t* queries,
                         const kfuse_matrix_t* Y, const kfuse_vector_t* weights,
                         const kfuse_vector_t* out, const kfuse_kde_options_t* options);
/* grad [M x d] = d/dX <U, K(X, Y) V> */
kfuse_status_t kfuse_gauss_matvec_grad_x(kfuse_context_t ctx, const kfuse_matrix_t* X,
                                         const kfuse_matrix_t* Y, const kfuse_matrix_t* V,
                                         const kfuse_matrix_t* U, const kfuse_matrix_t* grad,
                                         const kfuse_gauss_grad_options_t* options);
/* out [M x d] = one mean-shift step of X towards the modes of the KDE of Y */
kfuse_status_t kfuse_mean_shift_step(kfuse_context_t ctx, const kfuse_matrix_t* X,
                                     const kfuse_matrix_t* Y, const kfuse_vector_t* weights,
                                     const kfuse_matrix_t* out,
                                     const kfuse_gauss_grad_options_t* options);
/* out [1] = MMD^2(X, Y) */
kfuse_status_t kfuse_mmd2(kfuse_context_t ctx, const kfuse_matrix_t* X, const kfuse_matrix_t* Y,
                          const kfuse_vector_t* out, const kfuse_mmd2_options_t* options);

#ifdef __cplusplus
}
#endif

#endif /* KFUSE_KFUSE_GAUSS_H */
