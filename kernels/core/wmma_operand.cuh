// Tensor-core operand types for WMMA kernels: what shared memory stores, the
// fragment precision, the k-step of one mma, and the conversions from and to
// float. Kernels add their own padding.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

namespace kfuse::cuda {

// fp32 values rounded to TF32 (10-bit mantissa), m16n16k8.
struct WmmaTf32 {
  using Stored = float;
  using Frag = nvcuda::wmma::precision::tf32;
  static constexpr int kStep = 8;
  __device__ static float from_float(float v) { return nvcuda::wmma::__float_to_tf32(v); }
  __device__ static float to_float(float v) { return v; }
};

// bf16, m16n16k16.
struct WmmaBf16 {
  using Stored = __nv_bfloat16;
  using Frag = __nv_bfloat16;
  static constexpr int kStep = 16;
  __device__ static __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
  __device__ static float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
};

// fp16, m16n16k16.
struct WmmaF16 {
  using Stored = __half;
  using Frag = __half;
  static constexpr int kStep = 16;
  __device__ static __half from_float(float v) { return __float2half_rn(v); }
  __device__ static float to_float(__half v) { return __half2float(v); }
};

}  // namespace kfuse::cuda
