/* kfuse C API: the contrastive loss family, CLIP InfoNCE and SigLIP (see
 * include/kfuse/contrastive.hpp for the mathematics, costs and memory). Included
 * by kfuse/kfuse.h.
 *
 * A and B share one dtype: KFUSE_F32, KFUSE_BF16 or KFUSE_F16. labels: NULL
 * (row i pairs with row i) or a KFUSE_I64 vector. Losses, log-sum-exps, dt and db
 * are KFUSE_F32 vectors. dA and dB have A's dtype or KFUSE_F32 (both the same).
 * Every optional argument is a NULL pointer when absent. */
#ifndef KFUSE_KFUSE_CONTRASTIVE_H
#define KFUSE_KFUSE_CONTRASTIVE_H

#include <stddef.h>

#include "kfuse/kfuse.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kfuse_clip_direction {
  KFUSE_CLIP_BOTH = 0,   /* the symmetric loss, Na == Nb */
  KFUSE_CLIP_A_TO_B = 1, /* rows of A against all of B */
  KFUSE_CLIP_B_TO_A = 2  /* rows of B against all of A */
} kfuse_clip_direction_t;

typedef enum kfuse_contrastive_pass {
  KFUSE_PASS_FORWARD = 0,
  KFUSE_PASS_BACKWARD = 1,
  KFUSE_PASS_FORWARD_BACKWARD = 2
} kfuse_contrastive_pass_t;

/* A scalar input: `value`, or, when in_memory.data is not NULL, one KFUSE_F32 in
 * the context's memory (read when the call runs; no synchronisation). */
typedef struct kfuse_loss_scalar {
  double value;
  kfuse_vector_t in_memory;
} kfuse_loss_scalar_t;

typedef struct kfuse_clip_options {
  kfuse_clip_direction_t direction;
  kfuse_loss_scalar_t logit_scale; /* t: S = exp(t) A B^T + b; host t in [-87, 11.09] */
  kfuse_loss_scalar_t bias;        /* b; host |b| <= 65536 */
  double label_smoothing;          /* in [0, 1) */
  kfuse_precision_t precision;
  int deterministic;       /* nonzero (default): bitwise reproducible */
  int check_device_labels; /* nonzero (default): device labels are checked on the host */
  void* workspace;         /* NULL: taken from the context's allocator */
  size_t workspace_bytes;
} kfuse_clip_options_t;

typedef struct kfuse_siglip_options {
  kfuse_loss_scalar_t logit_scale; /* default log 10; host t in [-87, 11.09] */
  kfuse_loss_scalar_t bias;        /* default -10; host |b| <= 65536 */
  kfuse_precision_t precision;
  int deterministic;
  int check_device_labels;
  void* workspace;
  size_t workspace_bytes;
} kfuse_siglip_options_t;

/* The forward's outputs: loss [1] required; the others NULL or present per the
 * direction (rows for BOTH and A_TO_B, columns for BOTH and B_TO_A). */
typedef struct kfuse_clip_outputs {
  const kfuse_vector_t* loss;
  const kfuse_vector_t* row_losses; /* [Na] */
  const kfuse_vector_t* col_losses; /* [Nb] */
  const kfuse_vector_t* lse_rows;   /* [Na] */
  const kfuse_vector_t* lse_cols;   /* [Nb] */
} kfuse_clip_outputs_t;

/* Gradients; each NULL when not wanted (then it is not computed). */
typedef struct kfuse_contrastive_grads {
  const kfuse_matrix_t* dA; /* [Na x d] */
  const kfuse_matrix_t* dB; /* [Nb x d] */
  const kfuse_vector_t* dt; /* [1] */
  const kfuse_vector_t* db; /* [1] */
} kfuse_contrastive_grads_t;

/* Defaults: direction BOTH, t = 0, b = 0, no smoothing, exact precision,
 * deterministic, device labels checked; SigLIP: t = log 10, b = -10. */
kfuse_clip_options_t kfuse_clip_options_default(void);
kfuse_siglip_options_t kfuse_siglip_options_default(void);
kfuse_loss_scalar_t kfuse_loss_scalar(double value);

kfuse_status_t kfuse_clip_loss_forward(kfuse_context_t ctx, const kfuse_matrix_t* A,
                                       const kfuse_matrix_t* B, const kfuse_vector_t* labels,
                                       const kfuse_clip_outputs_t* out,
                                       const kfuse_clip_options_t* options);
/* lse_rows/lse_cols: the forward's saved statistics; grad_loss NULL means 1. */
kfuse_status_t kfuse_clip_loss_backward(kfuse_context_t ctx, const kfuse_matrix_t* A,
                                        const kfuse_matrix_t* B, const kfuse_vector_t* labels,
                                        const kfuse_vector_t* lse_rows,
                                        const kfuse_vector_t* lse_cols,
                                        const kfuse_loss_scalar_t* grad_loss,
                                        const kfuse_contrastive_grads_t* grads,
                                        const kfuse_clip_options_t* options);
kfuse_status_t kfuse_clip_loss_forward_backward(kfuse_context_t ctx, const kfuse_matrix_t* A,
                                                const kfuse_matrix_t* B,
                                                const kfuse_vector_t* labels,
                                                const kfuse_clip_outputs_t* out,
                                                const kfuse_loss_scalar_t* grad_loss,
                                                const kfuse_contrastive_grads_t* grads,
                                                const kfuse_clip_options_t* options);
kfuse_status_t kfuse_clip_loss_workspace_bytes(kfuse_context_t ctx, int64_t Na, int64_t Nb,
                                               int64_t d, kfuse_contrastive_pass_t pass,
                                               const kfuse_clip_options_t* options, size_t* bytes);

/* loss [1] required, row_losses [Na] optional. */
kfuse_status_t kfuse_siglip_loss_forward(kfuse_context_t ctx, const kfuse_matrix_t* A,
                                         const kfuse_matrix_t* B, const kfuse_vector_t* labels,
                                         const kfuse_vector_t* loss,
                                         const kfuse_vector_t* row_losses,
                                         const kfuse_siglip_options_t* options);
kfuse_status_t kfuse_siglip_loss_backward(kfuse_context_t ctx, const kfuse_matrix_t* A,
                                          const kfuse_matrix_t* B, const kfuse_vector_t* labels,
                                          const kfuse_loss_scalar_t* grad_loss,
                                          const kfuse_contrastive_grads_t* grads,
                                          const kfuse_siglip_options_t* options);
kfuse_status_t kfuse_siglip_loss_forward_backward(
    kfuse_context_t ctx, const kfuse_matrix_t* A, const kfuse_matrix_t* B,
    const kfuse_vector_t* labels, const kfuse_vector_t* loss, const kfuse_vector_t* row_losses,
    const kfuse_loss_scalar_t* grad_loss, const kfuse_contrastive_grads_t* grads,
    const kfuse_siglip_options_t* options);
kfuse_status_t kfuse_siglip_loss_workspace_bytes(kfuse_context_t ctx, int64_t Na, int64_t Nb,
                                                 int64_t d, kfuse_contrastive_pass_t pass,
                                                 const kfuse_siglip_options_t* options,
                                                 size_t* bytes);

#ifdef __cplusplus
}
#endif

#endif /* KFUSE_KFUSE_CONTRASTIVE_H */
