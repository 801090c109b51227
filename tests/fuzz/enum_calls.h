/* The C API entry points that take an enumeration BY VALUE, called with any int.
 * The fuzzer is C++, where materialising an out-of-range value of an unscoped
 * enum is undefined (and UBSan reports loading one); these C wrappers convert the
 * int in C, where an enumeration is just an integer type, as a C caller would. */
#ifndef KFUSE_FUZZ_ENUM_CALLS_H
#define KFUSE_FUZZ_ENUM_CALLS_H

#include <kfuse/kfuse.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

const char* fuzz_status_name(int status);
kfuse_status_t fuzz_cross_modal_kron(kfuse_context_t ctx, int modality,
                                     const kfuse_matrix_t* shared, const kfuse_matrix_t* expert,
                                     const kfuse_matrix_t* out,
                                     const kfuse_cross_modal_options_t* options);
kfuse_status_t fuzz_cross_modal_rp(kfuse_context_t ctx, int modality, const kfuse_matrix_t* shared,
                                   const kfuse_matrix_t* expert, const kfuse_matrix_t* out,
                                   const kfuse_cross_modal_options_t* options);
kfuse_status_t fuzz_clip_loss_workspace_bytes(kfuse_context_t ctx, int64_t Na, int64_t Nb,
                                              int64_t d, int pass,
                                              const kfuse_clip_options_t* options, size_t* bytes);
kfuse_status_t fuzz_siglip_loss_workspace_bytes(kfuse_context_t ctx, int64_t Na, int64_t Nb,
                                                int64_t d, int pass,
                                                const kfuse_siglip_options_t* options,
                                                size_t* bytes);

#ifdef __cplusplus
}
#endif

#endif /* KFUSE_FUZZ_ENUM_CALLS_H */
