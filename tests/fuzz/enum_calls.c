/* See enum_calls.h: in C an enumeration may hold any value of its integer type. */
#include "enum_calls.h"

const char* fuzz_status_name(int status) {
  return kfuse_status_name((kfuse_status_t)status);
}

kfuse_status_t fuzz_cross_modal_kron(kfuse_context_t ctx, int modality,
                                     const kfuse_matrix_t* shared, const kfuse_matrix_t* expert,
                                     const kfuse_matrix_t* out,
                                     const kfuse_cross_modal_options_t* options) {
  return kfuse_cross_modal_kron(ctx, (kfuse_modality_t)modality, shared, expert, out, options);
}

kfuse_status_t fuzz_cross_modal_rp(kfuse_context_t ctx, int modality, const kfuse_matrix_t* shared,
                                   const kfuse_matrix_t* expert, const kfuse_matrix_t* out,
                                   const kfuse_cross_modal_options_t* options) {
  return kfuse_cross_modal_rp(ctx, (kfuse_modality_t)modality, shared, expert, out, options);
}

kfuse_status_t fuzz_clip_loss_workspace_bytes(kfuse_context_t ctx, int64_t Na, int64_t Nb,
                                              int64_t d, int pass,
                                              const kfuse_clip_options_t* options, size_t* bytes) {
  return kfuse_clip_loss_workspace_bytes(ctx, Na, Nb, d, (kfuse_contrastive_pass_t)pass, options,
                                         bytes);
}

kfuse_status_t fuzz_siglip_loss_workspace_bytes(kfuse_context_t ctx, int64_t Na, int64_t Nb,
                                                int64_t d, int pass,
                                                const kfuse_siglip_options_t* options,
                                                size_t* bytes) {
  return kfuse_siglip_loss_workspace_bytes(ctx, Na, Nb, d, (kfuse_contrastive_pass_t)pass, options,
                                           bytes);
}
