/* kfuse C API: the mixture-of-experts family (see include/kfuse/moe.hpp for the
 * mathematics, the plan's guarantees and every shape). Included by kfuse/kfuse.h.
 *
 * Element matrices of one call share one dtype, KFUSE_F32 or KFUSE_BF16; router
 * logits are KFUSE_F32 or KFUSE_BF16; ids are KFUSE_I32; gates and their gradients
 * are always KFUSE_F32. */
#ifndef KFUSE_KFUSE_MOE_H
#define KFUSE_KFUSE_MOE_H

#include "kfuse/kfuse.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ router */
typedef enum kfuse_router_mode {
  KFUSE_ROUTER_SOFTMAX_TOPK = 0, /* softmax over all E, then the k largest */
  KFUSE_ROUTER_TOPK_SOFTMAX = 1  /* the k largest logits, then a softmax over them */
} kfuse_router_mode_t;

typedef struct kfuse_router_options {
  kfuse_router_mode_t mode;
  int renormalize; /* nonzero: SOFTMAX_TOPK gates divided by their sum */
} kfuse_router_options_t;

/* Defaults: SOFTMAX_TOPK, no renormalisation. */
kfuse_router_options_t kfuse_router_options_default(void);

/* logits [T x E] -> ids [T x k] (I32), gates [T x k] (F32). */
kfuse_status_t kfuse_moe_router_topk(kfuse_context_t ctx, const kfuse_matrix_t* logits,
                                     const kfuse_matrix_t* ids, const kfuse_matrix_t* gates,
                                     const kfuse_router_options_t* options);

/* ------------------------------------------------------------------ dispatch plan */
typedef struct kfuse_moe_plan_options {
  int64_t pad_to;       /* round each expert's rows up to a multiple (1: none) */
  int64_t capacity;     /* rows per expert at most (0: no limit); later slots dropped */
  int check_device_ids; /* nonzero: check device ids first (one host synchronisation) */
} kfuse_moe_plan_options_t;

/* Defaults: pad_to 1, capacity 0, check_device_ids 0. */
kfuse_moe_plan_options_t kfuse_moe_plan_options_default(void);

typedef struct kfuse_moe_plan_layout {
  int64_t tokens;
  int64_t top_k;
  int64_t experts;
  kfuse_moe_plan_options_t options;
  int64_t rows;         /* rows of every permuted (expert-ordered) matrix */
  int64_t storage_size; /* int32 elements of a plan's storage */
} kfuse_moe_plan_layout_t;

/* Validates the extents and options and fills *out (options NULL: defaults). */
kfuse_status_t kfuse_moe_plan_layout(int64_t tokens, int64_t top_k, int64_t experts,
                                     const kfuse_moe_plan_options_t* options,
                                     kfuse_moe_plan_layout_t* out);

/* A plan: layout.storage_size int32 in `memory`, holding in order counts [E],
 * offsets [E + 1], row_slot [rows], slot_row [T k] (see moe.hpp). The layout is
 * the one kfuse_moe_plan_layout filled: a layout whose storage_size is not that of
 * its extents is rejected (KFUSE_INVALID_ARGUMENT naming 'plan'). */
typedef struct kfuse_moe_plan {
  kfuse_moe_plan_layout_t layout;
  int32_t* storage;
  kfuse_memory_t memory;
} kfuse_moe_plan_t;

/* Fills the plan from ids [T x k] (I32). host_counts: NULL, or E int32 on the host
 * that receive the per-expert counts (on a CUDA context this waits for the stream);
 * it must not overlap ids or the plan's storage. */
kfuse_status_t kfuse_moe_plan(kfuse_context_t ctx, const kfuse_matrix_t* ids,
                              const kfuse_moe_plan_t* plan, int32_t* host_counts);

/* ------------------------------------------------------------------ scatter / gather */
kfuse_status_t kfuse_moe_scatter(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                 const kfuse_matrix_t* X, const kfuse_matrix_t* Xp);
kfuse_status_t kfuse_moe_scatter_backward(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                          const kfuse_matrix_t* dXp, const kfuse_matrix_t* dX);
kfuse_status_t kfuse_moe_gather(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                const kfuse_matrix_t* Yp, const kfuse_matrix_t* gates,
                                const kfuse_matrix_t* Y);
kfuse_status_t kfuse_moe_gather_backward(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                         const kfuse_matrix_t* Yp, const kfuse_matrix_t* gates,
                                         const kfuse_matrix_t* dY, const kfuse_matrix_t* dYp,
                                         const kfuse_matrix_t* dgates);

/* ------------------------------------------------------------------ grouped GEMMs
 * W [E*K x N], or [E*N x K] with transpose_w nonzero. Operands 16-byte aligned. */
kfuse_status_t kfuse_moe_grouped_gemm(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                      const kfuse_matrix_t* Xp, const kfuse_matrix_t* W,
                                      const kfuse_matrix_t* Yp, int transpose_w);
kfuse_status_t kfuse_moe_gather_gemm(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                     const kfuse_matrix_t* X, const kfuse_matrix_t* W,
                                     const kfuse_matrix_t* Yp, int transpose_w);
kfuse_status_t kfuse_moe_gemm_combine(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                      const kfuse_matrix_t* Hp, const kfuse_matrix_t* W,
                                      const kfuse_matrix_t* gates, const kfuse_matrix_t* Y,
                                      int transpose_w);
kfuse_status_t kfuse_moe_grouped_gemm_wgrad(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                            const kfuse_matrix_t* Xp, const kfuse_matrix_t* dYp,
                                            const kfuse_matrix_t* dW);

/* ------------------------------------------------------------------ SwiGLU expert MLP
 * h1, h3 [rows x F]: both NULL (nothing kept / recompute) or both given. */
kfuse_status_t kfuse_moe_mlp_forward(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                     const kfuse_matrix_t* X, const kfuse_matrix_t* gates,
                                     const kfuse_matrix_t* W1, const kfuse_matrix_t* W3,
                                     const kfuse_matrix_t* W2, const kfuse_matrix_t* Y,
                                     const kfuse_matrix_t* h1, const kfuse_matrix_t* h3);
kfuse_status_t kfuse_moe_mlp_backward(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                      const kfuse_matrix_t* X, const kfuse_matrix_t* gates,
                                      const kfuse_matrix_t* W1, const kfuse_matrix_t* W3,
                                      const kfuse_matrix_t* W2, const kfuse_matrix_t* dY,
                                      const kfuse_matrix_t* h1, const kfuse_matrix_t* h3,
                                      const kfuse_matrix_t* dX, const kfuse_matrix_t* dgates,
                                      const kfuse_matrix_t* dW1, const kfuse_matrix_t* dW3,
                                      const kfuse_matrix_t* dW2);

#ifdef __cplusplus
}
#endif

#endif /* KFUSE_KFUSE_MOE_H */
