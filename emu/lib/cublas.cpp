// cuBLAS for the emulated device: the handle calls and the Ex GEMMs kfuse uses, on the CPU,
// with the real library's contract (declarations from the toolkit's cublas_api.h).
//
// - Column-major, transa/transb N, T or C (C = T for real types); the argument checks the real
//   library makes at call time (CUBLAS_STATUS_INVALID_VALUE for m, n, k or batchCount < 0, an
//   unknown operation, lda/ldb/ldc below their minimum, a null alpha or beta;
//   CUBLAS_STATUS_NOT_SUPPORTED for a type combination outside cublasGemmEx's table).
// - The product itself runs in the work queued on the handle's stream: nothing is computed
//   before the host synchronises. Pointer mode host reads alpha and beta at call time, device
//   mode when the work runs.
// - Precision: the operands are converted to the compute type, and the FAST compute types
//   always round them (TF32: 10-bit mantissa, bf16, fp16; each round to nearest even), the
//   pessimistic reading of "allows down-converting", so that tolerances argued for the tensor
//   cores are checked. Products accumulate sequentially over k with an FMA in the compute
//   precision (fp32 or fp64), as a tensor core accumulates in fp32.
// - beta == 0: C is not read (NaN or uninitialised C does not propagate); alpha == 0 or
//   k == 0: A and B are not read, C = beta C, as in the reference BLAS.
// Not emulated (CUBLAS_STATUS_NOT_SUPPORTED): complex types and the 16F and 32I compute types.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <library_types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <set>
#include <type_traits>
#include <vector>

#include "kfuse_emu/stream.hpp"

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
};

namespace kfuse::emu {
namespace {

// Live handles: a destroyed or never-created handle is CUBLAS_STATUS_NOT_INITIALIZED.
struct Handles {
  std::mutex mutex;
  std::set<cublasHandle_t> live;
};

Handles& handles() {
  static Handles h;
  return h;
}

bool live(cublasHandle_t handle) {
  Handles& h = handles();
  std::lock_guard<std::mutex> lock(h.mutex);
  return h.live.count(handle) != 0;
}

// How operands are rounded before the products.
enum class Rounding { None, Tf32, Bf16, Fp16 };

float round_tf32(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) {
    // Inf stays Inf; a NaN stays a (quiet) NaN after its low mantissa bits are cleared.
    if ((u & 0x007fffffu) != 0) u |= 0x00400000u;
  } else {
    u += 0x00000fffu + ((u >> 13) & 1u);  // round to nearest even at bit 13
  }
  u &= ~0x00001fffu;
  std::memcpy(&x, &u, 4);
  return x;
}

float round_operand(float x, Rounding r) {
  switch (r) {
    case Rounding::Tf32:
      return round_tf32(x);
    case Rounding::Bf16:
      return __bfloat162float(__float2bfloat16_rn(x));
    case Rounding::Fp16:
      return __half2float(__float2half_rn(x));
    case Rounding::None:
      break;
  }
  return x;
}

// Element i of an array of `type`, widened exactly to double.
double load(const void* p, cudaDataType_t type, std::int64_t i) {
  switch (type) {
    case CUDA_R_32F:
      return static_cast<const float*>(p)[i];
    case CUDA_R_64F:
      return static_cast<const double*>(p)[i];
    case CUDA_R_16F:
      return __half2float(static_cast<const __half*>(p)[i]);
    case CUDA_R_16BF:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case CUDA_R_8I:
      return static_cast<const std::int8_t*>(p)[i];
    default:
      return 0.0;  // excluded by supported()
  }
}

// The compute type's result, rounded (to nearest even) into C's type.
void store(void* p, cudaDataType_t type, std::int64_t i, double v) {
  switch (type) {
    case CUDA_R_32F:
      static_cast<float*>(p)[i] = static_cast<float>(v);
      break;
    case CUDA_R_64F:
      static_cast<double*>(p)[i] = v;
      break;
    case CUDA_R_16F:
      static_cast<__half*>(p)[i] = __float2half_rn(static_cast<float>(v));
      break;
    case CUDA_R_16BF:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(static_cast<float>(v));
      break;
    default:
      break;
  }
}

// One GEMM's operand: element (row, col) of op(X) for a row of op(X) and a column.
struct Operand {
  const void* data;
  cudaDataType_t type;
  std::int64_t ld;
  bool trans;
  long long stride;
};

// Everything the queued work needs, copied at call time.
struct GemmCall {
  std::int64_t m, n, k;
  Operand a, b;
  void* c;
  cudaDataType_t c_type;
  std::int64_t ldc;
  long long stride_c;
  std::int64_t batch;
  bool fp64;  // CUBLAS_COMPUTE_64F*: double scale and accumulation
  Rounding rounding;
  cublasPointerMode_t pointer_mode;
  const void* alpha_ptr;
  const void* beta_ptr;
  double alpha, beta;  // pointer mode host: read at call time
};

// Is (A, B, C, compute) in cublasGemmEx's table, among the rows emulated here? Sets the
// accumulation precision and the operand rounding.
bool supported(cudaDataType_t at, cudaDataType_t bt, cudaDataType_t ct, cublasComputeType_t compute,
               bool& fp64, Rounding& rounding) {
  fp64 = false;
  rounding = Rounding::None;
  if (at != bt) return false;
  switch (compute) {
    case CUBLAS_COMPUTE_32F:
    case CUBLAS_COMPUTE_32F_PEDANTIC:
      if (at == CUDA_R_32F) return ct == CUDA_R_32F;
      if (at == CUDA_R_16F) return ct == CUDA_R_16F || ct == CUDA_R_32F;
      if (at == CUDA_R_16BF) return ct == CUDA_R_16BF || ct == CUDA_R_32F;
      if (at == CUDA_R_8I) return ct == CUDA_R_32F;
      return false;
    case CUBLAS_COMPUTE_32F_FAST_TF32:
      rounding = Rounding::Tf32;
      return at == CUDA_R_32F && ct == CUDA_R_32F;
    case CUBLAS_COMPUTE_32F_FAST_16BF:
      rounding = Rounding::Bf16;
      return at == CUDA_R_32F && ct == CUDA_R_32F;
    case CUBLAS_COMPUTE_32F_FAST_16F:
      rounding = Rounding::Fp16;
      return at == CUDA_R_32F && ct == CUDA_R_32F;
    case CUBLAS_COMPUTE_64F:
    case CUBLAS_COMPUTE_64F_PEDANTIC:
      fp64 = true;
      return at == CUDA_R_64F && ct == CUDA_R_64F;
    default:
      return false;
  }
}

bool valid_algo(cublasGemmAlgo_t algo) {
  const int a = static_cast<int>(algo);
  return a == CUBLAS_GEMM_DEFAULT || (a >= CUBLAS_GEMM_ALGO0 && a <= CUBLAS_GEMM_ALGO23) ||
         (a >= CUBLAS_GEMM_DEFAULT_TENSOR_OP && a <= CUBLAS_GEMM_ALGO15_TENSOR_OP) ||
         a == CUBLAS_GEMM_AUTOTUNE;
}

double scalar(const void* p, bool fp64) {
  return fp64 ? *static_cast<const double*>(p) : *static_cast<const float*>(p);
}

// Packs op(X) for one batch entry as rows x depth, row-major, converted and rounded.
template <typename T>
void pack(const Operand& x, std::int64_t batch, std::int64_t rows, std::int64_t depth,
          Rounding rounding, std::vector<T>& out) {
  out.resize(static_cast<std::size_t>(rows * depth));
  const std::int64_t base = batch * x.stride;
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t d = 0; d < depth; ++d) {
      // op(X)(r, d) = X(r, d) stored column-major, or X(d, r) when transposed.
      const std::int64_t at = x.trans ? d + r * x.ld : r + d * x.ld;
      const double v = load(x.data, x.type, base + at);
      out[static_cast<std::size_t>(r * depth + d)] =
          std::is_same<T, double>::value
              ? static_cast<T>(v)
              : static_cast<T>(round_operand(static_cast<float>(v), rounding));
    }
}

// acc[j] += a_row[l] * b[l][j] for l = 0, 1, ..., k - 1 (b: k x n, row-major): every output
// a sequential chain of FMAs in T, the loop over j vectorisable. The operands are this file's
// own packed copies, so the sanitizers' instrumentation, which would stop the vectorisation,
// is left out here (the caller's arrays were checked when they were packed).
#define KFUSE_EMU_HOT_LOOP __attribute__((no_sanitize("address", "undefined")))
template <typename T>
inline __attribute__((always_inline)) KFUSE_EMU_HOT_LOOP void accumulate_row_body(
    const T* __restrict a_row, const T* __restrict b, std::int64_t k, std::int64_t n,
    T* __restrict acc) {
  for (std::int64_t l = 0; l < k; ++l) {
    const T av = a_row[l];
    const T* __restrict bl = b + l * n;
    // The builtins, not std::fma: a sanitized std::fma would not be inlined here.
    for (std::int64_t j = 0; j < n; ++j) {
      if constexpr (std::is_same<T, float>::value)
        acc[j] = __builtin_fmaf(av, bl[j], acc[j]);
      else
        acc[j] = __builtin_fma(av, bl[j], acc[j]);
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// The same with the FMA instruction (the baseline x86-64 calls fma() in libm for every
// product): CI time is the emulation's budget.
template <typename T>
__attribute__((target("avx2,fma"))) KFUSE_EMU_HOT_LOOP void accumulate_row_fma(
    const T* a_row, const T* b, std::int64_t k, std::int64_t n, T* acc) {
  accumulate_row_body(a_row, b, k, n, acc);
}
#endif

template <typename T>
KFUSE_EMU_HOT_LOOP void accumulate_row_baseline(const T* a_row, const T* b, std::int64_t k,
                                                std::int64_t n, T* acc) {
  accumulate_row_body(a_row, b, k, n, acc);
}

template <typename T>
void accumulate_row(const T* a_row, const T* b, std::int64_t k, std::int64_t n, T* acc) {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (fma) return accumulate_row_fma(a_row, b, k, n, acc);
#endif
  accumulate_row_baseline(a_row, b, k, n, acc);
}

template <typename T>
void run_gemm(const GemmCall& g) {
  const double alpha_d =
      g.pointer_mode == CUBLAS_POINTER_MODE_HOST ? g.alpha : scalar(g.alpha_ptr, g.fp64);
  const double beta_d =
      g.pointer_mode == CUBLAS_POINTER_MODE_HOST ? g.beta : scalar(g.beta_ptr, g.fp64);
  const T alpha = static_cast<T>(alpha_d), beta = static_cast<T>(beta_d);
  const bool products = alpha != T(0) && g.k > 0;
  std::vector<T> a, b, acc(static_cast<std::size_t>(g.n));  // op(A): m x k, op(B): k x n
  for (std::int64_t batch = 0; batch < g.batch; ++batch) {
    if (products) {
      pack(g.a, batch, g.m, g.k, g.rounding, a);
      pack(g.b, batch, g.k, g.n, g.rounding, b);
    }
    for (std::int64_t i = 0; i < g.m; ++i) {
      std::fill(acc.begin(), acc.end(), T(0));
      if (products) accumulate_row(a.data() + i * g.k, b.data(), g.k, g.n, acc.data());
      for (std::int64_t j = 0; j < g.n; ++j) {
        const std::int64_t at = batch * g.stride_c + i + j * g.ldc;
        // beta == 0: C is not read, whatever it holds.
        const T result =
            beta == T(0) ? alpha * acc[j]
                         : std::fma(beta, static_cast<T>(load(g.c, g.c_type, at)), alpha * acc[j]);
        store(g.c, g.c_type, at, static_cast<double>(result));
      }
    }
  }
}

cublasStatus_t gemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                    std::int64_t m, std::int64_t n, std::int64_t k, const void* alpha,
                    const void* A, cudaDataType_t Atype, std::int64_t lda, long long strideA,
                    const void* B, cudaDataType_t Btype, std::int64_t ldb, long long strideB,
                    const void* beta, void* C, cudaDataType_t Ctype, std::int64_t ldc,
                    long long strideC, std::int64_t batch, cublasComputeType_t compute,
                    cublasGemmAlgo_t algo) {
  if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  auto op_ok = [](cublasOperation_t op) {
    return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;
  };
  if (!op_ok(transa) || !op_ok(transb)) return CUBLAS_STATUS_INVALID_VALUE;
  if (m < 0 || n < 0 || k < 0 || batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
  if (lda < std::max<std::int64_t>(1, ta ? k : m) || ldb < std::max<std::int64_t>(1, tb ? n : k) ||
      ldc < std::max<std::int64_t>(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (alpha == nullptr || beta == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  GemmCall g{};
  if (!supported(Atype, Btype, Ctype, compute, g.fp64, g.rounding) || !valid_algo(algo))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = Operand{A, Atype, lda, ta, strideA};
  g.b = Operand{B, Btype, ldb, tb, strideB};
  g.c = C;
  g.c_type = Ctype;
  g.ldc = ldc;
  g.stride_c = strideC;
  g.batch = batch;
  g.pointer_mode = handle->pointer_mode;
  g.alpha_ptr = alpha;
  g.beta_ptr = beta;
  if (g.pointer_mode == CUBLAS_POINTER_MODE_HOST) {
    g.alpha = scalar(alpha, g.fp64);
    g.beta = scalar(beta, g.fp64);
  }
  const cudaError_t e = enqueue(handle->stream, [g] {
    if (g.fp64)
      run_gemm<double>(g);
    else
      run_gemm<float>(g);
  });
  return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

}  // namespace
}  // namespace kfuse::emu

using kfuse::emu::handles;
using kfuse::emu::live;

extern "C" {

cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  auto* h = new cublasContext;
  {
    auto& reg = handles();
    std::lock_guard<std::mutex> lock(reg.mutex);
    reg.live.insert(h);
  }
  *handle = h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasDestroy_v2(cublasHandle_t handle) {
  {
    auto& reg = handles();
    std::lock_guard<std::mutex> lock(reg.mutex);
    if (reg.live.erase(handle) == 0) return CUBLAS_STATUS_NOT_INITIALIZED;
  }
  // Queued GEMMs copied what they need: the handle can go before they run.
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
  if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = streamId;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasGetStream_v2(cublasHandle_t handle, cudaStream_t* streamId) {
  if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (streamId == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *streamId = handle->stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasGetPointerMode_v2(cublasHandle_t handle,
                                                    cublasPointerMode_t* mode) {
  if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = handle->pointer_mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSetPointerMode_v2(cublasHandle_t handle,
                                                    cublasPointerMode_t mode) {
  if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE)
    return CUBLAS_STATUS_INVALID_VALUE;
  handle->pointer_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

const char* CUBLASWINAPI cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "unrecognized status";
}

// The texts libcublasLt 13 carries for each status.
const char* CUBLASWINAPI cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "an unsupported value or parameter was passed to the function";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "the function requires an architectural feature absent from the device";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "the function failed to launch on the GPU";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "the requested functionality is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "the license check failed";
  }
  return "unrecognized status";
}

cublasStatus_t CUBLASWINAPI cublasGemmEx_64(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int64_t m, int64_t n,
    int64_t k, const void* alpha, const void* A, cudaDataType Atype, int64_t lda, const void* B,
    cudaDataType Btype, int64_t ldb, const void* beta, void* C, cudaDataType Ctype, int64_t ldc,
    cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  return kfuse::emu::gemm(handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb,
                          0, beta, C, Ctype, ldc, 0, 1, computeType, algo);
}

cublasStatus_t CUBLASWINAPI cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const void* alpha, const void* A, cudaDataType Atype,
                                         int lda, const void* B, cudaDataType Btype, int ldb,
                                         const void* beta, void* C, cudaDataType Ctype, int ldc,
                                         cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  return kfuse::emu::gemm(handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb,
                          0, beta, C, Ctype, ldc, 0, 1, computeType, algo);
}

cublasStatus_t CUBLASWINAPI cublasGemmStridedBatchedEx_64(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int64_t m, int64_t n,
    int64_t k, const void* alpha, const void* A, cudaDataType Atype, int64_t lda,
    long long int strideA, const void* B, cudaDataType Btype, int64_t ldb, long long int strideB,
    const void* beta, void* C, cudaDataType Ctype, int64_t ldc, long long int strideC,
    int64_t batchCount, cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  return kfuse::emu::gemm(handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype,
                          ldb, strideB, beta, C, Ctype, ldc, strideC, batchCount, computeType,
                          algo);
}

cublasStatus_t CUBLASWINAPI cublasGemmStridedBatchedEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
    const void* alpha, const void* A, cudaDataType Atype, int lda, long long int strideA,
    const void* B, cudaDataType Btype, int ldb, long long int strideB, const void* beta, void* C,
    cudaDataType Ctype, int ldc, long long int strideC, int batchCount,
    cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  return kfuse::emu::gemm(handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype,
                          ldb, strideB, beta, C, Ctype, ldc, strideC, batchCount, computeType,
                          algo);
}

}  // extern "C"
