/* kfuse C API: the fusion family (see include/kfuse/fuse.hpp for the mathematics).
 * Included by kfuse/kfuse.h.
 *
 * Inputs are KFUSE_F32, KFUSE_BF16 or KFUSE_F16 (KFUSE_F64 too for the Kronecker
 * functions), all inputs of one call of one dtype; outputs are KFUSE_F32 (KFUSE_F64
 * for fp64 Kronecker rows), indices KFUSE_I64. */
#ifndef KFUSE_KFUSE_FUSE_H
#define KFUSE_KFUSE_FUSE_H

#include "kfuse/kfuse.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KFUSE_MAX_FUSE_INPUTS 4

typedef enum kfuse_side_kernel {
  KFUSE_SIDE_LINEAR = 0,
  KFUSE_SIDE_COSINE = 1,
  KFUSE_SIDE_RBF = 2
} kfuse_side_kernel_t;

/* One input's kernel: sigma for RBF, rff_features (r >= 1) for an RBF side of a
 * feature-map function (its map is 2r wide). */
typedef struct kfuse_fuse_side {
  kfuse_side_kernel_t kernel;
  double sigma;
  int64_t rff_features;
} kfuse_fuse_side_t;

typedef enum kfuse_rp_distribution {
  KFUSE_RP_UNIFORM = 0, /* Uniform[-sqrt 3, sqrt 3] */
  KFUSE_RP_GAUSSIAN = 1,
  KFUSE_RP_RADEMACHER = 2
} kfuse_rp_distribution_t;

typedef enum kfuse_rp_scaling {
  KFUSE_RP_UNBIASED = 0,      /* Z = (1/sqrt l) (A U1) o (B U2) ... */
  KFUSE_RP_AUTHORS_COMPAT = 1 /* each factor / sqrt l, as the authors' code */
} kfuse_rp_scaling_t;

typedef enum kfuse_modality { KFUSE_MODALITY_IMAGE = 0, KFUSE_MODALITY_TEXT = 1 } kfuse_modality_t;

typedef struct kfuse_kron_fuse_options {
  int side_count; /* 0: every input linear; else the number of inputs */
  kfuse_fuse_side_t sides[KFUSE_MAX_FUSE_INPUTS];
  uint64_t seed;
} kfuse_kron_fuse_options_t;

typedef struct kfuse_rp_fuse_options {
  int side_count; /* 0: every input linear; else the number of inputs */
  kfuse_fuse_side_t sides[KFUSE_MAX_FUSE_INPUTS];
  uint64_t seed;
  kfuse_rp_distribution_t distribution;
  kfuse_rp_scaling_t scaling;
  kfuse_precision_t precision;
} kfuse_rp_fuse_options_t;

typedef struct kfuse_cross_modal_options {
  double C;
  int64_t image_dim;
  int64_t text_dim;
  kfuse_fuse_side_t shared;
  kfuse_fuse_side_t image_expert;
  kfuse_fuse_side_t text_expert;
  uint64_t seed;
  kfuse_rp_distribution_t distribution;
  kfuse_rp_scaling_t scaling;
  kfuse_precision_t precision;
} kfuse_cross_modal_options_t;

typedef struct kfuse_rff_options {
  int sigma_count; /* the number of inputs */
  double sigmas[KFUSE_MAX_FUSE_INPUTS];
  uint64_t seed;
} kfuse_rff_options_t;

typedef struct kfuse_tensor_sketch_options {
  kfuse_fuse_side_t side_a;
  kfuse_fuse_side_t side_b;
  uint64_t seed;
} kfuse_tensor_sketch_options_t;

typedef struct kfuse_product_topk_options {
  kfuse_fuse_side_t side1;
  kfuse_fuse_side_t side2;
  double C;
  kfuse_precision_t precision;
} kfuse_product_topk_options_t;

/* Defaults: linear sides (sigma 1), seed 0, uniform draws, unbiased scaling, exact
 * precision, C = 1 (cross-modal) or 0 (top-k), no dims and no sigmas. */
kfuse_fuse_side_t kfuse_fuse_side_default(void);
kfuse_kron_fuse_options_t kfuse_kron_fuse_options_default(void);
kfuse_rp_fuse_options_t kfuse_rp_fuse_options_default(void);
kfuse_cross_modal_options_t kfuse_cross_modal_options_default(void);
kfuse_rff_options_t kfuse_rff_options_default(void);
kfuse_tensor_sketch_options_t kfuse_tensor_sketch_options_default(void);
kfuse_product_topk_options_t kfuse_product_topk_options_default(void);

/* out [n x w0 w1 ...] = the Kronecker product of the count inputs' feature maps */
kfuse_status_t kfuse_kron_fuse(kfuse_context_t ctx, const kfuse_matrix_t* inputs, int count,
                               const kfuse_matrix_t* out, const kfuse_kron_fuse_options_t* options);
/* out [n x l] = RP-KrossFuse of the count inputs */
kfuse_status_t kfuse_rp_fuse(kfuse_context_t ctx, const kfuse_matrix_t* inputs, int count,
                             const kfuse_matrix_t* out, const kfuse_rp_fuse_options_t* options);
/* The gradients of kfuse_kron_fuse / kfuse_rp_fuse with respect to their inputs:
 * grad_out as the forward's out (dL/dout), grads[j] (count of them, input j's shape)
 * = dL/d inputs[j], KFUSE_F32 (KFUSE_F64 for fp64 Kronecker inputs; bf16 and fp16
 * inputs get KFUSE_F32 gradients) */
kfuse_status_t kfuse_kron_fuse_backward(kfuse_context_t ctx, const kfuse_matrix_t* inputs,
                                        int count, const kfuse_matrix_t* grad_out,
                                        const kfuse_matrix_t* grads,
                                        const kfuse_kron_fuse_options_t* options);
kfuse_status_t kfuse_rp_fuse_backward(kfuse_context_t ctx, const kfuse_matrix_t* inputs, int count,
                                      const kfuse_matrix_t* grad_out, const kfuse_matrix_t* grads,
                                      const kfuse_rp_fuse_options_t* options);
/* out [rows x l] = U_input as kfuse_rp_fuse draws it */
kfuse_status_t kfuse_rp_projection_matrix(kfuse_context_t ctx, int input, const kfuse_matrix_t* out,
                                          const kfuse_rp_fuse_options_t* options);
/* The width of an exact cross-modal row for a shared embedding of shared_dim columns;
 * 0 when options is NULL or names an unknown side kernel (kfuse_last_error says which). */
int64_t kfuse_cross_modal_width(const kfuse_cross_modal_options_t* options, int64_t shared_dim);
kfuse_status_t kfuse_cross_modal_kron(kfuse_context_t ctx, kfuse_modality_t modality,
                                      const kfuse_matrix_t* shared, const kfuse_matrix_t* expert,
                                      const kfuse_matrix_t* out,
                                      const kfuse_cross_modal_options_t* options);
kfuse_status_t kfuse_cross_modal_rp(kfuse_context_t ctx, kfuse_modality_t modality,
                                    const kfuse_matrix_t* shared, const kfuse_matrix_t* expert,
                                    const kfuse_matrix_t* out,
                                    const kfuse_cross_modal_options_t* options);
/* out [n x 2r] = random Fourier features of the product of the inputs' RBF kernels */
kfuse_status_t kfuse_rff_fuse(kfuse_context_t ctx, const kfuse_matrix_t* inputs, int count,
                              const kfuse_matrix_t* out, const kfuse_rff_options_t* options);
/* out [n x l] = TensorSketch of a (x) b */
kfuse_status_t kfuse_tensor_sketch(kfuse_context_t ctx, const kfuse_matrix_t* A,
                                   const kfuse_matrix_t* B, const kfuse_matrix_t* out,
                                   const kfuse_tensor_sketch_options_t* options);
/* indices [M x k] (KFUSE_I64), scores [M x k] (KFUSE_F32): the top k gallery rows
 * per query under k1 (C + k2) */
kfuse_status_t kfuse_product_kernel_topk(kfuse_context_t ctx, const kfuse_matrix_t* Q1,
                                         const kfuse_matrix_t* Q2, const kfuse_matrix_t* G1,
                                         const kfuse_matrix_t* G2, const kfuse_matrix_t* indices,
                                         const kfuse_matrix_t* scores,
                                         const kfuse_product_topk_options_t* options);

#ifdef __cplusplus
}
#endif

#endif /* KFUSE_KFUSE_FUSE_H */
