/* kfuse C API: a thin shell over the C++ API for FFI (Python ctypes/cffi, Rust,
 * Julia, ...). Every function returns a kfuse_status_t; on failure the message of
 * the last error on the calling thread is kfuse_last_error(), and no output has
 * been written. The numeric values of every enumeration match the C++ ones; an
 * enumeration argument or field holding any other integer (99, -1) is rejected
 * with KFUSE_INVALID_ARGUMENT naming the argument. */
#ifndef KFUSE_KFUSE_H
#define KFUSE_KFUSE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kfuse_status {
  KFUSE_SUCCESS = 0,
  KFUSE_INVALID_ARGUMENT = 1,
  KFUSE_SHAPE_MISMATCH = 2,
  KFUSE_MEMORY_LOCATION = 3,
  KFUSE_UNSUPPORTED = 4,
  KFUSE_NO_DEVICE = 5,
  KFUSE_CUDA_ERROR = 6,
  KFUSE_CUBLAS_ERROR = 7,
  KFUSE_OUT_OF_MEMORY = 8,
  KFUSE_INTERNAL = 9
} kfuse_status_t;

typedef enum kfuse_backend { KFUSE_BACKEND_CPU = 0, KFUSE_BACKEND_CUDA = 1 } kfuse_backend_t;

typedef enum kfuse_dtype {
  KFUSE_F32 = 0,
  KFUSE_F64 = 1,
  KFUSE_BF16 = 2,
  KFUSE_F16 = 3,
  KFUSE_I32 = 4,
  KFUSE_I64 = 5
} kfuse_dtype_t;

typedef enum kfuse_memory { KFUSE_HOST = 0, KFUSE_DEVICE = 1 } kfuse_memory_t;

typedef enum kfuse_precision {
  KFUSE_PRECISION_EXACT = 0,
  KFUSE_PRECISION_TF32 = 1,
  KFUSE_PRECISION_BF16 = 2
} kfuse_precision_t;

/* A row-major matrix: element (i, j) at data[i * ld + j], ld >= cols. */
typedef struct kfuse_matrix {
  void* data;
  int64_t rows;
  int64_t cols;
  int64_t ld;
  kfuse_dtype_t dtype;
  kfuse_memory_t memory;
} kfuse_matrix_t;

/* A contiguous vector. {NULL, 0, ...} (or a NULL pointer to one) means "absent"
 * where a function documents an optional vector. */
typedef struct kfuse_vector {
  void* data;
  int64_t size;
  kfuse_dtype_t dtype;
  kfuse_memory_t memory;
} kfuse_vector_t;

typedef struct kfuse_context_s* kfuse_context_t;

/* ------------------------------------------------------------------ errors */
/* The message of the last failed call on this thread ("" if none). Valid until the
 * thread's next failing kfuse call. */
const char* kfuse_last_error(void);
const char* kfuse_status_name(kfuse_status_t status);

/* ------------------------------------------------------------------ contexts */
/* Usable CUDA devices; 0 without CUDA, driver or GPU. */
int kfuse_cuda_device_count(void);
kfuse_status_t kfuse_context_create_cpu(kfuse_context_t* out);
/* A CUDA context with a stream of its own. */
kfuse_status_t kfuse_context_create_cuda(int device, kfuse_context_t* out);
/* A CUDA context on the caller's stream (a cudaStream_t; NULL is the legacy default stream). */
kfuse_status_t kfuse_context_create_cuda_on_stream(int device, void* stream, kfuse_context_t* out);
/* CUDA on device 0 when a usable device exists, else CPU. */
kfuse_status_t kfuse_context_create_best(kfuse_context_t* out);
void kfuse_context_destroy(kfuse_context_t ctx);
kfuse_status_t kfuse_context_backend(kfuse_context_t ctx, kfuse_backend_t* out);
kfuse_status_t kfuse_context_synchronize(kfuse_context_t ctx);
/* The CPU path's draw cache of random matrices (kfuse::Context::set_draw_cache_budget,
 * include/kfuse/context.hpp): at most `bytes` held (0 turns it off); the bytes held now;
 * drop what it holds. */
kfuse_status_t kfuse_context_set_draw_cache_budget(kfuse_context_t ctx, uint64_t bytes);
kfuse_status_t kfuse_context_draw_cache_bytes(kfuse_context_t ctx, uint64_t* out);
kfuse_status_t kfuse_context_clear_draw_cache(kfuse_context_t ctx);

/* ------------------------------------------------------------------ op families
 * One header per family, each included here. */
#ifdef __cplusplus
}
#endif

#include "kfuse/kfuse_contrastive.h"
#include "kfuse/kfuse_fuse.h"
#include "kfuse/kfuse_gauss.h"
#include "kfuse/kfuse_moe.h"

#endif /* KFUSE_KFUSE_H */
