// How an operation may compute its matrix products.
#pragma once

namespace kfuse {

// Numeric values are part of the C ABI (kfuse.h mirrors them).
enum class Precision : int {
  Exact = 0,  // IEEE arithmetic in the input type (the default)
  TF32 = 1,   // tensor cores on fp32 inputs rounded to TF32 (10-bit mantissa), fp32 accumulation
  BF16 = 2,   // tensor cores on inputs rounded to bf16 (8-bit mantissa), fp32 accumulation
};

// A precision is a permission, not a demand: where an operation has no faster
// path for a given shape or backend (most of the CPU path, small d) it computes
// exactly. (On the CPU, rp_fuse / cross_modal_rp take TF32 and BF16 as a permission
// to use the BLAS's fp32 GEMM: fp32 operands, another summation order.)
const char* precision_name(Precision precision) noexcept;

}  // namespace kfuse
